"""Kubernetes manifests and Helm values validate offline; overlays render; the API's wiring holds together."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy_checks import (
    K8S,
    PARSER_POD_TEMPLATE,
    POD_TEMPLATE,
    json_schema_validator,
    kubectl_kustomize,
    kustomize_build,
    load_documents,
    load_one,
    render_kustomization,
    validate_manifest,
)

OVERLAYS = ["dev", "prod"]
SECRET_LIKE = re.compile(r"(TOKEN|PASSWORD|SECRET|API_KEY|CREDENTIAL|FERNET)", re.IGNORECASE)
# k8s/monitoring holds Prometheus Operator resources (no offline schema) and promtool tests: tests/test_monitoring.py
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml")
                   if p.name != "kustomization.yaml" and p.parent.name not in ("airflow", "monitoring"))


def _by_kind(resources: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["kind"], r["metadata"]["name"]): r for r in resources}


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, dict[tuple[str, str], dict[str, Any]]]:
    return request.param, _by_kind(kustomize_build(K8S / "overlays" / request.param))


@pytest.mark.parametrize("path", [*MANIFESTS, POD_TEMPLATE, PARSER_POD_TEMPLATE], ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_file_validates_against_its_schema(path: Path) -> None:
    """Base resources are complete objects; overlay patches are partial, so only their kind and name are real."""
    for doc in load_documents(path):
        if "overlays" in path.parts:
            assert (doc["kind"], doc["metadata"]["name"]) in _by_kind(render_kustomization(K8S / "base")), path
        else:
            validate_manifest(doc)


def test_overlays_render_to_valid_resources(rendered) -> None:
    overlay, resources = rendered
    kinds = {kind for kind, _ in resources}
    assert {"Namespace", "ConfigMap", "Milvus", "Deployment", "Service", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "NetworkPolicy", "Role", "RoleBinding"} <= kinds, overlay
    for resource in resources.values():
        validate_manifest(resource)
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "pagelens"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_small_renderer_agrees_with_kubectl_kustomize(overlay: str) -> None:
    """Machines without kubectl render with tests/deploy_checks.py; it must produce what kustomize does."""
    directory = K8S / "overlays" / overlay
    assert _by_kind(render_kustomization(directory)) == _by_kind(kubectl_kustomize(directory))


def test_overlays_differ_where_they_should(rendered) -> None:
    overlay, resources = rendered
    hpa = resources[("HorizontalPodAutoscaler", "pagelens-api")]["spec"]
    query_nodes = resources[("Milvus", "milvus")]["spec"]["components"]["queryNode"]["replicas"]
    if overlay == "prod":
        assert (hpa["minReplicas"], hpa["maxReplicas"], query_nodes) == (3, 12, 6)
    else:
        assert (hpa["minReplicas"], hpa["maxReplicas"], query_nodes) == (1, 2, 1)


def test_no_secret_is_inlined(rendered) -> None:
    """Credentials live in Secrets created out of band; manifests only name them."""
    _, resources = rendered
    assert not [key for key in resources if key[0] == "Secret"]
    for (kind, name), resource in resources.items():
        if kind == "ConfigMap":
            assert not [k for k in resource["data"] if SECRET_LIKE.search(k)], name
        for container in _pod_containers(resource):
            literal = [e["name"] for e in container.get("env", []) if "value" in e and SECRET_LIKE.search(e["name"])]
            assert not literal, f"{name}: {literal} set inline"
    api = _pod_containers(resources[("Deployment", "pagelens-api")])[0]
    assert {"secretRef": {"name": "pagelens-env"}} in api["envFrom"]


def test_api_probes_ports_and_selectors_line_up(rendered) -> None:
    _, resources = rendered
    deployment = resources[("Deployment", "pagelens-api")]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = _pod_containers(deployment)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port_names == {"http": 8080}  # gunicorn binds 0.0.0.0:8080 (Dockerfile, target api)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    service = resources[("Service", "pagelens-api")]["spec"]
    assert _selects(service["selector"], pod_labels) and service["ports"][0]["targetPort"] == "http"
    assert _selects(resources[("PodDisruptionBudget", "pagelens-api")]["spec"]["selector"]["matchLabels"], pod_labels)
    policy = resources[("NetworkPolicy", "pagelens-api")]["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], pod_labels)
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [8080]
    target = resources[("HorizontalPodAutoscaler", "pagelens-api")]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "pagelens-api")


def test_airflow_helm_values_validate_and_reference_secrets_only() -> None:
    values = load_one(K8S / "airflow" / "values.yaml")
    json_schema_validator("airflow-chart-values.json").validate(values)
    assert values["executor"] == "KubernetesExecutor"
    git_sync = values["dags"]["gitSync"]
    assert git_sync["enabled"] and git_sync["subPath"] == "dags" and git_sync["credentialsSecret"]
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    for entry in values["env"]:
        assert not SECRET_LIKE.search(entry["name"]), f"{entry['name']} belongs in a Secret"
    assert all(s["secretName"] and s["secretKey"] for s in values["secret"])
    assert "secretRef" in values["extraEnvFrom"]


def test_helm_values_schema_rejects_a_misspelt_key() -> None:
    """Helm ignores unknown keys; the subset schema is what catches `gitsync:` for `gitSync:`."""
    import jsonschema

    values = load_one(K8S / "airflow" / "values.yaml")
    values["dags"]["gitsync"] = values["dags"].pop("gitSync")
    with pytest.raises(jsonschema.ValidationError, match="gitsync"):
        json_schema_validator("airflow-chart-values.json").validate(values)


def _pod_containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    spec = resource.get("spec", {})
    return spec.get("template", {}).get("spec", {}).get("containers", [])


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())
