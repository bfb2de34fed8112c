"""Bad input gets a clear error naming what is wrong and how to fix it, and loses nothing: a snapshot
table delivered as an Excel workbook is said to be unread (not a "missing table", and an optional table
is not silently skipped), and NUL bytes in a CSV are reported with the file and the lines.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import openpyxl
import pytest
from typer.testing import CliRunner

from api.cli import app
from matcher.snapshot import load_snapshot
from rules.errors import SnapshotError
from tests.matcher.snapshots import default_tables, write_snapshot


def _as_xlsx(csv_file: Path, target: Path) -> None:
    """What a data office sends when it saves the table from Excel in Excel's own format."""
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for line in csv_file.read_text(encoding="utf-8").splitlines():
        sheet.append(line.split(","))
    book.save(target)


def _refused(directory: Path) -> SnapshotError:
    with pytest.raises(SnapshotError) as e:
        load_snapshot(directory, duckdb.connect())
    return e.value


@pytest.mark.parametrize("table", ["enterprises", "payments"])  # a required table and an optional one
def test_an_xlsx_snapshot_table_is_said_to_be_unread_with_how_to_save_it(tmp_path: Path, table: str) -> None:
    directory = write_snapshot(tmp_path / "snap", default_tables())
    if not (directory / f"{table}.csv").exists():
        (directory / f"{table}.csv").write_text("uscc,policy_id,item_id,period,amount\n", encoding="utf-8")
    _as_xlsx(directory / f"{table}.csv", directory / f"{table}.xlsx")
    (directory / f"{table}.csv").unlink()
    error = _refused(directory)
    assert error.file is not None and error.file.endswith(f"{table}.xlsx")
    text = str(error)
    assert "不读取 Excel" in text and "CSV UTF-8" in text and f"{table}.csv" in text
    assert "缺少必需的表" not in text


def test_an_excel_workbook_named_csv_is_said_to_be_a_workbook(tmp_path: Path) -> None:
    directory = write_snapshot(tmp_path / "snap", default_tables())
    _as_xlsx(directory / "credit.csv", tmp_path / "credit.xlsx")
    (directory / "credit.csv").write_bytes((tmp_path / "credit.xlsx").read_bytes())
    error = _refused(directory)
    assert error.file is not None and error.file.endswith("credit.csv")
    assert "Excel 工作簿" in str(error) and "CSV UTF-8" in str(error) and "UTF-8 编码" not in str(error)


def test_nul_bytes_in_a_csv_are_reported_with_the_file_and_the_lines(tmp_path: Path) -> None:
    directory = write_snapshot(tmp_path / "snap", default_tables())
    path = directory / "enterprises.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace(",", ",\x00", 1)  # line 3 of the file (the header is line 1)
    path.write_text("".join(lines), encoding="utf-8")
    con = duckdb.connect()
    report = load_snapshot(directory, con)
    table = report.tables["enterprises"]
    assert table.rows_read == len(lines) - 1  # read, not lost
    assert len(table.warnings) == 1
    warning = table.warnings[0]
    assert "enterprises.csv" in warning and "第 3 行" in warning and "NUL" in warning
    assert warning in report.to_text() and report.to_json()["tables"]["enterprises"]["warnings"] == [warning]
    assert not any(t.warnings for name, t in report.tables.items() if name != "enterprises")
    shown = CliRunner().invoke(app, ["snapshot", "check", str(directory)])
    assert "enterprises.csv 第 3 行含 NUL 字符" in shown.output, shown.output
