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


def find_tables(page: PlumberGeometry) -> list[Table]:
    """pdfplumber's `find_tables()` + `extract()` with its default settings, on PDFium's geometry."""
    if len(page.edges) < 4:  # a table has at least two cells: no fewer than four strokes
        return []
    from pdfplumber.table import Table as PlumberTable
    from pdfplumber.table import TableFinder

    found: list[Table] = []
    for table in TableFinder(page).tables:  # type: ignore[arg-type]
        x0, top, x1, bottom = table.bbox
        inside = [c for c in page.chars if x0 <= (c["x0"] + c["x1"]) / 2 < x1 and top <= (c["top"] + c["bottom"]) / 2 < bottom]
        # extract() tests every char of the page against every cell: hand it only the table's own
        local = PlumberTable(PlumberGeometry(page.edges, inside, *page.bbox[2:]), table.cells)  # type: ignore[arg-type]
        found.append(((float(x0), float(top), float(x1), float(bottom)), local.extract()))
    return found
