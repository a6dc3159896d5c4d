"""Generate pagelens' own synthetic sample documents for `make demo` and the tests.

Everything here is invented (Acme Robotics is a fictitious company, the e-mail
address uses the reserved ``.example`` domain), so the files can be committed,
regenerated and shipped without copying any third-party document.

Two files are written by :func:`write_samples`:

``acme_annual_report.pdf``
    A born-digital, four-page annual report:

    1. title, prose with specific facts and a contact line (e-mail + phone) for
       redaction demos;
    2. a ruled table "Revenue by region" with a sentence of prose above it;
    3. a bar chart embedded as a raster image (its labels exist only as
       pixels) with a caption in the text layer;
    4. a "scanned" typed memo: one full-page raster image, no text layer.

``warehouse_inspection_scan.png``
    A standalone scanned-looking inspection note.

Output is deterministic for a given set of installed fonts and library versions
(noise uses a fixed seed, the PDF is written with reportlab's ``invariant``
mode so it carries no timestamp or random document id).

Usage: ``python -m pagelens.samples DIR`` with ``plugins/`` on ``sys.path``.
"""

from __future__ import annotations

import argparse
import io
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # pragma: no cover - typing only
    from PIL import Image as PILImage

__all__ = [
    "CHART_CAPTION",
    "PDF_NAME",
    "PNG_NAME",
    "QUARTERLY_UNITS",
    "REVENUE_BY_REGION",
    "main",
    "render_chart",
    "render_scan",
    "write_samples",
]

PDF_NAME = "acme_annual_report.pdf"
PNG_NAME = "warehouse_inspection_scan.png"

TITLE = "Acme Robotics \u2014 Annual Report 2025"
CHART_TITLE = "Units shipped per quarter"
CHART_CAPTION = "Figure 1: Units shipped per quarter, 2025"

#: Region -> (revenue 2024, revenue 2025), million EUR. Totals: 41.7 -> 48.2.
REVENUE_BY_REGION: dict[str, tuple[float, float]] = {
    "Europe": (19.0, 21.4),
    "North America": (13.6, 15.9),
    "Asia-Pacific": (7.1, 8.7),
    "Rest of world": (2.0, 2.2),
}

#: Quarter label -> units shipped. Only ever drawn as pixels (page 3 chart).
QUARTERLY_UNITS: dict[str, int] = {
    "Q1 2025": 1150,
    "Q2 2025": 1420,
    "Q3 2025": 1610,
    "Q4 2025": 1980,
}

SCAN_DPI = 200
_BAR_COLOR = (38, 86, 160)
_A4_PX = (1654, 2339)  # 210 x 297 mm at 200 dpi
_A5_LANDSCAPE_PX = (1654, 1165)  # 210 x 148 mm at 200 dpi

_FONT_DIRS = (
    "/usr/share/fonts/truetype/dejavu",  # Debian, Ubuntu
    "/usr/share/fonts/dejavu",  # Fedora
    "/usr/share/fonts/TTF",  # Arch
    "/usr/local/share/fonts",
    "/Library/Fonts",
)
_FONT_FILES = {
    ("sans", False): "DejaVuSans.ttf",
    ("sans", True): "DejaVuSans-Bold.ttf",
    ("mono", False): "DejaVuSansMono.ttf",
    ("mono", True): "DejaVuSansMono-Bold.ttf",
    ("serif", False): "DejaVuSerif.ttf",
    ("serif", True): "DejaVuSerif-Bold.ttf",
}


class _ScanLine(NamedTuple):
    """One line of a typed page: text, pixel size, bold; empty text = gap."""

    text: str
    size: int = 40
    bold: bool = False


# --------------------------------------------------------------------------- #
# Raster helpers (PIL)
# --------------------------------------------------------------------------- #


def _font(size: int, family: str = "sans", bold: bool = False) -> Any:
    """Return a DejaVu font of ``size`` px, degrading gracefully.

    Order: a DejaVu file in a known font directory, the bare file name (Pillow
    searches system font dirs), the regular weight, Pillow's bundled scalable
    default (Pillow >= 10.1), and finally the tiny bitmap default.
    """
    from PIL import ImageFont

    names = [_FONT_FILES[(family, bold)]]
    if bold:
        names.append(_FONT_FILES[(family, False)])
    candidates = [f"{d}/{n}" for n in names for d in _FONT_DIRS] + names
    for candidate in candidates:
        try:
            return ImageFont.truetype(candidate, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: no scalable default font
        return ImageFont.load_default()


def _text_size(draw: Any, text: str, font: Any) -> tuple[int, int, int, int]:
    """Bounding box of ``text`` drawn at the origin (left, top, right, bottom)."""
    return draw.textbbox((0, 0), text, font=font)


def _draw_centered(draw: Any, cx: float, y: float, text: str, font: Any, fill: Any) -> None:
    """Draw ``text`` horizontally centred on ``cx`` with its ink top at ``y``."""
    left, top, right, _ = _text_size(draw, text, font)
    draw.text((cx - (right - left) / 2 - left, y - top), text, font=font, fill=fill)


def _wrap(draw: Any, text: str, font: Any, max_width: int) -> list[str]:
    """Greedy word wrap of ``text`` to ``max_width`` pixels (spacing kept if it fits)."""
    left, _, right, _ = _text_size(draw, text, font)
    if right - left <= max_width:
        return [text]
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        left, _, right, _ = _text_size(draw, trial, font)
        if current and right - left > max_width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return lines


def render_chart() -> PILImage.Image:
    """Draw the "Units shipped per quarter" bar chart (RGB, 1600 x 1000 px)."""
    from PIL import Image, ImageDraw

    width, height = 1600, 1000
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    # Serif: in DejaVu Sans, Tesseract tends to read "Q1" as "Ql".
    title_font = _font(52, "serif", bold=True)
    tick_font = _font(32, "serif")
    value_font = _font(44, "serif", bold=True)
    label_font = _font(44, "serif", bold=True)

    _draw_centered(draw, width / 2, 40, CHART_TITLE, title_font, (20, 20, 20))

    left, right, top, bottom = 200, width - 60, 170, height - 130
    y_max, y_step = 2000, 500

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * value / y_max

    for tick in range(0, y_max + 1, y_step):
        y = y_of(tick)
        if tick:
            draw.line([(left, y), (right, y)], fill=(215, 215, 215), width=2)
        label = f"{tick:,}"
        l_, t_, r_, b_ = _text_size(draw, label, tick_font)
        draw.text((left - 20 - (r_ - l_) - l_, y - (b_ + t_) / 2), label, font=tick_font, fill=(40, 40, 40))

    # Value labels sit in one row just above the plot area, each centred over
    # its bar. Labels placed directly on top of bars of different heights are
    # dropped by Tesseract's default page segmentation (psm 3), which merges
    # them into the picture region formed by the bars; a row of labels is read
    # at every tested scale (psm 11/12 read either layout).
    _, vt, _, vb = _text_size(draw, "1,234", value_font)
    value_top = top - 16 - (vb - vt)
    slot = (right - left) / len(QUARTERLY_UNITS)
    bar_width = slot * 0.55
    for i, (quarter, units) in enumerate(QUARTERLY_UNITS.items()):
        cx = left + slot * (i + 0.5)
        bar_top = y_of(units)
        draw.rectangle([cx - bar_width / 2, bar_top, cx + bar_width / 2, bottom], fill=_BAR_COLOR)
        _draw_centered(draw, cx, value_top, f"{units:,}", value_font, (20, 20, 20))
        _draw_centered(draw, cx, bottom + 28, quarter, label_font, (20, 20, 20))

    draw.line([(left, top - 10), (left, bottom)], fill="black", width=3)
    draw.line([(left, bottom), (right, bottom)], fill="black", width=3)
    return img


def render_scan(
    lines: Sequence[_ScanLine],
    size: tuple[int, int] = _A4_PX,
    *,
    family: str = "sans",
    angle: float = 0.7,
    seed: int = 0,
    margin: int = 170,
) -> PILImage.Image:
    """Render typed ``lines`` as a grey-scale "scan" of ``size`` pixels.

    Black text on slightly off-white paper, slight toner blur, a small rotation
    of ``angle`` degrees, uneven illumination, light seeded noise and a few dust
    specks. Deterministic for a given ``seed``.
    """
    from PIL import Image, ImageChops, ImageDraw, ImageFilter

    paper, ink = 240, 28
    width, height = size
    page = Image.new("L", size, paper)
    draw = ImageDraw.Draw(page)
    y = float(margin)
    for line in lines:
        font = _font(line.size, family, line.bold)
        if not line.text:
            y += line.size * 0.9
            continue
        for part in _wrap(draw, line.text, font, width - 2 * margin):
            draw.text((margin, y), part, font=font, fill=ink)
            y += line.size * 1.45

    page = page.filter(ImageFilter.GaussianBlur(0.6))
    page = page.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=paper)

    # Uneven illumination: up to ~8 grey levels darker towards the right edge.
    shade = Image.linear_gradient("L").rotate(90).resize(size).point(lambda v: v >> 5)
    page = ImageChops.subtract(page, shade)

    # Where the ink is, in 8 px cells grown by one cell: dust specks stay off the
    # words (a speck on a glyph reads as a diacritic and garbles the word).
    block = 8
    inked = page.point(lambda v: 255 if v < 160 else 0).reduce(block).filter(ImageFilter.MaxFilter(3))

    rng = random.Random(seed)
    noise = Image.frombytes("L", size, rng.randbytes(width * height)).point(lambda v: v >> 4)
    page = ImageChops.subtract(page, noise, 1.0, 8)  # page - n + 8, n in [0, 15]

    draw = ImageDraw.Draw(page)
    for _ in range(width * height // 50_000):  # ~20 faint dust specks per megapixel
        x, y0 = rng.uniform(0, width - 1), rng.uniform(0, height - 1)
        r = rng.uniform(0.5, 1.5)
        shade = rng.randint(120, 190)
        cell = (min(int(x) // block, inked.width - 1), min(int(y0) // block, inked.height - 1))
        if not inked.getpixel(cell):
            draw.ellipse([x - r, y0 - r, x + r, y0 + r], fill=shade)
    return page


_MEMO_LINES: tuple[_ScanLine, ...] = (
    _ScanLine("ACME ROBOTICS B.V.", 56, True),
    _ScanLine("INTERNAL MEMO", 48, True),
    _ScanLine("", 40),
    _ScanLine("Date: 2 June 2025", 40),
    _ScanLine("From: Facilities Engineering, Eindhoven", 40),
    _ScanLine("To: All line supervisors", 40),
    _ScanLine("Subject: AR-7 robot arm maintenance", 40),
    _ScanLine("", 40),
    _ScanLine("Maintenance memo: the robot arm calibration interval is 450 operating hours.", 40),
    _ScanLine("", 20),
    _ScanLine("Each calibration must be recorded in logbook MX-7 and signed by the shift lead.", 40),
    _ScanLine("", 20),
    _ScanLine("Gripper pads are replaced every 1,200 operating hours.", 40),
    _ScanLine("", 20),
    _ScanLine("Questions go to the maintenance desk, extension 2214.", 40),
    _ScanLine("", 60),
    _ScanLine("J. van Dijk", 40),
    _ScanLine("Maintenance Manager", 40),
)

_INSPECTION_LINES: tuple[_ScanLine, ...] = (
    _ScanLine("WAREHOUSE INSPECTION NOTE", 50, True),
    _ScanLine("", 30),
    _ScanLine("Site: Acme Robotics, Eindhoven plant", 38),
    _ScanLine("Inspection of warehouse B on 14 May 2025 found 3 damaged pallets.", 38),
    _ScanLine("Action: the damaged pallets were moved to quarantine bay 4.", 38),
    _ScanLine("Inspector: R. Okafor", 38),
    _ScanLine("Next inspection due: 14 August 2025", 38),
)


def _to_bytes(img: PILImage.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


# --------------------------------------------------------------------------- #
# PDF (reportlab)
# --------------------------------------------------------------------------- #


def _revenue_rows() -> list[list[str]]:
    """Header + one row per region + total, as strings."""
    rows = [["Region", "2024 (EUR m)", "2025 (EUR m)", "Change", "Share of 2025"]]
    total_24 = sum(v[0] for v in REVENUE_BY_REGION.values())
    total_25 = sum(v[1] for v in REVENUE_BY_REGION.values())
    for region, (r24, r25) in [*REVENUE_BY_REGION.items(), ("Total", (total_24, total_25))]:
        rows.append(
            [
                region,
                f"{r24:.1f}",
                f"{r25:.1f}",
                f"{(r25 / r24 - 1) * 100:+.1f}%",
                f"{r25 / total_25 * 100:.1f}%",
            ]
        )
    return rows


def _write_pdf(path: Path, chart_png: bytes, memo_jpeg: bytes) -> None:
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import (
        BaseDocTemplate,
        Frame,
        Image,
        NextPageTemplate,
        PageBreak,
        PageTemplate,
        Paragraph,
        Spacer,
        Table,
        TableStyle,
    )

    page_w, page_h = A4
    margin = 2.2 * cm
    styles = getSampleStyleSheet()
    body = ParagraphStyle("body", parent=styles["BodyText"], fontSize=10.5, leading=15, spaceAfter=8)
    h1 = ParagraphStyle("h1", parent=styles["Title"], fontSize=22, leading=28, spaceAfter=18)
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], spaceBefore=4, spaceAfter=10)
    caption = ParagraphStyle("caption", parent=body, fontName="Helvetica-Oblique", alignment=TA_CENTER)
    contact = ParagraphStyle("contact", parent=body, fontSize=9.5, textColor=colors.HexColor("#333333"))

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.grey)
        canvas.drawString(margin, 1.2 * cm, TITLE)
        canvas.drawRightString(page_w - margin, 1.2 * cm, f"Page {doc.page}")
        canvas.restoreState()

    doc = BaseDocTemplate(
        str(path),
        pagesize=A4,
        title=TITLE,
        author="Acme Robotics (fictitious; synthetic sample)",
        subject="Synthetic sample document generated by pagelens.samples",
        creator="pagelens.samples",
        invariant=1,
    )
    doc.addPageTemplates(
        [
            PageTemplate(
                id="body",
                frames=[Frame(margin, margin, page_w - 2 * margin, page_h - 2 * margin, id="main")],
                onPage=footer,
            ),
            PageTemplate(
                id="scan",
                frames=[
                    Frame(0, 0, page_w, page_h, id="full", leftPadding=0, rightPadding=0, topPadding=0, bottomPadding=0)
                ],
            ),
        ]
    )

    rows = _revenue_rows()
    europe, apac = rows[1], rows[3]
    text_w = page_w - 2 * margin - 12
    table = Table(rows, colWidths=[text_w * f for f in (0.28, 0.18, 0.18, 0.16, 0.20)], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.75, colors.black),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde6f3")),
                ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
                ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                ("ALIGN", (1, 0), (-1, -1), "RIGHT"),
                ("FONTSIZE", (0, 0), (-1, -1), 10),
                ("TOPPADDING", (0, 0), (-1, -1), 5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
            ]
        )
    )

    chart_w = page_w - 2 * margin - 12
    story = [
        # ---- page 1: prose with facts and a contact line --------------------
        Paragraph(TITLE.replace("\u2014", "&mdash;"), h1),
        Paragraph("Letter from the Chief Executive Officer", h2),
        Paragraph(
            "2025 was the strongest year in the history of Acme Robotics. Revenue rose to "
            "<b>48.2 million EUR</b>, up 15.6% from 41.7 million EUR in 2024, driven by demand for "
            "our AR-7 collaborative robot arm from automotive and electronics manufacturers. "
            "Operating profit reached 5.4 million EUR, an operating margin of 11.2%.",
            body,
        ),
        Paragraph(
            "In March 2025 we opened our new assembly plant in Eindhoven, the Netherlands. The "
            "9,500 square metre facility adds capacity for 3,000 robot arms per year and brings final "
            "assembly and calibration under one roof. Headcount grew from 268 to <b>312 employees</b> "
            "at year end, 74 of whom work at the Eindhoven plant.",
            body,
        ),
        Paragraph(
            "Research and development spending was 6.1 million EUR, or 12.7% of revenue, and funded "
            "the vision-guided picking module that ships with every AR-7 from January 2026. The order "
            "backlog at 31 December 2025 stood at 19.5 million EUR.",
            body,
        ),
        Paragraph(
            "For 2026 the Board expects revenue growth of 10 to 12 percent and plans to open a service "
            "hub in Austin, Texas, to support our North American customers. The Board proposes a "
            "dividend of 0.35 EUR per share.",
            body,
        ),
        Paragraph(
            "I thank our employees, customers and shareholders for their trust in a remarkable year.",
            body,
        ),
        Spacer(1, 6),
        Paragraph("Dana Whitfield<br/>Chief Executive Officer, Acme Robotics", body),
        Spacer(1, 18),
        Paragraph(
            "Investor relations contact: investor.relations@acme-robotics.example, phone +31 40 123 4567",
            contact,
        ),
        PageBreak(),
        # ---- page 2: ruled table ---------------------------------------------
        Paragraph("Revenue by region", h2),
        Paragraph(
            f"Europe remained our largest market with {europe[4]} of 2025 revenue, while Asia-Pacific "
            f"grew fastest at {apac[3].lstrip('+')} year on year; all amounts below are in million EUR.",
            body,
        ),
        Spacer(1, 6),
        table,
        Spacer(1, 12),
        Paragraph(
            "Rest of world comprises Latin America, the Middle East and Africa. Regions are assigned "
            "by the delivery address of the customer.",
            body,
        ),
        PageBreak(),
        # ---- page 3: raster chart + caption ----------------------------------
        Paragraph("Production and shipments", h2),
        Paragraph(
            "Shipments of robot arms increased in every quarter of 2025 as the Eindhoven plant ramped "
            "up to full production. Quarterly volumes are shown in the chart below.",
            body,
        ),
        Spacer(1, 10),
        Image(io.BytesIO(chart_png), width=chart_w, height=chart_w * 1000 / 1600),
        Spacer(1, 6),
        Paragraph(CHART_CAPTION, caption),
        # ---- page 4: full-page scan, no text ----------------------------------
        NextPageTemplate("scan"),
        PageBreak(),
        Image(io.BytesIO(memo_jpeg), width=page_w, height=page_h),
    ]
    doc.build(story)


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def write_samples(target_dir: Path) -> list[Path]:
    """Write the sample documents into ``target_dir`` (created if missing).

    Returns the written paths: ``[<dir>/acme_annual_report.pdf,
    <dir>/warehouse_inspection_scan.png]``. Existing files are overwritten.
    """
    target_dir = Path(target_dir)
    target_dir.mkdir(parents=True, exist_ok=True)

    chart_png = _to_bytes(render_chart(), "PNG", optimize=False)
    memo = render_scan(_MEMO_LINES, _A4_PX, family="sans", angle=0.7, seed=20250602)
    memo_jpeg = _to_bytes(memo, "JPEG", quality=85, dpi=(SCAN_DPI, SCAN_DPI))

    pdf_path = target_dir / PDF_NAME
    _write_pdf(pdf_path, chart_png, memo_jpeg)

    png_path = target_dir / PNG_NAME
    note = render_scan(_INSPECTION_LINES, _A5_LANDSCAPE_PX, family="serif", angle=-0.6, seed=20250514, margin=140)
    note.save(png_path, format="PNG", dpi=(SCAN_DPI, SCAN_DPI))

    return [pdf_path, png_path]


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``python -m pagelens.samples DIR``; writes the samples, lists their paths."""
    parser = argparse.ArgumentParser(prog="python -m pagelens.samples", description=__doc__.splitlines()[0])
    parser.add_argument("target_dir", type=Path, help="directory to write the sample documents into")
    args = parser.parse_args(argv)
    for path in write_samples(args.target_dir):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
