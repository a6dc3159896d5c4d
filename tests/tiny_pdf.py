"""Small born-digital PDFs (a text layer, no OCR needed) for source and ingest tests."""

from __future__ import annotations

import io


def tiny_pdf(*pages: str) -> bytes:
    """One page per string; each string is a few sentences the parser reads from the text layer."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, invariant=True)  # invariant: the same text gives the same bytes
    for text in pages:
        y = 780
        for line in text.split(". "):
            pdf.drawString(72, y, line.strip().rstrip(".") + ".")
            y -= 18
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()
