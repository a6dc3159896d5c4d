"""TTL pruning: which documents a namespace's retention expires, and their removal from the index and the registry.

A namespace sets its retention beside its sources (`PAGELENS_NAMESPACES`:
`{"hr": {"sources": […], "retention": {"by": "modified", "days": 365}}}`):

- `by: "modified"`: a document whose source modification time is more than `days` old goes, and the plan does not
  index it again while the source keeps it unchanged (the listing says how old it is). A document whose source
  reports no time is kept.
- `by: "last_seen"`: a document goes once no ingest run has listed it for `days`: a source dropped from the
  namespace, a one-off source never run again. A namespace whose sources cannot be listed is skipped whole, so
  an outage never ages its documents out.

Every run records what it listed (`Registry.mark_seen`), retention or not, so a retention switched on later
starts from real last-seen times. The plan is the dry-run report (`pagelens prune --dry-run`, the plan task's
log and XCom); `finish` applies it: vectors deleted, registry rows removed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pagelens.pipeline.sweep import sweep_hashes
from pagelens.records import DocumentReport
from pagelens.registry import DocumentRecord, Registry
from pagelens.settings import Retention
from pagelens.store import VectorStore

if TYPE_CHECKING:
    from pagelens.settings import Settings
    from pagelens.sources import SourceDocument

log = logging.getLogger(__name__)
DAY_S = 86_400.0


def retention_of(namespace: str, settings: Settings) -> Retention | None:
    config = settings.namespaces.get(namespace)
    return config.retention if config else None


def listed_expired(doc: SourceDocument, retention: Retention | None, now: float) -> bool:
    """A listed document too old to index under a retention by modification time."""
    return bool(retention and retention.by == "modified" and 0 < doc.modified < now - retention.days * DAY_S)


def expiry_reason(retention: Retention, when: float) -> str:
    what = "modified" if retention.by == "modified" else "last seen"
    day = dt.datetime.fromtimestamp(when, dt.UTC).date().isoformat()
    return f"expired: {what} {day}, past the namespace's {retention.days:g}-day retention"


def expired_documents(rows: Iterable[DocumentRecord], retention: Retention | None, now: float,
            seen: dict[str, float | None] | None = None) -> list[DocumentReport]:
    """The documents of `rows` (indexed or quarantined; tombstones are left alone) the retention expires at `now`.

    `seen`: what this run listed (doc id -> source modification time, None: unchanged), so a document listed now
    is judged by today's listing, not by the registry's last record.
    """
    if retention is None:
        return []
    seen, limit, reports = seen or {}, now - retention.days * DAY_S, []
    for row in rows:
        if row.status == "deleted":
            continue
        if retention.by == "modified":
            listed = seen.get(row.doc_id)
            when = listed if listed is not None else timestamp_of(row.source_modified_at)
        else:
            when = now if row.doc_id in seen else timestamp_of(row.last_seen_at or row.updated_at)
        if when and when < limit:
            reports.append(DocumentReport(doc=row.doc_id, status="deleted", reason=expiry_reason(retention, when),
                                          source_uri=row.source_uri, location=row.location, etag=row.etag,
                                          content_sha256=row.content_sha256))
    return reports


def prune_plan(namespace: str, settings: Settings, retention: Retention | None = None,
               now: float | None = None) -> list[DocumentReport]:
    """What the namespace's retention (or `retention`) expires now, from the registry alone: the last runs'
    listings. The dry run of `pagelens prune`."""
    retention = retention or retention_of(namespace, settings)
    now = dt.datetime.now(dt.UTC).timestamp() if now is None else now
    return expired_documents(Registry(settings.registry_url).documents(namespace), retention, now)


def prune(namespace: str, settings: Settings, reports: list[DocumentReport]) -> list[DocumentReport]:
    """Delete the expired documents' vectors, then their registry rows, then their kept bytes (content store and
    parse cache, unless another indexed document has the same content); every delete is idempotent, so a retry
    of the finish step applies the same plan again. Returns the reports, now applied."""
    if not reports:
        return []
    store = VectorStore(settings, namespace)
    store.ensure_collection()
    for report in reports:
        store.delete_document(report.doc)
    Registry(settings.registry_url).remove(namespace, [r.doc for r in reports])
    sweep_hashes(settings, {r.content_sha256 for r in reports if r.content_sha256})  # their kept bytes too
    log.info("Pruned %d documents of %s past their retention", len(reports), namespace)
    return reports


def timestamp_of(when: dt.datetime | None) -> float:
    """A registry timestamp as Unix seconds (0: none)."""
    if when is None:
        return 0.0
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()  # SQLite drops the zone
