"""Tesseract OCR of a page or region image into text blocks with word boxes in page coordinates."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pagelens.records import BBox, Block

# Tesseract's OpenMP threads fight each other on small machines: one thread is ~6x faster here.
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

MIN_OCR_WIDTH = 1600  # px; smaller images (72-dpi scans, figure crops) are upscaled before OCR
MAX_UPSCALE = 3


@dataclass
class OcrResult:
    blocks: list[Block]
    words: list[tuple[str, BBox]]


SPARSE_WORDS = 40  # fewer words than this from a full-page pass: try sparse-text mode (charts, maps, forms)
SPARSE_PSM = 11  # Tesseract's sparse-text page segmentation: scattered labels, no reading order
SURE_CONF = 50  # sparse mode: a word read this sure is kept as read; below it, only if it looks like a word or number
_NUMBER = re.compile(r"[(\[]?[-+$€£]?\d+([.,:/]\d+)*%?[)\].,;:]?")
_VOWEL = re.compile(r"[aeiouy]", re.I)


def ocr_image(image: object, lang: str, scale: float = 1.0, origin: tuple[float, float] = (0.0, 0.0),
              kind: str = "ocr") -> OcrResult:
    """OCR a PIL image; `scale` maps image pixels to page points and `origin` offsets a cropped region.

    Figures are read in Tesseract's sparse-text mode (labels scattered around plots); pages in its
    default layout mode, falling back to sparse mode when that finds almost nothing.
    """
    if kind == "figure":
        return _ocr(image, lang, scale, origin, kind, psm=SPARSE_PSM)
    result = _ocr(image, lang, scale, origin, kind, psm=3)
    if len(result.words) < SPARSE_WORDS:
        sparse = _ocr(image, lang, scale, origin, kind, psm=SPARSE_PSM)
        if len(sparse.words) > len(result.words):
            return sparse
    return result


def _ocr(image: object, lang: str, scale: float, origin: tuple[float, float], kind: str, psm: int) -> OcrResult:
    import pytesseract

    factor = min(MAX_UPSCALE, max(1, -(-MIN_OCR_WIDTH // max(image.width, 1))))  # type: ignore[attr-defined]
    if factor > 1:
        image = image.resize((image.width * factor, image.height * factor))  # type: ignore[attr-defined]
    data = pytesseract.image_to_data(image.convert("L"), lang=lang, config=f"--psm {psm}",  # type: ignore[attr-defined]
                                     output_type=pytesseract.Output.DICT)
    px_to_pt = scale / factor
    lines: dict[tuple[int, int, int], list[int]] = {}
    for i, word in enumerate(data["text"]):
        conf = float(data["conf"][i])
        if word.strip() and conf >= 0 and (psm != SPARSE_PSM or conf >= SURE_CONF or plausible(word)):
            lines.setdefault((data["block_num"][i], data["par_num"][i], data["line_num"][i]), []).append(i)

    def box(i: int) -> BBox:
        x, y = origin
        return (x + data["left"][i] * px_to_pt, y + data["top"][i] * px_to_pt,
                x + (data["left"][i] + data["width"][i]) * px_to_pt, y + (data["top"][i] + data["height"][i]) * px_to_pt)

    words = [(data["text"][i], box(i)) for idx in lines.values() for i in idx]
    paragraphs: dict[tuple[int, int], list[list[int]]] = {}
    for (block, par, _), idx in lines.items():
        paragraphs.setdefault((block, par), []).append(idx)
    blocks = []
    for para in paragraphs.values():
        text = "\n".join(" ".join(data["text"][i] for i in line) for line in para)
        boxes = [box(i) for line in para for i in line]
        blocks.append(Block(text=text, bbox=union(boxes), kind=kind))
    return OcrResult(blocks=blocks, words=words)


def plausible(word: str) -> bool:
    """A number (more than one digit), or three letters or more with a vowel: what an unsure sparse-mode read must
    look like to be kept.

    Sparse mode reads every mark on a chart: hatched bars, markers and gridlines come back as "oe", "++", "Ca", "—41",
    almost all below SURE_CONF (on 120 figures of the eval corpus, three in four words read below it were no
    vocabulary word or number), and they lengthen the page for BM25 and blur its vector. A page's default-mode OCR
    (scans) keeps every word: there a word read unsurely is still mostly a word.
    """
    if _NUMBER.fullmatch(word):
        return len(word) > 1  # a lone digit read unsurely is mostly hatching ("8", "2"); tick labels read sure
    letters = sum(c.isalpha() for c in word)
    return letters >= 3 and letters >= 0.75 * len(word) and bool(_VOWEL.search(word))


def union(boxes: list[BBox]) -> BBox:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
