"""The parse step as a CPU pod (`PAGELENS_PARSE_EXECUTION=pod`): a KubernetesPodOperator of the parser image.

The pod runs `python -m pagelens.pipeline.pod --step parse`: it fetches, converts, pre-flights, parses, OCRs,
chunks and redacts one planned batch, keeps each document's artifact in the content store (S3) and writes the
parsed batch where the worker's parse task would; its URI comes back through the XCom sidecar, so the encode
step maps over it unchanged. The planned batch travels inline in the pod's arguments as a `data:` URI (a few
hundred bytes per document, far below a container argument's 128 KiB), so no extra task writes it first.
Settings and credentials reach the pod as they reach the encoder pods (`pod_arguments`): non-secret PAGELENS_*
as env, the Secret `encoder_secret` by reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from pagelens.airflow.operators.encoder import PodRole, pod_arguments
from pagelens.pipeline.batches import inline_manifest

if TYPE_CHECKING:
    from pagelens.settings import Settings

# Rendered per task instance: the parsed batch is named by the run and the map index, as on the worker.
RUN_ARGUMENTS = ["--dag-id", "{{ dag.dag_id }}", "--run-id", "{{ run_id }}", "--map-index", "{{ ti.map_index }}"]


class ParserPodOperator(KubernetesPodOperator):
    """Parse one planned batch in a CPU pod; returns the parsed batch's URI (with `do_xcom_push=True`).

    :param manifest: the planned batch (a `BatchManifest` dict, as the plan task returned it)
    """

    def __init__(self, *, manifest: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(arguments=["--step", "parse", "--manifest", inline_manifest(manifest), *RUN_ARGUMENTS],
                         **kwargs)


def parser_pod_arguments(settings: Settings) -> dict[str, Any]:
    """The KubernetesPodOperator arguments of a parser pod, all derived from settings."""
    return pod_arguments(settings, PodRole("pagelens-parser", "parser", settings.parser_image, settings.parser_cpu,
                                           settings.parser_memory, {}, settings.parser_node_selector,
                                           settings.parser_tolerations, settings.encoder_startup_timeout_s))


def render_parser_pod(settings: Settings, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parser pod as the Kubernetes API would receive it, without a cluster (templates not rendered)."""
    from kubernetes.client import ApiClient

    manifest = manifest or {"namespace": "NAMESPACE", "documents": [], "generation": None, "model_version": ""}
    operator = ParserPodOperator(task_id="parse_batch", manifest=manifest, **parser_pod_arguments(settings))
    return ApiClient().sanitize_for_serialization(operator.build_pod_request_obj(dry_run=True))
