"""The two mapped steps every indexing DAG runs per batch, built in one place: `parse_batch` on the Airflow
worker's CPUs (or, with `PAGELENS_PARSE_EXECUTION=pod` in kubernetes mode, in a CPU pod of the parser image),
then `encode_batch` in the worker (`PAGELENS_EXECUTION=local`) or in a GPU pod of the encoder image
(`kubernetes`). `pagelens_ingest` and `pagelens_reindex__<namespace>` both call `parse_and_encode`, so where
each step runs, the model-mismatch guard and the Milvus Lite rule are decided once.

The handoff between the steps is durable: `parse_batch` keeps each document's chunks as an artifact in the
content store and passes on a small parsed batch (by value in XCom; in kubernetes mode written to
`s3://<manifest_bucket>/…` and passed by URI), so an encode retry or a GPU pod never parses again.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import task

from pagelens.settings import Settings

MAX_PARALLEL_BATCHES = 16


def parse_and_encode(planned: Any, settings: Settings, max_parallel: int = MAX_PARALLEL_BATCHES) -> Any:
    """Map both steps over `planned` (the `BatchManifest` dicts a plan task returned); returns the encode step's
    output: one `{"namespace", "generation", "documents": [report, ...]}` per batch.

    `settings` are the DAG file's parse-time settings (the execution mode and the pod spec come from them).
    """
    kubernetes = settings.execution == "kubernetes"
    if settings.parse_execution == "pod" and not kubernetes:
        from pagelens.airflow.operators.encoder import EncoderSettingsError

        raise EncoderSettingsError("PAGELENS_PARSE_EXECUTION=pod runs parse tasks as Kubernetes pods: set "
                                   "PAGELENS_EXECUTION=kubernetes as well, or parse on the worker (worker)")

    @task(max_active_tis_per_dagrun=max_parallel)
    def parse_batch(manifest: dict[str, Any], ti: Any = None) -> dict[str, Any] | str:
        from pagelens.airflow.hooks.milvus import task_settings
        from pagelens.pipeline.batches import BatchManifest, batch_name, write_manifests
        from pagelens.pipeline.pod import parse_manifest

        task_config = task_settings()
        parsed = parse_manifest(BatchManifest.from_dict(manifest, where="the batch"), task_config)
        if not kubernetes:
            return parsed.to_dict()
        name = batch_name(parsed.namespace, ti.map_index)  # the pod gets its parsed batch by reference
        return write_manifests({name: parsed}, task_config, ti.dag_id, ti.run_id)[0]

    if kubernetes and settings.parse_execution == "pod":
        from pagelens.airflow.operators.parser import ParserPodOperator, parser_pod_arguments

        parsed = ParserPodOperator.partial(
            task_id="parse_batch", max_active_tis_per_dagrun=max_parallel, **parser_pod_arguments(settings),
        ).expand(manifest=planned).output
    else:
        parsed = parse_batch.expand(manifest=planned)
    if kubernetes:
        from pagelens.airflow.operators.encoder import EncoderPodOperator, check_pod_settings, encoder_pod_arguments

        check_pod_settings(settings)
        return EncoderPodOperator.partial(
            task_id="encode_batch", max_active_tis_per_dagrun=max_parallel, **encoder_pod_arguments(settings),
        ).expand(manifest=parsed).output

    # A Milvus Lite file is locked by the process that opens it: one encode step at a time there.
    @task(max_active_tis_per_dagrun=1 if settings.is_lite else max_parallel)
    def encode_batch(parsed: dict[str, Any]) -> dict[str, Any]:
        from pagelens.airflow.hooks.milvus import task_settings
        from pagelens.pipeline.batches import ParsedBatch
        from pagelens.pipeline.pod import encode_manifest

        return encode_manifest(ParsedBatch.from_dict(parsed), task_settings())

    return encode_batch.expand(parsed=parsed)
