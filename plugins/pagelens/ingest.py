"""The ingestion stages: plan against the registry, index batches of documents, retire removed ones.

`index_batch` is the one function that does the work in every mode: the CLI, the local Airflow task and
the GPU encoder pod all call it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pagelens.chunk import chunk_pages
from pagelens.embed import image_encoder, model_version, text_encoder
from pagelens.errors import DocumentError
from pagelens.models import Chunk, DocumentReport, Page
from pagelens.parsepool import ParsePool
from pagelens.redact import blur_faces, redact_text
from pagelens.registry import Registry
from pagelens.settings import Settings
from pagelens.sources import SourceDocument, open_source
from pagelens.store import VectorStore

log = logging.getLogger(__name__)


@dataclass
class Plan:
    to_index: list[SourceDocument] = field(default_factory=list)
    skipped: list[DocumentReport] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # indexed before, no longer in the source


def plan_ingest(documents: list[SourceDocument], namespace: str, settings: Settings) -> Plan:
    """Diff a source listing against the registry: new or changed documents are indexed, the rest skipped."""
    registry, version = Registry(settings.registry_url), model_version(settings)
    plan = Plan()
    for doc in documents:
        if registry.is_current(namespace, doc.doc_id, doc.content_sha256, version):
            plan.skipped.append(DocumentReport(doc=doc.doc_id, status="skipped", reason="unchanged"))
        else:
            plan.to_index.append(doc)
    listed = {d.doc_id for d in documents}
    plan.gone = [r.doc_id for r in registry.documents(namespace) if r.status != "deleted" and r.doc_id not in listed]
    return plan


def batches(documents: list[SourceDocument], size: int) -> list[list[dict[str, str]]]:
    """Plain-dict batches (they cross Airflow XCom and pod manifests)."""
    return [[d.to_dict() for d in documents[i:i + size]] for i in range(0, len(documents), size)]


def index_batch(batch: Iterable[dict[str, str] | SourceDocument], namespace: str, settings: Settings,
                on_document: Callable[[DocumentReport], None] | None = None) -> list[DocumentReport]:
    """Parse, chunk, redact, embed and upsert each document; a bad one is quarantined, the rest go on."""
    store, registry = VectorStore(settings), Registry(settings.registry_url)
    store.ensure_collection()
    docs = [item if isinstance(item, SourceDocument) else SourceDocument(**item) for item in batch]
    reports = []
    with ParsePool(docs, settings) as parses:  # parsing runs ahead in worker processes
        for doc in docs:
            report = index_document(doc, namespace, settings, store, registry, parses.pages)
            reports.append(report)
            if on_document:
                on_document(report)
    return reports


def index_document(doc: SourceDocument, namespace: str, settings: Settings, store: VectorStore,
                   registry: Registry, parse: Callable[[SourceDocument], list[Page]]) -> DocumentReport:
    start = time.perf_counter()
    version = model_version(settings)
    try:
        pages = parse(doc)
    except DocumentError as exc:
        store.delete_document(namespace, doc.doc_id)  # a replaced file that is now bad leaves nothing stale
        report = DocumentReport(doc=doc.doc_id, status="quarantined", reason=exc.reason,
                                seconds=round(time.perf_counter() - start, 2))
        registry.record(namespace, doc.source_uri, doc.content_sha256, version, report, doc.etag)
        log.warning("Quarantined %s: %s", doc.doc_id, exc.reason)
        return report
    chunks = chunk_pages(pages, namespace=namespace, doc_id=doc.doc_id, source_uri=doc.source_uri,
                         content_sha256=doc.content_sha256, model_version=version,
                         target_chars=settings.chunk_chars, max_chars=settings.chunk_max_chars)
    upsert_encoded(chunks, namespace, doc.doc_id, settings, store)
    report = DocumentReport(
        doc=doc.doc_id, status="indexed", pages=len(pages), ocr_pages=sum(p.ocr for p in pages),
        tables=sum(p.tables for p in pages), figures=sum(c.kind == "figure" for c in chunks),
        chunks=len(chunks), seconds=round(time.perf_counter() - start, 2),
    )
    registry.record(namespace, doc.source_uri, doc.content_sha256, version, report, doc.etag)
    return report


def upsert_encoded(chunks: list[Chunk], namespace: str, doc_id: str, settings: Settings, store: VectorStore) -> None:
    """Redact, embed, upsert, then drop the document's rows that the new version no longer has."""
    if settings.redact_pii:
        for chunk in chunks:
            chunk.text, chunk.context = redact_text(chunk.text), redact_text(chunk.context)
    text_vecs = text_encoder(settings).encode([c.search_text for c in chunks])
    image_vecs = _image_vectors(chunks, settings)
    old_ids = set(store.chunk_ids_of(namespace, doc_id))
    store.upsert_chunks(chunks, text_vecs, image_vecs, settings.vision_weight)
    stale = old_ids - {c.id for c in chunks}
    if stale:
        store.delete_ids(stale)


def _image_vectors(chunks: list[Chunk], settings: Settings) -> list[list[float] | None]:
    encoder = image_encoder(settings)
    if encoder is None:
        return [None] * len(chunks)
    unique: dict[int, Any] = {}
    for chunk in chunks:
        if chunk.image is not None:
            unique.setdefault(id(chunk.image), chunk.image)
    images = [blur_faces(im) if settings.blur_faces else im for im in unique.values()]
    vectors = dict(zip(unique, encoder.encode_images(images), strict=True)) if images else {}
    return [vectors.get(id(c.image)) if c.image is not None else None for c in chunks]


def retire_missing(doc_ids: list[str], namespace: str, settings: Settings) -> list[DocumentReport]:
    """Delete the vectors of documents that left the source and mark them deleted in the registry."""
    store, registry = VectorStore(settings), Registry(settings.registry_url)
    for doc_id in doc_ids:
        store.delete_document(namespace, doc_id)
    registry.mark_deleted(namespace, doc_ids)
    return [DocumentReport(doc=d, status="deleted", reason="removed from the source") for d in doc_ids]


def finish_ingest(settings: Settings) -> None:
    """Seal new segments so queries hit the index instead of brute-forcing growing data."""
    store = VectorStore(settings)
    store.ensure_collection()
    store.flush()


def ingest(locations: str | list[str], namespace: str, settings: Settings, batch_size: int = 8,
           on_document: Callable[[DocumentReport], None] | None = None,
           on_plan: Callable[[Plan], None] | None = None) -> list[DocumentReport]:
    """The whole run in one process (CLI, eval): the same stages the DAG maps over tasks."""
    locations = [locations] if isinstance(locations, str) else locations
    documents = [d for location in locations for d in open_source(location).list_documents()]
    plan = plan_ingest(documents, namespace, settings)
    if on_plan:
        on_plan(plan)
    reports = list(plan.skipped)
    for batch in batches(plan.to_index, batch_size):
        reports += index_batch(batch, namespace, settings, on_document)
    reports += retire_missing(plan.gone, namespace, settings) if plan.gone else []
    finish_ingest(settings)
    return reports
