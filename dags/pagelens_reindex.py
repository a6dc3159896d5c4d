"""Rebuild one pagelens namespace blue-green, nightly: `pagelens_reindex__<namespace>`, one DAG per namespace.

`check` short-circuits when the live generation already holds the current model version and the sources
have nothing the incremental ingest has not indexed (trigger with `{"force": true}` to rebuild anyway), and
always while another run of this namespace is still building a candidate.
`prepare` lists every document of the namespace's sources and creates a new collection generation beside
the live one; `parse_batch` and `encode_batch` (mapped, the same two steps as `pagelens_ingest`, so in
kubernetes mode encoding runs in GPU pods here too) fill it; `swap` evaluates it and the live generation on the
namespace's gold questions and points the alias at it only if recall@5 drops by at most
`PAGELENS_REINDEX_MAX_RECALL_DROP`; the previous generation stays for `pagelens rollback`. A failed gate
fails `swap` with both figures (also in its `gate` XCom) and leaves the live generation serving; `abandon`
marks a candidate whose batches failed. Either candidate is kept for inspection until the next rebuild.

**Params:** `force` (default false) rebuilds even when `check` finds nothing to do.

**Stores and events.** Tasks reach Milvus through the Airflow connection `milvus_default`
(`PAGELENS_MILVUS_CONN_ID`) when it is defined, else through `PAGELENS_MILVUS_URI`. A passed `swap` emits an
asset event `pagelens://<namespace>` (through the alias `pagelens`) whose extra names the new and previous
generation, the documents rebuilt and the gate's recall@5 figures; with the Airflow connection `kafka_default`
(`PAGELENS_KAFKA_CONN_ID`) defined, the same notice also goes to the Kafka topic `PAGELENS_KAFKA_TOPIC`.

One DAG per namespace (from `PAGELENS_NAMESPACES`), not one DAG with a namespace parameter: Airflow runs
one backfill per DAG at a time, and a second backfill of the same dates with another conf would re-run
the first one's runs with its conf.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, dag, task

from pagelens.airflow.assets import index_alias
from pagelens.airflow.steps import parse_and_encode
from pagelens.settings import Settings  # light (pydantic only)
from pagelens.store import validate_namespace

BATCH_SIZE = 8  # documents per mapped task, as in pagelens_ingest
log = logging.getLogger("pagelens.dags.reindex")  # DagBag imports this file under a mangled module name


def reindex_dag(namespace: str, settings: Settings) -> DAG:
    """The reindex DAG of one namespace; every task reads that namespace's config from settings at run time."""

    @dag(
        dag_id=f"pagelens_reindex__{namespace}",
        schedule=settings.reindex_schedule,
        start_date=datetime(2025, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,  # two rebuilds of one namespace would drop each other's candidate
        doc_md=__doc__,
        default_args={"retries": 2, "retry_delay": timedelta(minutes=2), "retry_exponential_backoff": 2.0,
                      "max_retry_delay": timedelta(minutes=20)},
        params={"force": Param(False, type="boolean", description="rebuild even if nothing changed")},
        tags=["pagelens", "reindex", namespace],
    )
    def reindex() -> None:
        @task.short_circuit
        def check(params: dict[str, Any] | None = None) -> bool:
            from pagelens.airflow.hooks.milvus import task_settings
            from pagelens.reindex import rebuild_decision

            rebuild, reason = rebuild_decision(namespace, task_settings(), force=bool((params or {}).get("force")))
            log.info("Rebuild %s: %s", namespace, reason)
            return rebuild

        @task
        def prepare(ti: Any = None) -> list[dict[str, Any]]:
            from pagelens.airflow.hooks.milvus import task_settings
            from pagelens.reindex import prepare_rebuild

            generation, planned = prepare_rebuild(namespace, task_settings(), BATCH_SIZE)
            ti.xcom_push(key="generation", value=generation)
            return planned  # Airflow maps only over a return value

        # zero documents leave the batch steps skipped: the gate still decides
        @task(trigger_rule="none_failed", outlets=[index_alias()])
        def swap(indexed: list[dict[str, Any]], generation: str, ti: Any = None,
                 outlet_events: Any = None) -> dict[str, Any]:
            from airflow.sdk.exceptions import AirflowFailException

            from pagelens.airflow.assets import emit, notify_kafka, reindex_event
            from pagelens.airflow.hooks.milvus import task_settings
            from pagelens.reindex import GateFailed, judge_and_swap

            reports = [r for batch in indexed[:] for r in batch["documents"]]  # one read, no probe past the end
            settings = task_settings()
            try:
                verdict = judge_and_swap(namespace, settings, generation, reports)
            except GateFailed as exc:
                ti.xcom_push(key="gate", value=exc.verdict.to_dict())  # both figures, in the UI's XCom tab
                raise AirflowFailException(str(exc)) from exc  # a verdict, not a transient failure: no retry
            events = {namespace: reindex_event(verdict.to_dict(), len(reports), ti.dag_id, ti.run_id)}
            emit(outlet_events, events)
            notify_kafka(events, settings)  # only with the Kafka connection defined
            return verdict.to_dict()

        @task(trigger_rule="one_failed")  # a batch failed for good: the next run drops the candidate
        def abandon(generation: str) -> None:
            from pagelens.airflow.hooks.milvus import task_settings
            from pagelens.reindex import abandon_rebuild

            abandon_rebuild(namespace, task_settings(), generation)

        prepared = prepare()
        indexed = parse_and_encode(prepared, settings)
        check() >> prepared
        indexed >> abandon(prepared["generation"])
        swap(indexed, prepared["generation"])

    return reindex()


SETTINGS = Settings()  # parse time: the namespaces, the schedule, the execution mode and the pod spec
for _namespace in SETTINGS.namespaces:
    globals()[f"pagelens_reindex__{_namespace}"] = reindex_dag(validate_namespace(_namespace), SETTINGS)
