"""Characters -> text lines -> blocks in reading order, and words with boxes: pdfminer's layout analysis
with its LAParams, run on plain tuples instead of pdfminer's objects.

Chars become lines exactly as pdfminer's `group_objects` does (same overlap and margin tests, a space where
the gap exceeds `word_margin`); lines become blocks and blocks are ordered by pdfminer's own
`group_textlines` / `group_textboxes` (the `boxes_flow` ordering), fed light box objects. That keeps the
blocks, and hence the chunks, what the pdfplumber parse produced, at a fraction of its cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pagelens.parsing.pdfium import PdfChar
from pagelens.records import BBox

ROW_TOLERANCE = 3.0  # pt: pdfplumber's y_tolerance (words whose tops differ less share a row)


@dataclass
class TextLine:
    chars: list[PdfChar] = field(default_factory=list)
    text: str = ""
    x0: float = float("inf")
    y0: float = float("inf")
    x1: float = float("-inf")
    y1: float = float("-inf")

    def add(self, char: PdfChar, word_margin: float) -> None:
        if self.chars and self.chars[-1].x1 < char.x0 - word_margin * max(char.x1 - char.x0, char.y1 - char.y0):
            self.text += " "
        self.chars.append(char)
        self.text += "(cid:0)" if char.unmapped else char.text
        self.x0, self.y0 = min(self.x0, char.x0), min(self.y0, char.y0)
        self.x1, self.y1 = max(self.x1, char.x1), max(self.y1, char.y1)


def text_lines(chars: Sequence[PdfChar], laparams: dict[str, float]) -> list[TextLine]:
    """pdfminer's `group_objects` for horizontal text: consecutive chars that overlap vertically and sit
    within `char_margin` widths of each other share a line. Lines of whitespace only are dropped."""
    overlap, margin, word_margin = laparams["line_overlap"], laparams["char_margin"], laparams["word_margin"]
    lines: list[TextLine] = []
    line: TextLine | None = None
    prev: PdfChar | None = None
    for char in chars:
        if prev is not None:
            is_voverlap = char.y0 <= prev.y1 and prev.y0 <= char.y1
            voverlap = min(abs(prev.y0 - char.y1), abs(prev.y1 - char.y0)) if is_voverlap else 0.0
            hoverlap = char.x0 <= prev.x1 and prev.x0 <= char.x1
            hdistance = 0.0 if hoverlap else min(abs(prev.x0 - char.x1), abs(prev.x1 - char.x0))
            halign = (is_voverlap and min(prev.y1 - prev.y0, char.y1 - char.y0) * overlap < voverlap
                      and hdistance < max(prev.x1 - prev.x0, char.x1 - char.x0) * margin)
            if halign and line is not None:
                line.add(char, word_margin)
            elif line is not None:
                lines.append(line)
                line = None
            elif halign:
                line = TextLine()
                line.add(prev, word_margin)
                line.add(char, word_margin)
            else:
                lines.append(_single(prev, word_margin))
        prev = char
    if line is None and prev is not None:
        line = _single(prev, word_margin)
    if line is not None:
        lines.append(line)
    return [ln for ln in lines if ln.text.strip() and ln.x1 > ln.x0 and ln.y1 > ln.y0]


def _single(char: PdfChar, word_margin: float) -> TextLine:
    line = TextLine()
    line.add(char, word_margin)
    return line


def text_blocks(lines: list[TextLine], width: float, height: float, laparams: dict[str, float]) -> list[tuple[str, BBox]]:
    """Lines grouped into boxes and the boxes put in reading order by pdfminer's own algorithms.

    Returns (text, bbox) with bbox in top-left coordinates; a block's text is its lines top to bottom.
    """
    from pdfminer.layout import IndexAssigner, LAParams, LTLayoutContainer, LTTextLineHorizontal

    params = LAParams(**laparams)
    container = LTLayoutContainer((0, 0, width, height))
    proxies = []
    for line in lines:
        proxy = LTTextLineHorizontal(params.word_margin)
        proxy.set_bbox((line.x0, line.y0, line.x1, line.y1))
        proxy.source = line  # type: ignore[attr-defined]
        proxies.append(proxy)
    boxes = list(container.group_textlines(params, proxies))
    if len(boxes) > 1:
        assigner = IndexAssigner()
        for group in container.group_textboxes(params, boxes):
            group.analyze(params)
            assigner.run(group)
        boxes.sort(key=lambda box: box.index)
    blocks = []
    for box in boxes:
        members = sorted(box, key=lambda proxy: -proxy.y1)  # LTTextBoxHorizontal.analyze's order
        text = "\n".join(proxy.source.text for proxy in members)
        blocks.append((text, (box.x0, height - box.y1, box.x1, height - box.y0)))
    return blocks


def plumber_chars(chars: Sequence[PdfChar], height: float) -> list[dict[str, Any]]:
    """Glyphs as pdfplumber's char dicts (top-left coordinates), for its word and table algorithms."""
    out = []
    for c in chars:
        if c.unmapped:
            continue
        top, bottom = height - c.y1, height - c.y0
        out.append({"text": c.text, "x0": c.x0, "x1": c.x1, "top": top, "bottom": bottom, "doctop": top,
                    "width": c.x1 - c.x0, "height": c.y1 - c.y0, "size": c.y1 - c.y0, "upright": True,
                    "matrix": (1, 0, 0, 1, c.x0, c.y0)})
    return out


def plumber_words(chars: list[dict[str, Any]]) -> list[tuple[str, BBox]]:
    """pdfplumber's `extract_words` (its defaults: 3 pt tolerances) on PDFium's glyphs."""
    from pdfplumber.utils.text import WordExtractor

    return [(w["text"], (float(w["x0"]), float(w["top"]), float(w["x1"]), float(w["bottom"])))
            for w in WordExtractor().extract_words(chars)]


def row_lines(page_words: list[tuple[str, BBox]]) -> list[tuple[str, BBox]]:
    """Whole rows of words (one height, left to right), as pdfplumber's `extract_text_lines`: the reading
    unit of a borderless table, where pdfminer's blocks would split each label from its numbers."""
    rows: list[list[tuple[str, BBox]]] = []
    row_top = float("-inf")
    for word in sorted(page_words, key=lambda w: w[1][1]):
        if not rows or word[1][1] - row_top > ROW_TOLERANCE:
            rows.append([])
            row_top = word[1][1]
        rows[-1].append(word)
    lines = []
    for row in rows:
        row.sort(key=lambda w: w[1][0])
        boxes = [b for _, b in row]
        lines.append((" ".join(t for t, _ in row), (min(b[0] for b in boxes), min(b[1] for b in boxes),
                                                    max(b[2] for b in boxes), max(b[3] for b in boxes))))
    return lines
