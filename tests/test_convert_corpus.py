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
        first = extract_pages(result.pdf, settings, (1, 1), name, born_digital=True)[0]
        assert len(" ".join(b.text for b in first.blocks).split()) >= 3, name
