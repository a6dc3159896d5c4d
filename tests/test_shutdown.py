"""Killed and stopped processes leave nothing behind, and a rerun converges (issue 11): SIGTERM and SIGINT to
`pagelens ingest` mid-OCR, SIGTERM, SIGINT and SIGKILL to `pagelens store serve`, kill -9 of a whole ingest process group.
Real processes, real signals; what is left is read from `ps`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from pagelens import procs
from pagelens.samples import PNG_NAME
from pagelens.settings import Settings
from pagelens.store import VectorStore
from tests.postgres import free_port
from tests.processes import stop_process
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration
PAGELENS = str(Path(sys.executable).with_name("pagelens"))


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PAGELENS_DATA_DIR": str(data_dir), "OMP_THREAD_LIMIT": "1", "HF_HUB_OFFLINE": "1",
            "PAGELENS_PARSE_WORKERS": "2", **extra}


def session_processes(sid: int) -> list[str]:
    """`ps` rows (pid, command) of every process still in session `sid`."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [f"{r[0]} {r[3]}" for r in rows if len(r) == 4 and int(r[1]) == sid and not r[2].startswith("Z")]


def alive(pid: int) -> bool:
    out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(out) and not out.startswith("Z")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def ingest(folder: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    """`pagelens ingest` in a session of its own (its pid is the session id of all it starts)."""
    return subprocess.Popen([PAGELENS, "ingest", str(folder), "--namespace", "ns", "--json"], env=env_for(data_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)


def finished(process: subprocess.Popen[bytes]) -> dict:
    out, _ = process.communicate(timeout=600)
    assert process.returncode == 0
    return json.loads(out.decode().strip().splitlines()[-1])


def chunk_ids(data_dir: Path) -> set[str]:
    store = VectorStore(Settings(data_dir=data_dir), "ns")
    store.ensure_loaded()
    rows = store.client.query(store.target, filter='namespace == "ns"', output_fields=["id"], limit=10_000)
    return {r["id"] for r in rows}


def indexed_count(data_dir: Path) -> int:
    db = data_dir / "registry.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as connection:
            return connection.execute("select count(*) from documents where status = 'indexed'").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is still being created
        return 0


@pytest.fixture
def scans(sample_docs: Path, tmp_path: Path) -> Path:
    """Four distinct scans (OCR takes seconds each): the run is inside Tesseract for a while."""
    folder = tmp_path / "scans"
    folder.mkdir()
    for n in range(4):
        image = Image.open(sample_docs / PNG_NAME).convert("RGB")
        image.putpixel((n, 0), (n, n, n))
        image.save(folder / f"scan-{n}.png", dpi=(200, 200))
    return folder


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_to_ingest_ends_its_parse_workers_and_tesseract_and_a_rerun_converges(scans, tmp_path,
                                                                                                sig) -> None:
    data_dir = tmp_path / "data"
    process = ingest(scans, data_dir)
    try:
        wait_for(lambda: any("tesseract" in row for row in session_processes(process.pid)), 120, "Tesseract to run")
        assert len([r for r in session_processes(process.pid) if "multiprocessing" in r]) >= 1
        process.send_signal(sig)  # to the ingest process only, as a supervisor (or `kill -INT`) would
        process.wait(timeout=30)
        assert process.returncode != 0
        wait_for(lambda: not session_processes(process.pid), 10, "nothing left of the run")
    finally:
        stop_process(process)
        for row in session_processes(process.pid):
            os.kill(int(row.split()[0]), signal.SIGKILL)
    rerun = finished(ingest(scans, data_dir))
    assert rerun["indexed"] + rerun["skipped"] == 4 and rerun["quarantined"] == 0
    clean = finished(ingest(scans, tmp_path / "clean"))
    assert clean["indexed"] == 4
    assert chunk_ids(data_dir) == chunk_ids(tmp_path / "clean")


def test_kill_9_of_the_whole_ingest_group_leaves_nothing_and_the_rerun_equals_a_clean_run(tmp_path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(12):
        (folder / f"doc-{n:02d}.pdf").write_bytes(tiny_pdf(f"Document {n}. It records item {n * 7} of the audit"))
    data_dir = tmp_path / "data"
    process = ingest(folder, data_dir)
    try:
        wait_for(lambda: indexed_count(data_dir) >= 3, 180, "three documents recorded")
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        wait_for(lambda: not session_processes(process.pid), 10, "nothing left of the run")
    finally:
        stop_process(process)
    recorded = indexed_count(data_dir)
    assert 3 <= recorded < 12
    rerun = finished(ingest(folder, data_dir))
    assert rerun["skipped"] >= recorded and rerun["indexed"] + rerun["skipped"] == 12
    clean = finished(ingest(folder, tmp_path / "clean"))
    assert clean["indexed"] == 12
    assert chunk_ids(data_dir) == chunk_ids(tmp_path / "clean")


def store_serve(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], int]:
    """`pagelens store serve` once it serves, and the pid of its milvus-lite child."""
    process = subprocess.Popen([PAGELENS, "store", "serve", "--port", str(port)], env=env_for(data_dir),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert process.stdout is not None
    for line in process.stdout:
        if "Milvus Lite serves" in line:
            break
    else:
        raise AssertionError(f"store serve exited with {process.wait()}")
    [child] = procs.child_pids(process.pid)
    return process, child


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_stopping_store_serve_stops_its_lite_server_and_frees_the_file(tmp_path, sig) -> None:
    data_dir = tmp_path / "data"
    process, child = store_serve(data_dir, free_port())
    try:
        process.send_signal(sig)
        process.wait(timeout=30)
        wait_for(lambda: not alive(child), 20, f"milvus-lite (pid {child}) to exit after {sig.name} to its parent")
    finally:
        stop_process(process)
        if alive(child):
            os.kill(child, signal.SIGKILL)
    opened = subprocess.run([sys.executable, "-c", "import sys; from pymilvus import MilvusClient; "
                             "MilvusClient(sys.argv[1]).list_collections()", str(data_dir / "milvus.db")],
                            capture_output=True, text=True, timeout=120)
    assert opened.returncode == 0, opened.stderr[-2000:]  # no DataDirLockedError: the lock went with the server
