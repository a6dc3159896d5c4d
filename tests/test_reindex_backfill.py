"""Backfills of two namespaces created together both complete, each writing only its own namespace.

This is why there is one reindex DAG per namespace: Airflow runs one backfill per DAG at a time. The test
runs real Airflow parts as processes (dag-processor, scheduler with the LocalExecutor, api-server serving
the Task SDK's execution API on 127.0.0.1), creates the backfills with `airflow backfill create`, and reads
the outcome from the metadata DB, the Milvus Lite server the task processes share, and the registry.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow_env import DAGS_DIR
from tests.postgres import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: Airflow starts its task processes from PATH
NAMESPACES = {"finance": "acme_annual_report.pdf", "ops": "warehouse_inspection_scan.png"}  # ns -> its one file
DEADLINE_S = 420


def _latest_tick() -> dt.datetime:
    """The last 02:00 UTC (the nightly schedule): the run an unpaused DAG would start at once (catchup off)."""
    now = dt.datetime.now(dt.UTC)
    tick = now.replace(hour=2, minute=0, second=0, microsecond=0)
    return tick if tick <= now else tick - dt.timedelta(days=1)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory, milvus_server: str, sample_docs: Path) -> Iterator[dict[str, str]]:
    """Environment of a running Airflow (dag-processor, scheduler, api-server) that sees the reindex DAGs."""
    root = tmp_path_factory.mktemp("backfill")
    home, dags = root / "airflow", root / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / "pagelens_reindex.py").symlink_to(DAGS_DIR / "pagelens_reindex.py")  # only the DAGs under test
    namespaces = {}
    for namespace, document in NAMESPACES.items():
        (root / namespace).mkdir()
        shutil.copy(sample_docs / document, root / namespace / document)
        namespaces[namespace] = {"sources": [str(root / namespace)]}
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "plugins"),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",  # two task processes at a time (each loads MiniLM)
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "PAGELENS_DATA_DIR": str(root / "data"),
        "PAGELENS_MILVUS_URI": milvus_server,  # several task processes write: a served store, not a Lite file
        "PAGELENS_COLLECTION": "backfill",  # apart from other tests' collections on the shared server
        "PAGELENS_NAMESPACES": json.dumps(namespaces),
        "PAGELENS_PARSE_WORKERS": "1",
    }
    subprocess.run([BIN / "airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    parts = {name: _start(command, env, root / f"{name}.log") for name, command in {
        "dag-processor": ["dag-processor"],
        "scheduler": ["scheduler", "--skip-serve-logs"],  # its log server would listen on every interface
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
    }.items()}
    try:
        yield env
    finally:
        for process in parts.values():
            os.killpg(process.pid, signal.SIGTERM)
        for process in parts.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen([str(BIN / "airflow"), *command], env=env, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)  # its own group: teardown stops its workers too


def _query(env: dict[str, str], sql: str) -> list[tuple]:
    """Read the metadata DB (SQLite, read-only) directly: faster than a CLI call per poll."""
    path = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
        return db.execute(sql).fetchall()


def _wait_for(condition, what: str, timeout: float, env: dict[str, str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(2)
    logs = Path(env["AIRFLOW_HOME"]).parent
    tails = {p.name: p.read_text(errors="replace")[-1500:] for p in logs.glob("*.log")}
    pytest.fail(f"{what} within {timeout:.0f} s; process logs: {tails}")


def test_backfills_of_two_namespaces_run_side_by_side(airflow: dict[str, str]) -> None:
    dag_ids = {f"pagelens_reindex__{ns}" for ns in NAMESPACES}
    _wait_for(lambda: dag_ids <= {r[0] for r in _query(airflow, "select dag_id from serialized_dag")},
              "the dag-processor did not serialize both reindex DAGs", 180, airflow)
    # One night each, the latest: unpaused afterwards, the scheduler finds that night's run already there (the
    # backfill's) instead of starting its own beside it. A paused DAG's backfill runs never start.
    # Created back to back, so both backfills are active at once (one after the other: two CLI writers at the
    # same instant can meet "database is locked" on this test's SQLite metadata DB).
    tick = _latest_tick().isoformat()
    for dag_id in sorted(dag_ids):
        _airflow(airflow, "backfill", "create", "--dag-id", dag_id, "--from-date", tick, "--to-date", tick)
    assert _query(airflow, "select count(*) from backfill where completed_at is null") == [(2,)]
    for dag_id in sorted(dag_ids):
        _airflow(airflow, "dags", "unpause", dag_id)

    def finished() -> bool:
        rows = _query(airflow, "select count(*) from backfill where completed_at is null")
        return rows[0][0] == 0
    _wait_for(finished, "the backfills did not complete", DEADLINE_S, airflow)

    runs = dict(_query(airflow, "select dag_id, state from dag_run where run_type = 'backfill'"))
    assert runs == dict.fromkeys(sorted(dag_ids), "success")
    states = _query(airflow, "select dag_id, task_id, state from task_instance where task_id in ('check', 'swap')")
    assert sorted(states) == sorted((d, t, "success") for d in dag_ids for t in ("check", "swap"))
    _assert_each_namespace_holds_only_its_own(airflow)


def _airflow(env: dict[str, str], *command: str) -> None:
    done = subprocess.run([str(BIN / "airflow"), *command], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (command, (done.stdout + done.stderr)[-2000:])


def _assert_each_namespace_holds_only_its_own(env: dict[str, str]) -> None:
    from pagelens.registry import Registry
    from pagelens.settings import Settings
    from pagelens.store import VectorStore

    settings = Settings(data_dir=Path(env["PAGELENS_DATA_DIR"]), milvus_uri=env["PAGELENS_MILVUS_URI"],
                        collection=env["PAGELENS_COLLECTION"])
    registry = Registry(settings.registry_url)
    for namespace, document in NAMESPACES.items():
        store = VectorStore(settings, namespace)
        assert store.live_generation() == f"backfill__{namespace}_v1"
        rows = store.client.query(store.alias, filter="", output_fields=["namespace", "doc_id"], limit=1000)
        assert rows and {(r["namespace"], r["doc_id"]) for r in rows} == {(namespace, document)}
        assert {(r.doc_id, r.status) for r in registry.documents(namespace)} == {(document, "indexed")}
