"""The third-party Office files of ../shared/eval/office (Apache POI test data, SOURCES.md there): every one
converts, with the page count SOURCES.md records for LibreOffice, and gives text on its pages."""

from __future__ import annotations

import re
import shutil

import pytest

from pagelens.parsing.convert import ConverterLimits, convert_to_pdf
from pagelens.parsing.pdf import extract_pages

pytestmark = [pytest.mark.integration, pytest.mark.corpus,
              pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice is not installed (make system-deps)")]


def _recorded_pages(sources: str) -> dict[str, int]:
    """file -> pages, from the table in SOURCES.md ("| `name` | kind | pages | bytes | sha256 |")."""
    return {m[1]: int(m[2]) for m in re.finditer(r"^\| `([^`]+)` \| [^|]+ \| (\d+) \|", sources, flags=re.MULTILINE)}


def test_every_office_file_converts_with_its_recorded_pages_and_text(shared_eval, tmp_path, settings) -> None:
    import pikepdf

    folder = shared_eval / "office"
    if not folder.is_dir():
        pytest.skip("../shared/eval/office is absent")
    recorded = _recorded_pages((folder / "SOURCES.md").read_text())
    assert len(recorded) == 12
    results = convert_to_pdf({name: folder / name for name in recorded}, tmp_path / "work", ConverterLimits())
    for name, pages in recorded.items():
        result = results[name]
        assert result.error is None, f"{name}: {result.error}"
        with pikepdf.open(result.pdf) as pdf:
            assert len(pdf.pages) == pages, name  # decks: one notes page per slide, so slide numbers hold
        pages = extract_pages(result.pdf, settings, None, name, born_digital=True)
        assert len(" ".join(b.text for b in pages[0].blocks).split()) >= 3, name
        text = "".join(b.text for p in pages for b in p.blocks)
        assert not [c for c in text if 0xD800 <= ord(c) <= 0xDFFF], name  # no half characters (tokenizers refuse them)
    assert "\U0001d446" in "".join(b.text for p in extract_pages(results["bug57031.docx"].pdf, settings, (2, 2))
                                   for b in p.blocks)  # MATHEMATICAL ITALIC CAPITAL S, read whole
