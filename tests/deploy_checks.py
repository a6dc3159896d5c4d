"""Offline checks of the deployment files: YAML loading, kustomize rendering, schema validation, pod comparison.

Shared by the tests/test_deploy_*.py modules; `assert_pod_matches_template` is also the check a DAG-rendered
KubernetesPodOperator pod must pass.
"""

from __future__ import annotations

import copy
import functools
import json
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
POD_TEMPLATE = K8S / "airflow" / "encoder-pod-template.yaml"
PARSER_POD_TEMPLATE = K8S / "airflow" / "parser-pod-template.yaml"
K8S_VERSION = "1.34"  # the oldest Kubernetes the manifests must work on; kubernetes-validate ships its schema
NAMESPACED_SKIP = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def load_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def load_one(path: Path) -> dict[str, Any]:
    (doc,) = load_documents(path)
    return doc


# -- kustomize ---------------------------------------------------------------------------------------
def kustomize_build(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization: `kubectl kustomize` when kubectl is installed, else the small renderer below."""
    if shutil.which("kubectl"):
        return kubectl_kustomize(directory)
    return render_kustomization(directory)


def kubectl_kustomize(directory: Path) -> list[dict[str, Any]]:
    out = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, timeout=120,
                         check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize` does with the features k8s/ uses: resources, namespace, images, patches.

    Patches are strategic merges matched by kind and name: maps merge, lists of named items (containers,
    env) merge by name, other lists are replaced. Kept honest by a test comparing it with kubectl's output.
    """
    spec = load_one(directory / "kustomization.yaml")
    resources: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        target = directory / entry
        resources += render_kustomization(target) if target.is_dir() else load_documents(target)
    for patch_entry in spec.get("patches", []):
        patch = load_one(directory / patch_entry["path"])
        resources = [_patched(r, patch) for r in resources]
    if "namespace" in spec:
        for r in resources:
            if r["kind"] not in NAMESPACED_SKIP:
                r.setdefault("metadata", {})["namespace"] = spec["namespace"]
    for image in spec.get("images", []):
        for container in _containers(resources):
            repo = container["image"].rsplit(":", 1)[0]
            if repo == image["name"]:
                container["image"] = f"{image.get('newName', repo)}:{image['newTag']}"
    return resources


def _patched(resource: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    same = resource["kind"] == patch["kind"] and resource["metadata"]["name"] == patch["metadata"]["name"]
    return strategic_merge(resource, patch) if same else resource


def strategic_merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            merged[key] = strategic_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        patches = {item["name"]: item for item in patch}
        merged_list = [strategic_merge(b, patches[b["name"]]) if b["name"] in patches else b for b in base]
        known = {b["name"] for b in base}
        return merged_list + [copy.deepcopy(p) for p in patch if p["name"] not in known]
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _containers(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for r in resources:
        spec = r.get("spec", {})
        pod_spec = spec.get("template", {}).get("spec", spec if r["kind"] == "Pod" else {})
        found += pod_spec.get("containers", []) + pod_spec.get("initContainers", [])
    return found


# -- schema validation -------------------------------------------------------------------------------
def validate_manifest(resource: dict[str, Any]) -> None:
    """Strict Kubernetes schema validation (unknown fields fail); the Milvus resource against its own schema."""
    if resource["apiVersion"].startswith("milvus.io/"):
        milvus_validator().validate(resource)
        return
    import kubernetes_validate

    kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


@functools.lru_cache(maxsize=1)
def _k8s_definitions() -> dict[str, Any]:
    import kubernetes_validate

    folder = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{K8S_VERSION}.0-local-strict"
    return json.loads((folder / "_definitions.json").read_text())


@functools.lru_cache(maxsize=1)
def milvus_validator() -> Any:
    """tests/schemas/milvus-v1beta1.json, with its Kubernetes types ($ref) resolved from kubernetes-validate."""
    import jsonschema
    from referencing import Registry, Resource

    schema = json.loads((SCHEMAS / "milvus-v1beta1.json").read_text())
    registry = Registry().with_resource("/api/_definitions.json", Resource.from_contents(_k8s_definitions()))
    return jsonschema.Draft202012Validator(schema, registry=registry)


def json_schema_validator(name: str) -> Any:
    import jsonschema

    schema = json.loads((SCHEMAS / name).read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


# -- the encoder pod ---------------------------------------------------------------------------------
POD_FIELDS = ("restartPolicy", "automountServiceAccountToken")
CONTAINER_FIELDS = ("image", "imagePullPolicy", "command")


def assert_pod_matches_template(pod: dict[str, Any], template: dict[str, Any]) -> None:
    """`pod` (camelCase JSON, e.g. `ApiClient().sanitize_for_serialization(kpo.build_pod_request_obj(...))`)
    has every field `template` states: namespace, labels, node selector, tolerations, and for the template's
    container (matched by name) its image, command, every request and limit, Secret references and security
    context. What the template leaves out (arguments, env, sidecars, generated names) is not compared.
    """
    problems = _placement_problems(pod, template)
    for want in template["spec"]["containers"]:
        got = next((c for c in pod["spec"].get("containers", []) if c["name"] == want["name"]), None)
        if got is None:
            problems.append(f"no container named {want['name']!r}")
            continue
        problems += _container_problems(got, want)
    assert not problems, "pod differs from the template:\n  " + "\n  ".join(problems)


def _placement_problems(pod: dict[str, Any], template: dict[str, Any]) -> list[str]:
    problems = []
    want_meta, got_meta = template["metadata"], pod.get("metadata", {})
    if want_meta.get("namespace") and got_meta.get("namespace") != want_meta["namespace"]:
        problems.append(f"namespace {got_meta.get('namespace')!r}, expected {want_meta['namespace']!r}")
    problems += _subset_problems("label", got_meta.get("labels") or {}, want_meta.get("labels") or {})
    spec, want_spec = pod["spec"], template["spec"]
    problems += _subset_problems("nodeSelector", spec.get("nodeSelector") or {}, want_spec.get("nodeSelector") or {})
    problems += [f"{f} {spec.get(f)!r}, expected {want_spec[f]!r}" for f in POD_FIELDS
                 if f in want_spec and spec.get(f) != want_spec[f]]
    got_tolerations = {_toleration(t) for t in spec.get("tolerations") or []}
    problems += [f"toleration {t} missing" for t in want_spec.get("tolerations") or []
                 if _toleration(t) not in got_tolerations]
    return problems


def _container_problems(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    problems = [f"{f} {got.get(f)!r}, expected {want[f]!r}" for f in CONTAINER_FIELDS
                if f in want and got.get(f) != want[f]]
    for kind in ("requests", "limits"):
        have = (got.get("resources") or {}).get(kind) or {}
        for resource, quantity in (want.get("resources") or {}).get(kind, {}).items():
            if resource not in have or _quantity(have[resource]) != _quantity(quantity):
                problems.append(f"{kind}.{resource} {have.get(resource)!r}, expected {quantity!r}")
    got_secrets = {e["secretRef"]["name"] for e in got.get("envFrom") or [] if e.get("secretRef")}
    for source in want.get("envFrom") or []:
        if source.get("secretRef") and source["secretRef"]["name"] not in got_secrets:
            problems.append(f"envFrom secret {source['secretRef']['name']!r} missing (has {sorted(got_secrets)})")
    problems += _subset_problems("securityContext", got.get("securityContext") or {}, want.get("securityContext") or {})
    return problems


def _subset_problems(what: str, have: dict[str, Any], want: dict[str, Any]) -> list[str]:
    return [f"{what} {key}={have.get(key)!r}, expected {value!r}" for key, value in want.items()
            if have.get(key) != value]


def _toleration(t: dict[str, Any]) -> tuple[Any, ...]:
    return (t.get("key"), t.get("operator") or "Equal", t.get("value") or "", t.get("effect") or "",
            t.get("tolerationSeconds"))


def _quantity(value: Any) -> Decimal:
    from kubernetes.utils import parse_quantity

    return Decimal(parse_quantity(str(value)))


def rendered_pods(dag_folder: Path) -> dict[str, dict[str, Any]]:
    """Every KubernetesPodOperator task of the DAGs in a folder, rendered to its pod without a cluster.

    A mapped task's shared arguments (image, resources, placement) are its partial kwargs; its mapped ones
    (the batch manifest) get a placeholder.
    """
    from airflow.dag_processing.dagbag import DagBag
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import ApiClient

    dagbag = DagBag(dag_folder=dag_folder)
    assert not dagbag.import_errors, dagbag.import_errors
    pods = {}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            mapped = getattr(task, "is_mapped", False)
            if not issubclass(task.operator_class if mapped else type(task), KubernetesPodOperator):
                continue
            operator = task.unmap(_placeholders(task)) if mapped else task
            pod = operator.build_pod_request_obj(dry_run=True)
            pods[f"{dag.dag_id}.{task.task_id}"] = ApiClient().sanitize_for_serialization(pod)
    return pods


def _placeholders(task: Any) -> dict[str, Any]:
    names = getattr(task._get_specified_expand_input(), "value", {}) or {}
    return {name: "s3://bucket/placeholder.json" for name in names if isinstance(name, str)}


# -- images ------------------------------------------------------------------------------------------
IMAGE_FILES = ("Dockerfile", "encoder_image/Dockerfile", "docker-compose.yml", "k8s", "docs/deploy.md",
               "encoder_image/README.md")


def pagelens_image_refs() -> dict[str, set[str]]:
    """Every `ghcr.io/pagelens/<name>:<tag>` written in the deployment files, by file."""
    import re

    pattern = re.compile(r"ghcr\.io/pagelens/[a-z0-9-]+:\w(?:[\w.-]*\w)?")  # a sentence's full stop is no tag
    refs: dict[str, set[str]] = {}
    for entry in IMAGE_FILES:
        path = REPO / entry
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                found = set(pattern.findall(file.read_text()))
                if found:
                    refs[str(file.relative_to(REPO))] = found
    return refs
