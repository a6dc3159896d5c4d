"""Pre-flight check of a PDF's structure with qpdf (pikepdf) before any parser or renderer touches it.

Parsers and rasterisers trust the file; this check refuses what would crash them, loop forever or
exhaust memory (decompression bombs, circular form XObjects, inverted page boxes), and finds the
password that opens an encrypted file.

Two things qpdf refuses are legal or harmless and other readers take them: a MediaBox given by any two
opposite corners (ISO 32000-1, 7.9.5: readers normalise it), and a page tree that loops back on itself
(PDFium and poppler skip the repeated node). A looping page tree is checked with PDFium instead: page count,
page sizes and the render cap; its images are then bounded by the parse worker's memory cap alone.
"""

from __future__ import annotations

import re
from pathlib import Path

from pagelens.errors import CorruptDocument, DecompressionBomb, EmptyDocument, EncryptedDocument
from pagelens.rendercap import MIN_RENDER_DPI, render_dpi

PAGE_TREE_LOOP = "Loop detected in /Pages structure"  # qpdf's refusal of a page tree that contains itself
# Filters that only make sense on images; a content stream using one is a bomb or garbage.
_IMAGE_ONLY_FILTERS = {"/JBIG2Decode", "/DCTDecode", "/JPXDecode", "/CCITTFaxDecode"}


def check_pdf(path: Path, passwords: list[str], max_image_pixels: int, max_pages: int,
              max_render_pixels: int | None = None) -> str:
    """Raise a DocumentError if the PDF must not be parsed; return the password that opens it.

    With `max_render_pixels`, a page too big to render within it (rendercap) is refused here, before any
    renderer allocates its raster: its page images could never be shown either.
    """
    import pikepdf

    if path.stat().st_size == 0:
        raise EmptyDocument("the file is 0 bytes")
    password = open_password(path, passwords)
    try:
        with pikepdf.open(path, password=password) as pdf:
            if len(pdf.pages) == 0:
                raise EmptyDocument("the PDF has no pages")
            if len(pdf.pages) > max_pages:
                raise CorruptDocument(f"{len(pdf.pages)} pages exceeds the cap of {max_pages} (PAGELENS_MAX_PAGES)")
            for number, page in enumerate(pdf.pages, start=1):
                _check_page(page, number, max_image_pixels, max_render_pixels)
    except pikepdf.PdfError as exc:
        if not qpdf_cannot_walk_pages(exc):
            raise CorruptDocument(f"qpdf cannot read the file ({_short(exc)})") from exc
        _check_pages_with_pdfium(path, password, max_pages, max_render_pixels)
    return password


def qpdf_cannot_walk_pages(exc: Exception) -> bool:
    """qpdf refused only the page tree (a loop), which PDFium reads."""
    return PAGE_TREE_LOOP in str(exc)


def open_password(path: Path, passwords: list[str]) -> str:
    """The password ("" for none) that opens the PDF; EncryptedDocument when no configured one does."""
    import pikepdf

    for password in ["", *passwords]:
        try:
            pikepdf.open(path, password=password).close()
            return password
        except pikepdf.PasswordError:
            continue
        except pikepdf.PdfError as exc:
            if qpdf_cannot_walk_pages(exc):
                return _pdfium_password(path, passwords, exc)
            raise CorruptDocument(f"not a readable PDF ({_short(exc)})") from exc
    raise EncryptedDocument(
        f"password-protected and none of the {len(passwords)} configured passwords opens it "
        "(add it to PAGELENS_PDF_PASSWORDS)"
    )


def _pdfium_password(path: Path, passwords: list[str], qpdf_error: Exception) -> str:
    import pypdfium2 as pdfium

    for password in ["", *passwords]:
        try:
            pdfium.PdfDocument(str(path), password=password or None).close()
            return password
        except pdfium.PdfiumError:
            continue
    raise CorruptDocument(f"not a readable PDF ({_short(qpdf_error)}; PDFium cannot open it either)")


def _check_pages_with_pdfium(path: Path, password: str, max_pages: int, max_render_pixels: int | None) -> None:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(path), password=password or None)
    try:
        if len(pdf) == 0:
            raise EmptyDocument("the PDF has no pages")
        if len(pdf) > max_pages:
            raise CorruptDocument(f"{len(pdf)} pages exceeds the cap of {max_pages} (PAGELENS_MAX_PAGES)")
        for number in range(1, len(pdf) + 1):
            page = pdf[number - 1]
            _check_size(*page.get_size(), number, max_render_pixels)
            page.close()
    finally:
        pdf.close()


def _check_page(page: object, number: int, max_image_pixels: int, max_render_pixels: int | None) -> None:
    import pikepdf

    try:  # inherited from the page tree when the page has none of its own
        box = [float(v) for v in page.mediabox]  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError, pikepdf.PdfError):
        box = []
    if len(box) != 4:
        raise CorruptDocument(f"page {number} has no usable MediaBox {box}")
    _check_size(abs(box[2] - box[0]), abs(box[3] - box[1]), number, max_render_pixels)  # any two opposite corners
    contents = page.obj.get("/Contents")  # type: ignore[attr-defined]
    streams = [contents] if isinstance(contents, pikepdf.Stream) else list(contents or [])
    for stream in streams:
        filters = stream.get("/Filter")
        names = {str(f) for f in (filters if isinstance(filters, pikepdf.Array) else [filters])} if filters else set()
        if names & _IMAGE_ONLY_FILTERS:
            raise DecompressionBomb(
                f"page {number} content stream is encoded with an image filter ({', '.join(sorted(names))})"
            )
    _check_xobjects(page.obj.get("/Resources"), number, max_image_pixels, set())  # type: ignore[attr-defined]


def _check_size(width: float, height: float, number: int, max_render_pixels: int | None) -> None:
    if not (width > 0 and height > 0):  # also refuses NaN
        raise CorruptDocument(f"page {number} has an empty MediaBox ({width:g} x {height:g} pt)")
    if max_render_pixels:
        render_dpi(width, height, MIN_RENDER_DPI, max_render_pixels, f"page {number}")


def _check_xobjects(resources: object, number: int, max_image_pixels: int, seen: set[tuple[int, int]],
                    invoked: set[str] | None = None) -> None:
    """Walk form XObjects depth-first: refuse giant images and cycles (infinite recursion in renderers).

    Inside a form only the XObjects its content draws (`/Name Do`) are followed: LibreOffice's PDFs give forms
    a shared resource dictionary that lists the form itself, which no renderer recurses into.
    """
    import pikepdf

    if not isinstance(resources, pikepdf.Dictionary):
        return
    xobjects = resources.get("/XObject")
    if not isinstance(xobjects, pikepdf.Dictionary):
        return
    for name, xobj in xobjects.items():
        if not isinstance(xobj, pikepdf.Stream) or (invoked is not None and name not in invoked):
            continue
        if xobj.get("/Subtype") == "/Image":
            pixels = int(xobj.get("/Width", 0)) * int(xobj.get("/Height", 0))
            if pixels > max_image_pixels:
                raise DecompressionBomb(
                    f"page {number} image {name} is {int(xobj.get('/Width', 0))}x{int(xobj.get('/Height', 0))} px, "
                    f"over the cap of {max_image_pixels:,} px (PAGELENS_MAX_IMAGE_PIXELS)"
                )
        elif xobj.get("/Subtype") == "/Form":
            key = xobj.objgen
            if key in seen:
                raise CorruptDocument(f"page {number} has circular form XObject references ({name})")
            _check_xobjects(xobj.get("/Resources"), number, max_image_pixels, seen | {key}, _invoked(xobj))


def _invoked(form: object) -> set[str]:
    """Names the form's content stream draws with `Do` (all of its XObjects if the stream cannot be read)."""
    import pikepdf

    try:
        data = form.read_bytes()  # type: ignore[attr-defined]
    except pikepdf.PdfError:
        resources = form.get("/Resources")  # type: ignore[attr-defined]
        xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) else None
        return {str(k) for k in xobjects.keys()} if isinstance(xobjects, pikepdf.Dictionary) else set()
    return {"/" + m.decode("latin-1") for m in _DO.findall(data)}


_DO = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s+Do\b")


def _short(exc: Exception) -> str:
    return str(exc).split(": ", 1)[-1][:160]
