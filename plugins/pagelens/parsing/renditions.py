"""PDF renditions of Office, HTML and text documents: made before parsing, kept in the content store beside the
original bytes, so page images show the very pages that were parsed and cited.

The registry and the content store still key everything by the original file's hash; the rendition is found
through a small sidecar of the original (`RENDITION`) naming the PDF's own hash.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from pagelens.contentstore import content_store
from pagelens.errors import ContentGone, DocumentError
from pagelens.names import printable
from pagelens.parsing.artifacts import cached_pages
from pagelens.parsing.convert import ConverterLimits, convert_to_pdf, is_convertible
from pagelens.settings import Settings
from pagelens.sources import SourceDocument
from pagelens.sources.local import file_sha256
from pagelens.tracing import span

RENDITION = "pdf-rendition-v1"  # sidecar: {"sha256": <the PDF's hash>}; bump when the export options change
log = logging.getLogger(__name__)


def converter_limits(settings: Settings) -> ConverterLimits:
    return ConverterLimits(soffice=settings.soffice, timeout_s=settings.convert_timeout_s,
                           memory_mb=settings.convert_memory_mb)


@dataclass
class Renditions:
    """A batch's conversions: the PDF each converted document is parsed from, and the ones that failed."""

    pdfs: dict[str, Path] = field(default_factory=dict)  # doc id -> PDF
    failed: dict[str, tuple[DocumentError, float]] = field(default_factory=dict)  # doc id -> reason, seconds
    seconds: dict[str, float] = field(default_factory=dict)  # doc id -> conversion time

    def for_parse(self, doc: SourceDocument) -> SourceDocument:
        """The document as the parser should open it: its PDF rendition if it has one."""
        pdf = self.pdfs.get(doc.doc_id)
        return replace(doc, path=str(pdf)) if pdf else doc


def make_renditions(docs: list[SourceDocument], settings: Settings, workdir: Path) -> Renditions:
    """Convert the batch's Office, HTML and text documents (one LibreOffice per family, each file timed alone).

    A document whose pages are cached and whose rendition is kept (a reindex) is not converted again.
    """
    todo = {d.doc_id: Path(d.path) for d in docs if is_convertible(d.doc_id) and not _reusable(d, settings)}
    renditions = Renditions()
    if not todo:
        return renditions
    start = time.perf_counter()
    with span("convert_documents", documents=len(todo)):
        results = convert_to_pdf(todo, workdir, converter_limits(settings))
    for doc_id, result in results.items():
        renditions.seconds[doc_id] = result.seconds
        if result.pdf is not None:
            renditions.pdfs[doc_id] = result.pdf
        else:
            assert result.error is not None
            renditions.failed[doc_id] = (result.error, result.seconds)
    log.info("Converted %d of %d documents to PDF in %.1f s", len(renditions.pdfs), len(todo),
             time.perf_counter() - start)
    for doc_id, (error, _) in renditions.failed.items():
        log.warning("Conversion of %s failed: %s", printable(doc_id), printable(error.reason))
    return renditions


def _reusable(doc: SourceDocument, settings: Settings) -> bool:
    return cached_pages(doc.content_sha256, settings) is not None and rendition_of(settings, doc.content_sha256) is not None


def keep_rendition(settings: Settings, content_sha256: str, pdf: Path) -> None:
    """Keep the PDF under its own hash and point the original's sidecar at it."""
    store, pdf_sha = content_store(settings), file_sha256(pdf)
    store.put(pdf_sha, pdf)
    store.put_json(content_sha256, RENDITION, {"sha256": pdf_sha})


def rendition_of(settings: Settings, content_sha256: str) -> Path | None:
    """A local file with the kept PDF rendition of the original with that hash, or None."""
    store = content_store(settings)
    pointer = store.get_json(content_sha256, RENDITION)
    return store.get(pointer["sha256"]) if isinstance(pointer, dict) and "sha256" in pointer else None


def renderable(settings: Settings, doc_id: str, content_sha256: str, path: Path) -> tuple[Path, str]:
    """The file page images of a document are drawn from, and its format suffix: the PDF rendition for a
    converted document, else the indexed bytes themselves (`path`)."""
    suffix = Path(doc_id).suffix.lower()
    if not is_convertible(doc_id):
        return path, suffix
    pdf = rendition_of(settings, content_sha256)
    if pdf is None:
        raise ContentGone(f"the PDF rendition of '{printable(doc_id)}' is no longer kept; re-run `pagelens ingest` "
                          "on its source to convert it (and show its pages) again")
    return pdf, ".pdf"
