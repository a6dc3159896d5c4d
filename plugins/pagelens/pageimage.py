"""Page images: one page of an indexed document rendered to PNG from the exact bytes that were indexed (the
content store), with the words that held personal data blacked out, faces blurred and the evidence box shaded;
for the API and for vision models."""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from pagelens.contentstore import REGIONS, content_store
from pagelens.errors import (
    ContentGone,
    DocumentError,
    DocumentNotFound,
    PageImageError,
    PageOutOfRange,
    PageTooLarge,
    UnsupportedDocument,
)
from pagelens.names import printable
from pagelens.parsing.convert import is_convertible
from pagelens.parsing.pdf import IMAGE_SUFFIXES, image_dpi
from pagelens.parsing.preflight import open_password
from pagelens.parsing.renditions import renderable
from pagelens.records import BBox, Hit, Page
from pagelens.redact import blur_faces, redacted_regions
from pagelens.registry import DocumentRecord, Registry
from pagelens.rendercap import check_raster, pillow_bomb_pixels, render_dpi, render_slot
from pagelens.settings import Settings
from pagelens.sources.local import file_sha256

HIGHLIGHT_FILL = (255, 200, 0, 90)  # translucent amber: the text under it stays readable
HIGHLIGHT_OUTLINE = (230, 110, 0, 255)
MAX_PAGE_PIXELS = 25_000_000  # default cap of a bare render_page_png call; indexed pages use the settings' cap
REDACTION_PAD_PT = 1.0  # black boxes reach a point past the word's box: no glyph edges left at the border

log = logging.getLogger(__name__)
PixelBox = Callable[[Sequence[float]], tuple[float, float, float, float]]


def render_page_png(path: Path, page: int, dpi: int, highlight_bbox: Sequence[float] | None = None, *,
                    passwords: Sequence[str] = (), max_pixels: int = MAX_PAGE_PIXELS, suffix: str = "",
                    blackout: Sequence[Sequence[float]] = (), blur: bool = False) -> bytes:
    """PNG of page `page` (1-based) at `dpi` (lowered for big pages, PageTooLarge past the cap), with the
    `blackout` boxes filled black, faces blurred if `blur`, and `highlight_bbox` shaded.

    Boxes are (x0, top, x1, bottom) in PDF points from the page's top-left corner, as the PDF parser writes chunk and
    word boxes: pdfplumber's space for PDF pages (OCR'd ones included), pixels * 72 / dpi-tag for scans.
    Scans are returned as themselves, only scaled down when `dpi` is below their own resolution. `suffix`
    names the format when the file's own name has none (content-store files are named by hash).
    """
    suffix = (suffix or path.suffix).lower()
    if suffix == ".pdf":
        image, to_pixels = _pdf_page(path, page, dpi, list(passwords), max_pixels)
    elif suffix in IMAGE_SUFFIXES:
        image, to_pixels = _scan_page(path, page, dpi, max_pixels)
    else:
        raise UnsupportedDocument(f"cannot render '{suffix}' files (use PDF or {', '.join(sorted(IMAGE_SUFFIXES))})")
    if blackout:
        _black_out(image, [to_pixels(_padded(box)) for box in blackout])
    if blur:
        image = blur_faces(image)
    if highlight_bbox is not None:
        _shade(image, to_pixels(highlight_bbox))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def indexed_page_png(settings: Settings, namespace: str, doc_id: str, page: int, dpi: int,
                     highlight_bbox: Sequence[float] | None = None, principals: Iterable[str] | None = None) -> bytes:
    """The page as it was indexed: from the content store's bytes (never the source's current file), redacted
    words blacked out when `redact_pii` is on, faces blurred when `blur_faces` is on; at most
    `api_render_concurrency` renders at once in this process. With `principals`, a document they may not read
    is not found, exactly like one that does not exist."""
    record = indexed_record(settings, namespace, doc_id, principals)
    path, suffix = renderable(settings, doc_id, record.content_sha256, indexed_content(settings, record))
    with render_slot(settings.api_render_concurrency, settings.api_render_wait_s):  # regions may parse the page
        blackout = page_regions(settings, record, path, page, suffix) if settings.redact_pii else []
        return render_page_png(path, page, dpi, highlight_bbox, passwords=settings.pdf_passwords,
                               max_pixels=settings.max_render_pixels, suffix=suffix, blackout=blackout,
                               blur=settings.blur_faces)


def indexed_record(settings: Settings, namespace: str, doc_id: str,
                   principals: Iterable[str] | None = None) -> DocumentRecord:
    record = Registry(settings.registry_url).get(namespace, doc_id)
    if record is not None and not record.readable_by(principals):
        record = None  # hidden, and not told apart from absent
    if record is None or record.status != "indexed":
        state = f" (it is {record.status})" if record else ""
        raise DocumentNotFound(f"namespace '{namespace}' has no indexed document '{printable(doc_id)}'{state}; "
                               f"list them with `pagelens documents --namespace {namespace}`")
    return record


def indexed_content(settings: Settings, record: DocumentRecord) -> Path:
    """A local file with the document's indexed bytes, checked against the recorded hash.

    Documents indexed before the content store existed are taken from their local file once, and only if
    its bytes still hash to what was indexed.
    """
    store = content_store(settings)
    path = store.get(record.content_sha256)
    if path is None and (legacy := _unchanged_local_file(record)) is not None:
        store.put(record.content_sha256, legacy)
        path = store.get(record.content_sha256)
    if path is None:
        raise ContentGone(f"the indexed content of '{printable(record.doc_id)}' is no longer kept; re-run "
                          f"`pagelens ingest` on its source to index it (and show its pages) again")
    return path


def _unchanged_local_file(record: DocumentRecord) -> Path | None:
    uri = urlparse(record.source_uri)
    if uri.scheme != "file" or len(record.content_sha256) != 64:
        return None
    path = Path(url2pathname(uri.path))
    try:
        return path if path.is_file() and file_sha256(path) == record.content_sha256 else None
    except OSError:
        return None


def page_regions(settings: Settings, record: DocumentRecord, path: Path, page: int, suffix: str = "") -> list[BBox]:
    """Boxes (PDF points) of the page's words that hold personal data, as ingest recorded them; a document
    parsed from the parse cache (which keeps no word boxes) has that page parsed again once, here. `path` is
    the file pages are drawn from (a converted document's PDF rendition, then `suffix` is ".pdf")."""
    store = content_store(settings)
    regions = store.get_json(record.content_sha256, REGIONS) or {}
    if str(page) not in regions:
        from pagelens.parsing.pdf import extract_pages

        suffix = (suffix or Path(record.doc_id).suffix).lower()
        try:
            pages = extract_pages(path, settings, (page, page) if suffix == ".pdf" else None, record.doc_id,
                                  suffix=suffix, born_digital=is_convertible(record.doc_id))
        except DocumentError as exc:
            raise PageImageError(f"cannot find the personal data of '{printable(record.doc_id)}' page {page} to "
                                 f"black it out ({exc.reason})") from exc
        regions = {**regions, **redacted_regions(pages)}
        store.put_json(record.content_sha256, REGIONS, regions)
    return [tuple(box) for box in regions.get(str(page), [])]  # type: ignore[misc]


def store_regions(settings: Settings, content_sha256: str, pages: list[Page]) -> None:
    """Record, at ingest, where each page's personal data is (its pages still carry their word boxes)."""
    content_store(settings).put_json(content_sha256, REGIONS, redacted_regions(pages))


def hit_page_images(settings: Settings, namespace: str, dpi: int | None = None,
                    principals: Iterable[str] | None = None) -> Callable[[Hit], bytes | None]:
    """Page images for `answer(..., page_images=...)`: each hit's page with its box shaded; None where none can be made
    (or the reader's `principals` may not see the document)."""

    def page_png(hit: Hit) -> bytes | None:
        try:
            return indexed_page_png(settings, namespace, hit.doc_id, hit.page, dpi or settings.llm_image_dpi, hit.bbox,
                                    principals)
        except (PageImageError, DocumentError) as exc:
            log.info("No page image for %s page %s: %s", printable(hit.doc_id), hit.page, printable(str(exc)))
            return None

    return page_png


def _pdf_page(path: Path, page: int, dpi: int, passwords: list[str], max_pixels: int) -> tuple[Any, PixelBox]:
    import pdfplumber

    with pdfplumber.open(path, password=open_password(path, passwords)) as pdf:
        _check_page(page, len(pdf.pages))
        pdf_page = pdf.pages[page - 1]
        resolution = render_dpi(float(pdf_page.width), float(pdf_page.height), dpi, max_pixels, f"page {page}")
        rendered = pdf_page.to_image(resolution=resolution, antialias=True)  # smooth text for people and vision models
        image = rendered.original.convert("RGB")
        (left, top), scale = rendered.bbox[:2], rendered.scale  # the same projection pdfplumber draws with

    def to_pixels(box: Sequence[float]) -> tuple[float, float, float, float]:
        return ((box[0] - left) * scale, (box[1] - top) * scale, (box[2] - left) * scale, (box[3] - top) * scale)

    return image, to_pixels


def _scan_page(path: Path, page: int, dpi: int, max_pixels: int) -> tuple[Any, PixelBox]:
    from PIL import Image

    try:
        scan_file = Image.open(path)
    except Image.DecompressionBombError as exc:
        pixels = pillow_bomb_pixels(exc)
        raise PageTooLarge(f"the scan is {f'{pixels:,} px' if pixels else 'too large'}, over the render cap of "
                           f"{max_pixels:,} px (PAGELENS_MAX_RENDER_PIXELS)") from exc
    with scan_file as scan:
        _check_page(page, getattr(scan, "n_frames", 1))
        scan.seek(page - 1)
        native_dpi = image_dpi(scan)
        width, height = scan.size
        if scan.format == "JPEG" and width * height > max_pixels:  # JPEG decodes at 1/2, 1/4, 1/8 size directly
            scale = math.sqrt(max_pixels / (width * height))
            scan.draft("RGB", (math.floor(width * scale), math.floor(height * scale)))
        check_raster(*scan.size, max_pixels, f"page {page}")  # from the header: nothing decoded yet
        native_dpi *= scan.size[0] / width
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


def _check_page(page: int, count: int) -> None:
    if not 1 <= page <= count:
        raise PageOutOfRange(f"page {page} does not exist: the document has {count} page(s), numbered from 1")


def _padded(box: Sequence[float]) -> tuple[float, float, float, float]:
    """Word boxes from font metrics can be a glyph short (pdfminer's width of `@` or a last `m`): pad by a
    third of the line height sideways, a point up and down."""
    side = max(REDACTION_PAD_PT, (box[3] - box[1]) / 3)
    return (box[0] - side, box[1] - REDACTION_PAD_PT, box[2] + side, box[3] + REDACTION_PAD_PT)


def _black_out(image: Any, boxes: list[tuple[float, float, float, float]]) -> None:
    """Fill each box (pixels) solid black, in place: what a redacted word said is gone, not blurred."""
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    for left, top, right, bottom in boxes:
        if right > left and bottom > top:
            draw.rectangle((math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom)), fill=(0, 0, 0))


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
