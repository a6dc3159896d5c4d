"""Parsing real files: text layers, tables, figure OCR, scans, garbage text layers, bad PDFs."""

from __future__ import annotations

import pytest

from pagelens.errors import DocumentError, EncryptedDocument
from pagelens.parsing.pdf import extract_pages
from pagelens.parsing.textquality import needs_ocr
from pagelens.settings import Settings

pytestmark = pytest.mark.integration

BAD_REASONS = {  # file -> the kind of reason it must be quarantined with
    "invalid.pdf": "corrupt", "empty.pdf": "empty", "PDFBOX-3148-2-fuzzed.pdf": "corrupt",
    "poppler-90-0-fuzzed.pdf": "corrupt", "bomb_giant.pdf": "decompression-bomb",
    "issue-1113-evil-xobjects.pdf": "corrupt",
    "zen_of_python_corrupted.pdf": "corrupt", "password-example.pdf": "encrypted", "health_protected.pdf": "encrypted",
}


def test_sample_report_pages_tables_figures_and_scan(sample_docs, settings) -> None:
    pages = extract_pages(sample_docs / "acme_annual_report.pdf", settings)
    assert [p.number for p in pages] == [1, 2, 3, 4]
    assert not pages[0].ocr and "48.2 million EUR" in " ".join(b.text for b in pages[0].blocks)
    tables = [b for b in pages[1].blocks if b.kind == "table"]
    assert pages[1].tables == 1 and any(line.startswith("Europe | 19.0 | 21.4") for line in tables[0].text.split("\n"))
    figure = [b for b in pages[2].blocks if b.kind == "figure"]
    assert figure and "1,980" in figure[0].text  # chart values exist only in pixels
    assert pages[3].ocr and "450 operating hours" in " ".join(" ".join(b.text for b in pages[3].blocks).split())
    x0, top, x1, bottom = figure[0].bbox
    assert 0 <= x0 < x1 <= pages[2].width and 0 <= top < bottom <= pages[2].height


def test_scanned_image_file_is_ocred_with_word_boxes(sample_docs, settings) -> None:
    (page,) = extract_pages(sample_docs / "warehouse_inspection_scan.png", settings)
    assert page.ocr and "damaged pallets" in " ".join(b.text for b in page.blocks)
    assert page.words and all(w[1][0] < w[1][2] for w in page.words)


def test_garbage_text_layers_are_detected(settings) -> None:
    vocab = settings.text_model_dir() / "vocab.txt"
    prose = "The quarterly report shows that revenue grew in every region while costs stayed flat. " * 3
    assert not needs_ocr(prose, vocab)
    assert needs_ocr("(cid:2)(cid:3)(cid:4) " * 40 + prose[:40], vocab)
    assert needs_ocr("Xq zvbt qrpl wzkx " * 10, vocab)
    assert needs_ocr("Page 3", vocab)


def test_unsupported_file_type_is_a_document_error(tmp_path, settings) -> None:
    path = tmp_path / "notes.docx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(DocumentError, match="not supported"):
        extract_pages(path, settings)


@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(BAD_REASONS))
def test_bad_pdfs_fail_fast_with_a_specific_reason(shared_eval, settings, name) -> None:
    with pytest.raises(DocumentError) as info:
        extract_pages(shared_eval / "bad" / name, settings)
    assert info.value.reason.startswith(BAD_REASONS[name] + ":")


@pytest.mark.corpus
def test_encrypted_pdfs_open_with_a_configured_password(shared_eval, tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, pdf_passwords=["wrong", "test", "userpass"])
    assert len(extract_pages(shared_eval / "bad" / "password-example.pdf", settings)) == 4
    table_page = extract_pages(shared_eval / "bad" / "health_protected.pdf", settings)[0]
    assert "Outlay" in " ".join(b.text for b in table_page.blocks)
    with pytest.raises(EncryptedDocument):
        extract_pages(shared_eval / "bad" / "password-example.pdf", Settings(data_dir=tmp_path))


@pytest.mark.corpus
@pytest.mark.corpus
def test_rotated_scan_in_the_corpus_is_ocred_upright(shared_eval, settings) -> None:
    rotated = extract_pages(shared_eval / "docs" / "sample_with_rotation_mismatch.pdf", settings)[0]
    assert rotated.ocr and rotated.width < rotated.height  # /Rotate 90 applied before OCR
    words = " ".join(b.text for b in rotated.blocks).split()
    assert len(words) > 50


def _rewritten(tmp_path, name: str, change) -> object:
    """A born-digital PDF whose structure `change(pdf)` alters after reportlab wrote it (saved by qpdf)."""
    import pikepdf
    from tiny_pdf import tiny_pdf

    source = tmp_path / "source.pdf"
    source.write_bytes(tiny_pdf("The pump delivers 40 litres per minute. Its housing is cast iron."))
    path = tmp_path / name
    with pikepdf.open(source) as pdf:
        change(pdf)
        pdf.save(path)
    return path


def test_a_mediabox_given_by_its_other_corners_is_read(tmp_path, settings) -> None:
    """ISO 32000 lets a rectangle name any two opposite corners; readers normalise [0 0 595 -842]."""
    def flip(pdf) -> None:
        pdf.pages[0].obj["/MediaBox"] = [0, 842, 595, 0]

    (page,) = extract_pages(_rewritten(tmp_path, "flipped.pdf", flip), settings)
    assert "40 litres per minute" in " ".join(b.text for b in page.blocks)
    assert (round(page.width), round(page.height)) == (595, 842)


def test_an_empty_mediabox_is_still_refused(tmp_path, settings) -> None:
    def flatten(pdf) -> None:
        pdf.pages[0].obj["/MediaBox"] = [0, 0, 595, 0]

    with pytest.raises(DocumentError) as info:
        extract_pages(_rewritten(tmp_path, "flat.pdf", flatten), settings)
    assert info.value.reason.startswith("corrupt:") and "empty MediaBox" in info.value.reason


@pytest.mark.corpus
def test_the_flipped_mediabox_of_pdfplumbers_repair_case_is_normalised(shared_eval, settings) -> None:
    """bad/malformed-from-issue-932.pdf: its MediaBox names the top-left and bottom-right corners, so pdfminer put
    its text below the page until Ghostscript rewrote it. That is legal PDF; read as PDFium reads it, no repair."""
    (page,) = extract_pages(shared_eval / "bad" / "malformed-from-issue-932.pdf", settings)
    assert (round(page.width), round(page.height)) == (631, 842)
    assert page.blocks and all(0 <= b.bbox[1] <= b.bbox[3] <= page.height for b in page.blocks)


@pytest.mark.corpus
@pytest.mark.parametrize("name, words", [
    ("test_3725.pdf", "TDR Modifications"),  # its page tree loops: qpdf refuses, PDFium and poppler read it
    ("test_4147.pdf", "CALIFORNIA RESIDENTIAL PURCHASE"),  # the same, a scan with a text layer
    ("cs-en-us-pbms.pdf", "Manhattan South"),  # MediaBox [0 0 612 -792]
])
def test_pdfs_other_readers_open_are_not_quarantined(shared_eval, settings, name, words) -> None:
    pages = extract_pages(shared_eval / "distractors" / name, settings)
    assert len(pages) == 1 and words in " ".join(b.text for b in pages[0].blocks)
