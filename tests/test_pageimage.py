"""Page images: PDF pages and scans rendered to PNG, evidence boxes shaded where the PDF parser put them, files found."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pagelens.errors import DocumentNotFound, EncryptedDocument, PageOutOfRange
from pagelens.pageimage import hit_page_images, render_page_png
from pagelens.parsing.pdf import extract_pages
from pagelens.records import DocumentReport, Hit
from pagelens.registry import Registry
from pagelens.samples import PDF_NAME, PNG_NAME
from pagelens.settings import Settings


def pixels(png: bytes) -> np.ndarray:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def changed_box(plain: np.ndarray, shaded: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) pixel bounds, exclusive, of every pixel the highlight changed."""
    ys, xs = np.nonzero(np.abs(plain - shaded).sum(axis=2))
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def ink(image: np.ndarray) -> np.ndarray:
    return image.sum(axis=2) < 3 * 110


def test_pdf_page_renders_at_the_requested_resolution(sample_docs: Path) -> None:
    image = pixels(render_page_png(sample_docs / PDF_NAME, 2, 72))
    height, width = image.shape[:2]
    assert abs(height - 841.9) <= 1 and abs(width - 595.3) <= 1  # A4 in points at 72 dpi
    assert ink(image).any()


def test_highlight_shades_the_words_box_and_nothing_else(sample_docs: Path) -> None:
    import pdfplumber

    with pdfplumber.open(sample_docs / PDF_NAME) as pdf:  # the same words and boxes the parser indexes
        word = next(w for w in pdf.pages[0].extract_words() if w["text"] == "Robotics")
    box = (word["x0"], word["top"], word["x1"], word["bottom"])
    plain = pixels(render_page_png(sample_docs / PDF_NAME, 1, 144))
    shaded = pixels(render_page_png(sample_docs / PDF_NAME, 1, 144, box))
    left, top, right, bottom = changed_box(plain, shaded)
    expected = [v * 2 for v in box]  # 144 dpi = 2 pixels per point
    assert expected[0] - 1 <= left and right <= expected[2] + 1 and expected[1] - 1 <= top and bottom <= expected[3] + 1
    assert right - left >= expected[2] - expected[0] - 2 and bottom - top >= expected[3] - expected[1] - 2
    assert ink(plain)[top:bottom, left:right].sum() > 200  # the shaded box is where the word's glyphs are


def test_a_scan_is_its_own_page_image_and_scales_with_its_dpi_tag(sample_docs: Path) -> None:
    scan = np.asarray(Image.open(sample_docs / PNG_NAME).convert("RGB"), dtype=np.int16)  # tagged 200 dpi
    native = pixels(render_page_png(sample_docs / PNG_NAME, 1, 200))
    assert np.array_equal(native, scan)
    box = (72.0, 36.0, 144.0, 90.0)  # points: one inch from the left, half an inch down
    assert changed_box(native, pixels(render_page_png(sample_docs / PNG_NAME, 1, 200, box))) == (200, 100, 400, 250)
    half = pixels(render_page_png(sample_docs / PNG_NAME, 1, 100))
    assert abs(half.shape[0] - scan.shape[0] / 2) <= 1 and abs(half.shape[1] - scan.shape[1] / 2) <= 1
    left, top, right, bottom = changed_box(half, pixels(render_page_png(sample_docs / PNG_NAME, 1, 100, box)))
    assert abs(left - 100) <= 1 and abs(top - 50) <= 1 and abs(right - 200) <= 1 and abs(bottom - 125) <= 1


def test_multipage_tiff_pages_are_its_frames(tmp_path: Path) -> None:
    path = tmp_path / "two_pages.tiff"
    first, second = Image.new("RGB", (300, 400), "white"), Image.new("RGB", (300, 400), "black")
    first.save(path, save_all=True, append_images=[second], dpi=(150, 150))
    assert pixels(render_page_png(path, 2, 150)).max() == 0
    assert pixels(render_page_png(path, 1, 150)).min() == 255


@pytest.mark.parametrize(("name", "page"), [(PDF_NAME, 5), (PDF_NAME, 0), (PNG_NAME, 2)])
def test_a_page_out_of_range_is_refused_with_the_page_count(sample_docs: Path, name: str, page: int) -> None:
    with pytest.raises(PageOutOfRange, match=r"has \d page"):
        render_page_png(sample_docs / name, page, 72)


@pytest.mark.integration  # Tesseract reads the scanned page and the scan file
@pytest.mark.parametrize(("name", "page"), [(PDF_NAME, 4), (PNG_NAME, 1)])
def test_ocr_boxes_from_parse_land_on_the_ink_they_were_read_from(sample_docs: Path, tmp_path: Path, name: str,
                                                                  page: int) -> None:
    parsed = extract_pages(sample_docs / name, Settings(data_dir=tmp_path), (page, page))[-1]
    assert parsed.ocr and parsed.blocks
    plain = pixels(render_page_png(sample_docs / name, page, 100))
    page_ink = ink(plain)
    covered = np.zeros_like(page_ink)
    for block in parsed.blocks:
        left, top, right, bottom = changed_box(plain, pixels(render_page_png(sample_docs / name, page, 100, block.bbox)))
        covered[top:bottom, left:right] = True
    assert (page_ink & covered).sum() >= 0.8 * page_ink.sum()  # the text the OCR read is where its boxes say
    assert covered.mean() < 0.6


def record(settings: Settings, doc_id: str, source_uri: str, status: str = "indexed", sha: str = "0" * 64) -> None:
    report = DocumentReport(doc=doc_id, status=status, source_uri=source_uri, content_sha256=sha)
    Registry(settings.registry_url).record("ns", report, "v1")


def kept(settings: Settings, path: Path) -> str:
    """Put a file into the content store as ingest does; its hash."""
    from pagelens.contentstore import content_store
    from pagelens.sources.local import file_sha256

    sha = file_sha256(path)
    content_store(settings).put(sha, path)
    return sha


def test_indexed_content_comes_from_the_store_and_explains_the_rest(settings: Settings, sample_docs: Path,
                                                                   tmp_path: Path) -> None:
    from pagelens.errors import ContentGone
    from pagelens.pageimage import indexed_content, indexed_record

    copy = tmp_path / "report.pdf"
    copy.write_bytes((sample_docs / PDF_NAME).read_bytes())
    record(settings, "report.pdf", copy.as_uri(), sha=kept(settings, copy))
    record(settings, "s3.pdf", "s3://bucket/reports/s3.pdf", sha=kept(settings, sample_docs / PNG_NAME))
    record(settings, "never-kept.pdf", "s3://bucket/reports/other.pdf")
    record(settings, "bad.pdf", copy.as_uri(), status="quarantined")
    copy.write_bytes(b"%PDF-1.4 something else now")  # the source changed after ingest: the store still has it
    stored = indexed_content(settings, indexed_record(settings, "ns", "report.pdf"))
    assert stored.read_bytes() == (sample_docs / PDF_NAME).read_bytes()
    assert indexed_content(settings, indexed_record(settings, "ns", "s3.pdf")).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ContentGone, match="no longer kept") as gone:
        indexed_content(settings, indexed_record(settings, "ns", "never-kept.pdf"))
    assert str(tmp_path) not in str(gone.value)
    with pytest.raises(DocumentNotFound, match="quarantined"):
        indexed_record(settings, "ns", "bad.pdf")
    with pytest.raises(DocumentNotFound, match=r"no indexed document 'nope\.pdf'"):
        indexed_record(settings, "ns", "nope.pdf")


def test_tampered_store_bytes_count_as_gone(settings: Settings, sample_docs: Path) -> None:
    from pagelens.contentstore import content_store
    from pagelens.errors import ContentGone
    from pagelens.pageimage import indexed_content, indexed_record

    sha = kept(settings, sample_docs / PDF_NAME)
    record(settings, "report.pdf", "s3://bucket/report.pdf", sha=sha)
    stored = content_store(settings).get(sha)
    assert stored is not None
    stored.write_bytes(stored.read_bytes() + b"%tampered")
    with pytest.raises(ContentGone):
        indexed_content(settings, indexed_record(settings, "ns", "report.pdf"))


def test_documents_indexed_before_the_store_are_taken_from_their_unchanged_file(settings: Settings,
                                                                                 tmp_path: Path) -> None:
    from pagelens.errors import ContentGone
    from pagelens.pageimage import indexed_content, indexed_record
    from pagelens.sources.local import file_sha256

    odd = tmp_path / "Q3 résumé #1.png"
    Image.new("RGB", (10, 10)).save(odd)
    record(settings, "odd.png", odd.as_uri(), sha=file_sha256(odd))
    assert indexed_content(settings, indexed_record(settings, "ns", "odd.png")).read_bytes() == odd.read_bytes()
    changed = tmp_path / "changed.png"
    Image.new("RGB", (10, 10), "red").save(changed)
    record(settings, "changed.png", changed.as_uri(), sha=file_sha256(changed))
    Image.new("RGB", (12, 10)).save(changed)  # different bytes than were indexed: never shown as that document
    with pytest.raises(ContentGone):
        indexed_content(settings, indexed_record(settings, "ns", "changed.png"))


def test_hit_page_images_render_kept_pages_and_skip_what_cannot_be_shown(settings: Settings, sample_docs: Path) -> None:
    record(settings, "report.pdf", "sharepoint://contoso/Shared%20Documents/report.pdf",
           sha=kept(settings, sample_docs / PDF_NAME))
    record(settings, "remote.pdf", "sharepoint://contoso/Shared%20Documents/remote.pdf")
    page_png = hit_page_images(settings, "ns", dpi=36)
    hit = Hit(id="1", doc_id="report.pdf", page=2, kind="table", bbox=[56, 150, 540, 330], score=1.0, text="")
    image = pixels(page_png(hit) or b"")
    assert abs(image.shape[1] - 595.3 / 2) <= 1 and (image[80:160, 40:260] != 255).any()
    assert page_png(replace(hit, doc_id="remote.pdf")) is None
    assert page_png(replace(hit, page=9)) is None


def test_encrypted_pdfs_render_with_a_configured_password(sample_docs: Path, tmp_path: Path) -> None:
    import pikepdf

    locked = tmp_path / "locked.pdf"
    with pikepdf.open(sample_docs / PDF_NAME) as pdf:
        pdf.save(locked, encryption=pikepdf.Encryption(owner="owner", user="s3cret"))
    assert np.array_equal(pixels(render_page_png(locked, 1, 36, passwords=["wrong", "s3cret"])),
                          pixels(render_page_png(sample_docs / PDF_NAME, 1, 36)))
    with pytest.raises(EncryptedDocument, match="PAGELENS_PDF_PASSWORDS"):
        render_page_png(locked, 1, 36, passwords=["wrong"])
