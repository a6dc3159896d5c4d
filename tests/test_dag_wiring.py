"""Airflow-native wiring: DAG tasks reach Milvus through the `milvus_default` connection (MilvusHook), ingests emit
asset events per namespace, and the ingest params form refuses a bad namespace.

The ingest DAG runs for real with `dag.test()` against a throwaway Airflow home; the connection (an
`AIRFLOW_CONN_MILVUS_DEFAULT` variable, as a secrets backend would supply it) points at `milvus-lite server` on
127.0.0.1 while `PAGELENS_MILVUS_URI` is left at its Lite-file default, so where the vectors land shows which
one the tasks used.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pagelens.settings import Settings
from tests.airflow_env import airflow_home, asset_events, load_dags, run_dag
from tests.postgres import free_port
from tests.tiny_pdf import tiny_pdf

NS = "wired"
COLLECTION = "wiring"  # apart from other tests' collections on the shared server


def connection(uri: str, **extra: Any) -> str:
    host, port = uri.removeprefix("http://").rsplit(":", 1)
    return json.dumps({"conn_type": "milvus", "host": host, "port": int(port), "extra": {"timeout": 20, **extra}})


# -- the hook ------------------------------------------------------------------------------------
def test_hook_follows_the_airflow_hook_conventions() -> None:
    from pagelens.airflow.hooks.milvus import MilvusHook

    assert MilvusHook.default_conn_name == Settings().milvus_conn_id == "milvus_default"
    assert MilvusHook.conn_name_attr == "milvus_conn_id" and MilvusHook.conn_type == "milvus"
    assert MilvusHook().milvus_conn_id == "milvus_default"


@pytest.mark.parametrize(("conn", "fields"), [
    ({"conn_type": "milvus", "host": "milvus.milvus.svc"},
     {"uri": "http://milvus.milvus.svc:19530", "token": "", "db_name": "", "timeout": None}),
    ({"conn_type": "milvus", "host": "milvus.example.com", "port": 443, "login": "reader", "password": "s3cret",
      "schema": "pagelens", "extra": {"secure": True, "timeout": 5}},
     {"uri": "https://milvus.example.com:443", "token": "reader:s3cret", "db_name": "pagelens", "timeout": 5.0}),
    ({"conn_type": "milvus", "host": "https://in01-abc.zillizcloud.com", "password": "api-key",
      "extra": {"db_name": "prod"}},
     {"uri": "https://in01-abc.zillizcloud.com", "token": "api-key", "db_name": "prod", "timeout": None}),
    ({"conn_type": "milvus", "extra": {"uri": "/data/milvus.db", "token": "t0k"}},
     {"uri": "/data/milvus.db", "token": "t0k", "db_name": "", "timeout": None}),
])
def test_hook_reads_the_connection_fields(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any],
                                          fields: dict[str, Any]) -> None:
    from pagelens.airflow.hooks.milvus import MilvusHook

    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_TEST", json.dumps(conn))
    hook = MilvusHook("milvus_test")
    assert hook.connection_fields() == fields
    settings = hook.store_settings(Settings(milvus_uri="/elsewhere.db", milvus_token="env-token"))
    assert (settings.milvus_uri, settings.milvus_token, settings.milvus_db_name) == \
        (fields["uri"], fields["token"], fields["db_name"])


def test_hook_says_what_the_connection_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    from pagelens.airflow.hooks.milvus import MilvusHook
    from pagelens.errors import StoreUnavailable

    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_EMPTY", json.dumps({"conn_type": "milvus"}))
    with pytest.raises(StoreUnavailable, match="needs a host"):
        MilvusHook("milvus_empty").connection_fields()


@pytest.mark.integration
def test_test_connection_reaches_the_server_or_says_why_not(milvus_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pagelens.airflow.hooks.milvus import MilvusHook

    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_UP", connection(milvus_server))
    ok, message = MilvusHook("milvus_up").test_connection()
    assert ok and message.startswith("Connection successfully tested"), message
    monkeypatch.setenv("AIRFLOW_CONN_MILVUS_DOWN", connection(f"http://127.0.0.1:{free_port()}", timeout=2))
    ok, message = MilvusHook("milvus_down").test_connection()
    assert not ok and "cannot reach Milvus" in message


def test_without_the_connection_tasks_keep_the_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pagelens.airflow.hooks.milvus import task_settings

    monkeypatch.delenv("AIRFLOW_CONN_MILVUS_DEFAULT", raising=False)
    settings = Settings(data_dir=tmp_path, milvus_conn_id="milvus_nowhere")
    assert task_settings(settings) == settings


# -- DAG runs ------------------------------------------------------------------------------------
@dataclass
class Env:
    dags: dict[str, Any]
    source: Path
    data: Path
    server: str


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, milvus_server: str) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("wiring")
    source = root / "inbox"
    source.mkdir()
    for n in range(2):
        (source / f"note-{n}.pdf").write_bytes(tiny_pdf(f"Shift note {n}: the conveyor belt was serviced on day {n}."))
    variables = {"PAGELENS_DATA_DIR": str(root / "data"), "PAGELENS_COLLECTION": COLLECTION,
                 "AIRFLOW_CONN_MILVUS_DEFAULT": connection(milvus_server)}
    with airflow_home(root / "airflow", variables):
        yield Env(load_dags(), source, root / "data", milvus_server)


def ingest(env: Env, **conf: str) -> Any:
    run = run_dag(env.dags["pagelens_ingest"], {"namespace": NS, "source": str(env.source), **conf})
    assert run.state == "success", run.tasks
    return run


@pytest.mark.integration
def test_tasks_write_through_the_connection_not_the_settings(env: Env) -> None:
    from pymilvus import MilvusClient

    run = ingest(env)
    assert run.xcom("finish")["namespaces"][NS]["indexed"] == 2
    served = MilvusClient(uri=env.server)
    rows = served.query(f"{COLLECTION}__{NS}", filter=f'namespace == "{NS}"', output_fields=["doc_id"])
    assert {r["doc_id"] for r in rows} == {"note-0.pdf", "note-1.pdf"}
    assert not (env.data / "milvus.db").exists()  # PAGELENS_MILVUS_URI's default Lite file was never opened


@pytest.mark.integration
def test_ingests_emit_one_asset_event_per_changed_namespace(env: Env) -> None:
    events = asset_events(f"pagelens://{NS}")
    assert len(events) == 1
    first = events[0]
    assert (first["event"], first["namespace"], first["dag_id"], first["task_id"]) == \
        ("ingest", NS, "pagelens_ingest", "finish")
    assert {k: first[k] for k in ("indexed", "skipped", "quarantined", "deleted")} == \
        {"indexed": 2, "skipped": 0, "quarantined": 0, "deleted": 0}

    ingest(env)  # nothing changed: no event
    assert len(asset_events(f"pagelens://{NS}")) == 1

    (env.source / "note-1.pdf").unlink()
    run = ingest(env)
    events = asset_events(f"pagelens://{NS}")
    assert len(events) == 2 and events[-1]["run_id"] == run.run_id
    assert (events[-1]["deleted"], events[-1]["skipped"], events[-1]["indexed"]) == (1, 1, 0)


@pytest.mark.integration
def test_the_params_form_refuses_a_bad_namespace(env: Env) -> None:
    dag = env.dags["pagelens_ingest"]
    assert dag.params.get_param("namespace").schema["pattern"] == r"^([A-Za-z][A-Za-z0-9_]{0,63})?$"
    with pytest.raises(Exception, match="does not match") as raised:
        run_dag(dag, {"namespace": "finance-eu", "source": str(env.source)})
    assert "ParamValidationError" in type(raised.value).__name__ or "namespace" in str(raised.value)
    assert "`namespace`: empty runs every configured namespace" in dag.doc_md

