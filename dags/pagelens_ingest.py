"""Index a document source into one pagelens namespace, hourly.

`plan` diffs the source against the registry, `index_batch` (one mapped task per batch; later the GPU
encoder pod) parses, embeds and upserts, `finish` retires documents that left the source and flushes
Milvus. Unchanged documents are skipped, so a re-run is cheap and idempotent; a document that cannot be
read is quarantined with its reason instead of failing the run.

Params: `namespace` (tenant / collection partition) and `source` (a local folder or file).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

BATCH_SIZE = 8  # documents per mapped task: amortises model loading, bounds what a retry redoes
STATUSES = ("indexed", "skipped", "quarantined", "deleted")
log = logging.getLogger("pagelens.dags.ingest")  # DagBag imports this file under a mangled module name


def _default_source() -> str:
    from pagelens.settings import Settings  # light (pydantic only); keeps the default in one place

    return str(Settings().data_dir / "inbox")


def _embedded_store() -> bool:
    from pagelens.settings import Settings

    return Settings().is_lite


@dag(
    schedule="@hourly",
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": 2.0,
                  "max_retry_delay": timedelta(minutes=15)},
    params={"namespace": Param("default", type="string"), "source": Param(_default_source(), type="string")},
    tags=["pagelens", "ingest"],
)
def pagelens_ingest() -> None:
    @task
    def plan(namespace: str, source: str, ti: Any = None) -> list[list[dict[str, str]]]:
        from pagelens.ingest import batches, list_sources, plan_ingest
        from pagelens.settings import Settings

        settings = Settings()
        result = plan_ingest(list_sources([source], namespace, settings), namespace, settings)
        # Airflow maps only over a return value, so the batches are it and the rest travels as named XComs.
        ti.xcom_push(key="skipped", value=[r.to_dict() for r in result.skipped])
        ti.xcom_push(key="gone", value=result.gone)
        ti.xcom_push(key="cursors", value=result.cursors)
        return batches(result.to_index, BATCH_SIZE)

    # A Milvus Lite file is locked by the process that opens it: one batch at a time there.
    @task(max_active_tis_per_dagrun=1 if _embedded_store() else 16)
    def index_batch(batch: list[dict[str, str]], namespace: str) -> list[dict[str, Any]]:
        from pagelens import ingest
        from pagelens.settings import Settings

        return [r.to_dict() for r in ingest.index_batch(batch, namespace, Settings())]

    @task(trigger_rule="none_failed")  # zero batches leaves index_batch skipped; finish must still run
    def finish(indexed: list[list[dict[str, Any]]], skipped: list[dict[str, Any]], gone: list[str],
               cursors: dict[str, str], namespace: str) -> dict[str, Any]:
        from pagelens.ingest import finish_ingest
        from pagelens.settings import Settings

        deleted = [r.to_dict() for r in finish_ingest(namespace, Settings(), gone, cursors)]
        documents = [r for batch in indexed for r in batch] + list(skipped) + deleted
        counts = {s: sum(r["status"] == s for r in documents) for s in STATUSES}
        log.info("Ingest into %s: %s indexed, %s skipped, %s quarantined, %s deleted", namespace, *counts.values())
        return {**counts, "documents": documents}

    namespace, source = "{{ params.namespace }}", "{{ params.source }}"
    planned = plan(namespace, source)
    indexed = index_batch.partial(namespace=namespace).expand(batch=planned)
    finish(indexed, planned["skipped"], planned["gone"], planned["cursors"], namespace)


pagelens_ingest()
