"""Permission changes that keep a document's content (a SharePoint file shared with someone new, or no longer):
detected against the registry and applied to the index on the next run, without fetching or embedding again."""

from __future__ import annotations

import json

from pagelens.records import DocumentReport
from pagelens.registry import DocumentRecord, Registry
from pagelens.sources import SourceDocument
from pagelens.store import VectorStore

PERMISSIONS_CHANGED = "permissions changed: applied without re-embedding"


def permissions_changed(row: DocumentRecord | None, doc: SourceDocument, version: str) -> bool:
    """The live index holds this very version of the document, but for other readers than the source names now."""
    return (row is not None and row.unchanged(doc.etag, version)
            and sorted(set(doc.principals)) != sorted(json.loads(row.principals or "[]")))


def apply_permissions(report: DocumentReport, namespace: str, store: VectorStore, registry: Registry) -> None:
    """Give the document's chunks and registry row the report's principals (a revoked reader stops seeing it)."""
    store.set_principals(report.doc, report.principals)
    registry.set_principals(namespace, report.doc, report.principals)
