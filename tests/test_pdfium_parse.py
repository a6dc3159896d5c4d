"""PDFium extraction against pdfplumber's: the same words and boxes, the same blocks, tables where ruled."""

from __future__ import annotations

import zlib
from pathlib import Path

import pdfplumber
import pikepdf
import pypdfium2 as pdfium
import pytest

from pagelens.errors import CorruptDocument
from pagelens.parsing.layout import plumber_chars, plumber_words
from pagelens.parsing.pdf import extract_pages
from pagelens.parsing.pdfium import page_content

pytestmark = pytest.mark.integration
# multi-column prose, a table-heavy report, a rotated page, small print with ligatures
# (ca-warn-report.pdf is left out: pdfplumber splits its individually placed date digits into one word each.)
CORPUS_PAGES = [("multi-column.pdf", 1), ("freeculture.pdf", 40), ("tracemonkey.pdf", 1),
                ("federal-register-2020-17221.pdf", 3), ("sample_with_rotation_mismatch.pdf", 1)]


def _pdfium_words(path: Path, number: int) -> list[tuple[str, tuple[float, float, float, float]]]:
    pdf = pdfium.PdfDocument(str(path))
    try:
        content = page_content(pdf[number - 1])
        return plumber_words(plumber_chars(content.chars, content.height))
    finally:
        pdf.close()


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "number"), CORPUS_PAGES)
def test_words_and_boxes_match_pdfplumber(shared_eval: Path, name: str, number: int) -> None:
    with pdfplumber.open(shared_eval / "docs" / name) as pdf:
        expected = [(w["text"], (w["x0"], w["top"], w["x1"], w["bottom"])) for w in pdf.pages[number - 1].extract_words()]
    got = _pdfium_words(shared_eval / "docs" / name, number)
    assert abs(len(got) - len(expected)) <= max(3, 0.1 * len(expected))
    by_text: dict[str, list[tuple[float, ...]]] = {}
    for text, box in got:
        by_text.setdefault(text, []).append(box)
    # Ligatures come out decomposed ("fi" for U+FB01) and font bounds differ by a fraction of a point.
    matched = sum(any(max(abs(a - b) for a, b in zip(box, other, strict=True)) <= 2.0
                      for other in by_text.get(text.replace("\ufb01", "fi").replace("\ufb02", "fl"), []))
                  for text, box in expected)
    assert matched >= 0.93 * len(expected), f"{matched}/{len(expected)} pdfplumber words found with their boxes"


@pytest.mark.corpus
def test_blocks_follow_pdfminer_layout_on_a_two_column_page(shared_eval: Path, settings) -> None:
    page = extract_pages(shared_eval / "docs" / "multi-column.pdf", settings, (1, 1))[0]
    with pdfplumber.open(shared_eval / "docs" / "multi-column.pdf", laparams={"line_overlap": 0.5, "char_margin": 2.0,
                         "line_margin": 0.5, "word_margin": 0.1, "boxes_flow": 0.5}) as pdf:
        boxes = pdf.pages[0].objects["textboxhorizontal"]
        expected = [" ".join(b["text"].split()) for b in boxes if b["text"].strip()]
    got = [" ".join(b.text.split()) for b in page.blocks if b.kind == "text"]
    assert abs(len(got) - len(expected)) <= 3  # the rotated arXiv margin line may fall apart differently
    same = [e for e in expected if e in got]
    assert len(same) >= 0.7 * len(expected)  # 16 of 21 identical when written; the rest differ by a glyph or a split
    prose = [e for e in same if sum(len(w) > 2 for w in e.split()) >= 3]  # not the margin line's lone digits
    assert prose == [g for g in got if g in prose]  # the blocks both produce come in the same reading order


def test_ruled_table_is_found_and_unruled_pages_skip_the_table_finder(sample_docs: Path, settings) -> None:
    pages = extract_pages(sample_docs / "acme_annual_report.pdf", settings)
    assert [p.tables for p in pages][:2] == [0, 1]
    table = next(b for b in pages[1].blocks if b.kind == "table")
    assert "Europe | 19.0 | 21.4" in table.text


def test_blank_page_is_not_ocred(tmp_path: Path, settings) -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    pdf.save(tmp_path / "blank.pdf")
    (page,) = extract_pages(tmp_path / "blank.pdf", settings)
    assert not page.ocr and page.blocks == [] and (page.width, page.height) == (595, 842)


def test_truncated_content_stream_is_refused(tmp_path: Path, settings) -> None:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    text = b"BT /F1 12 Tf 72 720 Td (Quarterly revenue grew in every region) Tj ET\n" * 40
    stream = pikepdf.Stream(pdf, zlib.compress(text)[:-40])  # the end of the deflate data is lost
    stream.Filter = pikepdf.Name.FlateDecode
    pdf.pages[0].Contents = stream
    pdf.save(tmp_path / "truncated.pdf")
    with pytest.raises(CorruptDocument, match="damaged content stream"):
        extract_pages(tmp_path / "truncated.pdf", settings)
