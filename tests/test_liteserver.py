"""Several processes on one store: a Lite file admits one process, `pagelens store serve` admits them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pagelens.retrieve import retrieve
from pagelens.settings import Settings
from pagelens.store import VectorStore
from tests.postgres import free_port

pytestmark = pytest.mark.integration
PAGELENS = [sys.executable, "-m", "pagelens.cli"]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PAGELENS_DATA_DIR": str(data_dir), "PAGELENS_PARSE_WORKERS": "1", **extra}


def test_a_cli_run_and_this_process_share_the_served_store(milvus_server, sample_docs, tmp_path) -> None:
    ingesting = subprocess.Popen([*PAGELENS, "ingest", str(sample_docs), "--namespace", "shared", "--json"],
                                 env=_env(tmp_path / "cli", PAGELENS_MILVUS_URI=milvus_server),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    settings = Settings(data_dir=tmp_path / "here", milvus_uri=milvus_server)
    VectorStore(settings, "mine").ensure_collection()  # this process writes to the server while the other ingests
    out, err = ingesting.communicate(timeout=300)
    assert ingesting.returncode == 0, err[-2000:]
    assert '"indexed": 2' in out.splitlines()[-1]

    hits = retrieve("What is the calibration interval of the robot arm?", "shared", settings)
    assert (hits[0].doc_id, hits[0].page) == ("acme_annual_report.pdf", 4)
    assert VectorStore(settings, "mine").count() == 0


def test_a_lite_file_open_in_one_process_fails_in_another_with_the_serve_hint(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    VectorStore(settings, "ns").ensure_collection()  # this process now holds the Lite file's lock
    (tmp_path / "inbox").mkdir()
    second = subprocess.run([*PAGELENS, "ingest", str(tmp_path / "inbox"), "--namespace", "ns"], env=_env(settings.data_dir),
                            capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 2
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot open the Milvus Lite file") and "`pagelens store serve`" in last
    _release_lite(settings)


def test_store_serve_prints_the_uri_and_stops_cleanly_on_ctrl_c(tmp_path) -> None:
    data, port = tmp_path / "data", free_port()
    serve = subprocess.Popen([*PAGELENS, "store", "serve", "--port", str(port)], env=_env(data),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [serve.stdout.readline() for _ in range(3)]  # the server's own start line comes first
        assert f"  export PAGELENS_MILVUS_URI=http://127.0.0.1:{port}\n" in lines
        served = Settings(data_dir=tmp_path / "client", milvus_uri=f"http://127.0.0.1:{port}")
        VectorStore(served, "ns").ensure_collection()
    finally:
        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=30) == 0
    embedded = Settings(data_dir=data)  # what the server wrote is in the Lite file once it stopped
    assert VectorStore(embedded, "ns").exists()
    _release_lite(embedded)


def _release_lite(settings: Settings) -> None:
    from pagelens.liteserver import release_embedded

    release_embedded(settings.milvus_uri)


PINGING_CLIENT = """
import sys, time
from pymilvus import MilvusClient
# pings every second, idle channel included: stricter than pymilvus's 10 s, so the test is quick
client = MilvusClient(uri=sys.argv[1], grpc_options={"grpc.keepalive_time_ms": 1000,
                                                     "grpc.http2.max_pings_without_data": 0})
client.list_collections()
time.sleep(8)
client.list_collections()
print("ok")
"""


def test_the_served_store_accepts_keepalive_pings_of_an_idle_client(milvus_server) -> None:
    """gRPC's default server policy sends GOAWAY "too_many_pings" to a client that pings between calls, and the
    client's next call fails once; the server accepts pings as Milvus does (every 5 s at least)."""
    run = subprocess.run([sys.executable, "-c", PINGING_CLIENT, milvus_server], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "GRPC_VERBOSITY": "ERROR"})
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
    assert "too_many_pings" not in run.stderr


def test_the_embedded_store_accepts_keepalive_pings_of_an_idle_client(tmp_path) -> None:
    """The embedded default serves its Lite file in this process with the same policy: milvus-lite's own
    in-process server (what pymilvus starts for a .db path) sends the GOAWAY after an idle spell."""
    from pagelens.liteserver import embedded_uri, release_embedded

    path = str(tmp_path / "milvus.db")
    uri = embedded_uri(path)
    try:
        assert embedded_uri(path) == uri and uri.startswith("http://127.0.0.1:")  # one server per file
        run = subprocess.run([sys.executable, "-c", PINGING_CLIENT, uri], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "GRPC_VERBOSITY": "ERROR"})
        assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]
        assert "too_many_pings" not in run.stderr
    finally:
        release_embedded(path)
    opened = subprocess.run([sys.executable, "-c", "import sys\nfrom milvus_lite.db import MilvusLite\n"
                             "MilvusLite(sys.argv[1]).close()", path], capture_output=True, text=True, timeout=60)
    assert opened.returncode == 0, opened.stderr[-2000:]  # released: the lock went with it
