"""The ingest DAG run for real with `dag.test()`: samples land in Milvus and the registry, re-runs are idempotent,
and scheduled runs fill every configured namespace from its own sources into its own index.

Everything runs in this process against a throwaway Airflow home (SQLite metadata DB) and a fresh pagelens
data dir, with the real MiniLM and Tesseract; the pagelens registry is SQLite in one pass, PostgreSQL in the other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.airflow_env import airflow_home, load_dags, release_milvus_lite, run_dag
from tests.tiny_pdf import tiny_pdf

if TYPE_CHECKING:
    from pagelens.settings import Settings

pytestmark = pytest.mark.integration

NS = "acme"
GOOD = ("acme_annual_report.pdf", "warehouse_inspection_scan.png")
ZERO = {"indexed": 0, "skipped": 0, "quarantined": 0, "deleted": 0}


@dataclass
class Env:
    dag: Any  # airflow.sdk.DAG, imported only once the fixture has pointed airflow at its temp home
    settings: Settings
    source: Path
    root: Path


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """The whole module runs twice: the registry on the embedded SQLite default, then on PostgreSQL."""
    home, data, source = (tmp_path_factory.mktemp(n) for n in ("airflow_home", "pagelens_data", "inbox"))
    # PAGELENS_DATA_DIR unique per run: the core caches Milvus clients by URI
    variables = {"PAGELENS_DATA_DIR": str(data)}
    if request.param == "postgresql":
        variables["PAGELENS_REGISTRY_URL"] = request.getfixturevalue("postgres").create_registry()
    with airflow_home(home, variables):
        from pagelens.samples import write_samples
        from pagelens.settings import Settings

        write_samples(source)
        (source / "broken.pdf").write_bytes(b"")
        assert Settings().registry_url.startswith(request.param)
        yield Env(dag=load_dags()["pagelens_ingest"], settings=Settings(), source=source,
                  root=tmp_path_factory.mktemp("namespaces"))
    release_milvus_lite(data)


def run(env: Env, conf: dict[str, str] | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """One DAG run (by default a one-off run of the sample folder into NS); task states and finish's summary."""
    result = run_dag(env.dag, {"namespace": NS, "source": str(env.source)} if conf is None else conf)
    assert result.state == "success", result.tasks
    return result.tasks, result.xcom("finish")


def records(env: Env, namespace: str = NS) -> dict[str, Any]:
    from pagelens.registry import Registry

    return {r.doc_id: r for r in Registry(env.settings.registry_url).documents(namespace)}


def store(env: Env, namespace: str = NS) -> Any:
    from pagelens.store import VectorStore

    return VectorStore(env.settings, namespace)


@pytest.fixture(scope="module")
def first(env: Env) -> tuple[dict[str, str], dict[str, Any]]:
    return run(env)


def test_first_run_indexes_good_documents_and_quarantines_broken(env: Env, first) -> None:
    states, summary = first
    assert states == {"plan": "success", "parse_batch[0]": "success", "encode_batch[0]": "success", "finish": "success"}
    assert (summary["indexed"], summary["quarantined"], summary["skipped"], summary["deleted"]) == (2, 1, 0, 0)
    assert summary["namespaces"] == {NS: {"indexed": 2, "skipped": 0, "quarantined": 1, "deleted": 0}}
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
    states, summary = run(env, {"namespace": "empty", "source": str(tmp_path)})
    assert states == {"plan": "success", "parse_batch": "skipped", "encode_batch": "skipped", "finish": "success"}
    assert summary == {**ZERO, "namespaces": {"empty": ZERO}, "documents": []}
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


def test_scheduled_run_fills_each_configured_namespace_from_its_own_sources(
        env: Env, first, monkeypatch: pytest.MonkeyPatch) -> None:
    folders = {"legal": env.root / "legal", "sales": env.root / "sales"}
    topics = {"legal": "The indemnity clause caps liability at two million euros",
              "sales": "Quarterly sales of the gripper rose by thirty percent in Europe"}
    for namespace, folder in folders.items():
        folder.mkdir()
        for number in range(9):  # two batches of up to 8 documents per namespace
            (folder / f"{namespace}-{number}.pdf").write_bytes(tiny_pdf(f"{topics[namespace]}. Note {number}."))
    monkeypatch.setenv("PAGELENS_NAMESPACES", json.dumps({ns: {"sources": [str(f)]} for ns, f in folders.items()}))

    # What the hourly schedule runs: the params' defaults (given explicitly: in-process `dag.test()` runs keep
    # the previous run's conf in the DAG's Param objects).
    states, summary = run(env, {"namespace": "", "source": ""})
    steps = {f"{step}_batch[{i}]": "success" for i in range(4) for step in ("parse", "encode")}
    assert states == {"plan": "success", "finish": "success", **steps}
    assert summary["namespaces"] == {"legal": {**ZERO, "indexed": 9}, "sales": {**ZERO, "indexed": 9}}
    for namespace, other in (("legal", "sales"), ("sales", "legal")):
        assert set(records(env, namespace)) == {f"{namespace}-{n}.pdf" for n in range(9)}
        texts = [r["text"] for r in store(env, namespace).client.query(
            store(env, namespace).alias, filter="", output_fields=["text"], limit=100)]
        assert texts and all(topics[namespace].split()[1] in t for t in texts)
        assert not any(topics[other].split()[1] in t for t in texts)
    assert set(records(env, NS)) == {*GOOD, "broken.pdf"}  # the one-off source's namespace is left alone

    (folders["sales"] / "sales-0.pdf").unlink()
    states, summary = run(env, {"namespace": "sales", "source": ""})  # a manual run of one configured namespace
    assert states == {"plan": "success", "parse_batch": "skipped", "encode_batch": "skipped", "finish": "success"}
    assert summary["namespaces"] == {"sales": {**ZERO, "skipped": 8, "deleted": 1}}
    assert store(env, "sales").count("sales-0.pdf") == 0 and store(env, "legal").count() > 0
