"""PDFium reads a page's characters, images and ruling paths in native code, in pdfplumber's coordinates.

pdfplumber interprets every content stream in Python (~0.1 s a page); PDFium does the same in ~2 ms. Boxes
come out as pdfplumber would give them: PDF points from the top-left of the page as displayed (/Rotate
applied), characters with their font bounds (PDFium's loose box, as pdfminer's ascent-to-descent box).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pagelens.records import BBox

Matrix = tuple[float, float, float, float, float, float]
_SKIP = frozenset("\r\n\x00\ufffe\uffff")


@dataclass(frozen=True)
class PdfChar:
    """One glyph in pdfminer's layout space (y grows upwards, origin at the displayed page's bottom-left)."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    unmapped: bool = False  # no Unicode mapping: pdfminer would have written "(cid:N)"


@dataclass
class PageContent:
    width: float
    height: float
    chars: list[PdfChar]
    images: list[BBox]  # top-left coordinates, like every other box of a Page
    edges: list[dict[str, Any]]  # axis-aligned path segments as pdfplumber's `page.edges` (top-left coordinates)
    blank: bool  # no glyph, image or path at all: nothing for OCR to read


def page_content(page: object) -> PageContent:
    """Everything the born-digital parse needs from one pypdfium2 page, without pdfminer."""
    import pypdfium2.raw as pdfium_c

    to_layout, width, height = _layout_transform(page)
    textpage = page.get_textpage()  # type: ignore[attr-defined]
    try:
        chars = list(_chars(pdfium_c, textpage, to_layout))
    finally:
        textpage.close()
    images, edges, paths = [], [], 0
    for kind, obj, matrix in _objects(pdfium_c, page, to_layout):
        if kind == pdfium_c.FPDF_PAGEOBJ_IMAGE:
            box = _bounds(pdfium_c, obj, matrix)
            if box is not None:
                images.append(_clip((box[0], height - box[3], box[2], height - box[1]), width, height))
        else:
            paths += 1
            edges += _path_edges(pdfium_c, obj, matrix, height)
    return PageContent(width, height, chars, images, edges, blank=not chars and not images and not paths)


def _layout_transform(page: object) -> tuple[Matrix, float, float]:
    """PDF user space -> pdfminer's space of the displayed page (its begin_page matrix for each /Rotate)."""
    x0, y0, x1, y1 = page.get_mediabox()  # type: ignore[attr-defined]
    rotation = page.get_rotation() % 360  # type: ignore[attr-defined]
    matrix: Matrix = {90: (0, -1, 1, 0, -y0, x1), 180: (-1, 0, 0, -1, x1, y1),
                      270: (0, 1, -1, 0, y1, -x0)}.get(rotation, (1, 0, 0, 1, -x0, -y0))
    width, height = (y1 - y0, x1 - x0) if rotation in (90, 270) else (x1 - x0, y1 - y0)
    return matrix, abs(width), abs(height)


def _apply(m: Matrix, left: float, bottom: float, right: float, top: float) -> tuple[float, float, float, float]:
    xs, ys = [], []
    for x, y in ((left, bottom), (right, top), (left, top), (right, bottom)):
        xs.append(m[0] * x + m[2] * y + m[4])
        ys.append(m[1] * x + m[3] * y + m[5])
    return min(xs), min(ys), max(xs), max(ys)


def _multiply(a: Matrix, b: Matrix) -> Matrix:
    """a then b (PDF's row-vector convention, as pdfminer's mult_matrix)."""
    return (a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2],
            a[2] * b[1] + a[3] * b[3], a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5])


def _chars(pdfium_c: object, textpage: object, m: Matrix) -> Iterator[PdfChar]:
    c = pdfium_c
    rect = c.FS_RECTF()  # type: ignore[attr-defined]
    a, b, cc, d, e, f = m  # one of the four /Rotate matrices: axis-aligned, so two corners give the box
    is_generated, get_unicode, get_box = c.FPDFText_IsGenerated, c.FPDFText_GetUnicode, c.FPDFText_GetLooseCharBox  # type: ignore[attr-defined]
    map_error = c.FPDFText_HasUnicodeMapError  # type: ignore[attr-defined]
    count = c.FPDFText_CountChars(textpage)  # type: ignore[attr-defined]
    for i in range(count):
        if is_generated(textpage, i) == 1:
            continue  # spaces and line breaks PDFium inferred: layout analysis decides those itself
        code = get_unicode(textpage, i)
        if 0xDC00 <= code <= 0xDFFF:
            continue  # the second half of a pair, taken with the first
        if 0xD800 <= code <= 0xDBFF:  # PDFium gives characters past U+FFFF (math italics) as UTF-16 pairs
            low = get_unicode(textpage, i + 1) if i + 1 < count else 0
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00) if 0xDC00 <= low <= 0xDFFF else 0xFFFD
        text = "-" if code == 2 else chr(code) if code < 0x110000 else "\ufffd"  # PDFium writes 2 for a line-end hyphen
        if text in _SKIP or not get_box(textpage, i, rect):
            continue
        xa, ya = a * rect.left + cc * rect.bottom + e, b * rect.left + d * rect.bottom + f
        xb, yb = a * rect.right + cc * rect.top + e, b * rect.right + d * rect.top + f
        yield PdfChar(text, min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb), map_error(textpage, i) == 1)


def _objects(pdfium_c: object, page: object, m: Matrix) -> Iterator[tuple[int, object, Matrix]]:
    """(type, handle, matrix to layout space) of every image and path object, inside Form XObjects too."""
    c = pdfium_c
    fs_matrix = c.FS_MATRIX()  # type: ignore[attr-defined]
    stack: list[tuple[object, Matrix, int]] = [(page, m, 0)]
    while stack:
        parent, matrix, depth = stack.pop()
        is_form = depth > 0
        count = (c.FPDFFormObj_CountObjects if is_form else c.FPDFPage_CountObjects)(parent)  # type: ignore[attr-defined]
        for i in range(max(count, 0)):
            obj = (c.FPDFFormObj_GetObject if is_form else c.FPDFPage_GetObject)(parent, i)  # type: ignore[attr-defined]
            kind = c.FPDFPageObj_GetType(obj)  # type: ignore[attr-defined]
            if kind == c.FPDF_PAGEOBJ_FORM and depth < 15 and c.FPDFPageObj_GetMatrix(obj, fs_matrix):  # type: ignore[attr-defined]
                # A form's children live in the form's space: its matrix takes them to the page.
                inner = (fs_matrix.a, fs_matrix.b, fs_matrix.c, fs_matrix.d, fs_matrix.e, fs_matrix.f)
                stack.append((obj, _multiply(inner, matrix), depth + 1))
            elif kind in (c.FPDF_PAGEOBJ_IMAGE, c.FPDF_PAGEOBJ_PATH):  # type: ignore[attr-defined]
                yield kind, obj, matrix


def _bounds(c: Any, obj: object, matrix: Matrix) -> tuple[float, float, float, float] | None:
    left, bottom, right, top = ctypes.c_float(), ctypes.c_float(), ctypes.c_float(), ctypes.c_float()
    if not c.FPDFPageObj_GetBounds(obj, left, bottom, right, top):
        return None
    return _apply(matrix, left.value, bottom.value, right.value, top.value)


def _path_edges(c: Any, obj: object, matrix: Matrix, height: float) -> list[dict[str, Any]]:
    """The horizontal and vertical pieces of a path, between consecutive points (pdfplumber's edges)."""
    fs_matrix = c.FS_MATRIX()
    if not c.FPDFPageObj_GetMatrix(obj, fs_matrix):
        return []
    m = _multiply((fs_matrix.a, fs_matrix.b, fs_matrix.c, fs_matrix.d, fs_matrix.e, fs_matrix.f), matrix)
    x, y = ctypes.c_float(), ctypes.c_float()
    edges: list[dict[str, Any]] = []
    start = prev = None
    for i in range(max(c.FPDFPath_CountSegments(obj), 0)):
        segment = c.FPDFPath_GetPathSegment(obj, i)
        if not c.FPDFPathSegment_GetPoint(segment, x, y):
            continue
        point = (m[0] * x.value + m[2] * y.value + m[4], m[1] * x.value + m[3] * y.value + m[5])
        if c.FPDFPathSegment_GetType(segment) == c.FPDF_SEGMENT_MOVETO:
            start = prev = point
            continue
        if prev is not None:
            _edge(prev, point, height, edges)
        prev = point
        if c.FPDFPathSegment_GetClose(segment) and start is not None:
            _edge(point, start, height, edges)
            prev = start
    return edges


def _edge(a: tuple[float, float], b: tuple[float, float], height: float, out: list[dict[str, Any]]) -> None:
    x0, x1, y0, y1 = min(a[0], b[0]), max(a[0], b[0]), min(a[1], b[1]), max(a[1], b[1])
    if abs(y1 - y0) < 0.01 and x1 - x0 > 0:
        orientation = "h"
    elif abs(x1 - x0) < 0.01 and y1 - y0 > 0:
        orientation = "v"
    else:
        return
    out.append({"x0": x0, "x1": x1, "top": height - y1, "bottom": height - y0, "width": x1 - x0,
                "height": y1 - y0, "orientation": orientation, "object_type": "line"})


def _clip(box: BBox, width: float, height: float) -> BBox:
    return (max(0.0, box[0]), max(0.0, box[1]), min(width, box[2]), min(height, box[3]))
