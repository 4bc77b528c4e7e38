"""Writes tests/data/docs/meeting_rooms.docx: a short Chinese office rule with a table,
the Word document the table tests and the docs benchmark read (python-docx).

    python -m bench.data.tools.make_docx
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import docx

OUT = Path(__file__).resolve().parents[3] / "tests" / "data" / "docs" / "meeting_rooms.docx"
ROOMS = [("星河厅", "40人", "3楼"), ("松涛厅", "12人", "5楼"), ("竹影厅", "6人", "5楼")]


def main() -> None:
    document = docx.Document()
    document.core_properties.created = datetime(2026, 12, 7, tzinfo=UTC)  # reproducible
    document.add_heading("会议室使用规定", level=1)
    document.add_paragraph("各会议室须提前一天在行政系统预约,使用后请关闭投影和空调。")
    table = document.add_table(rows=1, cols=3)
    for cell, name in zip(table.rows[0].cells, ("会议室", "容纳人数", "所在楼层"), strict=True):
        cell.text = name
    for row in ROOMS:
        for cell, value in zip(table.add_row().cells, row, strict=True):
            cell.text = value
    document.add_paragraph("超过20人的会议请预约星河厅。")
    document.save(OUT)
    print(OUT)


if __name__ == "__main__":
    main()
