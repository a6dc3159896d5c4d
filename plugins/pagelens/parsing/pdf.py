"""File -> pages: text blocks in reading order, words with boxes, tables, figures; OCR where needed."""

from __future__ import annotations

import contextvars
import logging
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from pagelens.errors import CorruptDocument, DecompressionBomb, DocumentError, UnsupportedDocument
from pagelens.parsing.ocr import OcrResult, ocr_image, union
from pagelens.parsing.preflight import check_pdf
from pagelens.parsing.textquality import needs_ocr
from pagelens.records import BBox, Block, Page
from pagelens.rendercap import check_raster, pillow_bomb_pixels, render_dpi
from pagelens.settings import Settings
from pagelens.tracing import span

PARSE_VERSION = 2  # bump when parsing output changes: cached parses of older versions are ignored
_CID = re.compile(r"\(cid:\d+\)")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
SUPPORTED_SUFFIXES = IMAGE_SUFFIXES | {".pdf"}
CLIP_RASTER_SIDE = 448  # px; CLIP sees 224 px, a little more keeps crops sharp
# pdfminer layout analysis: groups characters into lines and lines into blocks, columns included.
LAPARAMS = {"line_overlap": 0.5, "char_margin": 2.0, "line_margin": 0.5, "word_margin": 0.1, "boxes_flow": 0.5}
# pdfminer logs these and carries on with a damaged page; we refuse such files rather than index a part.
_FATAL_PDFMINER_WARNINGS = ("Data-loss while decompressing", "circular reference")


def extract_pages(path: Path, settings: Settings, page_range: tuple[int, int] | None = None,
                  doc_id: str = "", suffix: str = "", born_digital: bool = False) -> list[Page]:
    """Parse one document; raise a DocumentError (the quarantine reason) if it cannot be read safely.

    `page_range` (first, last; 1-based, inclusive) parses part of a PDF, so big files can be split over workers.
    `doc_id` labels the per-page spans (default: the file name). `suffix` names the format of a file whose
    own name has none (content-store files are named by hash). `born_digital`: the text layer is the document's
    own text (a LibreOffice rendition), so only pages without text are OCR'd.
    """
    suffix = (suffix or path.suffix).lower()
    if suffix == ".pdf":
        return _pdf_pages(path, settings, page_range, doc_id or path.name, born_digital)
    if suffix in IMAGE_SUFFIXES:
        return _image_pages(path, settings, doc_id or path.name)
    raise UnsupportedDocument(f"'{suffix}' files are not supported (use PDF, an image "
                              f"({', '.join(sorted(IMAGE_SUFFIXES))}) or a format parsing/convert.py converts)")


class _OcrPool:
    """Runs Tesseract jobs on all cores while the next pages are rendered; results land on their page."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
        self.jobs: list[tuple[Future[OcrResult], Callable[[OcrResult], None]]] = []

    def submit(self, fn: Callable[[], OcrResult], done: Callable[[OcrResult], None]) -> None:
        run_in_page_span = contextvars.copy_context().run  # the OCR time shows under the page's span
        self.jobs.append((self.pool.submit(run_in_page_span, _traced_ocr, fn), done))
        if len(self.jobs) > 4 * (os.cpu_count() or 1):  # bound the rasters held in memory
            self.drain()

    def drain(self) -> None:
        for future, done in self.jobs:
            done(future.result())
        self.jobs.clear()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _traced_ocr(fn: Callable[[], OcrResult]) -> OcrResult:
    with span("ocr"):
        return fn()


def _pdf_pages(path: Path, settings: Settings, page_range: tuple[int, int] | None, doc: str,
               born_digital: bool = False) -> list[Page]:
    import pdfplumber
    from pdfminer.pdfparser import PDFSyntaxError
    from pdfminer.psparser import PSException
    from pdfplumber.utils.exceptions import PdfminerException

    password = check_pdf(path, settings.pdf_passwords, settings.max_image_pixels, settings.max_pages,
                         settings.max_render_pixels)
    vocab = settings.text_model_dir() / "vocab.txt"
    pool = _OcrPool()
    pages: list[Page] = []
    try:
        with _pdfminer_warnings() as warnings, pdfplumber.open(path, password=password, laparams=LAPARAMS) as pdf:
            first, last = page_range or (1, len(pdf.pages))
            for number in range(first, min(last, len(pdf.pages)) + 1):
                pdf_page = pdf.pages[number - 1]
                with span("preprocess_page", doc=doc, page=number) as page_span:
                    pages.append(_pdf_page(pdf_page, number, settings, vocab, pool, born_digital))
                    page_span.set_attribute("ocr", pages[-1].ocr)
                pdf_page.close()
            pool.drain()
    except DocumentError:
        raise
    except (PdfminerException, PDFSyntaxError, PSException, RecursionError, ValueError, KeyError, TypeError) as exc:
        raise CorruptDocument(f"the PDF parser failed on page {len(pages) + 1} ({type(exc).__name__}: {exc})"[:300]) from exc
    finally:
        pool.close()
    fatal = [w for w in warnings if any(p in w for p in _FATAL_PDFMINER_WARNINGS)]
    if fatal:
        raise CorruptDocument(f"damaged content stream: {fatal[0]} (the text would be incomplete)")
    return pages


def _pdf_page(pdf_page: object, number: int, settings: Settings, vocab: Path, pool: _OcrPool,
              born_digital: bool = False) -> Page:
    p = pdf_page  # pdfplumber.page.Page
    page = Page(number=number, width=float(p.width), height=float(p.height))  # type: ignore[attr-defined]
    boxes = p.objects.get("textboxhorizontal", [])  # type: ignore[attr-defined]
    layer_text = "\n".join(b["text"] for b in boxes)
    figures = _figure_boxes(p, settings.min_figure_area)
    want_clip = bool(settings.clip_model)
    raster = None
    if needs_ocr(layer_text, vocab, trusted=born_digital):
        page.ocr = True
        raster, scale = _render(p, settings.ocr_dpi, settings.max_render_pixels)
        pool.submit(lambda: ocr_image(raster, settings.ocr_lang, scale), lambda r: _set_ocr(page, r))
    else:
        page.words = [(w["text"], _bbox(w)) for w in p.extract_words()]  # type: ignore[attr-defined]
        # ruling without text (a chart's grid) is no table: its labels stay text
        tables = [(tuple(t.bbox), text) for t in p.find_tables() if (text := _table_text(t.extract()))]  # type: ignore[attr-defined]
        page.tables = len(tables)
        page.blocks = [b for b in _text_blocks(p, boxes) if not any(_inside(b.bbox, t) for t, _ in tables)]
        page.blocks += [Block(text, box, "table") for box, text in tables]
        if figures and settings.ocr_figures:
            raster, scale = _render(p, settings.ocr_dpi, settings.max_render_pixels)
            for fig in figures:
                crop = raster.crop(tuple(round(v / scale) for v in fig))
                pool.submit(lambda c=crop, f=fig: ocr_image(c, settings.ocr_lang, scale, (f[0], f[1]), "figure"),
                            lambda r, f=fig: _add_figure_text(page, r, f))
    if want_clip:
        if raster is None:
            raster, scale = _render(p, 150, settings.max_render_pixels)
        page.image = _thumbnail(raster)
        page.figures = [(fig, _thumbnail(raster.crop(tuple(round(v / scale) for v in fig)))) for fig in figures]
    return page


def _text_blocks(pdf_page: object, boxes: list[dict]) -> list[Block]:
    """Layout blocks (columns kept apart) unless the page is mostly column fragments of a borderless table.

    pdfminer splits a table without rules into one box per column, which separates every label from
    its numbers; then whole rows (all words at one height) carry the meaning, so use lines instead.
    """
    blocks = [Block(text, _bbox(b), "text") for b in boxes if (text := clean_text(b["text"]))]
    fragment_chars = sum(len(b.text) for b in blocks if _is_column_fragment(b.text))
    if fragment_chars < 0.4 * max(sum(len(b.text) for b in blocks), 1):
        return blocks
    lines = pdf_page.extract_text_lines(strip=True)  # type: ignore[attr-defined]
    return _group_lines([(text, _bbox(ln)) for ln in lines if (text := clean_text(ln["text"]))])


def clean_text(text: str) -> str:
    """Drop glyphs without a Unicode mapping ('(cid:12)'), which only add noise to search."""
    return _CID.sub("", text).strip()


def _is_column_fragment(text: str) -> bool:
    lines = text.split("\n")
    return sum(len(ln.split()) <= 3 for ln in lines) >= 0.7 * len(lines)


def _group_lines(lines: list[tuple[str, BBox]]) -> list[Block]:
    """Consecutive lines form a block until a vertical gap larger than ~1.5 line heights."""
    blocks: list[Block] = []
    current: list[tuple[str, BBox]] = []
    for text, box in lines:
        if current:
            prev = current[-1][1]
            if box[1] - prev[3] > 1.5 * max(prev[3] - prev[1], 1.0):
                blocks.append(Block("\n".join(t for t, _ in current), union([b for _, b in current]), "text"))
                current = []
        current.append((text, box))
    if current:
        blocks.append(Block("\n".join(t for t, _ in current), union([b for _, b in current]), "text"))
    return blocks


def _set_ocr(page: Page, result: OcrResult) -> None:
    page.blocks, page.words = result.blocks, result.words


def _add_figure_text(page: Page, result: OcrResult, fig: BBox) -> None:
    text = "\n".join(b.text for b in result.blocks).strip()
    if text:
        page.blocks.append(Block(text, fig, "figure"))
        page.words += result.words


def _figure_boxes(pdf_page: object, min_area: float) -> list[BBox]:
    """Embedded images big enough to carry content (charts, photos, pasted scans), clipped to the page."""
    p = pdf_page
    page_area = float(p.width) * float(p.height)  # type: ignore[attr-defined]
    boxes = []
    for img in p.images:  # type: ignore[attr-defined]
        box = (max(0.0, float(img["x0"])), max(0.0, float(img["top"])),
               min(float(p.width), float(img["x1"])), min(float(p.height), float(img["bottom"])))  # type: ignore[attr-defined]
        if box[2] > box[0] and box[3] > box[1] and (box[2] - box[0]) * (box[3] - box[1]) >= min_area * page_area:
            boxes.append(box)
    return boxes


def _render(pdf_page: object, dpi: int, max_pixels: int) -> tuple[object, float]:
    """Rasterise with /Rotate applied; lower the dpi for huge pages (rendercap). Returns (image, points per pixel)."""
    p = pdf_page
    dpi = int(render_dpi(float(p.width), float(p.height), dpi, max_pixels, f"page {p.page_number}"))  # type: ignore[attr-defined]
    image = p.to_image(resolution=dpi).original.convert("RGB")  # type: ignore[attr-defined]
    return image, 72.0 / dpi


def image_dpi(image: object) -> float:
    """A scan's resolution tag, 300 when missing or nonsense; its page size in points is pixels * 72 / dpi."""
    dpi = float((image.info.get("dpi") or (300, 300))[0])  # type: ignore[attr-defined]
    return dpi if 50 <= dpi <= 1200 else 300.0


def _thumbnail(image: object) -> object:
    copy = image.copy()  # type: ignore[attr-defined]
    copy.thumbnail((CLIP_RASTER_SIDE, CLIP_RASTER_SIDE))
    return copy


def _table_text(rows: list[list[str | None]]) -> str:
    """One line per row, cells separated by ' | ', so a row keeps its label next to its numbers."""
    lines = []
    for row in rows:
        cells = [" ".join(clean_text(c or "").split()) for c in row]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _bbox(obj: dict) -> BBox:
    return (float(obj["x0"]), float(obj["top"]), float(obj["x1"]), float(obj["bottom"]))


def _inside(box: BBox, outer: tuple) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return outer[0] <= cx <= outer[2] and outer[1] <= cy <= outer[3]


def _image_pages(path: Path, settings: Settings, doc: str) -> list[Page]:
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
    pool = _OcrPool()
    pages: list[Page] = []
    try:
        with Image.open(path) as image:
            for frame in range(min(getattr(image, "n_frames", 1), settings.max_pages)):
                with span("preprocess_page", doc=doc, page=frame + 1, ocr=True):
                    image.seek(frame)
                    check_scan(image, settings, f"page {frame + 1}")  # from the header, before decoding
                    rgb = image.convert("RGB")
                    scale = 72.0 / image_dpi(image)
                    page = Page(number=frame + 1, width=rgb.width * scale, height=rgb.height * scale, ocr=True)
                    pool.submit(lambda im=rgb, s=scale: ocr_image(im, settings.ocr_lang, s),
                                lambda r, pg=page: _set_ocr(pg, r))
                    if settings.clip_model:
                        page.image = _thumbnail(rgb)
                    pages.append(page)
            pool.drain()
    except Image.DecompressionBombError as exc:  # Pillow refuses at open what is over twice its cap
        raise DecompressionBomb(f"{_bomb_size(exc)}over the cap of {settings.max_image_pixels:,} px "
                                "(PAGELENS_MAX_IMAGE_PIXELS)") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise CorruptDocument(f"the image cannot be decoded ({exc})") from exc
    finally:
        pool.close()
    return pages


def check_scan(image: object, settings: Settings, what: str) -> None:
    """A scan's frame against both caps, from its header (nothing decoded yet)."""
    width, height = image.size  # type: ignore[attr-defined]
    if width * height > settings.max_image_pixels:
        raise DecompressionBomb(f"{what} is {width} x {height} = {width * height:,} px, over the cap of "
                                f"{settings.max_image_pixels:,} px (PAGELENS_MAX_IMAGE_PIXELS)")
    check_raster(width, height, settings.max_render_pixels, what)


def _bomb_size(exc: Exception) -> str:
    pixels = pillow_bomb_pixels(exc)
    return f"the image is {pixels:,} px, " if pixels else ""


@contextmanager
def _pdfminer_warnings() -> Iterator[list[str]]:
    """Collect pdfminer's warnings for one document (it logs damage instead of raising)."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    logger = logging.getLogger("pdfminer")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)  # whatever the app's log config, damage must be seen here
    logger.propagate = False  # collected and reported as the quarantine reason, not printed
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
