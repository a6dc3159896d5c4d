"""One source of truth: the settings the code runs with are what the manifests, images and Helm values declare."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from pagelens.settings import Settings
from tests.deploy_checks import (
    K8S,
    PARSER_POD_TEMPLATE,
    POD_TEMPLATE,
    REPO,
    assert_pod_matches_template,
    kustomize_build,
    load_one,
    pagelens_image_refs,
    rendered_pods,
    validate_manifest,
)

DEFAULTS = Settings()
RELEASE = DEFAULTS.encoder_image.rsplit(":", 1)[1]


def _rendered(overlay: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["kind"], r["metadata"]["name"]): r for r in kustomize_build(K8S / "overlays" / overlay)}


def _settings_from_configmap(resources: dict[tuple[str, str], dict[str, Any]]) -> Settings:
    """What the API pods of an overlay run with: the code's defaults plus the ConfigMap's PAGELENS_* values."""
    data = resources[("ConfigMap", "pagelens-config")]["data"]
    return Settings(**{k.removeprefix("PAGELENS_").lower(): v for k, v in data.items() if k.startswith("PAGELENS_")})


# -- shards and replicas -----------------------------------------------------------------------------
def test_production_runs_4_shards_and_3_replicas_on_3_query_nodes() -> None:
    prod = _rendered("prod")
    settings = _settings_from_configmap(prod)
    assert (settings.num_shards, settings.replica_number) == (DEFAULTS.num_shards, DEFAULTS.replica_number) == (4, 3)
    assert prod[("Milvus", "milvus")]["spec"]["components"]["queryNode"]["replicas"] >= settings.replica_number
    sizing = (K8S / "base" / "milvus.yaml").read_text()
    assert f"num_shards={settings.num_shards}" in sizing and f"replica_number={settings.replica_number}" in sizing


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_overlay_has_a_query_node_per_replica(overlay: str) -> None:
    """Milvus refuses to load a collection with more replicas than query nodes."""
    resources = _rendered(overlay)
    settings = _settings_from_configmap(resources)
    assert resources[("Milvus", "milvus")]["spec"]["components"]["queryNode"]["replicas"] >= settings.replica_number


def test_overlays_point_the_code_at_the_milvus_they_deploy() -> None:
    for overlay in ("dev", "prod"):
        resources = _rendered(overlay)
        milvus = resources[("Milvus", "milvus")]["metadata"]
        uri = _settings_from_configmap(resources).milvus_uri
        assert uri == f"http://{milvus['name']}-milvus.{milvus['namespace']}.svc.cluster.local:19530"
    values_env = {e["name"]: e["value"] for e in load_one(K8S / "airflow" / "values.yaml")["env"]}
    assert values_env["PAGELENS_MILVUS_URI"] == uri


@pytest.mark.integration
def test_the_store_creates_and_loads_with_the_settings_counts(tmp_path: Path, monkeypatch) -> None:
    """Against a Milvus server (Lite, over gRPC): what the store asks for is Settings.num_shards/replica_number."""
    from milvus_lite.server_manager import server_manager_instance

    from pagelens.store import VectorStore

    uri = server_manager_instance.start_and_get_uri(str(tmp_path / "milvus.db"))
    settings = Settings(data_dir=tmp_path, milvus_uri=uri)
    assert not settings.is_lite  # a server URI: the cluster code path, replica_number included
    store = VectorStore(settings, "consistency")
    calls: dict[str, dict[str, Any]] = {}
    for method in ("create_collection", "load_collection"):
        real = getattr(store.client, method)
        monkeypatch.setattr(store.client, method, _recording(real, calls, method))
    store.ensure_collection()
    assert calls["create_collection"]["num_shards"] == DEFAULTS.num_shards == 4
    assert calls["load_collection"]["replica_number"] == DEFAULTS.replica_number == 3


def _recording(real: Any, calls: dict[str, dict[str, Any]], name: str) -> Any:
    def record(*args: Any, **kwargs: Any) -> Any:
        calls[name] = kwargs
        return real(*args, **kwargs)

    return record


# -- the encoder pod ---------------------------------------------------------------------------------
def test_pod_template_matches_the_execution_settings() -> None:
    from pagelens.airflow.operators.encoder import render_encoder_pod

    template = load_one(POD_TEMPLATE)
    assert_pod_matches_template(render_encoder_pod(DEFAULTS), template)
    (container,) = template["spec"]["containers"]
    assert container["image"] == DEFAULTS.encoder_image == "ghcr.io/pagelens/encoder:0.3.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == str(DEFAULTS.encoder_gpus) == "1"
    assert container["resources"]["requests"] == {"cpu": DEFAULTS.encoder_cpu, "memory": DEFAULTS.encoder_memory}
    assert template["spec"]["nodeSelector"] == DEFAULTS.encoder_node_selector == {"pagelens.io/pool": "gpu"}
    assert template["spec"]["tolerations"] == DEFAULTS.encoder_tolerations
    assert container["envFrom"] == [{"secretRef": {"name": DEFAULTS.encoder_secret}}]
    assert template["metadata"]["namespace"] == DEFAULTS.k8s_namespace
    assert load_one(K8S / "base" / "kustomization.yaml")["namespace"] == DEFAULTS.k8s_namespace


@pytest.mark.parametrize(("change", "complaint"), [
    ({"encoder_gpus": 2}, "nvidia.com/gpu"),
    ({"encoder_image": "ghcr.io/pagelens/encoder:0.4.0"}, "image"),
    ({"encoder_node_selector": {"pool": "cpu"}}, "nodeSelector"),
    ({"encoder_tolerations": []}, "toleration"),
    ({"encoder_secret": "other-env"}, "pagelens-env"),
    ({"encoder_memory": "8Gi"}, "memory"),
    ({"k8s_namespace": "elsewhere"}, "namespace"),
])
def test_drift_between_settings_and_template_is_caught(change: dict[str, Any], complaint: str) -> None:
    from pagelens.airflow.operators.encoder import render_encoder_pod

    with pytest.raises(AssertionError, match=complaint):
        assert_pod_matches_template(render_encoder_pod(Settings(**change)), load_one(POD_TEMPLATE))


def test_parser_pod_template_matches_the_execution_settings() -> None:
    from pagelens.airflow.operators.parser import render_parser_pod

    template = load_one(PARSER_POD_TEMPLATE)
    pod = render_parser_pod(DEFAULTS)
    assert_pod_matches_template(pod, template)
    (container,) = template["spec"]["containers"]
    assert container["image"] == DEFAULTS.parser_image == f"ghcr.io/pagelens/parser:{RELEASE}"
    assert container["resources"]["requests"] == {"cpu": DEFAULTS.parser_cpu, "memory": DEFAULTS.parser_memory}
    assert container["resources"]["limits"] == container["resources"]["requests"]  # no GPU for parsing
    assert "nvidia.com/gpu" not in pod["spec"]["containers"][0]["resources"]["limits"]
    assert not template["spec"].get("nodeSelector") and not DEFAULTS.parser_node_selector  # any CPU node
    assert container["envFrom"] == [{"secretRef": {"name": DEFAULTS.encoder_secret}}]
    assert template["metadata"]["namespace"] == DEFAULTS.k8s_namespace


@pytest.mark.parametrize(("change", "complaint"), [
    ({"parser_image": "ghcr.io/pagelens/parser:0.4.0"}, "image"),
    ({"parser_cpu": "4"}, "cpu"),
    ({"parser_memory": "2Gi"}, "memory"),
    ({"encoder_secret": "other-env"}, "pagelens-env"),
])
def test_drift_between_parser_settings_and_template_is_caught(change: dict[str, Any], complaint: str) -> None:
    from pagelens.airflow.operators.parser import render_parser_pod

    with pytest.raises(AssertionError, match=complaint):
        assert_pod_matches_template(render_parser_pod(Settings(**change)), load_one(PARSER_POD_TEMPLATE))


@pytest.mark.integration
@pytest.mark.parametrize("parse_execution", ["worker", "pod"])
def test_dag_rendered_pods_match_their_templates(monkeypatch, parse_execution: str) -> None:
    """The DAGs parsed as Airflow on Kubernetes parses them: each encode step's pod is the encoder template's,
    and with PAGELENS_PARSE_EXECUTION=pod each parse step's pod is the parser template's."""
    from pagelens import settings as settings_module

    cluster = {"PAGELENS_EXECUTION": "kubernetes", "PAGELENS_MANIFEST_BUCKET": "pagelens-manifests",
               "PAGELENS_MILVUS_URI": "http://milvus-milvus.pagelens.svc.cluster.local:19530",
               "PAGELENS_REGISTRY_URL": "postgresql+psycopg://pagelens@registry:5432/pagelens",
               "PAGELENS_CONTENT_STORE": "s3://pagelens-content/indexed",
               "PAGELENS_PARSE_EXECUTION": parse_execution,
               "PAGELENS_NAMESPACES": '{"finance": {"sources": ["s3://finance-docs/reports"]}}'}
    for name, value in cluster.items():
        monkeypatch.setenv(name, value)
    settings_module.get_settings.cache_clear()
    try:
        pods = rendered_pods(REPO / "dags")
    finally:
        settings_module.get_settings.cache_clear()
    assert pods, "no DAG in dags/ builds a KubernetesPodOperator with PAGELENS_EXECUTION=kubernetes"
    steps = {"encode_batch", "parse_batch"} if parse_execution == "pod" else {"encode_batch"}
    for dag in ("pagelens_ingest", "pagelens_reindex__finance"):
        assert {task.split(".")[1] for task in pods if task.startswith(dag + ".")} == steps, sorted(pods)
    for task, pod in pods.items():
        template = PARSER_POD_TEMPLATE if task.endswith(".parse_batch") else POD_TEMPLATE
        try:
            assert_pod_matches_template(pod, load_one(template))
        except AssertionError as exc:
            raise AssertionError(f"{task}: {exc}") from exc
        validate_manifest(pod)


# -- images ------------------------------------------------------------------------------------------
def test_image_names_and_tags_agree_everywhere() -> None:
    refs = pagelens_image_refs()
    every = set().union(*refs.values())
    assert {r.rsplit(":", 1)[0] for r in every} == {"ghcr.io/pagelens/api", "ghcr.io/pagelens/encoder",
                                                    "ghcr.io/pagelens/airflow", "ghcr.io/pagelens/parser"}
    wrong = {file: sorted(r for r in found if not r.endswith(f":{RELEASE}")) for file, found in refs.items()}
    assert not any(wrong.values()), f"tags other than {RELEASE}: {wrong}"


def test_dockerfile_labels_name_the_image_each_target_is_deployed_as() -> None:
    labels = {**_image_labels(REPO / "Dockerfile"), **_image_labels(REPO / "encoder_image" / "Dockerfile")}
    assert labels["encoder"] == DEFAULTS.encoder_image
    assert labels["parser"] == DEFAULTS.parser_image
    compose = load_one(REPO / "docker-compose.yml")["services"]
    assert labels["api"] == compose["api"]["image"] == _deployment_image()
    values = load_one(K8S / "airflow" / "values.yaml")
    helm_image = f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}"
    assert labels["airflow"] == compose["airflow-scheduler"]["image"] == helm_image
    assert values["dags"]["gitSync"]["ref"] == f"v{RELEASE}"  # DAG files from the release the image was built from


def test_airflow_runs_the_encode_step_as_gpu_pods_in_the_pagelens_namespace() -> None:
    values = load_one(K8S / "airflow" / "values.yaml")
    env = {e["name"]: e["value"] for e in values["env"]}
    assert Settings(execution=env["PAGELENS_EXECUTION"]).execution == "kubernetes"
    assert env["PAGELENS_K8S_NAMESPACE"] == DEFAULTS.k8s_namespace
    binding = _rendered("prod")[("RoleBinding", "pagelens-encoder-launcher")]
    assert binding["metadata"]["namespace"] == DEFAULTS.k8s_namespace
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "airflow-worker", "namespace": "airflow"}]


def test_every_image_finds_clip_where_the_encoder_image_bakes_it() -> None:
    """Encoder pods get PAGELENS_CLIP_MODEL from the Airflow side: one path for all three images."""
    paths = {dockerfile: set(re.findall(r"PAGELENS_CLIP_MODEL=(\S+)", (REPO / dockerfile).read_text()))
             for dockerfile in ("Dockerfile", "encoder_image/Dockerfile")}
    assert paths == {"Dockerfile": {"/opt/pagelens/models/clip"}, "encoder_image/Dockerfile": {"/opt/pagelens/models/clip"}}
    values_env = {e["name"]: e["value"] for e in load_one(K8S / "airflow" / "values.yaml")["env"]}
    assert values_env["PAGELENS_CLIP_MODEL"] == "/opt/pagelens/models/clip"


def _image_labels(dockerfile: Path) -> dict[str, str]:
    """`io.pagelens.image` label of each build stage, keyed by the image's short name."""
    found = re.findall(r'io\.pagelens\.image="(ghcr\.io/pagelens/([a-z-]+):[^"]+)"', dockerfile.read_text())
    return {name: image for image, name in found}


def _deployment_image() -> str:
    deployment = _rendered("prod")[("Deployment", "pagelens-api")]
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]
