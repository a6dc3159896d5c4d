"""The ingestion stages: list sources, plan against the registry, index batches, retire removed documents.

`index_batch` is the one function that does the work in every mode: the CLI, the local Airflow task and
the GPU encoder pod all call it.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pagelens.chunk import chunk_pages
from pagelens.contentstore import content_store
from pagelens.embed import image_encoder, model_version, text_encoder
from pagelens.errors import DocumentError
from pagelens.jobmetrics import push_ingest_run
from pagelens.names import printable
from pagelens.parsing.pool import ParsePool
from pagelens.parsing.renditions import Renditions, keep_rendition, make_renditions
from pagelens.pipeline.permissions import PERMISSIONS_CHANGED, apply_permissions, permissions_changed
from pagelens.records import Chunk, DocumentReport, Page
from pagelens.redact import blur_faces, redact_text
from pagelens.registry import DocumentRecord, Registry
from pagelens.settings import Settings
from pagelens.sources import DocumentVanished, Listing, Source, SourceDocument, open_source
from pagelens.store import VectorStore
from pagelens.tracing import span

log = logging.getLogger(__name__)


@dataclass
class Plan:
    to_index: list[SourceDocument] = field(default_factory=list)
    skipped: list[DocumentReport] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # indexed before, no longer in the source
    cursors: dict[str, str] = field(default_factory=dict)  # location -> where its next listing continues

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_sources(locations: Iterable[str], namespace: str, settings: Settings) -> list[Listing]:
    """One listing per location; delta sources continue from the cursor the last landed run saved."""
    registry = Registry(settings.registry_url)
    listings = []
    for location in locations:
        source = open_source(location, settings)
        listings.append(source.list_documents(registry.cursor(namespace, source.location)))
    return listings


def plan_ingest(listings: list[Listing], namespace: str, settings: Settings) -> Plan:
    """Diff listings against the registry: changed or new documents are indexed, the rest skipped.

    Unchanged means the same source version marker (etag) with the same models, so an unchanged corpus
    costs a listing and one registry query; content hashes are checked only for documents fetched.
    """
    version = model_version(settings)
    rows = {r.doc_id: r for r in Registry(settings.registry_url).documents(namespace)}
    plan, claimed = Plan(), {}  # doc id -> the location that listed it first
    for listing in listings:
        for doc in listing.documents:
            row = rows.get(doc.doc_id)
            first = claimed.setdefault(doc.doc_id, listing.location)
            if first != listing.location:  # two sources of one namespace name a file alike: keep the first
                plan.skipped.append(DocumentReport(doc=doc.doc_id, status="skipped", reason=(
                    f"duplicate: {first} already lists this name; rename one or use separate namespaces")))
            elif row is not None and row.unchanged(doc.etag, version) and not permissions_changed(row, doc, version):
                plan.skipped.append(DocumentReport(doc=doc.doc_id, status="skipped", reason="unchanged"))
            else:
                plan.to_index.append(doc)
        listed = {d.doc_id for d in listing.documents}
        live = {doc_id for doc_id, row in rows.items() if row.status != "deleted"}
        if listing.complete:
            plan.gone += sorted(d for d in live - listed if rows[d].location == listing.location)
        plan.gone += sorted(d for d in _moved_or_deleted(listing, rows) - listed if d not in plan.gone)
        if listing.cursor:
            plan.cursors[listing.location] = listing.cursor
    return plan


def _moved_or_deleted(listing: Listing, rows: dict[str, DocumentRecord]) -> set[str]:
    """Live doc ids of the listing's location whose source item (matched by source URI) it reports deleted
    or lists under another doc id: a delta source (SharePoint) knows a deleted item only by id, and a
    renamed or moved file keeps its id but changes its path."""
    deleted, now = set(listing.deleted), {d.source_uri: d.doc_id for d in listing.documents}
    return {doc_id for doc_id, row in rows.items() if row.status != "deleted" and row.location == listing.location
            and (row.source_uri in deleted or now.get(row.source_uri, doc_id) != doc_id)}


def batches(documents: list[SourceDocument], size: int) -> list[list[dict[str, str]]]:
    """Plain-dict batches (they cross Airflow XCom and pod manifests)."""
    return [[d.to_dict() for d in documents[i:i + size]] for i in range(0, len(documents), size)]


def index_batch(batch: Iterable[dict[str, str] | SourceDocument], namespace: str, settings: Settings,
                on_document: Callable[[DocumentReport], None] | None = None,
                generation: str | None = None) -> list[DocumentReport]:
    """Fetch, parse, chunk, redact, embed and upsert each document; a bad one is quarantined, the rest go on.

    `generation` writes into that collection generation instead of the live index (a rebuild); the registry
    is then left alone, since it describes the live index: the rebuild records the reports once it swaps.
    """
    store, registry = VectorStore(settings, namespace, generation), Registry(settings.registry_url)
    store.ensure_collection()
    record = generation is None
    docs = [item if isinstance(item, SourceDocument) else SourceDocument(**item) for item in batch]
    reports: list[DocumentReport] = []

    def done(report: DocumentReport) -> None:
        if record and report.status in ("indexed", "quarantined"):
            registry.record(namespace, report, model_version(settings))
        reports.append(report)
        if on_document:
            on_document(report)

    settings.ensure_dirs()
    with (span("index_batch", namespace=namespace, documents=len(docs), generation=generation),
          tempfile.TemporaryDirectory(prefix="fetch-", dir=settings.data_dir) as workdir):
        fetched, sources = [], {}
        for doc in docs:
            if record and permissions_changed(registry.get(namespace, doc.doc_id), doc, model_version(settings)):
                report = _report(doc, status="skipped", reason=PERMISSIONS_CHANGED)
                apply_permissions(report, namespace, store, registry)
                done(report)
                continue
            if doc.location not in sources:
                sources[doc.location] = open_source(doc.location, settings)
            outcome = _fetch(doc, sources[doc.location], namespace, settings, store, registry, Path(workdir),
                             check_current=record)
            if isinstance(outcome, DocumentReport):
                done(outcome)
            else:
                fetched.append(outcome)
        renditions = make_renditions(fetched, settings, Path(workdir))  # Office, HTML, text -> PDF
        for doc in fetched:
            if doc.doc_id in renditions.failed:
                error, seconds = renditions.failed[doc.doc_id]
                done(_quarantine(doc, error, store, seconds))
        fetched = [doc for doc in fetched if doc.doc_id not in renditions.failed]
        with ParsePool([renditions.for_parse(d) for d in fetched], settings) as parses:  # parsing runs ahead
            for doc in fetched:
                done(index_document(doc, namespace, settings, store, parses.pages, renditions))
    return reports


def _fetch(doc: SourceDocument, source: Source, namespace: str, settings: Settings, store: VectorStore,
           registry: Registry, workdir: Path, check_current: bool) -> SourceDocument | DocumentReport:
    """The document with its content at hand, or the report of why there is nothing to index."""
    with span("fetch_document", doc=doc.doc_id, source=doc.location):
        try:
            doc = source.fetch(doc, workdir)
        except DocumentVanished:
            store.delete_document(doc.doc_id)
            registry.mark_deleted(namespace, [doc.doc_id])
            return DocumentReport(doc=doc.doc_id, status="deleted", reason="removed from the source during the run")
        except DocumentError as exc:  # refused before reading (a link out of the folder): nothing of it stays
            return _quarantine(doc, exc, store, 0.0)
    if check_current and registry.is_current(namespace, doc.doc_id, doc.content_sha256, model_version(settings)):
        registry.update_etag(namespace, doc.doc_id, doc.etag)  # next run skips it without fetching
        return _report(doc, status="skipped", reason="unchanged content")
    return doc


def _report(doc: SourceDocument, **fields: Any) -> DocumentReport:
    return DocumentReport(doc=doc.doc_id, source_uri=doc.source_uri, location=doc.location, etag=doc.etag,
                          content_sha256=doc.content_sha256, principals=list(doc.principals), **fields)


def _quarantine(doc: SourceDocument, exc: DocumentError, store: VectorStore, seconds: float) -> DocumentReport:
    store.delete_document(doc.doc_id)  # a replaced file that is now bad leaves nothing stale
    log.warning("Quarantined %s: %s", printable(doc.doc_id), printable(exc.reason))
    return _report(doc, status="quarantined", reason=exc.reason, seconds=round(seconds, 2))


def index_document(doc: SourceDocument, namespace: str, settings: Settings, store: VectorStore,
                   parse: Callable[[SourceDocument], list[Page]],
                   renditions: Renditions | None = None) -> DocumentReport:
    """`renditions`: the batch's PDF conversions; a converted document's time includes its conversion."""
    renditions = renditions or Renditions()
    start = time.perf_counter() - renditions.seconds.get(doc.doc_id, 0.0)
    try:
        pages = parse(doc)
    except DocumentError as exc:
        return _quarantine(doc, exc, store, time.perf_counter() - start)
    content_store(settings).put(doc.content_sha256, Path(doc.path))  # page images show these very bytes
    if doc.doc_id in renditions.pdfs:  # ... drawn from the PDF that was parsed
        keep_rendition(settings, doc.content_sha256, renditions.pdfs[doc.doc_id])
    chunks = chunk_pages(pages, namespace=namespace, doc_id=doc.doc_id, source_uri=doc.source_uri,
                         content_sha256=doc.content_sha256, model_version=model_version(settings),
                         target_chars=settings.chunk_chars, max_chars=settings.chunk_max_chars)
    for chunk in chunks:
        chunk.principals = list(doc.principals)
    upsert_encoded(chunks, doc.doc_id, settings, store)
    return _report(doc, status="indexed", pages=len(pages), ocr_pages=sum(p.ocr for p in pages),
                   tables=sum(p.tables for p in pages), figures=sum(c.kind == "figure" for c in chunks),
                   chunks=len(chunks), seconds=round(time.perf_counter() - start, 2))


def upsert_encoded(chunks: list[Chunk], doc_id: str, settings: Settings, store: VectorStore) -> None:
    """Redact, embed, upsert, then drop the document's rows that the new version no longer has."""
    if settings.redact_pii:
        for chunk in chunks:
            chunk.text, chunk.context = redact_text(chunk.text), redact_text(chunk.context)
    with span("embed_chunk", doc=doc_id, chunks=len(chunks)):
        text_vecs = text_encoder(settings).encode([c.dense_text for c in chunks])
        image_vecs = _image_vectors(chunks, settings)
    with span("upsert_vector", doc=doc_id, chunks=len(chunks), collection=store.target):
        old_ids = set(store.chunk_ids_of(doc_id))
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
    store, registry = VectorStore(settings, namespace), Registry(settings.registry_url)
    store.ensure_collection()
    for doc_id in doc_ids:
        store.delete_document(doc_id)
    registry.mark_deleted(namespace, doc_ids)
    return [DocumentReport(doc=d, status="deleted", reason="removed from the source") for d in doc_ids]


def finish_ingest(namespace: str, settings: Settings, gone: list[str] | None = None,
                  cursors: dict[str, str] | None = None) -> list[DocumentReport]:
    """Retire removed documents, seal new segments (queries then hit the index instead of brute force),
    and only then save the delta cursors: a run that failed earlier re-reads the same changes."""
    deleted = retire_missing(gone, namespace, settings) if gone else []
    store = VectorStore(settings, namespace)
    store.ensure_collection()
    store.flush()
    registry = Registry(settings.registry_url)
    for location, cursor in (cursors or {}).items():
        registry.save_cursor(namespace, location, cursor)
    return deleted


def ingest(locations: str | list[str], namespace: str, settings: Settings, batch_size: int = 8,
           on_document: Callable[[DocumentReport], None] | None = None,
           on_plan: Callable[[Plan], None] | None = None) -> list[DocumentReport]:
    """The whole run in one process (CLI, eval): the same stages the DAG maps over tasks."""
    started, locations = time.time(), [locations] if isinstance(locations, str) else locations
    plan = plan_ingest(list_sources(locations, namespace, settings), namespace, settings)
    if on_plan:
        on_plan(plan)
    reports = list(plan.skipped)
    for batch in batches(plan.to_index, batch_size):
        reports += index_batch(batch, namespace, settings, on_document)
    reports += finish_ingest(namespace, settings, plan.gone, plan.cursors)
    push_ingest_run(settings, namespace, [r.to_dict() for r in reports], time.time() - started)
    return reports
