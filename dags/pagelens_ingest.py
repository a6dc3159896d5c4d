"""Index the configured document sources into their pagelens namespaces, hourly.

**What a run covers.** Scheduled runs (and manual runs with no params) ingest every namespace configured in
`PAGELENS_NAMESPACES` (`{"<namespace>": {"sources": ["s3://bucket/prefix", "sharepoint://…", "/folder"]}}`),
each namespace from all its sources into its own index. With nothing configured they ingest the embedded
inbox `<data_dir>/inbox` into `default`, if that folder exists. Manual runs narrow it with params:

- `namespace` alone: that configured namespace only;
- `namespace` and `source`: a one-off run of that one source (a folder, `s3://…`, `sharepoint://…`) into that
  namespace, which need not be configured. A run retires only documents of the sources it lists, so a one-off
  source's documents stay until a one-off run of the same source no longer finds them; scheduled runs leave
  them alone.

**Steps.** `plan` lists each namespace's sources and diffs them against the registry by version marker
(etag), so an unchanged corpus costs a listing and one registry query per namespace; it cuts the changed
documents into batches, each carrying its namespace. A namespace whose source cannot be listed is skipped
so the others still land; `finish` then fails the run and names it (if none can be listed, `plan` fails
and retries). Then two mapped tasks per batch: `parse_batch` (CPU) fetches, converts, parses, OCRs, chunks
and redacts, keeping each document's chunks as an artifact in the content store; `encode_batch` embeds
them, upserts and records the outcome. A document that cannot be read is quarantined with its reason
instead of failing the run. `finish` retires documents that left their source, flushes each namespace's index and
only then saves delta cursors (a failed run re-reads the same changes), and logs counts per namespace and
for the run. Every step is idempotent: a retry or re-run converges.

**Params** (Trigger DAG w/ config; the form checks the namespace):

- `namespace`: empty runs every configured namespace (what the schedule does); a name (a letter, then
  letters, digits or underscores, at most 64) runs that namespace only;
- `source`: empty uses the namespace's configured sources; a folder, `s3://bucket/prefix` or
  `sharepoint://site/drive[/folder]` runs that one source into `namespace` (which is then required).

**Stores and events.** Tasks reach Milvus through the Airflow connection `milvus_default`
(`PAGELENS_MILVUS_CONN_ID`) when it is defined, else through `PAGELENS_MILVUS_URI`. `finish` emits an asset
event `pagelens://<namespace>` (through the alias `pagelens`) for each namespace whose index changed, with
the run's counts in its extra, so downstream DAGs can schedule on it (`dags/pagelens_downstream_example.py`);
with the Airflow connection `kafka_default` (`PAGELENS_KAFKA_CONN_ID`) defined, the same notices also go to the
Kafka topic `PAGELENS_KAFKA_TOPIC` (`pagelens.index-events`), keyed by namespace.

**Where the encode step runs** (`PAGELENS_EXECUTION`, read when this file is parsed): `local` runs
`encode_batch` in the Airflow worker; `kubernetes` runs it as a GPU pod of the encoder image
(`python -m pagelens.pipeline.pod --manifest s3://…`), the parsed batch handed over as a manifest that
`parse_batch` writes to `s3://<manifest_bucket>/<manifest_prefix>/<dag_id>/<run_id>/<batch>.json` (expire
them with a bucket lifecycle rule); the pod parses nothing. `PAGELENS_PARSE_EXECUTION=pod` (kubernetes mode
only) moves `parse_batch` off the worker too, into a CPU pod of the parser image per batch
(`python -m pagelens.pipeline.pod --step parse`), so parsing scales with a CPU node pool. `pagelens_reindex__<namespace>`
runs the same two steps (`pagelens.airflow.steps`).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from pagelens.airflow.assets import index_alias
from pagelens.airflow.steps import parse_and_encode
from pagelens.settings import Settings  # light (pydantic only)

BATCH_SIZE = 8  # documents per mapped task: amortises model loading, bounds what a retry redoes
log = logging.getLogger("pagelens.dags.ingest")  # DagBag imports this file under a mangled module name
SETTINGS = Settings()  # parse time: the execution mode and the pod spec come from here
NAMESPACE_OR_EMPTY = r"^([A-Za-z][A-Za-z0-9_]{0,63})?$"  # pagelens.store.NAMESPACE, or empty


@dag(
    schedule="@hourly",
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1), "retry_exponential_backoff": 2.0,
                  "max_retry_delay": timedelta(minutes=15)},
    params={
        "namespace": Param("", type="string", pattern=NAMESPACE_OR_EMPTY, title="Namespace",
                           description="empty: every configured namespace; else a letter, then letters, digits or "
                                       "underscores (at most 64)"),
        "source": Param("", type="string", title="One-off source",
                        description="a folder, s3://… or sharepoint://… ingested into `namespace`; empty: its "
                                    "configured sources"),
    },
    tags=["pagelens", "ingest"],
)
def pagelens_ingest() -> None:
    @task
    def plan(namespace: str, source: str, ti: Any = None) -> list[Any]:
        from pagelens.airflow.hooks.milvus import task_settings
        from pagelens.pipeline.run import plan_run, run_targets

        settings = task_settings()
        run = plan_run(run_targets(namespace, source, settings), settings, BATCH_SIZE)
        # Airflow maps only over a return value, so the batches are it and the rest travels as a named XCom.
        ti.xcom_push(key="namespaces", value=run.namespaces_dict())
        return [m.to_dict() for m in run.manifests.values()]

    # zero batches leaves the batch steps skipped; finish must still run
    @task(trigger_rule="none_failed", outlets=[index_alias()])
    def finish(indexed: list[dict[str, Any]], namespaces: dict[str, dict[str, Any]], ti: Any = None,
               outlet_events: Any = None) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from pagelens.airflow.assets import emit, ingest_events, notify_kafka
        from pagelens.airflow.hooks.milvus import task_settings
        from pagelens.pipeline.run import NamespacesNotListed, finish_run

        settings = task_settings()
        try:
            # A slice reads the mapped results in one request; iterating would probe one past the end and log
            # Airflow's "[error] XCom not found" on every successful run.
            summary = finish_run(indexed[:], namespaces, settings)
        except NamespacesNotListed as exc:  # the rest has landed; the next run lists them again, not a retry
            raise AirflowFailException(str(exc)) from exc  # a failed task emits no asset events
        events = ingest_events(summary, ti.dag_id, ti.run_id)
        emit(outlet_events, events)
        notify_kafka(events, settings)  # only with the Kafka connection defined
        return summary

    planned = plan("{{ params.namespace }}", "{{ params.source }}")
    finish(parse_and_encode(planned, SETTINGS), planned["namespaces"])


pagelens_ingest()
