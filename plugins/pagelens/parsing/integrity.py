"""Refuse PDFs whose page content is damaged, as pdfminer used to: PDFium reads around damage silently.

qpdf (pikepdf) tokenises each page's content stream in native code (~3 ms a page); a Flate stream that ends
before its end-of-data marker lost text (pdfminer's "Data-loss while decompressing").
"""

from __future__ import annotations

import zlib
from pathlib import Path

from pagelens.errors import CorruptDocument
from pagelens.parsing.preflight import qpdf_cannot_walk_pages

_DECODE_FAILURES = ("error decoding stream data", "getStreamData")


def check_content_streams(path: Path, password: str | None, first: int, last: int) -> None:
    """Raise CorruptDocument when a page's content stream in [first, last] cannot be decoded or tokenised."""
    import pikepdf

    try:
        pdf = pikepdf.open(path, password=password or "")
    except pikepdf.PdfError as exc:
        if qpdf_cannot_walk_pages(exc):
            return  # pre-flight checked it with PDFium; qpdf cannot reach its pages to tokenise them
        raise CorruptDocument(f"qpdf cannot read the file ({exc})"[:300]) from exc
    with pdf:
        for number in range(first, min(last, len(pdf.pages)) + 1):
            page = pdf.pages[number - 1]
            for stream in _content_streams(page.obj.get("/Contents")):
                if _truncated_flate(stream):
                    raise CorruptDocument(f"damaged content stream: data lost while decompressing page {number} "
                                          "(the text would be incomplete)")
            try:
                pikepdf.parse_content_stream(page)
            except pikepdf.PdfError as exc:
                raise CorruptDocument(f"damaged content stream on page {number} ({exc})"[:300]) from exc
        decoding = [w for w in pdf.get_warnings() if any(f in w for f in _DECODE_FAILURES)]
        if decoding:
            raise CorruptDocument(f"damaged stream data ({decoding[0]})"[:300])


def _content_streams(contents: object) -> list[object]:
    import pikepdf

    if isinstance(contents, pikepdf.Array):
        return [s for s in contents if isinstance(s, pikepdf.Stream)]
    return [contents] if isinstance(contents, pikepdf.Stream) else []


def _truncated_flate(stream: object) -> bool:
    import pikepdf

    filters = stream.get("/Filter")  # type: ignore[attr-defined]
    if filters != pikepdf.Name.FlateDecode and list(filters or []) != [pikepdf.Name.FlateDecode]:
        return False  # other or chained filters: qpdf's own decoding reports their damage
    raw = stream.read_raw_bytes()  # type: ignore[attr-defined]
    if not raw.strip():
        return False  # an empty page's empty stream
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(raw)
    except zlib.error:
        return True
    return not inflater.eof
