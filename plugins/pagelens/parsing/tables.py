"""Ruled tables by pdfplumber's own table finder, fed PDFium's path edges and glyphs instead of a pdfplumber page.

pdfplumber would interpret the page's content stream in Python first (~0.1-0.3 s a page); its table
algorithm itself (edges -> intersections -> cells -> tables, then cell text) only needs geometry.
"""

from __future__ import annotations

from typing import Any

from pagelens.records import BBox

Table = tuple[BBox, list[list[str | None]]]  # bbox (top-left coordinates), rows of cells


class PlumberGeometry:
    """The part of a pdfplumber page that `TableFinder` ("lines" strategy) and `Table.extract` read."""

    def __init__(self, edges: list[dict[str, Any]], chars: list[dict[str, Any]], width: float, height: float) -> None:
        self.edges, self.chars, self.bbox = edges, chars, (0.0, 0.0, width, height)


OFF_PAGE_POINTS = 5.0  # a table's rules may bleed this far past the page edge; one reaching further is no table


def find_tables(page: PlumberGeometry) -> list[Table]:
    """pdfplumber's `find_tables()` + `extract()` with its default settings, on PDFium's geometry."""
    if len(page.edges) < 4:  # a table has at least two cells: no fewer than four strokes
        return []
    from pdfplumber.table import Table as PlumberTable
    from pdfplumber.table import TableFinder

    found: list[Table] = []
    width, height = page.bbox[2:]
    for table in TableFinder(page).tables:  # type: ignore[arg-type]
        x0, top, x1, bottom = table.bbox
        if min(x0, top, width - x1, height - bottom) < -OFF_PAGE_POINTS:
            continue  # rulings that run off the page frame a web page or a clipped drawing: layout reads its text
        inside = without_overprints([c for c in page.chars
                                     if x0 <= (c["x0"] + c["x1"]) / 2 < x1 and top <= (c["top"] + c["bottom"]) / 2 < bottom])
        # extract() tests every char of the page against every cell: hand it only the table's own
        local = PlumberTable(PlumberGeometry(page.edges, inside, width, height), table.cells)  # type: ignore[arg-type]
        found.append(((float(x0), float(top), float(x1), float(bottom)), local.extract()))
    return found


OVERPRINT_TOLERANCE = 1.0  # points: a glyph drawn again this close to itself is the same glyph,
OVERPRINT_SHARE = 0.1  # and within this share of its height (copies seen here sit within 1.1%; 0.45 pt text exists)


def without_overprints(chars: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The glyphs with every repeat of the same text at the same place dropped.

    Some producers draw text twice (faux bold, a layer printed over itself). A cell orders its glyphs by
    position, so both copies interleave: "WWeennssmmaann" (what pdfplumber's opt-in `Page.dedupe_chars`
    removes). The one exception is a repeat that directly follows its twin in the content stream: PDFium
    gives a ligature ("ff") as two glyphs with one box, and both letters are real. Only cell text is deduped:
    in running text the first copy is sometimes a stray layer that layout places elsewhere.
    """
    kept: list[dict[str, Any]] = []
    last_at: dict[tuple[str, int, int], int] = {}  # (text, x bin, y bin) -> stream index of the kept glyph
    for i, c in enumerate(chars):
        x, y = int(c["x0"] // OVERPRINT_TOLERANCE), int(c["top"] // OVERPRINT_TOLERANCE)
        twins = [last_at[k] for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (k := (c["text"], x + dx, y + dy)) in last_at]
        if any(j != i - 1 and _same_place(chars[j], c) for j in twins):
            continue
        last_at[(c["text"], x, y)] = i
        kept.append(c)
    return kept


def _same_place(a: dict[str, Any], b: dict[str, Any]) -> bool:
    tolerance = min(OVERPRINT_TOLERANCE, OVERPRINT_SHARE * max(a["bottom"] - a["top"], 0.0))
    return abs(a["x0"] - b["x0"]) <= tolerance and abs(a["top"] - b["top"]) <= tolerance
