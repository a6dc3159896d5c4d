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


def _report_page(path: Path, doubled_cell: bool = False) -> None:
    """A title, a borderless table of short cells (so blocks come from whole rows), a ruled table, a footnote."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    pdf.drawString(72, 800, "2012 Harvest Report for Bird Island")
    y = 780
    for row in range(12):  # borderless: pdfminer gives one box per column, every line a short fragment
        for col, cell in enumerate((f"Plot {row}", f"{row}.5", "R", f"{row * 3}")):
            pdf.drawString(72 + 110 * col, y, cell)
        y -= 14
    top = y - 2
    rows = [("Brand", "Yield"), ("Wensmann", "54.5"), ("Channel", "52.8"), ("Hefty", "53.7")]
    xs, ys = [72, 252, 432], [top - 16 * i for i in range(len(rows) + 1)]
    pdf.grid(xs, ys)
    for i, (brand, value) in enumerate(rows):
        for _ in range(2 if doubled_cell and brand == "Wensmann" else 1):  # drawn again, as a separate text object
            pdf.drawString(76, ys[i] - 12, brand)
        pdf.drawString(256, ys[i] - 12, value)
    y = ys[-1] - 14
    for line in ("Results in bold are above the test average.", "Gross income at a price of $15.00 per bushel."):
        pdf.drawString(72, y, line)
        y -= 14
    pdf.save()


def test_text_around_a_ruled_table_survives_on_a_page_read_by_rows(tmp_path: Path, settings) -> None:
    _report_page(tmp_path / "report.pdf")
    (page,) = extract_pages(tmp_path / "report.pdf", settings)
    text = "\n".join(b.text for b in page.blocks if b.kind == "text")
    table = [b.text for b in page.blocks if b.kind == "table"]
    assert page.tables == 1 and "Channel | 52.8" in table[0]
    assert "2012 Harvest Report for Bird Island" in text  # grouped with the rows above the table
    assert "Plot 3 3.5 R 9" in text and "Gross income at a price" in text
    assert "Channel" not in text  # the table's cells are not read twice


def test_a_cell_drawn_twice_reads_once(tmp_path: Path, settings) -> None:
    _report_page(tmp_path / "report.pdf", doubled_cell=True)
    (page,) = extract_pages(tmp_path / "report.pdf", settings)
    table = next(b.text for b in page.blocks if b.kind == "table")
    assert "Wensmann | 54.5" in table and "WWee" not in table


def test_overprints_are_dropped_but_a_ligature_keeps_both_letters() -> None:
    from pagelens.parsing.tables import without_overprints

    def glyph(text: str, x0: float) -> dict:
        return {"text": text, "x0": x0, "x1": x0 + 5, "top": 100.0, "bottom": 110.0}

    ligature = [glyph("e", 10), glyph("f", 15), glyph("f", 15), glyph("e", 20)]  # PDFium: "ﬀ" is two glyphs, one box
    assert [c["text"] for c in without_overprints(ligature)] == ["e", "f", "f", "e"]
    twice = [glyph("a", 10), glyph("b", 15), glyph("a", 10.3), glyph("b", 15.2)]  # the run drawn again
    assert [c["text"] for c in without_overprints(twice)] == ["a", "b"]
    tiny = [{**g, "top": 100.0, "bottom": 100.45} for g in (glyph("r", 10), glyph("e", 10.4), glyph("r", 10.86))]
    assert [c["text"] for c in without_overprints(tiny)] == ["r", "e", "r"]  # 0.45 pt text: letters < 1 pt apart


def test_an_image_stacked_on_itself_is_one_figure(tmp_path: Path) -> None:
    from PIL import Image
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    from pagelens.parsing.pdf import _figure_boxes

    Image.new("RGB", (200, 120), "navy").save(tmp_path / "logo.png")
    pdf = canvas.Canvas(str(tmp_path / "stacked.pdf"), pagesize=A4, invariant=True)
    for _ in range(3):
        pdf.drawImage(str(tmp_path / "logo.png"), 72, 500, width=300, height=180)
    pdf.drawImage(str(tmp_path / "logo.png"), 72, 200, width=300, height=180)
    pdf.save()
    content = page_content(pdfium.PdfDocument(tmp_path / "stacked.pdf")[0])
    assert len(content.images) == 4
    assert len(_figure_boxes(content, 0.04)) == 2


def test_rules_running_off_the_page_are_no_table(tmp_path: Path, settings) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(tmp_path / "framed.pdf"), pagesize=A4, invariant=True)
    pdf.rect(-40, 300, 680, 420)  # a frame wider than the page, split in two: a clipped drawing, not a table
    pdf.line(-40, 500, 640, 500)
    lines = [f"Step {n}: the outer tree calls the nested tree at its anchor and guards side exits." for n in range(10)]
    for n, line in enumerate(lines):
        pdf.drawString(72, 690 - 16 * n, line)
    pdf.save()
    (page,) = extract_pages(tmp_path / "framed.pdf", settings)
    assert not page.ocr and page.tables == 0
    assert "\n".join(b.text for b in page.blocks).split("\n") == lines  # prose, in order, read once
