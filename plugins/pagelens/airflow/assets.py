"""Asset events per namespace: what changed in an index, for data-aware scheduling of downstream DAGs.

Each namespace is the asset `pagelens://<namespace>`. The ingest DAG's `finish` and the reindex DAGs' `swap`
emit their events through the asset alias `pagelens` (namespaces are known only at run time), so a
downstream DAG schedules on one namespace (`schedule=Asset("pagelens://finance")`) or on every one
(`schedule=AssetAlias("pagelens")`). An ingest emits for a namespace only when its index changed (a document
indexed or deleted): an hourly run that found nothing new triggers nothing.

The same notices also go to a Kafka topic (`PAGELENS_KAFKA_TOPIC`) through the Kafka provider when the Airflow
connection `PAGELENS_KAFKA_CONN_ID` (default `kafka_default`) is defined: one message per namespace, keyed by
the namespace, its value the event's extra as JSON with the asset's URI.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset, AssetAlias, BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from pagelens.names import printable
from pagelens.settings import Settings

log = logging.getLogger(__name__)
ALIAS = "pagelens"
INGEST_COUNTS = ("indexed", "skipped", "quarantined", "deleted")


def namespace_asset(namespace: str) -> Asset:
    return Asset(f"pagelens://{namespace}")


def index_alias() -> AssetAlias:
    return AssetAlias(ALIAS)


def ingest_events(summary: Mapping[str, Any], dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """Namespace -> event extra for the namespaces whose index this ingest run changed."""
    events = {}
    for namespace, counts in summary.get("namespaces", {}).items():
        if counts.get("indexed", 0) or counts.get("deleted", 0):
            events[namespace] = {"namespace": namespace, "event": "ingest", "dag_id": dag_id, "run_id": run_id,
                                 **{k: int(counts.get(k, 0)) for k in INGEST_COUNTS}}
    return events


def reindex_event(verdict: Mapping[str, Any], documents: int, dag_id: str, run_id: str) -> dict[str, Any]:
    """The extra of a swapped rebuild: the generation now live, the one before, the gate's figures."""
    return {"namespace": verdict["namespace"], "event": "reindex", "dag_id": dag_id, "run_id": run_id,
            "generation": verdict["generation"], "previous": verdict.get("live"), "documents": documents,
            "recall_at_5": verdict.get("new_recall"), "previous_recall_at_5": verdict.get("live_recall"),
            "gate": verdict.get("reason", "")}


def emit(outlet_events: Any, events: Mapping[str, Mapping[str, Any]]) -> None:
    """Add one asset event per namespace through the alias (the task must list `index_alias()` in its outlets)."""
    for namespace, extra in events.items():
        outlet_events[index_alias()].add(namespace_asset(namespace), extra=dict(extra))


class KafkaNoticeFailed(RuntimeError):
    """The Kafka connection is defined but a notice was not delivered (the task fails and is retried)."""


def notify_kafka(events: Mapping[str, Mapping[str, Any]], settings: Settings, timeout_s: float = 30.0) -> int:
    """Send each namespace's event to `settings.kafka_topic` through the Kafka provider's producer, when the
    Airflow connection `settings.kafka_conn_id` is defined (its extra is the librdkafka configuration, e.g.
    `{"bootstrap.servers": "kafka:9092"}`); the number of notices delivered, 0 without the connection.
    KafkaNoticeFailed when one was not acknowledged within `timeout_s`."""
    if not events:
        return 0
    conn_id = settings.kafka_conn_id
    try:
        BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return 0
    try:
        from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook
    except ImportError as exc:
        raise KafkaNoticeFailed(f"Airflow connection {conn_id!r} is defined but the Kafka provider is not installed "
                                "(pip install apache-airflow-providers-apache-kafka)") from exc
    producer = KafkaProducerHook(kafka_config_id=conn_id).get_producer()
    failures: list[str] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(f"{printable(message.key().decode(errors='replace'))}: {error}")

    for namespace, extra in events.items():
        body = {"asset": namespace_asset(namespace).name, **extra}  # the name: .uri gains a trailing /
        producer.produce(settings.kafka_topic, key=namespace.encode(), value=json.dumps(body, sort_keys=True).encode(),
                         on_delivery=delivered)
    left = producer.flush(timeout_s)
    if left or failures:
        raise KafkaNoticeFailed(f"{left + len(failures)} of {len(events)} notices to Kafka topic "
                                f"{settings.kafka_topic!r} (connection {conn_id!r}) were not delivered"
                                + (f": {'; '.join(failures)}" if failures else f" within {timeout_s:.0f} s"))
    log.info("Sent %d notices to Kafka topic %s", len(events), printable(settings.kafka_topic))
    return len(events)


def describe_events(triggering_asset_events: Mapping[Any, Any] | None) -> list[dict[str, Any]]:
    """The pagelens events that triggered a run, oldest first, as plain dicts (for a downstream task to act on)."""
    seen: list[dict[str, Any]] = []
    for asset, events in (triggering_asset_events or {}).items():
        uri = str(getattr(asset, "uri", asset))
        if not uri.startswith("pagelens://"):
            continue
        for event in events:
            seen.append({"asset": uri, "timestamp": str(getattr(event, "timestamp", "")),
                         **dict(getattr(event, "extra", None) or {})})
    return sorted(seen, key=lambda e: e["timestamp"])
