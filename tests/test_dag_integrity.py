"""DAG integrity: every file in dags/ imports cleanly and each DAG is tagged, retried and parameterised."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag  # 3.x home (airflow.models.dagbag only re-exports it)

    # No include_examples in Airflow 3.3: examples come from a separate bundle, not from this folder scan.
    return DagBag(dag_folder=DAGS_DIR)


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert dagbag.dags, f"no DAGs found in {DAGS_DIR}"


def test_every_dag_is_tagged_and_retried(dagbag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        for task in dag.tasks:
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_ingest_dag_shape(dagbag) -> None:
    dag = dagbag.dags["pagelens_ingest"]
    # Empty params: every configured namespace (the schedule); a manual run narrows them (see the DAG's doc_md).
    assert {"namespace", "source"} <= set(dag.params)
    assert dag.params["namespace"] == dag.params["source"] == ""
    assert dag.max_active_runs == 1 and not dag.catchup
    assert set(dag.task_ids) == {"plan", "parse_batch", "encode_batch", "finish"}
    assert dag.get_task("parse_batch").is_mapped and dag.get_task("encode_batch").is_mapped
    # A source with nothing new maps the batch steps over zero batches (skipped): finish must still run.
    assert dag.get_task("finish").trigger_rule == "none_failed"
    assert dag.get_task("finish").upstream_task_ids == {"plan", "encode_batch"}


def test_every_dag_doc_says_what_each_param_does(dagbag) -> None:
    """Each DAG file's doc_md (its module docstring) names every param it declares, in the UI's docs pane; read
    from the source, so DAGs that exist only with namespaces configured (pagelens_reindex__<ns>) count too."""
    import ast

    declared = {}
    for path in sorted(DAGS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        names = [key.value for node in ast.walk(tree) if isinstance(node, ast.Dict)
                 for key, value in zip(node.keys, node.values, strict=True)
                 if isinstance(key, ast.Constant) and isinstance(value, ast.Call)
                 and getattr(value.func, "id", "") == "Param"]
        doc = ast.get_docstring(tree) or ""
        missing = [name for name in names if f"`{name}`" not in doc]
        assert not missing, f"{path.name}: doc_md says nothing of params {missing}"
        declared[path.name] = names
        assert "doc_md=__doc__" in path.read_text() or not names, f"{path.name}: params but no doc_md"
    assert declared["pagelens_ingest.py"] == ["namespace", "source"] and declared["pagelens_reindex.py"] == ["force"]
    for dag in dagbag.dags.values():  # and the parsed DAGs show that text
        assert all(f"`{name}`" in (dag.doc_md or "") for name in dag.params), dag.dag_id
