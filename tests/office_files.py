"""Office, HTML and text files generated for the conversion tests (python-docx, python-pptx, openpyxl)."""

from __future__ import annotations

from pathlib import Path

HIDDEN_MARKER = "quokka-ledger-7731"  # only on the hidden sheet: must never be indexed
SHEETS = {  # visible sheets: name -> rows
    "Revenue": [["Region", "2024", "2025"], ["Europe", 19.0, 21.4], ["Asia", 11.2, 14.9], ["Americas", 8.1, 9.3]],
    "Costs": [["Item", "EUR"], ["Freight", 1250], ["Tooling", 8830]],
}
CHART_TITLE = "Units shipped per quarter"


def write_xlsx(path: Path) -> Path:
    """Two visible sheets (a table; a table with a bar chart) and a hidden one."""
    from openpyxl import Workbook
    from openpyxl.chart import BarChart, Reference

    book = Workbook()
    book.remove(book.active)
    for name, rows in SHEETS.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    units = book["Costs"]
    for row in [["Quarter", "Units"], ["Q1", 410], ["Q2", 455], ["Q3", 530], ["Q4", 585]]:
        units.append(row)
    chart = BarChart()
    chart.title = CHART_TITLE
    chart.add_data(Reference(units, min_col=2, min_row=4, max_row=8), titles_from_data=True)
    chart.set_categories(Reference(units, min_col=1, min_row=5, max_row=8))
    units.add_chart(chart, "D2")
    hidden = book.create_sheet("Lookup")
    hidden.append(["key", HIDDEN_MARKER])
    hidden.sheet_state = "hidden"
    book.save(path)
    return path


def write_html(path: Path) -> Path:
    path.write_text("<!doctype html><html><head><meta charset='utf-8'><title>Depot hours</title></head><body>"
                    "<h1>Depot opening hours</h1><p>The Turin depot opens at 07:30 on weekdays.</p>"
                    "<table border='1'><tr><th>Depot</th><th>Opens</th></tr><tr><td>Turin</td><td>07:30</td></tr>"
                    "<tr><td>Lyon</td><td>08:00</td></tr></table></body></html>", encoding="utf-8")
    return path


def write_text(path: Path) -> Path:
    path.write_text("Größe der Ersatzteillager\n\nDas Lager in Köln führt 340 Greiferpads.\n", encoding="utf-8")
    return path


def write_markdown(path: Path) -> Path:
    path.write_text("# Release notes 4.2\n\n- The torque limit default is now 38 Nm.\n- Logs rotate daily.\n",
                    encoding="utf-8")
    return path
