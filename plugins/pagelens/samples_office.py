"""Invented Office samples for `make demo` and the tests: a Word handbook (two pages, a table) and a PowerPoint
review (three slides with speaker notes), written with python-docx and python-pptx (dev requirements).

Like `pagelens.samples`, everything here is fictitious Acme Robotics content, safe to commit and regenerate.
"""

from __future__ import annotations

from pathlib import Path

DOCX_NAME = "field_service_handbook.docx"
PPTX_NAME = "q3_operations_review.pptx"

SPARE_PARTS = [  # part, stock, reorder level: the handbook's page-2 table
    ("Gripper pad set", "140", "40"),
    ("Servo motor S-20", "18", "6"),
    ("Wrist bearing kit", "32", "10"),
]
SLIDES = [  # title, body, speaker notes
    ("Q3 operations review", "Acme Robotics, plant Lyon-2", "Welcome everyone; this review covers July to September."),
    ("Downtime fell to 2.1 percent", "Down from 3.4 percent in Q2", "Most of the gain came from the new wrist bearing kit."),
    ("Next quarter", "Second shift at Lyon-2 from 6 January", "Hiring for the second shift starts in November."),
]


def write_docx(path: Path) -> Path:
    """Two pages: the service policy in prose, then (after a page break) the spare-parts table."""
    from docx import Document
    from docx.enum.text import WD_BREAK

    document = Document()
    document.add_heading("Acme Robotics Field Service Handbook", level=1)
    document.add_paragraph("Field engineers visit every installed arm twice a year. A visit takes about three "
                           "hours and includes a full calibration check of all six axes.")
    document.add_paragraph("Emergency call-outs are answered within four hours in the Lyon and Turin regions "
                           "and within eight hours elsewhere.")
    document.add_paragraph().add_run().add_break(WD_BREAK.PAGE)
    document.add_heading("Spare parts held per depot", level=2)
    table = document.add_table(rows=1, cols=3)
    table.style = "Table Grid"
    for cell, text in zip(table.rows[0].cells, ("Part", "In stock", "Reorder level"), strict=True):
        cell.text = text
    for row in SPARE_PARTS:
        for cell, text in zip(table.add_row().cells, row, strict=True):
            cell.text = text
    document.save(path)
    return path


def write_pptx(path: Path) -> Path:
    """Three title-and-content slides, each with speaker notes."""
    from pptx import Presentation

    deck = Presentation()
    for title, body, notes in SLIDES:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        slide.notes_slide.notes_text_frame.text = notes
    deck.save(path)
    return path


def write_office_samples(target_dir: Path) -> list[Path]:
    target_dir.mkdir(parents=True, exist_ok=True)
    return [write_docx(target_dir / DOCX_NAME), write_pptx(target_dir / PPTX_NAME)]


def main(argv: list[str] | None = None) -> int:
    """CLI: ``python -m pagelens.samples_office DIR``; writes the two files, lists their paths."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m pagelens.samples_office", description=__doc__.splitlines()[0])
    parser.add_argument("target_dir", type=Path)
    for path in write_office_samples(parser.parse_args(argv).target_dir):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
