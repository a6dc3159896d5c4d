"""Tests for pagelens.samples: the synthetic demo documents have the layers the pipeline relies on."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pdfplumber
import pytest

from pagelens.samples import CHART_CAPTION, PDF_NAME, PNG_NAME, QUARTERLY_UNITS, main, write_samples

VALUE_LABELS = [f"{units:,}" for units in QUARTERLY_UNITS.values()]  # 1,150 1,420 1,610 1,980


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def pdf(samples: list[Path]) -> Iterator[pdfplumber.PDF]:
    with pdfplumber.open(samples[0]) as doc:
        yield doc


def test_files_exist(samples: list[Path]) -> None:
    assert [p.name for p in samples] == [PDF_NAME, PNG_NAME]
    for path in samples:
        assert path.is_file() and path.stat().st_size > 10_000


def test_pdf_has_four_pages(pdf: pdfplumber.PDF) -> None:
    assert len(pdf.pages) == 4


def test_page1_prose_has_facts_and_pii(pdf: pdfplumber.PDF) -> None:
    text = pdf.pages[0].extract_text()
    assert "Acme Robotics \u2014 Annual Report 2025" in text
    for fact in ("48.2 million EUR", "312 employees", "Eindhoven", "March 2025", "Dana Whitfield"):
        assert fact in text
    assert "investor.relations@acme-robotics.example" in text
    assert "+31 40 123 4567" in text


def test_page2_table_has_europe_row(pdf: pdfplumber.PDF) -> None:
    tables = [t.extract() for t in pdf.pages[1].find_tables()]
    assert tables, "pdfplumber found no ruled table on page 2"
    rows = {row[0]: row for table in tables for row in table if row and row[0]}
    assert rows["Region"][:3] == ["Region", "2024 (EUR m)", "2025 (EUR m)"]
    assert rows["Europe"][:3] == ["Europe", "19.0", "21.4"]
    assert rows["Total"][2] == "48.2"
    assert "Revenue by region" in pdf.pages[1].extract_text()


def test_page3_chart_is_pixels_only(pdf: pdfplumber.PDF) -> None:
    page = pdf.pages[2]
    assert len(page.images) == 1
    text = page.extract_text()
    assert CHART_CAPTION in text
    for label in VALUE_LABELS:
        assert label not in text
    assert "Units shipped per quarter" not in text.replace(CHART_CAPTION, "")


def test_page4_is_a_scan_without_text(pdf: pdfplumber.PDF) -> None:
    page = pdf.pages[3]
    assert page.extract_words() == []
    assert page.chars == []
    assert len(page.images) == 1
    image = page.images[0]
    assert image["x1"] - image["x0"] == pytest.approx(float(page.width), abs=1)
    assert image["bottom"] - image["top"] == pytest.approx(float(page.height), abs=1)


def test_cli_is_deterministic(samples: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / PDF_NAME), str(tmp_path / PNG_NAME)]
    for first in samples:
        assert (tmp_path / first.name).read_bytes() == first.read_bytes()


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract not installed")
def test_rasters_are_ocr_readable(samples: list[Path], pdf: pdfplumber.PDF, monkeypatch: pytest.MonkeyPatch) -> None:
    import pytesseract
    from PIL import Image

    monkeypatch.setenv("OMP_THREAD_LIMIT", "1")  # Tesseract's OpenMP threads are several times slower here

    def ocr(image: Image.Image) -> str:
        return " ".join(pytesseract.image_to_string(image).split())

    assert "Inspection of warehouse B on 14 May 2025 found 3 damaged pallets" in ocr(Image.open(samples[1]))
    memo = ocr(pdf.pages[3].to_image(resolution=200).original)
    assert "calibration interval is 450 operating hours" in memo
    page = pdf.pages[2]
    box = page.images[0]
    chart = ocr(page.crop((box["x0"], box["top"], box["x1"], box["bottom"])).to_image(resolution=200).original)
    assert all(label in chart for label in VALUE_LABELS)
