"""Tesseract's words into blocks: what sparse mode (charts, maps, forms) keeps of what it was unsure of."""

from __future__ import annotations

import pytest
from PIL import Image

from pagelens.parsing import ocr


@pytest.mark.parametrize(("word", "kept"), [
    ("Gender", True), ("cocaine", True), ("YOLO", True), ("40%", True), ("17,190", True), ("(22", True),
    ("$1,200", True), ("12/24", True), ("7", False),
    ("oe", False), ("++", False), ("Ca", False), ("—41", False), ("—", False), ("a", False), ("|", False),
])
def test_an_unsure_sparse_read_is_kept_when_it_looks_like_a_word_or_a_number(word, kept) -> None:
    assert ocr.plausible(word) is kept


def _tesseract_says(monkeypatch, words: list[tuple[str, float]]) -> None:
    """Tesseract's answer for one line of `words` (text, confidence), each 10 px wide."""
    import pytesseract

    data = {"text": [w for w, _ in words], "conf": [c for _, c in words], "block_num": [1] * len(words),
            "par_num": [1] * len(words), "line_num": [1] * len(words), "left": [10 * i for i in range(len(words))],
            "top": [0] * len(words), "width": [10] * len(words), "height": [10] * len(words)}
    monkeypatch.setattr(pytesseract, "image_to_data", lambda *a, **k: data)


def test_figure_ocr_drops_unsure_marks_and_keeps_sure_words(monkeypatch) -> None:
    _tesseract_says(monkeypatch, [("Male", 95.0), ("oe", 31.0), ("++", 12.0), ("24%", 22.0), ("Ca", 45.0),
                                  ("cannabis", 18.0), ("ee", 88.0)])
    result = ocr.ocr_image(Image.new("RGB", (2000, 100), "white"), "eng", kind="figure")
    assert [w for w, _ in result.words] == ["Male", "24%", "cannabis", "ee"]  # "ee" was read sure: kept as read
    assert result.blocks[0].text == "Male 24% cannabis ee"


def test_page_ocr_keeps_every_word_tesseract_read(monkeypatch) -> None:
    words = [(w, 30.0) for w in "Tlie qnick brown fox oe".split()] * 10  # a scan: 50 words, unsure but words
    _tesseract_says(monkeypatch, words)
    result = ocr.ocr_image(Image.new("RGB", (2000, 100), "white"), "eng")
    assert len(result.words) == 50 and "oe" in result.blocks[0].text
