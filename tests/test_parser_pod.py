"""The parser pods both indexing DAGs launch with PAGELENS_PARSE_EXECUTION=pod (kubernetes mode), rendered
without a cluster; the pod's own run is in tests/test_encode_batch.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pagelens.airflow.operators.encoder import EncoderPodOperator
from pagelens.airflow.operators.parser import ParserPodOperator
from pagelens.pipeline.batches import BatchManifest, read_manifest
from pagelens.settings import Settings
from tests.test_encoder_pod import DAGS_DIR, PRODUCTION, SECRETS

CPU_POOL = {"PAGELENS_PARSE_EXECUTION": "pod", "PAGELENS_PARSER_CPU": "3", "PAGELENS_PARSER_MEMORY": "6Gi",
            "PAGELENS_PARSER_NODE_SELECTOR": '{"pagelens.io/pool": "cpu"}',
            "PAGELENS_PARSER_IMAGE": "registry.example.com/pagelens/parser:1.2.3"}
PLANNED = BatchManifest("finance", [{"doc_id": "q3.pdf", "source_uri": "s3://finance-docs/reports/q3.pdf",
                                     "location": "s3://finance-docs/reports", "etag": '"abc"'}],
                        None, "all-MiniLM-L6-v2+clip:clip+parse3+chunk2").to_dict()


def _dagbag(tmp_path: Path, env: dict[str, str]) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(tmp_path / "airflow_home"))
        for name, value in env.items():
            mp.setenv(name, value)
        return DagBag(dag_folder=DAGS_DIR)


@pytest.fixture(scope="module")
def dags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    bag = _dagbag(tmp_path_factory.mktemp("dags"), {**PRODUCTION, **CPU_POOL})
    assert bag.import_errors == {}
    return bag.dags


def _rendered(task: Any, context: dict[str, Any] | None = None) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    operator = task.unmap({"manifest": PLANNED})
    if context:
        operator.render_template_fields(context)
    return ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))


@pytest.mark.parametrize("dag_id", ["pagelens_ingest", "pagelens_reindex__finance"])
def test_both_dags_parse_in_cpu_pods_and_encode_in_gpu_pods(dags: dict[str, Any], dag_id: str) -> None:
    dag = dags[dag_id]
    parse, encode = dag.get_task("parse_batch"), dag.get_task("encode_batch")
    assert parse.is_mapped and parse.operator_class is ParserPodOperator
    assert encode.is_mapped and encode.operator_class is EncoderPodOperator
    assert encode.upstream_task_ids == {"parse_batch"}  # the encoder maps over the parser pods' URIs
    assert parse.partial_kwargs["do_xcom_push"] and parse.retries >= 1


def test_the_parser_pod_runs_on_cpus_with_the_planned_batch_inline(dags: dict[str, Any]) -> None:
    context = {"dag": dags["pagelens_ingest"], "run_id": "scheduled__2025-01-01", "ti": type("TI", (), {"map_index": 7})}
    pod = _rendered(dags["pagelens_ingest"].get_task("parse_batch"), context)
    base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
    assert base["image"] == CPU_POOL["PAGELENS_PARSER_IMAGE"]
    assert base["command"] == ["python", "-m", "pagelens.pipeline.pod"]
    args = base["args"]
    assert args[:3] == ["--step", "parse", "--manifest"]
    assert args[4:] == ["--dag-id", "pagelens_ingest", "--run-id", "scheduled__2025-01-01", "--map-index", "7"]
    assert read_manifest(args[3], Settings()) == BatchManifest.from_dict(PLANNED)  # the batch the plan returned
    assert base["resources"] == {"limits": {"cpu": "3", "memory": "6Gi"}, "requests": {"cpu": "3", "memory": "6Gi"}}
    assert pod["spec"]["nodeSelector"] == {"pagelens.io/pool": "cpu"} and not pod["spec"].get("tolerations")
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "parser"
    assert {c["name"] for c in pod["spec"]["containers"]} == {"base", "airflow-xcom-sidecar"}  # the URI comes back


def test_the_parser_pod_gets_settings_as_env_and_credentials_only_by_reference(dags: dict[str, Any]) -> None:
    pod = _rendered(dags["pagelens_ingest"].get_task("parse_batch"))
    base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
    env = {e["name"]: e["value"] for e in base["env"]}
    assert env["PAGELENS_PARSE_WORKERS"] == "3"  # its CPU limit
    assert env["PAGELENS_MANIFEST_BUCKET"] == "pagelens-manifests"  # where it writes the parsed batch
    assert env["PAGELENS_CONTENT_STORE"] == PRODUCTION["PAGELENS_CONTENT_STORE"]  # where the artifacts go
    assert env["PAGELENS_CLIP_MODEL"] == "/models/clip"  # names the models its batch is checked against
    assert base["envFrom"] == [{"secretRef": {"name": "pagelens-env"}}]
    assert not set(SECRETS) & set(env) and "PAGELENS_PARSE_EXECUTION" not in env
    rendered = json.dumps(pod)
    for value in ("pg-pass-123", "milvus-token-456", "sk-llm-key-789", "pdf-pass-000"):
        assert value not in rendered


def test_parser_pods_without_kubernetes_mode_are_refused(tmp_path: Path) -> None:
    bag = _dagbag(tmp_path, {"PAGELENS_PARSE_EXECUTION": "pod", "PAGELENS_DATA_DIR": str(tmp_path / "data")})
    assert bag.import_errors and all("set PAGELENS_EXECUTION=kubernetes as well" in error
                                     for error in bag.import_errors.values() if "pagelens_ingest" in error)
