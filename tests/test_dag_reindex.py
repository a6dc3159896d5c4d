"""The per-namespace reindex DAGs run for real with `dag.test()`: gate, swap, short-circuit, rollback.

Two namespaces over the sample documents, a Milvus Lite file, the real MiniLM and Tesseract. The tests run
in file order against one module-wide store, like the nights of one deployment.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_env import airflow_home, asset_events, load_dags, release_milvus_lite, run_dag
from tests.clip_fixture import write_tiny_clip

pytestmark = pytest.mark.integration

PDF, PNG = "acme_annual_report.pdf", "warehouse_inspection_scan.png"
GOLD = [  # (question, doc, page): the finance namespace's gold set
    ("Which region had the largest revenue share?", PDF, 2),
    ("What is the calibration interval of the robot arm?", PDF, 4),
    ("How many damaged pallets were found in warehouse B?", PNG, 1),
    ("When is the next warehouse inspection due?", PNG, 1),
]


@dataclass
class Env:
    dags: dict[str, Any]
    finance: Path  # the finance namespace's source folder
    data: Path
    clip: Path
    mp: pytest.MonkeyPatch

    def settings(self) -> Any:
        from pagelens.settings import Settings

        return Settings()  # what the tasks read: the environment of this moment

    def store(self, namespace: str = "finance") -> Any:
        from pagelens.store import VectorStore

        return VectorStore(self.settings(), namespace)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, sample_docs: Path) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("reindex")
    finance, ops = root / "finance", root / "ops"
    shutil.copytree(sample_docs, finance)
    ops.mkdir()
    shutil.copy(sample_docs / PNG, ops / "inspection.png")
    gold = root / "gold.jsonl"
    gold.write_text("".join(json.dumps({"id": f"g{i}", "question": q, "doc": d, "pages": [p]}) + "\n"
                            for i, (q, d, p) in enumerate(GOLD)))
    namespaces = {"finance": {"sources": [str(finance)], "gold": str(gold)}, "ops": {"sources": [str(ops)]}}
    data = root / "data"
    with airflow_home(root / "airflow", {"PAGELENS_DATA_DIR": str(data),
                                         "PAGELENS_NAMESPACES": json.dumps(namespaces)}) as mp:
        yield Env(load_dags(), finance, data, write_tiny_clip(root / "clip"), mp)
    release_milvus_lite(data)


def reindex(env: Env, namespace: str = "finance", force: bool = False) -> Any:
    return run_dag(env.dags[f"pagelens_reindex__{namespace}"], {"force": force})


def docs_in(store: Any) -> set[str]:
    rows = store.client.query(store.target, filter=f'namespace == "{store.namespace}"', output_fields=["doc_id"])
    return {r["doc_id"] for r in rows}


def test_one_reindex_dag_per_configured_namespace(env: Env) -> None:
    reindex_dags = {d: dag for d, dag in env.dags.items() if d.startswith("pagelens_reindex__")}
    assert set(reindex_dags) == {"pagelens_reindex__finance", "pagelens_reindex__ops"}
    dag = reindex_dags["pagelens_reindex__finance"]
    assert dag.params["force"] is False and "finance" in dag.tags
    assert dag.max_active_runs == 1 and not dag.catchup and dag.schedule == "0 2 * * *"
    assert dag.get_task("parse_batch").is_mapped and dag.get_task("encode_batch").is_mapped
    assert dag.get_task("prepare").upstream_task_ids == {"check"}
    assert dag.get_task("swap").trigger_rule == "none_failed"
    assert dag.get_task("abandon").trigger_rule == "one_failed"


def test_first_rebuild_goes_live_and_fills_the_registry(env: Env) -> None:
    from pagelens.embed import model_version
    from pagelens.registry import Registry

    run = reindex(env)
    assert run.state == "success", run.tasks
    gate = run.xcom("swap")
    assert (gate["passed"], gate["new_recall"], gate["live"], gate["questions"]) == (True, 1.0, None, 4)
    store = env.store()
    assert store.live_generation() == "pagelens__finance_v1" and docs_in(store) == {PDF, PNG}
    rows = {r.doc_id: r for r in Registry(env.settings().registry_url).documents("finance")}
    assert {d: (r.status, r.model_version) for d, r in rows.items()} == \
        {PDF: ("indexed", model_version(env.settings())), PNG: ("indexed", model_version(env.settings()))}
    assert rows[PDF].pages == 4 and rows[PDF].chunks == env.store().count(PDF)
    assert env.store("ops").live_generation() is None  # the other namespace's DAG did not run
    [event] = asset_events("pagelens://finance")  # downstream DAGs learn of the swap
    assert (event["event"], event["task_id"], event["run_id"]) == ("reindex", "swap", run.run_id)
    assert (event["generation"], event["previous"], event["documents"], event["recall_at_5"]) == \
        ("pagelens__finance_v1", None, 2, 1.0)
    assert asset_events("pagelens://ops") == []


def test_unchanged_namespace_short_circuits(env: Env) -> None:
    run = reindex(env)
    assert run.state == "success"
    assert run.tasks == {"check": "success", "prepare": "skipped", "parse_batch": "skipped", "encode_batch": "skipped",
                         "swap": "skipped", "abandon": "skipped"}
    assert env.store().generations() == ["pagelens__finance_v1"]


def test_forced_rebuilds_swap_keep_the_previous_and_drop_older(env: Env) -> None:
    for expected in ("pagelens__finance_v2", "pagelens__finance_v3"):
        run = reindex(env, force=True)
        assert run.state == "success", run.tasks
        gate = run.xcom("swap")
        assert (gate["generation"], gate["new_recall"], gate["live_recall"]) == (expected, 1.0, 1.0)
        assert env.store().live_generation() == expected
    assert env.store().generations() == ["pagelens__finance_v2", "pagelens__finance_v3"]  # keep_generations=2
    from pagelens.retrieve import distinct_pages, retrieve

    hits = retrieve("How many damaged pallets were found in warehouse B?", "finance", env.settings())
    assert distinct_pages(hits)[0] == (PNG, 1)


def test_a_rebuild_in_progress_is_left_alone(env: Env) -> None:
    from pagelens.reindex import abandon_rebuild, generation_facts, prepare_rebuild

    building, _ = prepare_rebuild("finance", env.settings(), batch_size=8)  # as another run of this DAG would
    run = reindex(env, force=True)  # e.g. the scheduled run while a backfill run builds
    assert run.state == "success" and run.tasks["prepare"] == "skipped", run.tasks
    assert env.store().generations()[-1] == building and env.store().live_generation() == "pagelens__finance_v3"
    abandon_rebuild("finance", env.settings(), building)  # that run failed: the next rebuild may drop it
    assert generation_facts(env.store(), building)["state"] == "failed"


def test_failed_gate_keeps_the_live_generation_and_fails_loudly(env: Env, tmp_path: Path) -> None:
    from pagelens.registry import Registry
    from pagelens.reindex import generation_facts

    shutil.move(env.finance / PNG, tmp_path / PNG)  # a source that lost a file: half the gold set is gone
    events_before = len(asset_events("pagelens://finance"))
    try:
        run = reindex(env)
        assert run.state == "failed" and run.tasks["swap"] == "failed", run.tasks
        assert len(asset_events("pagelens://finance")) == events_before  # nothing changed for downstream DAGs
        gate = run.xcom("swap", key="gate")
        assert (gate["passed"], gate["new_recall"], gate["live_recall"]) == (False, 0.5, 1.0)
        assert "quality gate failed" in gate["reason"] and "0.500" in gate["reason"] and "1.000" in gate["reason"]
        store = env.store()
        assert store.live_generation() == "pagelens__finance_v3" and PNG in docs_in(store)
        assert store.generations()[-1] == "pagelens__finance_v4"  # kept for inspection until the next rebuild
        assert generation_facts(store, "pagelens__finance_v4")["state"] == "failed"
        assert Registry(env.settings().registry_url).get("finance", PNG).status == "indexed"
    finally:
        shutil.move(tmp_path / PNG, env.finance / PNG)


def test_rollback_then_the_next_rebuild_drops_the_abandoned_generations(env: Env, capsys) -> None:
    from pagelens.cli import main

    assert main(["rollback", "--namespace", "finance"]) == 0
    store = env.store()
    assert store.live_generation() == "pagelens__finance_v2"
    assert main(["generations", "--namespace", "finance"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in listed if "*" in line] == [["*", "pagelens__finance_v2"]]
    assert any("pagelens__finance_v4" in line and " failed " in line for line in listed), listed
    assert store.generations() == ["pagelens__finance_v2", "pagelens__finance_v3", "pagelens__finance_v4"]
    run = reindex(env, force=True)
    assert run.state == "success", run.tasks
    assert store.generations() == ["pagelens__finance_v2", "pagelens__finance_v3"]
    assert store.live_generation() == "pagelens__finance_v3" and docs_in(store) == {PDF, PNG}


def test_a_model_change_rebuilds_only_the_namespaces_built_with_the_old_model(env: Env) -> None:
    env.mp.setenv("PAGELENS_CLIP_MODEL", str(env.clip))  # ops is built with the vision branch on...
    assert reindex(env, "ops").state == "success"
    assert "+clip:clip+" in env.store("ops").model_version()
    env.mp.delenv("PAGELENS_CLIP_MODEL")  # ...then the deployment switches it off again
    finance, ops = reindex(env, "finance"), reindex(env, "ops")
    assert finance.tasks["check"] == "success" and finance.tasks["swap"] == "skipped"
    assert ops.state == "success" and ops.tasks["swap"] == "success", ops.tasks
    gate = ops.xcom("swap")
    assert gate["passed"] and gate["reason"].startswith("no gold set") and gate["new_recall"] is None
    store = env.store("ops")
    assert store.live_generation() == "pagelens__ops_v2" and "+clip:off+" in store.model_version()
    assert docs_in(store) == {"inspection.png"} and docs_in(env.store()) == {PDF, PNG}
