"""File -> pages: text blocks in reading order, words with boxes, tables, figures; OCR where needed."""

from __future__ import annotations

import contextvars
import os
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pagelens.errors import CorruptDocument, DecompressionBomb, DocumentError, UnsupportedDocument
from pagelens.parsing.integrity import check_content_streams
from pagelens.parsing.layout import plumber_chars, plumber_words, row_lines, text_blocks, text_lines
from pagelens.parsing.ocr import OcrResult, ocr_image, union
from pagelens.parsing.pdfium import PageContent, page_content
from pagelens.parsing.preflight import check_pdf
from pagelens.parsing.tables import PlumberGeometry, find_tables
from pagelens.parsing.textquality import needs_ocr
from pagelens.records import BBox, Block, Page
from pagelens.rendercap import check_raster, pillow_bomb_pixels, render_dpi
from pagelens.settings import Settings
from pagelens.tracing import span

PARSE_VERSION = 5  # bump when parsing output changes: cached parses of older versions are ignored
_CID = re.compile(r"\(cid:\d+\)")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}
SUPPORTED_SUFFIXES = IMAGE_SUFFIXES | {".pdf"}
CLIP_RASTER_SIDE = 448  # px; CLIP sees 224 px, a little more keeps crops sharp
# pdfminer's layout analysis (layout.py runs it on PDFium's chars): chars into lines, lines into blocks, columns kept.
LAPARAMS = {"line_overlap": 0.5, "char_margin": 2.0, "line_margin": 0.5, "word_margin": 0.1, "boxes_flow": 0.5}


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
    import pypdfium2 as pdfium

    password = check_pdf(path, settings.pdf_passwords, settings.max_image_pixels, settings.max_pages,
                         settings.max_render_pixels)
    vocab = settings.text_model_dir() / "vocab.txt"
    try:
        pdf = pdfium.PdfDocument(str(path), password=password)
    except pdfium.PdfiumError as exc:
        raise CorruptDocument(f"PDFium cannot open the file ({exc})"[:300]) from exc
    pool = _OcrPool()
    pages: list[Page] = []
    first, last = page_range or (1, len(pdf))
    try:
        check_content_streams(path, password, first, last)
        for number in range(first, min(last, len(pdf)) + 1):
            pdf_page = pdf[number - 1]
            with span("preprocess_page", doc=doc, page=number) as page_span:
                pages.append(_pdf_page(pdf_page, number, settings, vocab, pool, born_digital))
                page_span.set_attribute("ocr", pages[-1].ocr)
            pdf_page.close()
        pool.drain()
    except DocumentError:
        raise
    except (pdfium.PdfiumError, RecursionError, ValueError, KeyError, TypeError) as exc:
        raise CorruptDocument(f"the PDF parser failed on page {len(pages) + 1} ({type(exc).__name__}: {exc})"[:300]) from exc
    finally:
        pool.close()
        pdf.close()
    return pages


def _pdf_page(pdf_page: object, number: int, settings: Settings, vocab: Path, pool: _OcrPool,
              born_digital: bool = False) -> Page:
    """PDFium gives glyphs, images and strokes; pdfminer's layout and pdfplumber's words and tables run on them."""
    content = page_content(pdf_page)
    page = Page(number=number, width=content.width, height=content.height)
    lines = text_lines(content.chars, LAPARAMS)
    figures = _figure_boxes(content, settings.min_figure_area)
    want_clip = bool(settings.clip_model)
    raster = None
    if content.blank:
        pass  # nothing drawn: no text to read and nothing for Tesseract
    elif needs_ocr("\n".join(ln.text for ln in lines), vocab, trusted=born_digital):
        page.ocr = True
        raster, scale = _render(pdf_page, settings.ocr_dpi, settings.max_render_pixels, number)
        pool.submit(lambda: ocr_image(raster, settings.ocr_lang, scale), lambda r: _set_ocr(page, r))
    else:
        chars = plumber_chars(content.chars, content.height)
        page.words = plumber_words(chars)
        found = [(box, text) for box, rows in find_tables(PlumberGeometry(content.edges, chars, content.width, content.height))
                 if (text := _table_text(rows))]  # ruling without text (a chart's grid) is no table: its labels stay text
        page.tables = len(found)
        boxes = text_blocks(lines, content.width, content.height, LAPARAMS)
        page.blocks = _text_blocks(boxes, page.words, [box for box, _ in found])
        page.blocks += [Block(text, box, "table") for box, text in found]
        if figures and settings.ocr_figures:
            raster, scale = _render(pdf_page, settings.ocr_dpi, settings.max_render_pixels, number)
            for fig in figures:
                crop = raster.crop(tuple(round(v / scale) for v in fig))
                pool.submit(lambda c=crop, f=fig: ocr_image(c, settings.ocr_lang, scale, (f[0], f[1]), "figure"),
                            lambda r, f=fig: _add_figure_text(page, r, f))
    if want_clip:
        if raster is None:
            raster, scale = _render(pdf_page, 150, settings.max_render_pixels, number)
        page.image = _thumbnail(raster)
        page.figures = [(fig, _thumbnail(raster.crop(tuple(round(v / scale) for v in fig)))) for fig in figures]
    return page


def _text_blocks(boxes: list[tuple[str, BBox]], page_words: list[tuple[str, BBox]],
                 tables: list[BBox]) -> list[Block]:
    """The text outside the ruled tables (their cells are blocks of their own): layout blocks (columns kept
    apart) unless the page is mostly column fragments of a borderless table.

    pdfminer splits a table without rules into one box per column, which separates every label from
    its numbers; then whole rows (all words at one height) carry the meaning, so use lines instead. Lines
    inside a table are dropped before they are grouped: a block grouped across the table would be dropped
    whole with it, title and column headers included.
    """
    def outside(box: BBox) -> bool:
        return not any(_inside(box, table) for table in tables)

    blocks = [Block(text, box, "text") for raw, box in boxes if (text := clean_text(raw))]
    fragment_chars = sum(len(b.text) for b in blocks if _is_column_fragment(b.text))
    if fragment_chars < 0.4 * max(sum(len(b.text) for b in blocks), 1):
        return [b for b in blocks if outside(b.bbox)]
    return _group_lines([(text, box) for raw, box in row_lines(page_words)
                         if (text := clean_text(raw)) and outside(box)])


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


def _figure_boxes(content: PageContent, min_area: float) -> list[BBox]:
    """Embedded images big enough to carry content (charts, photos, pasted scans), clipped to the page.

    An image drawn several times at one place (a logo stacked on itself, a mask under its picture) is one
    figure: each copy would be OCR'd and indexed again.
    """
    page_area = content.width * content.height
    boxes: dict[tuple[int, ...], BBox] = {}
    for box in content.images:
        if box[2] > box[0] and box[3] > box[1] and (box[2] - box[0]) * (box[3] - box[1]) >= min_area * page_area:
            boxes.setdefault(tuple(round(v) for v in box), box)
    return list(boxes.values())


def _render(pdf_page: object, dpi: int, max_pixels: int, number: int) -> tuple[object, float]:
    """Rasterise with /Rotate applied; lower the dpi for huge pages (rendercap). Returns (image, points per pixel).

    The flags are pdfplumber's `to_image` defaults (no anti-aliasing), which the OCR settings were tuned on.
    """
    width, height = pdf_page.get_size()  # type: ignore[attr-defined]
    dpi = int(render_dpi(float(width), float(height), dpi, max_pixels, f"page {number}"))
    bitmap = pdf_page.render(scale=dpi / 72, no_smoothtext=True, no_smoothpath=True, no_smoothimage=True,  # type: ignore[attr-defined]
                             prefer_bgrx=True)
    return bitmap.to_pil().convert("RGB"), 72.0 / dpi


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
