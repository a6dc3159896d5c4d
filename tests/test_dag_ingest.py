"""The ingest DAG run for real with `dag.test()`: samples land in Milvus and the registry, re-runs are idempotent.

Everything runs in this process against a throwaway Airflow home (SQLite metadata DB) and a fresh pagelens
data dir, with the real MiniLM and Tesseract.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pagelens.settings import Settings

pytestmark = pytest.mark.integration

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"
NS = "acme"
GOOD = ("acme_annual_report.pdf", "warehouse_inspection_scan.png")


@dataclass
class Env:
    dag: Any  # airflow.sdk.DAG, imported only once the fixture has pointed airflow at its temp home
    settings: Settings
    source: Path


def _configure_airflow(migrate: bool) -> None:
    """Re-read the metadata DB URL and dags folder from the environment: airflow may already be imported."""
    from airflow import settings

    settings.dispose_orm()
    settings.configure_vars()
    settings.configure_orm()
    if migrate:
        from airflow.utils import db

        db.upgradedb()  # what `airflow db migrate` runs; on an empty SQLite file it creates the schema


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    home, data, source = (tmp_path_factory.mktemp(n) for n in ("airflow_home", "pagelens_data", "inbox"))
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PAGELENS_DATA_DIR": str(data),  # unique per module: the core caches Milvus clients by URI
        }.items():
            mp.setenv(name, value)
        _configure_airflow(migrate=True)

        from airflow.dag_processing.dagbag import DagBag

        from pagelens.samples import write_samples
        from pagelens.settings import Settings

        write_samples(source)
        (source / "broken.pdf").write_bytes(b"")
        dag = DagBag(dag_folder=DAGS_DIR).dags["pagelens_ingest"]
        for task in dag.tasks:
            task.retries = 0  # a failure should fail the test now, not after minutes of backoff
        yield Env(dag=dag, settings=Settings(), source=source)
    _configure_airflow(migrate=False)  # back to what the session had
    _release_milvus_lite(data)


def _release_milvus_lite(data: Path) -> None:
    """Stop this module's embedded Milvus now (its data dir is unique); otherwise it lives until process exit."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(data / "milvus.db"))


def run(env: Env, namespace: str = NS, source: Path | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """One DAG run; returns the task states ("task" or "task[i]") and finish's summary."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    dagrun = env.dag.test(run_conf={"namespace": namespace, "source": str(source or env.source)})
    states = {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti.state
              for ti in dagrun.get_task_instances()}
    assert dagrun.state == "success", states
    with create_session() as session:
        xcom = session.scalars(XComModel.get_many(run_id=dagrun.run_id, key="return_value", task_ids="finish",
                                                  dag_ids=dagrun.dag_id)).one()
        return states, XComModel.deserialize_value(xcom)


def records(env: Env, namespace: str = NS) -> dict[str, Any]:
    from pagelens.registry import Registry

    return {r.doc_id: r for r in Registry(env.settings.registry_url).documents(namespace)}


def store(env: Env) -> Any:
    from pagelens.store import VectorStore

    return VectorStore(env.settings, NS)


@pytest.fixture(scope="module")
def first(env: Env) -> tuple[dict[str, str], dict[str, Any]]:
    return run(env)


def test_first_run_indexes_good_documents_and_quarantines_broken(env: Env, first) -> None:
    states, summary = first
    assert states == {"plan": "success", "index_batch[0]": "success", "finish": "success"}
    assert (summary["indexed"], summary["quarantined"], summary["skipped"], summary["deleted"]) == (2, 1, 0, 0)
    rows = records(env)
    assert {d: rows[d].status for d in rows} == {GOOD[0]: "indexed", GOOD[1]: "indexed", "broken.pdf": "quarantined"}
    assert "0 bytes" in rows["broken.pdf"].reason
    assert rows[GOOD[0]].pages == 4 and rows[GOOD[0]].ocr_pages >= 1
    for doc in GOOD:
        assert store(env).count(doc) == rows[doc].chunks > 0
    assert store(env).count("broken.pdf") == 0


def test_only_the_run_namespace_has_rows(env: Env, first) -> None:
    from sqlalchemy import select

    from pagelens.registry import DocumentRecord, Registry

    registry = Registry(env.settings.registry_url)
    with registry.engine.connect() as conn:
        assert set(conn.scalars(select(DocumentRecord.namespace).distinct())) == {NS}
    vectors = store(env)
    total = vectors.client.query(vectors.alias, filter="", output_fields=["count(*)"])[0]["count(*)"]
    assert total == vectors.count() > 0


def test_empty_source_skips_indexing_and_still_finishes(env: Env, first, tmp_path: Path) -> None:
    states, summary = run(env, namespace="empty", source=tmp_path)
    assert states == {"plan": "success", "index_batch": "skipped", "finish": "success"}
    assert summary == {"indexed": 0, "skipped": 0, "quarantined": 0, "deleted": 0, "documents": []}
    assert records(env, "empty") == {}


def test_rerun_is_idempotent_and_removed_files_are_retired(env: Env, first) -> None:
    before_ids, before = sorted(store(env).chunk_ids_of()), records(env)

    _, summary = run(env)
    assert (summary["indexed"], summary["skipped"], summary["quarantined"]) == (0, 2, 1)  # broken is retried
    assert sorted(store(env).chunk_ids_of()) == before_ids
    after = records(env)
    for doc in GOOD:
        assert (after[doc].status, after[doc].chunks, after[doc].updated_at) == \
            (before[doc].status, before[doc].chunks, before[doc].updated_at)

    (env.source / GOOD[1]).unlink()
    _, summary = run(env)
    assert [d["doc"] for d in summary["documents"] if d["status"] == "deleted"] == [GOOD[1]]
    assert store(env).count(GOOD[1]) == 0
    assert records(env)[GOOD[1]].status == "deleted"
    assert store(env).count(GOOD[0]) == after[GOOD[0]].chunks
