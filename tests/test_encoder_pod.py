"""The encoder pods both indexing DAGs launch with PAGELENS_EXECUTION=kubernetes, rendered without a cluster."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pagelens.airflow.operators.encoder import (
    EncoderPodOperator,
    EncoderSettingsError,
    check_pod_settings,
    cpu_count,
    encoder_pod_arguments,
    render_encoder_pod,
)
from pagelens.settings import Settings

DAGS_DIR = Path(__file__).resolve().parents[1] / "dags"
MANIFEST = "s3://pagelens-manifests/pagelens/manifests/pagelens_ingest/manual__1/finance-0000.json"
SECRETS = {  # values that must never appear in a pod spec
    "PAGELENS_REGISTRY_URL": "postgresql+psycopg://pagelens:pg-pass-123@registry.db:5432/pagelens",
    "PAGELENS_MILVUS_TOKEN": "root:milvus-token-456",
    "PAGELENS_LLM_API_KEY": "sk-llm-key-789",
    "PAGELENS_PDF_PASSWORDS": '["pdf-pass-000"]',
}
PRODUCTION = {
    "PAGELENS_EXECUTION": "kubernetes",
    "PAGELENS_MILVUS_URI": "http://milvus.pagelens.svc:19530",
    "PAGELENS_MANIFEST_BUCKET": "pagelens-manifests",
    "PAGELENS_ENCODER_IMAGE": "registry.example.com/pagelens/encoder:1.2.3",
    "PAGELENS_ENCODER_GPUS": "2",
    "PAGELENS_ENCODER_NODE_SELECTOR": '{"cloud.google.com/gke-accelerator": "nvidia-l4"}',
    "PAGELENS_CLIP_MODEL": "/models/clip",
    "PAGELENS_COLLECTION": "docs",
    "PAGELENS_CONTENT_STORE": "s3://pagelens-content/indexed",
    "PAGELENS_NAMESPACES": '{"finance": {"sources": ["s3://finance-docs/reports"]}}',
    **SECRETS,
}


@pytest.fixture(scope="module")
def dags(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The DAGs as parsed in production; the environment is restored at once (the pod spec is fixed at parse)."""
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
        for name, value in PRODUCTION.items():
            mp.setenv(name, value)
        bag = DagBag(dag_folder=DAGS_DIR)
    assert bag.import_errors == {}
    return bag.dags


@pytest.fixture(scope="module")
def ingest_dag(dags: dict[str, Any]) -> Any:
    return dags["pagelens_ingest"]


@pytest.fixture(scope="module")
def pod(ingest_dag: Any) -> dict[str, Any]:
    """One pod of the mapped encode step, as the Kubernetes API would receive it."""
    from kubernetes.client import ApiClient

    operator = ingest_dag.get_task("encode_batch").unmap({"manifest": MANIFEST})
    return ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))


def test_kubernetes_mode_maps_encoder_pods_between_plan_and_finish(ingest_dag: Any) -> None:
    task = ingest_dag.get_task("encode_batch")
    assert task.is_mapped and task.operator_class is EncoderPodOperator
    assert task.retries >= 1 and task.partial_kwargs["do_xcom_push"] and task.partial_kwargs["get_logs"]
    assert ingest_dag.get_task("finish").upstream_task_ids == {"plan", "encode_batch"}


@pytest.mark.parametrize("dag_id", ["pagelens_ingest", "pagelens_reindex__finance"])
def test_both_dags_parse_on_the_worker_and_encode_in_the_same_gpu_pod(dags: dict[str, Any], pod: dict[str, Any],
                                                                      dag_id: str) -> None:
    """One factory builds both DAGs' batch steps: parsing stays on Airflow's CPUs, the GPU pod only encodes."""
    from kubernetes.client import ApiClient

    dag = dags[dag_id]
    parse, encode = dag.get_task("parse_batch"), dag.get_task("encode_batch")
    assert parse.is_mapped and parse.operator_class is not EncoderPodOperator  # a Python task on the worker
    assert encode.operator_class is EncoderPodOperator and encode.upstream_task_ids == {"parse_batch"}
    rendered = ApiClient().sanitize_for_serialization(
        encode.unmap({"manifest": MANIFEST}).build_pod_request_obj(dry_run=True))
    assert rendered["spec"]["containers"] == pod["spec"]["containers"]


def test_pod_runs_the_encoder_on_a_gpu_node(pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    base = next(c for c in spec["containers"] if c["name"] == "base")
    assert pod["metadata"]["namespace"] == "pagelens"
    assert base["image"] == PRODUCTION["PAGELENS_ENCODER_IMAGE"]
    assert base["command"] + base["args"] == ["python", "-m", "pagelens.pipeline.pod", "--manifest", MANIFEST]
    assert base["resources"] == {"limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"},
                                 "requests": {"cpu": "4", "memory": "16Gi"}}
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["restartPolicy"] == "Never" and spec["automountServiceAccountToken"] is False
    # The reports come back through the XCom sidecar, mounted where the entrypoint writes them.
    assert {c["name"] for c in spec["containers"]} == {"base", "airflow-xcom-sidecar"}
    assert {"mountPath": "/airflow/xcom", "name": "xcom"} in base["volumeMounts"]


def test_pod_gets_settings_as_env_and_credentials_only_by_reference(pod: dict[str, Any]) -> None:
    base = next(c for c in pod["spec"]["containers"] if c["name"] == "base")
    env = {e["name"]: e["value"] for e in base["env"]}
    assert base["envFrom"] == [{"secretRef": {"name": "pagelens-env"}}]
    assert env["PAGELENS_MILVUS_URI"] == PRODUCTION["PAGELENS_MILVUS_URI"]
    assert env["PAGELENS_COLLECTION"] == "docs" and env["PAGELENS_CLIP_MODEL"] == "/models/clip"
    assert env["PAGELENS_PARSE_WORKERS"] == "4"  # follows the pod's CPU limit, not the node's core count
    assert "PAGELENS_DEVICE" not in env and "PAGELENS_DATA_DIR" not in env  # the image's own choices
    assert not set(SECRETS) & set(env)  # the Secret provides these (env would override envFrom)
    rendered = json.dumps(pod)
    for value in ("pg-pass-123", "milvus-token-456", "sk-llm-key-789", "pdf-pass-000"):
        assert value not in rendered


def test_registry_url_without_password_is_passed_on() -> None:
    settings = Settings(registry_url="postgresql+psycopg://pagelens@registry.db/pagelens")
    env = encoder_pod_arguments(settings)["env_vars"]
    assert env["PAGELENS_REGISTRY_URL"] == "postgresql+psycopg://pagelens@registry.db/pagelens"


def test_template_fields_cover_the_manifest_and_the_pod_spec() -> None:
    assert {"manifest", "arguments", "image", "env_vars", "env_from", "node_selector", "container_resources",
            "namespace", "labels"} <= set(EncoderPodOperator.template_fields)
    operator = EncoderPodOperator(task_id="encode_batch", manifest="s3://m/{{ run_id }}/hr-0000.json",
                                  **encoder_pod_arguments(Settings()))
    operator.render_template_fields({"run_id": "scheduled__2025"})
    assert operator.manifest == "s3://m/scheduled__2025/hr-0000.json"
    assert operator.arguments == ["--manifest", "s3://m/scheduled__2025/hr-0000.json"]


def test_render_encoder_pod_for_the_deployment_manifests() -> None:
    pod = render_encoder_pod(Settings(manifest_bucket="b", encoder_gpus=0, encoder_cpu="3500m"))
    base = pod["spec"]["containers"][0]
    assert base["args"] == ["--manifest", "s3://b/pagelens/manifests/pagelens_ingest/RUN_ID/NAMESPACE-0000.json"]
    assert "nvidia.com/gpu" not in base["resources"]["limits"]  # a CPU-only encoder pool
    assert {"name": "PAGELENS_PARSE_WORKERS", "value": "3"} in base["env"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "pagelens-encoder"


def test_pods_are_refused_settings_that_write_where_nobody_reads(tmp_path: Path) -> None:
    with pytest.raises(EncoderSettingsError, match=r"Milvus Lite file.*SQLite.*MANIFEST_BUCKET is empty.*CONTENT_STORE"):
        check_pod_settings(Settings(data_dir=tmp_path))
    check_pod_settings(Settings(milvus_uri="http://milvus:19530", registry_url="postgresql+psycopg://r@db/p",
                                manifest_bucket="b", content_store="s3://c/indexed"))


@pytest.mark.parametrize(("quantity", "cores"), [("4", 4), ("3500m", 3), ("0.5", 1), ("250m", 1)])
def test_cpu_quantity_to_parse_workers(quantity: str, cores: int) -> None:
    assert cpu_count(quantity) == cores
