"""The encode step as a GPU pod: a KubernetesPodOperator whose pod is built from the `# --- execution ---` settings.

The pod runs `python -m pagelens.pipeline.pod --manifest <uri>` in the encoder image. It gets the non-secret
PAGELENS_* settings of the Airflow side as plain env (so it indexes exactly as the plan assumed) and every
credential from the Secret `encoder_secret` by reference (`envFrom`); no secret value is ever in the pod spec.
`render_encoder_pod(settings)` gives the pod as a dict without a cluster (what the k8s pod template mirrors).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

if TYPE_CHECKING:
    from pagelens.settings import Settings

POD_COMMAND = ["python", "-m", "pagelens.pipeline.pod"]
POD_LABELS = {"app.kubernetes.io/part-of": "pagelens"}
GPU_RESOURCE = "nvidia.com/gpu"
# Settings the pod sets for itself (the image chooses device and batch size; parse workers follow its CPU limit)
# or has no use for (the Airflow side's scheduling and serving settings).
POD_OWN = frozenset({"data_dir", "device", "encode_batch_size", "parse_workers", "execution", "parse_execution",
                     "k8s_namespace", "namespaces"})
POD_UNUSED_PREFIXES = ("encoder_", "parser_", "api_", "llm_", "reindex_", "drift_")
SECRET_NAME = re.compile(r"token|key|secret|password", re.IGNORECASE)  # such values come from the Secret only
EXAMPLE_MANIFEST = "s3://{bucket}/{prefix}/pagelens_ingest/RUN_ID/NAMESPACE-0000.json"


class EncoderSettingsError(ValueError):
    """Settings with which the pipeline's pods could not reach the index or their batches."""


class EncoderPodOperator(KubernetesPodOperator):
    """Encode one parsed batch in a GPU pod: `python -m pagelens.pipeline.pod --manifest <manifest>`.

    The pod writes its per-document reports to the XCom sidecar file, so with `do_xcom_push=True` the task
    returns them as the local encode task does. Build the other arguments with `encoder_pod_arguments(settings)`.

    :param manifest: URI of the parsed batch its parse task wrote, `s3://bucket/key.json` (templated)
    """

    template_fields: Sequence[str] = (*KubernetesPodOperator.template_fields, "manifest")

    def __init__(self, *, manifest: str, **kwargs: Any) -> None:
        super().__init__(arguments=["--manifest", manifest], **kwargs)
        self.manifest = manifest


def encoder_pod_arguments(settings: Settings) -> dict[str, Any]:
    """The KubernetesPodOperator arguments of an encoder pod, all derived from settings."""
    gpus = {GPU_RESOURCE: str(settings.encoder_gpus)} if settings.encoder_gpus > 0 else {}
    return pod_arguments(settings, PodRole("pagelens-encoder", "encoder", settings.encoder_image, settings.encoder_cpu,
                                           settings.encoder_memory, gpus, settings.encoder_node_selector,
                                           settings.encoder_tolerations, settings.encoder_startup_timeout_s))


@dataclass(frozen=True)
class PodRole:
    """What differs between the pipeline's pods: the image, the node pool and the resources."""

    name: str
    component: str
    image: str
    cpu: str
    memory: str
    extra_limits: dict[str, str]  # e.g. GPUs, which Kubernetes takes as limits only
    node_selector: dict[str, str]
    tolerations: list[dict[str, str]]
    startup_timeout_s: int


def pod_arguments(settings: Settings, role: PodRole) -> dict[str, Any]:
    """The KubernetesPodOperator arguments every pagelens pod shares, for one role (encoder or parser)."""
    labels = {**POD_LABELS, "app.kubernetes.io/name": role.name, "app.kubernetes.io/component": role.component}
    requests = {"cpu": role.cpu, "memory": role.memory}
    return {
        "name": role.name,
        "namespace": settings.k8s_namespace,
        "image": role.image,
        "image_pull_policy": "IfNotPresent",
        "cmds": list(POD_COMMAND),
        "labels": labels,
        "env_vars": pod_env(settings, role.cpu),
        "env_from": [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=settings.encoder_secret))],
        # Requests equal limits: a pod that is never throttled below what it asked for.
        "container_resources": k8s.V1ResourceRequirements(requests=requests, limits={**requests, **role.extra_limits}),
        "node_selector": dict(role.node_selector),
        "tolerations": [_toleration(t) for t in role.tolerations],
        "container_security_context": k8s.V1SecurityContext(  # the images run as uid 10001
            allow_privilege_escalation=False, run_as_non_root=True, capabilities=k8s.V1Capabilities(drop=["ALL"])),
        "automount_service_account_token": False,  # the pods never talk to the Kubernetes API
        "startup_timeout_seconds": role.startup_timeout_s,
        "get_logs": True,
        "log_events_on_failure": True,
        "do_xcom_push": True,
        "on_finish_action": "delete_pod",
    }


def pod_env(settings: Settings, cpu: str) -> dict[str, str]:
    """Non-secret PAGELENS_* settings as a pod's env: models, Milvus, registry, chunking, parsing, tracing; parse
    workers follow the pod's CPU limit, not the node's core count."""
    env = {"PAGELENS_PARSE_WORKERS": str(cpu_count(cpu))}
    for name, value in sorted(settings.model_dump(mode="json").items()):
        if name in POD_OWN or name.startswith(POD_UNUSED_PREFIXES) or SECRET_NAME.search(name) or value is None:
            continue
        if isinstance(value, str) and _carries_password(value):
            continue  # e.g. a registry URL with its password: the Secret provides the whole value
        env[f"PAGELENS_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def cpu_count(quantity: str) -> int:
    """Whole CPUs of a Kubernetes CPU quantity ("4", "3500m", "0.5"), at least 1."""
    cores = int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
    return max(1, int(cores))


def check_pod_settings(settings: Settings) -> None:
    """Refuse settings under which pods would write where nobody reads (a local Milvus Lite file, SQLite)."""
    problems = []
    if settings.is_lite:
        problems.append(f"PAGELENS_MILVUS_URI={settings.milvus_uri} is a Milvus Lite file; pods need a Milvus "
                        "server (http://host:19530)")
    if settings.registry_url.startswith("sqlite"):
        problems.append("PAGELENS_REGISTRY_URL is SQLite; pods need the shared registry (postgresql+psycopg://…)")
    if not settings.manifest_bucket:
        problems.append("PAGELENS_MANIFEST_BUCKET is empty; parse tasks hand batches to pods through S3")
    if not settings.content_store.startswith("s3://"):
        problems.append("PAGELENS_CONTENT_STORE is the data dir; parse tasks keep the artifacts pods encode there: "
                        "name an S3 prefix (s3://bucket/prefix) both can read")
    if problems:
        raise EncoderSettingsError("PAGELENS_EXECUTION=kubernetes: " + "; ".join(problems))


def render_encoder_pod(settings: Settings, manifest: str = "") -> dict[str, Any]:
    """The encoder pod as the Kubernetes API would receive it, without a cluster (templates not rendered)."""
    from kubernetes.client import ApiClient

    manifest = manifest or EXAMPLE_MANIFEST.format(bucket=settings.manifest_bucket or "MANIFEST_BUCKET",
                                                   prefix=settings.manifest_prefix.strip("/"))
    operator = EncoderPodOperator(task_id="encode_batch", manifest=manifest, **encoder_pod_arguments(settings))
    return ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))


def _toleration(spec: dict[str, str]) -> k8s.V1Toleration:
    seconds = spec.get("tolerationSeconds")
    return k8s.V1Toleration(key=spec.get("key"), operator=spec.get("operator"), value=spec.get("value"),
                            effect=spec.get("effect"), toleration_seconds=int(seconds) if seconds else None)


def _carries_password(value: str) -> bool:
    if "://" not in value:
        return False
    try:
        return bool(urlsplit(value).password)
    except ValueError:  # not a URL after all (e.g. a bracketed path)
        return False
