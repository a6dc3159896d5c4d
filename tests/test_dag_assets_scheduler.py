"""Data-aware scheduling for real: an ingest run's asset event starts the downstream example DAG.

Real Airflow parts run as processes (dag-processor, scheduler with the LocalExecutor, api-server for the Task
SDK on 127.0.0.1) over two DAG files: `pagelens_ingest` and `pagelens_downstream_example`. The task processes
reach Milvus (`milvus-lite server` on 127.0.0.1) only through the `milvus_default` connection, supplied as an
`AIRFLOW_CONN_MILVUS_DEFAULT` variable the way a secrets backend would. A manual ingest run indexes a folder;
the scheduler must then start the downstream DAG from the asset event, and its task must see the counts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow_env import DAGS_DIR
from tests.postgres import free_port
from tests.test_reindex_backfill import BIN, REPO, _airflow, _query, _start, _wait_for
from tests.tiny_pdf import tiny_pdf

pytestmark = pytest.mark.integration
NS = "events"
DEADLINE_S = 420


@pytest.fixture(scope="module")
def airflow(tmp_path_factory: pytest.TempPathFactory, milvus_server: str) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("assets")
    home, dags, inbox = root / "airflow", root / "dags", root / "inbox"
    for folder in (home, dags, inbox):
        folder.mkdir()
    for name in ("pagelens_ingest.py", "pagelens_downstream_example.py"):
        (dags / name).symlink_to(DAGS_DIR / name)
    for n in range(2):
        (inbox / f"notice-{n}.pdf").write_bytes(tiny_pdf(f"Notice {n}: the north gate closes at {8 + n} pm."))
    host, port_text = milvus_server.removeprefix("http://").rsplit(":", 1)
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "plugins"),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW_CONN_MILVUS_DEFAULT": json.dumps({"conn_type": "milvus", "host": host, "port": int(port_text)}),
        "PAGELENS_DATA_DIR": str(root / "data"),
        "PAGELENS_COLLECTION": "assets",  # apart from other tests' collections on the shared server
        "PAGELENS_PARSE_WORKERS": "1",
        "INBOX": str(inbox),
    }
    env.pop("PAGELENS_MILVUS_URI", None)
    subprocess.run([BIN / "airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    parts = {name: _start(command, env, root / f"{name}.log") for name, command in {
        "dag-processor": ["dag-processor"],
        "scheduler": ["scheduler", "--skip-serve-logs"],
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


def test_an_ingest_event_triggers_the_downstream_dag(airflow: dict[str, str], milvus_server: str) -> None:
    dag_ids = {"pagelens_ingest", "pagelens_downstream_example"}
    _wait_for(lambda: dag_ids <= {r[0] for r in _query(airflow, "select dag_id from serialized_dag")},
              "the dag-processor did not serialize both DAGs", 180, airflow)
    for dag_id in sorted(dag_ids):
        _airflow(airflow, "dags", "unpause", dag_id)
    _airflow(airflow, "dags", "trigger", "pagelens_ingest", "--conf",
             json.dumps({"namespace": NS, "source": airflow["INBOX"]}))

    def downstream_done() -> bool:
        rows = _query(airflow, "select state from dag_run where dag_id = 'pagelens_downstream_example'")
        return bool(rows) and rows[0][0] in ("success", "failed")
    _wait_for(downstream_done, "the downstream DAG did not run after the ingest", DEADLINE_S, airflow)

    [(run_type, state)] = _query(airflow, "select run_type, state from dag_run "
                                          "where dag_id = 'pagelens_downstream_example'")
    assert (run_type, state) == ("asset_triggered", "success")
    [(value,)] = _query(airflow, "select value from xcom where dag_id = 'pagelens_downstream_example' "
                                 "and task_id = 'report_changes' and key = 'return_value'")
    [change] = json.loads(value)
    assert (change["asset"], change["event"], change["namespace"], change["dag_id"]) == \
        (f"pagelens://{NS}/", "ingest", NS, "pagelens_ingest")
    assert (change["indexed"], change["quarantined"], change["deleted"]) == (2, 0, 0)
    from pymilvus import MilvusClient  # the task processes wrote through the connection's server

    # this process's channel to the shared server sat idle through the run: the server keeps it (keepalive policy)
    rows = MilvusClient(uri=milvus_server).query(f"assets__{NS}", filter=f'namespace == "{NS}"', output_fields=["doc_id"])
    assert {r["doc_id"] for r in rows} == {"notice-0.pdf", "notice-1.pdf"}
    assert not (Path(airflow["PAGELENS_DATA_DIR"]) / "milvus.db").exists()
