"""Pages -> chunks: windows of ~1-2k characters that follow blocks and lines and never cross a page."""

from __future__ import annotations

import hashlib
import re

from pagelens.parsing.ocr import union
from pagelens.parsing.textquality import clean_for_embedding
from pagelens.records import BBox, Block, Chunk, DenseWindow, Page

CHUNK_VERSION = 4  # bump when chunk text or boundaries change: documents are re-indexed
_LINE_BREAK_HYPHEN = re.compile(r"(?<=[a-z])-\n(?=[a-z])")


def dehyphenate(text: str) -> str:
    """Rejoin words hyphenated across a line break ("Vir-\ngili" -> "Virgili") so search sees them whole."""
    return _LINE_BREAK_HYPHEN.sub("", text)


def chunk_id(namespace: str, doc_id: str, page: int, chunk_no: int, model_version: str) -> str:
    """Deterministic primary key: a rerun overwrites the same rows instead of adding new ones."""
    return _row_id(namespace, doc_id, page, chunk_no, model_version)


def _row_id(*parts: object) -> str:
    key = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def document_title(pages: list[Page], max_chars: int = 150) -> str:
    """The first multi-word block of the document (its title or running head) as context for every chunk.

    Questions name the document's subject ("in the 737 MAX proposal") far more often than any chunk
    but the first repeats it.
    """
    for page in pages[:2]:
        for block in page.blocks:
            words = block.text.split()
            if len(words) >= 2 and sum(w.isalpha() for w in words) >= 2:
                return " ".join(words)[:max_chars]
    return ""


def dense_windows(chunks: list[Chunk], size: int, stride: int) -> list[DenseWindow]:
    """MiniLM's units: windows of `size` characters every `stride` over each page's text (its chunks in order).

    A chunk's one vector averages 1.2-2k characters, more than MiniLM's 256 tokens; a window that fits them, over
    the whole page and across chunk boundaries (a heading and the paragraph under it, a table and its caption),
    keeps a passage's meaning where the average blurs it. A page scores by its best window (the off-the-shelf
    baseline's dense unit). Each window is shown as the chunk holding its middle, so a dense hit is a chunk.
    """
    pages: dict[tuple[str, int], list[Chunk]] = {}
    for chunk in chunks:
        pages.setdefault((chunk.doc_id, chunk.page), []).append(chunk)
    windows: list[DenseWindow] = []
    for page_chunks in pages.values():
        parts, ends, position = [], [], 0  # each chunk's text on one line, and where it ends in the page text
        for chunk in page_chunks:
            text = " ".join(chunk.text.split())
            if text:
                parts.append(text)
                position += len(text)
                ends.append((position, chunk))
                position += 1
        page_text = " ".join(parts)
        # the last window starts within `stride` of the end: a shorter tail would repeat what the one before read
        for no, start in enumerate(range(0, max(len(page_text) - (size - stride), 1), stride) if page_text else ()):
            middle = start + min(size, len(page_text) - start) // 2
            owner = next(chunk for end, chunk in ends if middle <= end)
            windows.append(DenseWindow(id=_row_id(owner.namespace, owner.doc_id, owner.page, f"window{no}",
                                                  owner.model_version),
                                       chunk=owner, text=clean_for_embedding(page_text[start:start + size])))
    return windows


def chunk_pages(pages: list[Page], *, namespace: str, doc_id: str, source_uri: str, content_sha256: str,
                model_version: str, target_chars: int, max_chars: int) -> list[Chunk]:
    chunks: list[Chunk] = []
    title = document_title(pages)
    for page in pages:
        for no, (text, bbox, kind, image) in enumerate(_page_windows(page, target_chars, max_chars)):
            chunks.append(Chunk(
                id=chunk_id(namespace, doc_id, page.number, no, model_version), namespace=namespace,
                doc_id=doc_id, source_uri=source_uri, content_sha256=content_sha256, page=page.number,
                chunk_no=no, bbox=bbox, kind=kind, text=text, model_version=model_version, context=title, image=image,
            ))
    return chunks


def _page_windows(page: Page, target: int, limit: int) -> list[tuple[str, BBox, str, object]]:
    """Text and OCR blocks are packed together up to `target`; tables and figures stay whole-ish units.

    Each window carries the image the CLIP branch embeds: its figure crop, else the page raster.
    """
    figure_images = {bbox: image for bbox, image in page.figures}
    windows: list[tuple[str, BBox, str, object]] = []
    buffer: list[Block] = []

    def flush() -> None:
        if buffer:
            text = "\n".join(b.text for b in buffer)
            windows.append((text, union([b.bbox for b in buffer]), buffer[0].kind, page.image))
            buffer.clear()

    for block in page.blocks:
        pieces = _split(Block(dehyphenate(block.text), block.bbox, block.kind), limit)
        if block.kind in ("table", "figure"):
            flush()
            image = figure_images.get(block.bbox, page.image)
            windows += [(p.text, p.bbox, block.kind, image) for p in pieces]
            continue
        for piece in pieces:
            if buffer and sum(len(b.text) + 1 for b in buffer) + len(piece.text) > target:
                flush()
            buffer.append(piece)
    flush()
    if not windows and page.image is not None:  # a picture with no readable text: still findable by CLIP
        windows.append(("", (0.0, 0.0, page.width, page.height), "figure", page.image))
    return windows


def _split(block: Block, limit: int) -> list[Block]:
    """Split an oversized block at line boundaries (a long table keeps whole rows)."""
    if len(block.text) <= limit:
        return [block]
    pieces: list[Block] = []
    all_lines = block.text.split("\n")
    header = all_lines[0][: limit // 4] if block.kind == "table" else ""  # each piece of a table keeps its header
    lines: list[str] = []
    for line in all_lines:
        while len(line) > limit:  # one enormous line: cut it hard
            pieces.append(Block(line[:limit], block.bbox, block.kind))
            line = line[limit:]
        if lines and sum(len(x) + 1 for x in lines) + len(line) > limit:
            pieces.append(Block("\n".join(lines), block.bbox, block.kind))
            lines = [header] if header else []
        lines.append(line)
    if lines:
        pieces.append(Block("\n".join(lines), block.bbox, block.kind))
    return pieces
