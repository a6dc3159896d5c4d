"""Example of a downstream DAG: runs whenever a pagelens index changes, and says what changed.

Scheduled on the asset alias `pagelens`, through which `pagelens_ingest` (its `finish` task, for each
namespace whose index changed) and every `pagelens_reindex__<namespace>` (a passed `swap`) emit an event of
the asset `pagelens://<namespace>`. Copy it and replace `report_changes` with your own reaction: refresh a
cache, re-run an evaluation, notify a channel. To follow one namespace only, schedule on its asset instead:
`schedule=Asset("pagelens://finance")`.

Each event's extra carries the namespace and what happened: an ingest's counts (`indexed`, `skipped`,
`quarantined`, `deleted`) or a rebuild's `generation`, `previous` generation, `documents` and gate figures
(`recall_at_5`, `previous_recall_at_5`), plus the `dag_id` and `run_id` that produced it. No params.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from pagelens.airflow.assets import index_alias

log = logging.getLogger("pagelens.dags.downstream_example")


@dag(
    schedule=index_alias(),
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["pagelens", "example"],
)
def pagelens_downstream_example() -> None:
    @task
    def report_changes(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        from pagelens.airflow.assets import describe_events

        changes = describe_events(triggering_asset_events)
        for change in changes:
            if change.get("event") == "reindex":
                log.info("Namespace %s now serves %s (was %s; recall@5 %s)", change["namespace"],
                         change["generation"], change["previous"], change["recall_at_5"])
            else:
                log.info("Namespace %s changed: %s indexed, %s deleted, %s quarantined (%s %s)", change["namespace"],
                         change.get("indexed"), change.get("deleted"), change.get("quarantined"), change["dag_id"],
                         change["run_id"])
        return changes

    report_changes()


pagelens_downstream_example()
