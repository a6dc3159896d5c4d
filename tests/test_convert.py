"""Office, HTML and text documents converted by real LibreOffice: text, pages, tables, notes, hidden sheets,
isolation (bad files, time limit, memory cap) and the files' way through ingest to citations and page images."""

from __future__ import annotations

import io
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from pagelens.errors import ConversionFailed, ConversionTimeout
from pagelens.parsing.convert import ConverterLimits, convert_to_pdf
from pagelens.parsing.pdf import extract_pages
from pagelens.samples_office import SLIDES, SPARE_PARTS, write_docx, write_pptx
from tests.office_files import CHART_TITLE, HIDDEN_MARKER, write_html, write_markdown, write_text, write_xlsx

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed (make system-deps)")]


def _pages(path: Path, tmp_path: Path, settings) -> list:
    result = convert_to_pdf({path.name: path}, tmp_path / "work", ConverterLimits())[path.name]
    assert result.error is None and result.pdf is not None
    return extract_pages(result.pdf, settings, doc_id=path.name, born_digital=True)


def _text(page) -> str:
    return " ".join(" ".join(b.text for b in page.blocks).split())


def test_docx_keeps_pages_and_its_table(tmp_path, settings) -> None:
    pages = _pages(write_docx(tmp_path / "handbook.docx"), tmp_path, settings)
    assert [p.number for p in pages] == [1, 2]  # the page break holds
    assert "full calibration check of all six axes" in _text(pages[0]) and not pages[0].ocr
    (table,) = [b for b in pages[1].blocks if b.kind == "table"]
    assert table.text.split("\n")[2] == " | ".join(SPARE_PARTS[1])  # "Servo motor S-20 | 18 | 6"
    x0, top, x1, bottom = table.bbox
    assert 0 <= x0 < x1 <= pages[1].width and 0 <= top < bottom <= pages[1].height


def test_pptx_one_page_per_slide_with_its_speaker_notes(tmp_path, settings) -> None:
    pages = _pages(write_pptx(tmp_path / "review.pptx"), tmp_path, settings)
    assert len(pages) == len(SLIDES)  # page number = slide number
    for page, (title, body, notes) in zip(pages, SLIDES, strict=True):
        text = _text(page)
        assert title in text and body in text and notes in text and not page.ocr
    assert SLIDES[2][2] not in _text(pages[1])  # each note stays with its own slide


def test_xlsx_visible_sheets_with_chart_and_no_hidden_sheet(tmp_path, settings) -> None:
    pages = _pages(write_xlsx(tmp_path / "figures.xlsx"), tmp_path, settings)
    every = " ".join(_text(p) for p in pages)
    assert "Europe 19 21.4" in _text(pages[0])  # first sheet, first page
    assert "Freight" in every and "8830" in every  # second sheet
    assert CHART_TITLE in every  # the chart is drawn with its title as text
    assert HIDDEN_MARKER not in every  # hidden sheets are not printed, so not indexed


def test_html_text_and_markdown(tmp_path, settings) -> None:
    (page,) = _pages(write_html(tmp_path / "hours.html"), tmp_path, settings)
    assert "Depot opening hours" in _text(page) and "Turin | 07:30" in next(b.text for b in page.blocks if b.kind == "table")
    (page,) = _pages(write_text(tmp_path / "lager.txt"), tmp_path, settings)
    assert "Das Lager in Köln führt 340 Greiferpads." in _text(page) and not page.ocr  # UTF-8, not OCR'd as English
    (page,) = _pages(write_markdown(tmp_path / "notes.md"), tmp_path, settings)
    assert "The torque limit default is now 38 Nm." in _text(page)


def test_a_bad_file_fails_alone_with_the_converters_reason(tmp_path) -> None:
    good = write_docx(tmp_path / "good.docx")
    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"PK\x03\x04 this is not a zip archive at all" * 50)
    after = write_docx(tmp_path / "after.docx")
    results = convert_to_pdf({"good": good, "bad": bad, "after": after}, tmp_path / "work", ConverterLimits())
    assert results["good"].pdf and results["after"].pdf and results["bad"].pdf is None
    assert isinstance(results["bad"].error, ConversionFailed)
    assert results["bad"].error.reason.startswith("conversion-failed: LibreOffice could not open it as a text document")


def test_time_limit_stops_the_converter_and_blames_each_file(tmp_path) -> None:
    docs = {name: write_docx(tmp_path / f"{name}.docx") for name in ("one", "two")}
    start = time.monotonic()
    results = convert_to_pdf(docs, tmp_path / "work", ConverterLimits(timeout_s=0.3))
    assert time.monotonic() - start < 10  # two stopped starts, not two conversions
    for result in results.values():
        assert isinstance(result.error, ConversionTimeout) and "more than 0.3 s" in result.error.reason
    assert not [p for p in _processes() if "soffice" in p]  # the whole process group is gone


def test_hanging_file_is_quarantined_and_the_rest_converted_by_a_fresh_process(tmp_path) -> None:
    """A stand-in soffice that converts in order and hangs on the second file: the watchdog blames that one,
    kills the process and converts the third in a new one."""
    fake = tmp_path / "soffice"
    fake.write_text("#!/bin/sh\nout=''\nwhile [ $# -gt 0 ]; do case \"$1\" in --outdir) out=$2; shift;; *.docx)"
                    " n=$(basename \"$1\" .docx); if [ \"$n\" = 00001 ]; then sleep 60; fi;"
                    " printf '%%PDF-1.4\\n%%%%EOF\\n' > \"$out/$n.pdf\";; esac; shift; done\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    docs = {name: write_docx(tmp_path / f"{name}.docx") for name in ("first", "hangs", "third")}
    results = convert_to_pdf(docs, tmp_path / "work", ConverterLimits(soffice=str(fake), timeout_s=1.5))
    assert results["first"].pdf and results["third"].pdf
    assert isinstance(results["hangs"].error, ConversionTimeout) and results["hangs"].pdf is None
    assert not [p for p in _processes() if "sleep 60" in p]


def test_memory_cap_fails_the_conversion_with_its_setting_named(tmp_path) -> None:
    doc = write_docx(tmp_path / "a.docx")
    result = convert_to_pdf({"a": doc}, tmp_path / "work", ConverterLimits(memory_mb=64))["a"]
    assert isinstance(result.error, ConversionFailed) and "PAGELENS_CONVERT_MEMORY_MB" in result.error.reason


def _processes() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if int(cmdline.parent.name) != os.getpid():
                found.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return found


def test_office_files_are_ingested_cited_by_page_and_shown_from_their_pdf(tmp_path, settings) -> None:
    from PIL import Image

    from pagelens.answer import answer
    from pagelens.pageimage import indexed_page_png
    from pagelens.pipeline.stages import ingest
    from pagelens.registry import Registry
    from pagelens.retrieve import retrieve

    docs = tmp_path / "docs"
    docs.mkdir()
    write_docx(docs / "handbook.docx")
    write_pptx(docs / "review.pptx")
    (docs / "broken.pptx").write_bytes((docs / "review.pptx").read_bytes()[:20_000])  # cut short: a damaged zip
    (docs / "notes.docx").write_text("plain text under an Office name")
    reports = {r.doc: r for r in ingest(str(docs), "office", settings)}
    assert reports["handbook.docx"].status == "indexed" and reports["handbook.docx"].pages == 2
    assert reports["handbook.docx"].tables == 1
    assert reports["review.pptx"].status == "indexed" and reports["review.pptx"].pages == 3
    assert reports["broken.pptx"].status == "quarantined"
    assert reports["broken.pptx"].reason.startswith("conversion-failed: LibreOffice could not open it as a presentation")
    assert reports["notes.docx"].reason.startswith("unsupported: not a zip-based Office/OpenDocument file")
    record = Registry(settings.registry_url).get("office", "handbook.docx")
    assert record.content_sha256 == reports["handbook.docx"].content_sha256  # the original's hash, not the PDF's

    hits = retrieve("How many servo motors S-20 are in stock?", "office", settings)
    assert (hits[0].doc_id, hits[0].page, hits[0].kind) == ("handbook.docx", 2, "table")
    cited = answer("Where did most of the downtime gain come from?", retrieve(
        "Where did most of the downtime gain come from?", "office", settings), settings)
    assert ("review.pptx", 2) in {(c.doc, c.page) for c in cited.citations}  # the speaker note of slide 2

    png = indexed_page_png(settings, "office", "handbook.docx", 2, 50, hits[0].bbox)
    image = Image.open(io.BytesIO(png))
    assert image.height > image.width  # an A4 page drawn from the kept PDF rendition
