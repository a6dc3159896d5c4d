"""What the API and the CLI reveal and how they print hostile names; /readyz recovering once the store is back
(issue 11). The recovery runs over real HTTP against a real `milvus-lite server` that is stopped and restarted."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pagelens import liteserver
from pagelens.pipeline.stages import ingest
from pagelens.records import DocumentReport
from pagelens.registry import Registry
from pagelens.settings import Settings
from pagelens.store import InvalidNamespace, validate_namespace
from pagelens.tokens import create_token
from query_api import create_app
from tests.api_fixtures import FINANCE_DOC, OPS_DOC
from tests.postgres import free_port
from tests.processes import stop_process
from tests.test_api_serve import call

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
EVIL = "report\n2026-01-01 INFO forged line \x1b[2J\u202egpj.pdf"


def test_readyz_without_a_token_names_no_namespace_and_no_path(api_settings: Settings) -> None:
    app = create_app(api_settings)
    app.extensions["pagelens"].warmup.ensure()
    client = app.test_client()
    public = client.get("/readyz")
    text = public.get_data(as_text=True)
    assert public.status_code == 200, public.json
    for secret in ("finance", "ops", str(api_settings.data_dir), "milvus.db", "namespace(s)"):
        assert secret not in text, secret
    token = create_token(api_settings, ["finance"], "finance probe")
    detailed = client.get("/readyz", headers={"Authorization": f"Bearer {token}"}).json
    assert detailed["checks"]["collections"]["detail"] == "loaded: finance"  # its own namespace, not the others
    flagged = create_app(Settings(**{**api_settings.model_dump(), "api_readyz_detail": True})).test_client()
    assert "ops" in flagged.get("/readyz").json["checks"]["collections"]["detail"]


@pytest.mark.parametrize("name", ["zeta\n", "zeta\nx", "\nzeta", "zeta\r", "zeta "])
def test_namespaces_are_matched_whole(name: str) -> None:
    with pytest.raises(InvalidNamespace):
        validate_namespace(name)


def test_a_namespace_with_a_trailing_newline_is_refused_by_the_api(api_settings: Settings) -> None:
    client = create_app(api_settings).test_client()
    token = create_token(api_settings, ["finance"], "t")
    response = client.post("/v1/search", json={"question": "revenue", "namespace": "finance\n"},
                           headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_request"
    response = client.get(f"/v1/documents/{FINANCE_DOC}/pages/1.png?namespace=finance%0A",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400


def test_cli_reports_escape_control_characters_in_names(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    Registry(settings.registry_url).record("ns", DocumentReport(doc=EVIL, status="quarantined",
                                                                reason=f"corrupt: {EVIL} is broken"), "v1")
    env = {**os.environ, "PAGELENS_DATA_DIR": str(settings.data_dir)}
    out = subprocess.run([str(BIN / "pagelens"), "documents", "--namespace", "ns"], env=env, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert "\x1b" not in out and "\u202e" not in out
    assert len(out.strip().splitlines()) == 2  # the header and one row: no forged line
    assert "\\n2026-01-01 INFO forged line \\x1b[2J\\u202egpj.pdf" in out


def test_logs_escape_control_characters_in_names(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / EVIL).write_bytes(b"not a pdf at all")
    with caplog.at_level(logging.WARNING, logger="pagelens.pipeline.stages"):
        [report] = ingest(str(folder), "ns", Settings(data_dir=tmp_path / "data"))
    assert report.status == "quarantined"
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Quarantined")]
    assert "\n" not in line and "\x1b" not in line and "report\\n2026-01-01 INFO forged line" in line


def test_readyz_recovers_once_a_store_that_failed_at_start_up_answers(sample_docs: Path, tmp_path: Path) -> None:
    port, served = free_port(), tmp_path / "milvus.db"
    server = liteserver.start(served, port, log=tmp_path / "lite.log")
    uri = liteserver.wait_ready(server, port, log=tmp_path / "lite.log")
    settings = Settings(data_dir=tmp_path / "data", milvus_uri=uri)
    assert [r.status for r in ingest(str(sample_docs / OPS_DOC), "ops", settings)] == ["indexed"]
    liteserver.stop(server)  # the store is down when the API starts
    api_port = free_port()
    base = f"http://127.0.0.1:{api_port}"
    env = {**os.environ, "PAGELENS_DATA_DIR": str(settings.data_dir), "PAGELENS_MILVUS_URI": uri,
           "PAGELENS_MILVUS_TIMEOUT_S": "2", "PAGELENS_API_READYZ_DETAIL": "true", "OMP_THREAD_LIMIT": "1",
           "HF_HUB_OFFLINE": "1"}
    with (tmp_path / "serve.log").open("wb") as log:
        api = subprocess.Popen([str(BIN / "pagelens"), "serve", "--port", str(api_port)], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        body = poll(base, lambda status, body: status == 503 and body["checks"]["models"]["ok"], 180)
        assert not body["checks"]["milvus"]["ok"]
        server = liteserver.start(served, port, log=tmp_path / "lite.log")
        liteserver.wait_ready(server, port, log=tmp_path / "lite.log")
        body = poll(base, lambda status, body: status == 200, 60)
        assert body["checks"]["collections"] == {"ok": True, "detail": "loaded: ops"}
        # ready, and still behind its tokens
        assert call(f"{base}/v1/search", {"question": "inspection", "namespace": "ops"})[0] == 401
    finally:
        stop_process(api, timeout=20)
        liteserver.stop(server)


def poll(base: str, done: Callable[[int, Any], bool], timeout: float) -> dict:
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            status, body = call(f"{base}/readyz")
            last = (status, body)
            if done(status, body):
                return body
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"/readyz never got there within {timeout:.0f} s; last answer {last}")
