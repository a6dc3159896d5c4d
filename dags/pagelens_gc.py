"""Delete, daily, the kept bytes that no indexed document references any more (`pagelens gc` in Airflow).

The content store (page images are drawn from it) and the parse cache keep each document's bytes and what was
derived from them by content hash; a replaced, deleted or rebuilt-away document's bytes stay there until this
sweep. `sweep_kept_bytes` deletes every hash no indexed registry row of any namespace has, once none of its
objects was put within the grace period (a running ingest puts bytes before the registry records them). Its
return value says how many documents, objects and bytes went, and how many were left for being recent.

**Params:** `dry_run` (default false) reports what would go and deletes nothing; `grace_hours` (default
`PAGELENS_CONTENT_GRACE_HOURS`, 48) leaves bytes put more recently than this. The S3 content store is reached
through the connection of `PAGELENS_AWS_CONN_ID`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from pagelens.settings import Settings  # light (pydantic only)

log = logging.getLogger("pagelens.dags.gc")


@dag(
    schedule=Settings().gc_schedule,  # parse time
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # two sweeps would only race to delete the same objects
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=15)},  # a store outage: try once more, later
    params={"dry_run": Param(False, type="boolean", description="report what would go; delete nothing"),
            "grace_hours": Param(None, type=["null", "number"], minimum=0,
                                 description="leave bytes put more recently (empty: PAGELENS_CONTENT_GRACE_HOURS)")},
    tags=["pagelens", "maintenance"],
)
def pagelens_gc() -> None:
    @task
    def sweep_kept_bytes(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from pagelens.airflow.hooks.milvus import task_settings
        from pagelens.pipeline.sweep import collect_garbage

        params = params or {}
        summary = collect_garbage(task_settings(), params.get("grace_hours"), bool(params.get("dry_run")))
        log.info("%s the kept bytes of %d unreferenced documents (%d objects, %.1f MiB); %d left as recent",
                 "Would delete" if summary["dry_run"] else "Deleted", summary["documents"], summary["objects"],
                 summary["bytes"] / 2**20, summary["kept_recent"])
        return summary

    sweep_kept_bytes()


pagelens_gc()
