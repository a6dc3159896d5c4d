"""Page images: one page of a source document rendered to PNG, the evidence box shaded, for vision models and the API."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from pagelens.errors import (
    DocumentError,
    DocumentNotFound,
    DocumentNotLocal,
    PageImageError,
    PageOutOfRange,
    UnsupportedDocument,
)
from pagelens.models import Hit
from pagelens.parse import IMAGE_SUFFIXES, capped_dpi, image_dpi
from pagelens.pdfcheck import open_password
from pagelens.registry import Registry
from pagelens.settings import Settings

HIGHLIGHT_FILL = (255, 200, 0, 90)  # translucent amber: the text under it stays readable
HIGHLIGHT_OUTLINE = (230, 110, 0, 255)
MAX_PAGE_PIXELS = 25_000_000  # an A4 page at ~500 dpi; higher requests are rendered at the dpi that fits

log = logging.getLogger(__name__)
PixelBox = Callable[[Sequence[float]], tuple[float, float, float, float]]


def render_page_png(path: Path, page: int, dpi: int, highlight_bbox: Sequence[float] | None = None, *,
                    passwords: Sequence[str] = (), max_pixels: int = MAX_PAGE_PIXELS) -> bytes:
    """PNG of page `page` (1-based) at `dpi`, with `highlight_bbox` shaded.

    The box is (x0, top, x1, bottom) in PDF points from the page's top-left corner, as parse.py writes
    chunk boxes: pdfplumber's space for PDF pages (OCR'd ones included), pixels * 72 / dpi-tag for scans.
    Scans are returned as themselves, only scaled down when `dpi` is below their own resolution.
    """
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        image, to_pixels = _pdf_page(path, page, dpi, list(passwords), max_pixels)
    elif suffix in IMAGE_SUFFIXES:
        image, to_pixels = _scan_page(path, page, dpi, max_pixels)
    else:
        raise UnsupportedDocument(f"cannot render '{suffix}' files (use PDF or {', '.join(sorted(IMAGE_SUFFIXES))})")
    if highlight_bbox is not None:
        _shade(image, to_pixels(highlight_bbox))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def document_path(settings: Settings, namespace: str, doc_id: str) -> Path:
    """The local file an indexed document was read from (its registry `source_uri`)."""
    record = Registry(settings.registry_url).get(namespace, doc_id)
    if record is None or record.status != "indexed":
        state = f" (it is {record.status})" if record else ""
        raise DocumentNotFound(f"namespace '{namespace}' has no indexed document '{doc_id}'{state}; "
                               f"list them with `pagelens documents --namespace {namespace}`")
    uri = urlparse(record.source_uri)
    if uri.scheme != "file":
        raise DocumentNotLocal(f"'{doc_id}' was indexed from {record.source_uri}: documents from S3 and SharePoint "
                               "are not kept locally, so their pages cannot be rendered here; open the source instead")
    path = Path(url2pathname(uri.path))
    if not path.is_file():
        raise DocumentNotFound(f"'{doc_id}' was indexed from {path}, which no longer exists; "
                               f"re-run `pagelens ingest` on its folder to update the index")
    return path


def hit_page_images(settings: Settings, namespace: str, dpi: int | None = None) -> Callable[[Hit], bytes | None]:
    """Page images for `answer(..., page_images=...)`: each hit's page with its box shaded; None where none can be made."""

    def page_png(hit: Hit) -> bytes | None:
        try:
            path = document_path(settings, namespace, hit.doc_id)
            return render_page_png(path, hit.page, dpi or settings.llm_image_dpi, hit.bbox,
                                   passwords=settings.pdf_passwords, max_pixels=settings.max_image_pixels)
        except (PageImageError, DocumentError) as exc:
            log.info("No page image for %s page %s: %s", hit.doc_id, hit.page, exc)
            return None

    return page_png


def _pdf_page(path: Path, page: int, dpi: int, passwords: list[str], max_pixels: int) -> tuple[Any, PixelBox]:
    import pdfplumber

    with pdfplumber.open(path, password=open_password(path, passwords)) as pdf:
        _check_page(page, len(pdf.pages), path)
        pdf_page = pdf.pages[page - 1]
        rendered = pdf_page.to_image(resolution=capped_dpi(float(pdf_page.width), float(pdf_page.height), dpi, max_pixels),
                                     antialias=True)  # smooth text for people and vision models
        image = rendered.original.convert("RGB")
        (left, top), scale = rendered.bbox[:2], rendered.scale  # the same projection pdfplumber draws with

    def to_pixels(box: Sequence[float]) -> tuple[float, float, float, float]:
        return ((box[0] - left) * scale, (box[1] - top) * scale, (box[2] - left) * scale, (box[3] - top) * scale)

    return image, to_pixels


def _scan_page(path: Path, page: int, dpi: int, max_pixels: int) -> tuple[Any, PixelBox]:
    from PIL import Image

    with Image.open(path) as scan:
        _check_page(page, getattr(scan, "n_frames", 1), path)
        scan.seek(page - 1)
        native_dpi = image_dpi(scan)
        image = scan.convert("RGB")
    factor = min(1.0, dpi / native_dpi, math.sqrt(max_pixels / max(image.width * image.height, 1)))
    if factor < 1.0:
        image = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))),
                             Image.Resampling.LANCZOS)
    pixels_per_point = native_dpi / 72.0 * factor

    def to_pixels(box: Sequence[float]) -> tuple[float, float, float, float]:
        return (box[0] * pixels_per_point, box[1] * pixels_per_point, box[2] * pixels_per_point,
                box[3] * pixels_per_point)

    return image, to_pixels


def _check_page(page: int, count: int, path: Path) -> None:
    if not 1 <= page <= count:
        raise PageOutOfRange(f"page {page} does not exist: {path.name} has {count} page(s), numbered from 1")


def _shade(image: Any, box: tuple[float, float, float, float]) -> None:
    """Blend a translucent rectangle over the pixels the box covers, and only those (in place)."""
    from PIL import Image, ImageDraw

    snap = 0.01  # pixels: a tag of 199.9996 dpi must not shade the column before an exact 200
    left, top = max(0, math.floor(box[0] + snap)), max(0, math.floor(box[1] + snap))
    right, bottom = min(image.width, math.ceil(box[2] - snap)), min(image.height, math.ceil(box[3] - snap))
    if right <= left or bottom <= top:
        return
    region = image.crop((left, top, right, bottom)).convert("RGBA")
    overlay = Image.new("RGBA", region.size, HIGHLIGHT_FILL)
    outline = max(1, round(max(image.size) / 500))
    ImageDraw.Draw(overlay).rectangle((0, 0, region.width - 1, region.height - 1), outline=HIGHLIGHT_OUTLINE, width=outline)
    image.paste(Image.alpha_composite(region, overlay).convert("RGB"), (left, top))
