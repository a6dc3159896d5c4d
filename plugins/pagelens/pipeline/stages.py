"""The ingestion stages: list sources, plan against the registry, parse and encode batches, retire removed documents.

A batch goes through two stages with a durable handoff between them (`pipeline.handoff`): `parse_batch` (CPU:
fetch, convert, parse, OCR, chunk, redact) keeps each document's chunks as an artifact in the content store, and
`encode_batch` (a GPU pod or the worker: embed, upsert, stale deletes, registry) reads them back. Both DAGs run
exactly these two functions per batch; the CLI and the eval run both in one process (`index_batch`).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pagelens.chunk import chunk_pages, dense_windows
from pagelens.contentstore import content_store
from pagelens.embed import image_encoder, model_version, text_encoder
from pagelens.errors import DocumentError
from pagelens.jobmetrics import push_ingest_run
from pagelens.names import printable
from pagelens.parsing.pool import ParsePool
from pagelens.parsing.renditions import Renditions, keep_rendition, make_renditions
from pagelens.pipeline import handoff
from pagelens.pipeline.batches import ParsedBatch
from pagelens.pipeline.handoff import Parsed
from pagelens.pipeline.permissions import PERMISSIONS_CHANGED, apply_permissions, permissions_changed
from pagelens.pipeline.retention import expired_documents, expiry_reason, listed_expired, prune, retention_of, timestamp_of
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
    expired: list[DocumentReport] = field(default_factory=list)  # past the namespace's retention: to prune
    seen: dict[str, float | None] = field(default_factory=dict)  # listed now -> new source mtime (None: as recorded)

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
    costs a listing and one registry query; content hashes are checked only for documents fetched. With a
    retention (`pipeline/retention.py`) the plan also names what expires; it notes what was seen either way.
    """
    version, retention, now = model_version(settings), retention_of(namespace, settings), time.time()
    rows = {r.doc_id: r for r in Registry(settings.registry_url).documents(namespace)}
    plan, claimed = Plan(), {}  # doc id -> the location that listed it first
    for listing in listings:
        for doc in listing.documents:
            row = rows.get(doc.doc_id)
            first = claimed.setdefault(doc.doc_id, listing.location)
            if first != listing.location:  # two sources of one namespace name a file alike: keep the first
                plan.skipped.append(DocumentReport(doc=doc.doc_id, status="skipped", reason=(
                    f"duplicate: {first} already lists this name; rename one or use separate namespaces")))
                continue
            plan.seen[doc.doc_id] = _new_modified(doc, row)
            if listed_expired(doc, retention, now):  # an indexed one is pruned below; a new one never indexed
                if row is None or row.status == "deleted":
                    plan.skipped.append(DocumentReport(doc=doc.doc_id, status="skipped",
                                                       reason=expiry_reason(retention, doc.modified)))
            elif row is not None and row.unchanged(doc.etag, version) and not permissions_changed(row, doc, version):
                plan.skipped.append(DocumentReport(doc=doc.doc_id, status="skipped", reason="unchanged"))
            else:
                plan.to_index.append(doc)
        listed = {d.doc_id for d in listing.documents}
        live = {doc_id for doc_id, row in rows.items() if row.status != "deleted"}
        if listing.complete:
            plan.gone += sorted(d for d in live - listed if rows[d].location == listing.location)
        plan.gone += sorted(d for d in _moved_or_deleted(listing, rows) - listed if d not in plan.gone)
        if not listing.complete:  # a delta lists changes only: the location's other live documents are still there
            plan.seen.update({d: None for d, row in rows.items() if d not in plan.seen and row.status != "deleted"
                              and row.location == listing.location and d not in plan.gone})
        if listing.cursor:
            plan.cursors[listing.location] = listing.cursor
    gone = set(plan.gone)
    for doc_id in gone:
        plan.seen.pop(doc_id, None)
    plan.expired = [r for r in expired_documents(rows.values(), retention, now, plan.seen) if r.doc not in gone]
    return plan


def _new_modified(doc: SourceDocument, row: DocumentRecord | None) -> float | None:
    """The listed modification time when the registry does not hold it yet (None: nothing new to write)."""
    if not doc.modified or (row is not None and abs(timestamp_of(row.source_modified_at) - doc.modified) < 0.001):
        return None
    return doc.modified


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


Outcome = Parsed | DocumentReport  # a document ready to encode, or the final word on it (skipped, quarantined...)


def index_batch(batch: Iterable[dict[str, str] | SourceDocument], namespace: str, settings: Settings,
                on_document: Callable[[DocumentReport], None] | None = None,
                generation: str | None = None) -> list[DocumentReport]:
    """Both stages of one batch in one process (the CLI, the eval): documents are written as they come out of
    the parse workers, which run ahead. A bad document is quarantined, the rest go on.

    `generation` writes into that collection generation instead of the live index (a rebuild); the registry
    is then left alone, since it describes the live index: the rebuild records the reports once it swaps.
    """
    writer, reports = Writer(namespace, settings, generation), []
    docs = [item if isinstance(item, SourceDocument) else SourceDocument(**item) for item in batch]
    settings.ensure_dirs()
    with (span("index_batch", namespace=namespace, documents=len(docs), generation=generation),
          tempfile.TemporaryDirectory(prefix="fetch-", dir=settings.data_dir) as workdir):
        for outcome in parse_documents(docs, settings, Path(workdir), writer.registry if generation is None else None,
                                       namespace, keep_artifacts=False):
            reports.append(writer.write(outcome))
            if on_document:
                on_document(reports[-1])
    return reports


def parse_batch(batch: Iterable[dict[str, str] | SourceDocument], namespace: str, settings: Settings,
                generation: str | None = None) -> ParsedBatch:
    """The parse stage of one batch (CPU): fetch, convert, parse, OCR, chunk and redact each document and keep
    the result as an artifact for the encode stage. Touches neither Milvus nor the registry's rows."""
    docs = [item if isinstance(item, SourceDocument) else SourceDocument(**item) for item in batch]
    registry = Registry(settings.registry_url) if generation is None else None
    parsed = ParsedBatch(namespace, generation, model_version(settings))
    settings.ensure_dirs()
    with (span("parse_batch", namespace=namespace, documents=len(docs), generation=generation),
          tempfile.TemporaryDirectory(prefix="fetch-", dir=settings.data_dir) as workdir):
        for outcome in parse_documents(docs, settings, Path(workdir), registry, namespace, keep_artifacts=True):
            parsed.add(outcome)
    return parsed


def encode_batch(parsed: ParsedBatch, settings: Settings) -> list[DocumentReport]:
    """The encode stage of one batch (a GPU pod, or the worker): embed each parsed document from its artifact,
    upsert it and record every outcome. No PDF is opened here."""
    writer = Writer(parsed.namespace, settings, parsed.generation)
    with span("encode_batch", namespace=parsed.namespace, documents=len(parsed.items), generation=parsed.generation):
        return [writer.write(outcome) for outcome in parsed.outcomes(settings)]


def parse_documents(docs: list[SourceDocument], settings: Settings, workdir: Path, registry: Registry | None,
                    namespace: str, keep_artifacts: bool) -> Iterator[Outcome]:
    """Each document parsed (or reused from its artifact) or reported; parsing runs ahead in worker processes.

    `registry`: skip documents whose content the live index already holds with these models (None: a rebuild
    indexes everything). `keep_artifacts`: store new artifacts for another process's encode stage; in-process
    runs only reuse them.
    """
    fetched: list[SourceDocument] = []
    sources: dict[str, Source] = {}
    for doc in docs:
        if registry and permissions_changed(registry.get(namespace, doc.doc_id), doc, model_version(settings)):
            yield _report(doc, status="skipped", reason=PERMISSIONS_CHANGED)  # the writer applies them
            continue
        if doc.location not in sources:
            sources[doc.location] = open_source(doc.location, settings)
        outcome = _fetch(doc, sources[doc.location], settings, registry, namespace, workdir)
        if isinstance(outcome, DocumentReport):
            yield outcome
        elif (reused := handoff.load(outcome, settings)) is not None:
            yield reused  # parsed before with these settings (a model change): embed again, never parse again
        else:
            fetched.append(outcome)
    renditions = make_renditions(fetched, settings, workdir)  # Office, HTML, text -> PDF
    for doc in fetched:
        if doc.doc_id in renditions.failed:
            error, seconds = renditions.failed[doc.doc_id]
            yield _quarantine(doc, error, seconds)
    fetched = [doc for doc in fetched if doc.doc_id not in renditions.failed]
    with ParsePool([renditions.for_parse(d) for d in fetched], settings) as parses:  # parsing runs ahead
        for doc in fetched:
            outcome = parse_document(doc, settings, parses.pages, renditions)
            if keep_artifacts and isinstance(outcome, Parsed):
                handoff.save(outcome, settings)
            yield outcome


def _fetch(doc: SourceDocument, source: Source, settings: Settings, registry: Registry | None, namespace: str,
           workdir: Path) -> SourceDocument | DocumentReport:
    """The document with its content at hand, or the report of why there is nothing to index."""
    with span("fetch_document", doc=doc.doc_id, source=doc.location):
        try:
            doc = source.fetch(doc, workdir)
        except DocumentVanished:
            return _report(doc, status="deleted", reason="removed from the source during the run")
        except DocumentError as exc:  # refused before reading (a link out of the folder): nothing of it stays
            return _quarantine(doc, exc, 0.0)
    if registry and registry.is_current(namespace, doc.doc_id, doc.content_sha256, model_version(settings)):
        return _report(doc, status="skipped", reason="unchanged content")
    return doc


def _report(doc: SourceDocument, **fields: Any) -> DocumentReport:
    return DocumentReport(doc=doc.doc_id, source_uri=doc.source_uri, location=doc.location, etag=doc.etag,
                          content_sha256=doc.content_sha256, principals=list(doc.principals), **fields)


def _quarantine(doc: SourceDocument, exc: DocumentError, seconds: float) -> DocumentReport:
    log.warning("Quarantined %s: %s", printable(doc.doc_id), printable(exc.reason))
    return _report(doc, status="quarantined", reason=exc.reason, seconds=round(seconds, 2))


def parse_document(doc: SourceDocument, settings: Settings, parse: Callable[[SourceDocument], list[Page]],
                   renditions: Renditions | None = None) -> Outcome:
    """Pages -> chunks, redacted, figure images with faces blurred; the bytes kept for page images.
    `renditions`: the batch's PDF conversions; a converted document's time includes its conversion."""
    renditions = renditions or Renditions()
    start = time.perf_counter() - renditions.seconds.get(doc.doc_id, 0.0)
    try:
        pages = parse(doc)
    except DocumentError as exc:
        return _quarantine(doc, exc, time.perf_counter() - start)
    content_store(settings).put(doc.content_sha256, Path(doc.path))  # page images show these very bytes
    if doc.doc_id in renditions.pdfs:  # ... drawn from the PDF that was parsed
        keep_rendition(settings, doc.content_sha256, renditions.pdfs[doc.doc_id])
    chunks = chunk_pages(pages, namespace="", doc_id=doc.doc_id, source_uri=doc.source_uri,
                         content_sha256=doc.content_sha256, model_version="",
                         target_chars=settings.chunk_chars, max_chars=settings.chunk_max_chars)
    for chunk in chunks:
        if settings.redact_pii:
            chunk.text, chunk.context = redact_text(chunk.text), redact_text(chunk.context)
        if chunk.image is not None and settings.blur_faces:
            chunk.image = blur_faces(chunk.image)
    stats = {"pages": len(pages), "ocr_pages": sum(p.ocr for p in pages), "tables": sum(p.tables for p in pages),
             "figures": sum(c.kind == "figure" for c in chunks)}
    return Parsed(doc, chunks, stats, time.perf_counter() - start)


class Writer:
    """The write side of a batch: embeds parsed documents into the namespace's index (or a rebuild's
    generation), removes what bad or vanished documents left there, and records every outcome."""

    def __init__(self, namespace: str, settings: Settings, generation: str | None = None) -> None:
        self.namespace, self.settings, self.live = namespace, settings, generation is None
        self.store, self.registry = VectorStore(settings, namespace, generation), Registry(settings.registry_url)
        self.store.ensure_collection()
        self.version = model_version(settings)

    def write(self, outcome: Outcome) -> DocumentReport:
        if isinstance(outcome, Parsed):
            report = self._index(outcome)
        else:
            report = outcome
            if report.status in ("quarantined", "deleted"):  # a replaced file that is now bad leaves nothing stale
                self.store.delete_document(report.doc)
            if report.status == "deleted":
                self.registry.mark_deleted(self.namespace, [report.doc])
            elif report.status == "skipped" and self.live and report.reason == PERMISSIONS_CHANGED:
                apply_permissions(report, self.namespace, self.store, self.registry)
            elif report.status == "skipped" and self.live:
                self.registry.update_etag(self.namespace, report.doc, report.etag)  # next run skips it unfetched
        if self.live and report.status in ("indexed", "quarantined"):
            self.registry.record(self.namespace, report, self.version)
        return report

    def _index(self, parsed: Parsed) -> DocumentReport:
        start = time.perf_counter()
        chunks = parsed.chunks_for(self.namespace, self.version)
        for chunk in chunks:  # as the source names them now (an artifact may be older)
            chunk.principals = list(parsed.doc.principals)
        doc_id = parsed.doc.doc_id
        windows = dense_windows(chunks, self.settings.dense_window_chars, self.settings.dense_window_stride)
        with span("embed_chunk", doc=doc_id, chunks=len(chunks), windows=len(windows)):
            vectors = text_encoder(self.settings).encode([c.dense_text for c in chunks] + [w.text for w in windows])
            text_vecs, window_vecs = vectors[:len(chunks)], vectors[len(chunks):]
            image_vecs = _image_vectors(chunks, self.settings)
        with span("upsert_vector", doc=doc_id, chunks=len(chunks), collection=self.store.target):
            old_ids, old_windows = set(self.store.chunk_ids_of(doc_id)), set(self.store.window_ids_of(doc_id))
            self.store.upsert_chunks(chunks, text_vecs, image_vecs, self.settings.vision_weight)
            self.store.upsert_windows(windows, window_vecs)
            if stale := old_ids - {c.id for c in chunks}:  # written first, removed after: never a gap
                self.store.delete_ids(stale)
            if stale_windows := old_windows - {w.id for w in windows}:
                self.store.delete_windows(stale_windows)
        return parsed.report(parsed.seconds + time.perf_counter() - start)


def _image_vectors(chunks: list[Chunk], settings: Settings) -> list[list[float] | None]:
    encoder = image_encoder(settings)
    if encoder is None:
        return [None] * len(chunks)
    unique: dict[int, Any] = {}
    for chunk in chunks:
        if chunk.image is not None:
            unique.setdefault(id(chunk.image), chunk.image)
    vectors = dict(zip(unique, encoder.encode_images(list(unique.values())), strict=True)) if unique else {}
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
                  cursors: dict[str, str] | None = None, expired: list[DocumentReport] | None = None,
                  seen: dict[str, float | None] | None = None, seen_at: float | None = None) -> list[DocumentReport]:
    """Retire removed documents, prune expired ones, note when the rest was seen, seal new segments (queries
    then hit the index instead of brute force), and only then save the delta cursors: a run that failed earlier
    re-reads the same changes."""
    deleted = retire_missing(gone, namespace, settings) if gone else []
    deleted += prune(namespace, settings, expired or [])
    registry = Registry(settings.registry_url)
    if seen:
        registry.mark_seen(namespace, seen, dt.datetime.fromtimestamp(seen_at or time.time(), dt.UTC))
    store = VectorStore(settings, namespace)
    store.ensure_collection()
    store.flush()
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
    reports += finish_ingest(namespace, settings, plan.gone, plan.cursors, plan.expired, plan.seen, started)
    push_ingest_run(settings, namespace, [r.to_dict() for r in reports], time.time() - started)
    return reports
