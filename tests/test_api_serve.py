"""The API as deployed: `pagelens serve` on a Lite file, and gunicorn workers sharing a Milvus server, over real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pagelens.settings import Settings
from pagelens.tokens import create_token
from tests.api_fixtures import OPS_DOC
from tests.llm_server import free_port
from tests.processes import stop_process

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
START_DEADLINE_S = 120.0


def call(url: str, body: dict[str, Any] | None = None, token: str | None = None) -> tuple[int, Any]:
    """(status, decoded body) of one HTTP request; JSON bodies are decoded, others returned as text."""
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw, kind = response.status, response.read(), response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        status, raw, kind = exc.code, exc.read(), exc.headers.get_content_type()
    return status, json.loads(raw) if kind == "application/json" else raw.decode()


@contextmanager
def running(command: list[str], env: dict[str, str], base_url: str, log: Path) -> Iterator[None]:
    """Run a server process until /readyz answers 200; stop it (SIGTERM) afterwards."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            assert process.poll() is None, f"server exited with {process.returncode}: {log.read_text()[-3000:]}"
            try:
                if call(f"{base_url}/readyz")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, f"not ready within {START_DEADLINE_S:g} s: {log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield
    finally:
        stop_process(process, timeout=20)


def test_pagelens_serve_answers_over_http(sample_docs: Path, tmp_path: Path) -> None:
    """The scripted contract: ingest, `token create` (last line), `serve`, query over HTTP, `token revoke`."""
    env = {**os.environ, "PAGELENS_DATA_DIR": str(tmp_path / "data"), "OMP_THREAD_LIMIT": "1", "HF_HUB_OFFLINE": "1"}
    cli = [str(BIN / "pagelens")]
    subprocess.run([*cli, "ingest", str(sample_docs / OPS_DOC), "--namespace", "ops"], env=env, check=True,
                   capture_output=True, timeout=300)
    created = subprocess.run([*cli, "token", "create", "--namespace", "ops"], env=env, check=True, capture_output=True,
                             text=True, timeout=60)
    token = created.stdout.splitlines()[-1]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running([*cli, "serve", "--port", str(port)], env, base, tmp_path / "serve.log"):
        status, body = call(f"{base}/v1/query", {"question": "What did the inspection find?", "namespace": "ops"}, token)
        assert status == 200, body
        assert body["answer"]["citations"] and {c["doc"] for c in body["answer"]["citations"]} == {OPS_DOC}
        assert call(f"{base}/v1/search", {"question": "inspection", "namespace": "finance"}, token)[0] == 403
        subprocess.run([*cli, "token", "revoke", token], env=env, check=True, capture_output=True, timeout=60)
        status, body = call(f"{base}/v1/search", {"question": "inspection", "namespace": "ops"}, token)
        assert status == 401 and body["error"]["code"] == "invalid_token"


def test_gunicorn_workers_share_a_milvus_server_and_sum_their_metrics(sample_docs: Path, tmp_path: Path,
                                                                      milvus_server: str) -> None:
    from pagelens.pipeline.stages import ingest

    settings = Settings(data_dir=tmp_path / "data", milvus_uri=milvus_server)
    assert [r.status for r in ingest(str(sample_docs / OPS_DOC), "gunicorn_ops", settings)] == ["indexed"]
    token = create_token(settings, ["gunicorn_ops"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PAGELENS_DATA_DIR": str(settings.data_dir), "PAGELENS_MILVUS_URI": milvus_server,
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "OMP_THREAD_LIMIT": "1", "HF_HUB_OFFLINE": "1"}
    command = [str(BIN / "gunicorn"), "-c", "python:query_api.gunicorn_conf", "-w", "2", "-b", f"127.0.0.1:{port}",
               "query_api:create_app()"]
    with running(command, env, base, tmp_path / "gunicorn.log"):
        for i in range(12):
            status, body = call(f"{base}/v1/search", {"question": f"inspection finding {i}", "namespace": "gunicorn_ops"},
                                token)
            assert status == 200 and {r["doc"] for r in body["results"]} == {OPS_DOC}, body
        _, metrics = call(f"{base}/metrics")
    assert 'http_requests_total{route="/v1/search",status="200"} 12.0' in metrics  # both workers' counts, summed
    log = (tmp_path / "gunicorn.log").read_text()
    assert log.count("Booting worker") == 2 and "DataDirLocked" not in log
