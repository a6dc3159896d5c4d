"""Asset events per namespace: what changed in an index, for data-aware scheduling of downstream DAGs.

Each namespace is the asset `pagelens://<namespace>`. The ingest DAG's `finish` and the reindex DAGs' `swap`
emit their events through the asset alias `pagelens` (namespaces are known only at run time), so a
downstream DAG schedules on one namespace (`schedule=Asset("pagelens://finance")`) or on every one
(`schedule=AssetAlias("pagelens")`). An ingest emits for a namespace only when its index changed (a document
indexed or deleted): an hourly run that found nothing new triggers nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset, AssetAlias

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
