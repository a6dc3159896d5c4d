"""Plain data passed between stages: pages, chunks, hits, citations, per-document reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BBox = tuple[float, float, float, float]  # x0, top, x1, bottom in PDF points of the (rotated) page


@dataclass
class Block:
    """A piece of a page in reading order: a text block, a table, a figure's OCR text or OCR'd lines."""

    text: str
    bbox: BBox
    kind: str  # text | table | figure | ocr


@dataclass
class Page:
    number: int  # 1-based physical page index
    width: float
    height: float
    blocks: list[Block] = field(default_factory=list)
    words: list[tuple[str, BBox]] = field(default_factory=list)
    ocr: bool = False
    tables: int = 0
    image: Any = None  # PIL image of the page (kept only while the document is processed)
    figures: list[tuple[BBox, Any]] = field(default_factory=list)  # figure crops (bbox, PIL image)


@dataclass
class Chunk:
    id: str
    namespace: str
    doc_id: str
    source_uri: str
    content_sha256: str
    page: int
    chunk_no: int
    bbox: BBox
    kind: str
    text: str
    model_version: str
    context: str = ""  # the document's title: searched and embedded with the text, not shown
    image: Any = None  # PIL image the CLIP branch embeds (page raster or figure crop)
    principals: list[str] = field(default_factory=lambda: ["*"])  # who may read it; "*": every reader of the namespace

    @property
    def search_text(self) -> str:
        """What BM25 and MiniLM see: the chunk situated in its document."""
        return f"{self.context}\n{self.text}" if self.context else self.text

    @property
    def dense_text(self) -> str:
        """What MiniLM embeds: the search text cleaned of OCR and layout noise."""
        from pagelens.parsing.textquality import clean_for_embedding

        return clean_for_embedding(self.search_text)


@dataclass
class DenseWindow:
    """One of MiniLM's units: a stretch of a page's text, shown in results as the chunk that holds its middle."""

    id: str
    chunk: Chunk
    text: str  # what MiniLM embeds


@dataclass
class Hit:
    id: str
    doc_id: str
    page: int
    kind: str
    text: str
    bbox: list[float]
    score: float


@dataclass
class Citation:
    doc: str
    page: int
    bbox: list[float]
    label: str
    snippet: str
    score: float


@dataclass
class Answer:
    text: str
    citations: list[Citation]
    mode: str  # extractive | generated | extractive-fallback
    timings: dict[str, float] = field(default_factory=dict)
    citations_removed: int = 0  # citations the model made that named no retrieved excerpt
    fallback_reason: str = ""  # why a configured LLM endpoint was not used (mode extractive-fallback)
    abstained: bool = False  # the evidence does not answer the question: the text says so and cites nothing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DocumentReport:
    doc: str
    status: str  # indexed | skipped | quarantined | deleted
    reason: str = ""
    pages: int = 0
    ocr_pages: int = 0
    tables: int = 0
    figures: int = 0
    chunks: int = 0
    seconds: float = 0.0
    source_uri: str = ""  # what the registry records with the outcome
    location: str = ""
    etag: str = ""
    content_sha256: str = ""
    principals: list[str] = field(default_factory=lambda: ["*"])  # who may read it (recorded with the outcome)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
