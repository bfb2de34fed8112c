"""Loading and validating registry snapshots: every rule rejects what it should and says so; tables that
cannot be used are refused by name; the fingerprint follows the contents and nothing else."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from sqlglot import exp
from stdnum.cn import uscc as stdnum_uscc
from typer.testing import CliRunner

import matcher.snapshot as snapshot
from api.cli import app, main
from matcher.codes import uscc_valid
from matcher.snapshot import SnapshotReport, load_snapshot
from rules.errors import SnapshotError
from tests.matcher.snapshots import (
    bad_check,
    default_tables,
    enterprise,
    uscc,
    write_parquet,
    write_snapshot,
)

ROOT = Path(__file__).resolve().parents[2]
CONFORMANCE = ROOT / "tests" / "conformance" / "snapshot"


def load(directory: Path, today: dt.date | None = None) -> tuple[duckdb.DuckDBPyConnection, SnapshotReport]:
    con = duckdb.connect()
    return con, load_snapshot(directory, con, today=today)


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return con.execute(sql, params or []).fetchall()


# --- the accepted tables -------------------------------------------------------------------------------


def test_valid_snapshot_gives_every_table_with_the_contract_types(tmp_path: Path) -> None:
    con, report = load(write_snapshot(tmp_path, default_tables()))
    assert report.rejected_total == 0
    money = "DECIMAL(18,2)"
    expected = {
        "enterprises": [
            ("uscc", "VARCHAR"),
            ("name", "VARCHAR"),
            ("reg_date", "DATE"),
            ("region_code", "VARCHAR"),
            ("industry_code", "VARCHAR"),
            ("status", "VARCHAR"),
            ("reg_capital", money),
            ("contact_phone", "VARCHAR"),
        ],
        "annual_reports": [
            ("uscc", "VARCHAR"),
            ("year", "INTEGER"),
            ("employees", "BIGINT"),
            ("revenue", money),
            ("total_assets", money),
        ],
        "tax": [
            ("uscc", "VARCHAR"),
            ("year", "INTEGER"),
            ("tax_paid", money),
            ("rd_expense", money),
            ("credit_rating", "VARCHAR"),
        ],
        "social_insurance": [
            ("uscc", "VARCHAR"),
            ("year", "INTEGER"),
            ("insured_start", "BIGINT"),
            ("insured_end", "BIGINT"),
            ("ui_premium_paid", money),
            ("ui_arrears", "BOOLEAN"),
            ("new_graduate_hires", "BIGINT"),
        ],
        "credit": [("uscc", "VARCHAR"), ("serious_dishonest", "BOOLEAN"), ("abnormal_operation", "BOOLEAN")],
        "certifications": [
            ("uscc", "VARCHAR"),
            ("cert_type", "VARCHAR"),
            ("cert_date", "DATE"),
            ("expiry_date", "DATE"),
        ],
        "bank_accounts": [
            ("uscc", "VARCHAR"),
            ("bank_name", "VARCHAR"),
            ("account_no", "VARCHAR"),
            ("account_name", "VARCHAR"),
        ],
        "payments": [
            ("uscc", "VARCHAR"),
            ("policy_id", "VARCHAR"),
            ("item_id", "VARCHAR"),
            ("period", "VARCHAR"),
            ("amount", money),
        ],
    }
    for name, columns in expected.items():
        assert rows(con, f"SELECT column_name, column_type FROM (DESCRIBE {name})") == columns, name
    assert rows(con, "SELECT count(*) FROM payments") == [(0,)]  # optional, not delivered: empty
    assert report.tables["payments"].file is None
    assert rows(con, "SELECT ui_premium_paid, ui_arrears FROM social_insurance LIMIT 1") == [
        (Decimal("12345.67"), False)
    ]


def test_csv_keeps_leading_zeros_and_chinese_text(tmp_path: Path) -> None:
    tables = default_tables(1)
    tables["enterprises"][0] |= {"contact_phone": "05178888888", "name": "淮安市“清江”电子有限公司"}
    tables["bank_accounts"][0]["account_no"] = "0012345"
    con, report = load(write_snapshot(tmp_path, tables))
    assert report.rejected_total == 0
    assert rows(con, "SELECT name, region_code, contact_phone FROM enterprises") == [
        ("淮安市“清江”电子有限公司", "320812", "05178888888")
    ]
    assert rows(con, "SELECT account_no FROM bank_accounts") == [("0012345",)]


def test_csv_from_excel_with_byte_order_mark_and_crlf_reads(tmp_path: Path) -> None:
    directory = write_snapshot(tmp_path, default_tables())
    text = (directory / "enterprises.csv").read_text(encoding="utf-8")
    (directory / "enterprises.csv").write_bytes(text.replace("\n", "\r\n").encode("utf-8-sig"))
    con, report = load(directory)
    assert report.tables["enterprises"].rows_accepted == 3
    assert rows(con, "SELECT count(*) FROM enterprises WHERE contact_phone = '13900000000'") == [(3,)]


def test_rows_are_ordered_by_key_and_extra_columns_dropped(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"] = [enterprise(i, 备注="测试") for i in (2, 0, 1)]
    tables["annual_reports"] = [r | {"year": y} for y in ("2024", "2023") for r in tables["annual_reports"]]
    con, _ = load(write_snapshot(tmp_path, tables))
    assert [r[0] for r in rows(con, "SELECT uscc FROM enterprises")] == sorted(uscc(i) for i in range(3))
    assert "备注" not in [r[0] for r in rows(con, "SELECT column_name FROM (DESCRIBE enterprises)")]
    assert rows(con, "SELECT uscc, year FROM annual_reports") == sorted(
        (uscc(i), y) for i in range(3) for y in (2023, 2024)
    )


def test_load_leaves_no_work_tables_behind(tmp_path: Path) -> None:
    con, _ = load(write_snapshot(tmp_path, default_tables()))
    names = {r[0] for r in rows(con, "SELECT table_name FROM duckdb_tables()")}
    assert names == set(snapshot.TABLE_NAMES)


# --- one rule at a time ----------------------------------------------------------------------------------

C0 = uscc(0)


@pytest.mark.parametrize(
    ("table", "change", "rule", "example"),
    [
        ("enterprises", {"uscc": bad_check(C0)}, "bad_uscc", (bad_check(C0), "uscc", bad_check(C0))),
        ("enterprises", {"uscc": C0.lower()}, "bad_uscc", (C0.lower(), "uscc", C0.lower())),
        ("enterprises", {"uscc": "91320812"}, "bad_uscc", ("91320812", "uscc", "91320812")),
        ("enterprises", {"uscc": " "}, "missing_key", (None, "uscc", None)),
        ("annual_reports", {"year": ""}, "missing_key", (C0, "year", None)),
        ("enterprises", {"reg_date": "2015-13-01"}, "bad_value", (C0, "reg_date", "2015-13-01")),
        ("enterprises", {"reg_capital": "一百万"}, "bad_value", (C0, "reg_capital", "一百万")),
        ("annual_reports", {"revenue": "1.005"}, "bad_value", (C0, "revenue", "1.005")),  # no rounding
        ("annual_reports", {"employees": "1.5"}, "bad_value", (C0, "employees", "1.5")),
        ("annual_reports", {"year": "二〇二四"}, "bad_value", (C0, "year", "二〇二四")),
        ("social_insurance", {"ui_arrears": "是"}, "bad_value", (C0, "ui_arrears", "是")),
        ("enterprises", {"reg_capital": "-1.00"}, "negative_money", (C0, "reg_capital", "-1.00")),
        ("tax", {"rd_expense": "-0.01"}, "negative_money", (C0, "rd_expense", "-0.01")),
        ("annual_reports", {"employees": "-3"}, "negative_count", (C0, "employees", "-3")),
        ("social_insurance", {"insured_end": "-1"}, "negative_count", (C0, "insured_end", "-1")),
        ("enterprises", {"reg_date": "2025-10-01"}, "future_date", (C0, "reg_date", "2025-10-01")),
        (
            "certifications",
            {"cert_date": "2025-10-01", "expiry_date": "2028-10-01"},
            "future_date",
            (C0, "cert_date", "2025-10-01"),
        ),
        ("enterprises", {"status": "营业"}, "unknown_status", (C0, "status", "营业")),
        ("tax", {"credit_rating": "AA"}, "unknown_credit_rating", (C0, "credit_rating", "AA")),
        ("certifications", {"cert_type": "gaoxin"}, "unknown_cert_type", (C0, "cert_type", "gaoxin")),
        (
            "certifications",
            {"expiry_date": "2022-12-31"},
            "expiry_before_cert",
            (C0, "expiry_date", "2022-12-31"),
        ),
        ("enterprises", {"region_code": "329999"}, "unknown_region", (C0, "region_code", "329999")),
        ("enterprises", {"region_code": "0320812"}, "unknown_region", (C0, "region_code", "0320812")),
        ("enterprises", {"industry_code": "C9999"}, "unknown_industry", (C0, "industry_code", "C9999")),
        ("enterprises", {"industry_code": "3911"}, "unknown_industry", (C0, "industry_code", "3911")),
        ("annual_reports", {"year": "1989"}, "year_out_of_range", (C0, "year", "1989")),
        ("tax", {"year": "2026"}, "year_out_of_range", (C0, "year", "2026")),  # after taken_at's year
        ("bank_accounts", {"uscc": uscc(99)}, "orphan", (uscc(99), "uscc", uscc(99))),
    ],
)
def test_each_rule_rejects_its_row_and_shows_it(
    tmp_path: Path, table: str, change: dict[str, str], rule: str, example: tuple[Any, ...]
) -> None:
    tables = default_tables()
    tables[table][0] |= change
    con, report = load(write_snapshot(tmp_path, tables))
    t = report.tables[table]
    assert t.rejected == {rule: 1}
    assert (t.rows_read, t.rows_accepted) == (len(tables[table]), len(tables[table]) - 1)
    u, column, value = example
    # Row 2: the first data row, the CSV header being row 1 (as a spreadsheet numbers them).
    assert t.examples == {rule: [{"row": 2, "uscc": u, "column": column, "value": value}]}
    assert rows(con, f"SELECT count(*) FROM {table}") == [(t.rows_accepted,)]


def test_valid_edge_values_are_accepted(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"][0] |= {"reg_date": "2025-09-30", "reg_capital": "0", "region_code": "320812"}
    tables["enterprises"][1] |= {"industry_code": "C39", "status": "注销", "reg_capital": " 12.5 "}
    tables["annual_reports"][0] |= {"year": "1990", "employees": "0", "revenue": "50.0"}
    tables["tax"][0] |= {"year": "2025", "credit_rating": ""}
    tables["social_insurance"][0] |= {"ui_arrears": "TRUE"}
    tables["certifications"][0] |= {"cert_date": "2025-09-30", "expiry_date": ""}
    con, report = load(write_snapshot(tmp_path, tables))
    assert report.rejected_total == 0
    assert rows(con, f"SELECT reg_capital FROM enterprises WHERE uscc = '{uscc(1)}'") == [(Decimal("12.50"),)]
    assert rows(con, "SELECT ui_arrears FROM social_insurance WHERE year = 2024 ORDER BY uscc LIMIT 1") == [
        (True,)
    ]


def test_a_row_breaking_several_rules_counts_once_per_rule_and_is_rejected_once(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"][1] |= {"status": "营业", "reg_capital": "-5", "reg_date": "2030-01-01"}
    tables["annual_reports"][1] |= {"employees": "-1", "revenue": "-1", "total_assets": "-2"}
    _, report = load(write_snapshot(tmp_path, tables))
    ent = report.tables["enterprises"]
    assert ent.rejected == {"negative_money": 1, "future_date": 1, "unknown_status": 1}
    assert ent.rows_accepted == 2
    ar = report.tables["annual_reports"]
    # Two money columns broken in one row: one row under negative_money; the enterprise is gone too.
    assert ar.rejected == {"negative_money": 1, "negative_count": 1, "orphan": 1}
    assert ar.examples["negative_money"] == [
        {"row": 3, "uscc": uscc(1), "column": "revenue", "value": "-1.00"}
    ]
    assert ar.rows_accepted == 2
    assert report.rejected_total == 1 + 5  # the enterprise, and its row in each yearly, credit and bank table


def test_duplicated_key_rejects_all_its_rows(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"].append(enterprise(0, name="另一家公司"))
    tables["tax"].append(tables["tax"][2] | {"tax_paid": "1.00"})
    con, report = load(write_snapshot(tmp_path, tables))
    ent = report.tables["enterprises"]
    assert ent.rejected == {"duplicate_key": 2}
    assert ent.examples["duplicate_key"] == [
        {"row": 2, "uscc": C0, "column": "uscc", "value": C0},
        {"row": 5, "uscc": C0, "column": "uscc", "value": C0},
    ]
    assert rows(con, "SELECT count(*) FROM enterprises WHERE uscc = ?", [C0]) == [(0,)]
    tax = report.tables["tax"]
    assert tax.rejected == {"duplicate_key": 2, "orphan": 1}
    assert [e["row"] for e in tax.examples["duplicate_key"]] == [4, 5]
    assert tax.examples["duplicate_key"][0]["column"] == "uscc, year"
    assert tax.examples["duplicate_key"][0]["value"] == f"{uscc(2)}, 2024"
    assert rows(con, "SELECT uscc FROM tax") == [(uscc(1),)]


def test_rows_without_a_key_are_missing_not_duplicated(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"][0]["uscc"] = ""
    tables["enterprises"][1]["uscc"] = ""
    _, report = load(write_snapshot(tmp_path, tables))
    assert report.tables["enterprises"].rejected == {"missing_key": 2}


def test_rejected_enterprise_makes_its_other_rows_orphans(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"][0]["status"] = "营业"
    con, report = load(write_snapshot(tmp_path, tables))
    for name in ("annual_reports", "tax", "social_insurance", "credit", "certifications", "bank_accounts"):
        assert report.tables[name].rejected == {"orphan": 1}, name
        assert rows(con, f"SELECT count(*) FROM {name} WHERE uscc = ?", [C0]) == [(0,)]
    assert rows(con, "SELECT count(*) FROM tax") == [(2,)]


def test_nulls_are_counted_per_column_over_accepted_rows_not_rejected(tmp_path: Path) -> None:
    tables = default_tables()
    tables["annual_reports"][0]["revenue"] = ""
    tables["annual_reports"][1]["revenue"] = ""
    tables["annual_reports"][2] |= {"revenue": "", "employees": "-1"}  # rejected: its NULL is not counted
    tables["enterprises"][2]["contact_phone"] = ""
    _, report = load(write_snapshot(tmp_path, tables))
    ar = report.tables["annual_reports"]
    assert ar.rejected == {"negative_count": 1}
    assert ar.nulls == {"uscc": 0, "year": 0, "employees": 0, "revenue": 2, "total_assets": 0}
    assert report.tables["enterprises"].nulls["contact_phone"] == 1


def test_dates_are_checked_against_taken_at_then_the_today_argument(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"][0]["reg_date"] = "2025-10-01"
    with_yaml = write_snapshot(tmp_path / "a", tables)  # taken_at 2025-09-30
    _, report = load(with_yaml, today=dt.date(2026, 1, 1))
    assert report.tables["enterprises"].rejected == {"future_date": 1}
    assert (report.taken_at, report.today) == (dt.date(2025, 9, 30), dt.date(2025, 9, 30))
    without_yaml = write_snapshot(tmp_path / "b", tables, taken_at=None)
    _, report = load(without_yaml, today=dt.date(2026, 1, 1))
    assert report.tables["enterprises"].rejected == {}
    assert (report.taken_at, report.today) == (None, dt.date(2026, 1, 1))
    _, report = load(without_yaml, today=dt.date(2025, 9, 30))
    assert report.tables["enterprises"].rejected == {"future_date": 1}


def test_uscc_check_agrees_with_stdnum_on_codes_written_as_keys(tmp_path: Path) -> None:
    """The one USCC check (`matcher.codes.uscc_valid`, SQL on both engines) against python-stdnum, on
    codes as stored keys are written (ASCII, upper case, no separators): stdnum would accept lower case
    and a "-", which joins on the key would not, so those are rejected."""
    rng = random.Random(7)
    good = [uscc(n, region) for n in range(40) for region in ("320812", "110105")]
    mangled = [bad_check(c) for c in good[:20]]
    mangled += [c[:8] + rng.choice("IOSVZ") + c[9:] for c in good[20:30]]  # outside the alphabet
    mangled += [c[:17] for c in good[30:35]] + [c + "0" for c in good[35:40]]  # wrong length
    mangled += ["A" + c[1:] for c in good[40:45]]  # a letter among the first 8
    not_keys = [good[45].lower(), good[46][:8] + "-" + good[46][8:], " " + good[47]]
    codes = good + mangled + not_keys
    con = duckdb.connect()
    con.execute("CREATE TABLE t (code VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[c] for c in codes])
    check = uscc_valid(exp.column("code")).sql("duckdb")
    verdicts = dict(con.execute(f"SELECT code, {check} FROM t").fetchall())
    canonical = {c: c.isascii() and c.isalnum() and c == c.upper() for c in codes}
    assert verdicts == {c: canonical[c] and stdnum_uscc.is_valid(c) for c in codes}
    assert sum(verdicts.values()) == len(good)  # every code but the good ones is refused


# --- the fingerprint ------------------------------------------------------------------------------------


def test_csv_and_parquet_of_the_same_content_give_the_same_tables_and_fingerprint(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"][2]["contact_phone"] = ""
    tables["payments"] = [
        {"uscc": C0, "policy_id": "p1", "item_id": "i1", "period": "2024", "amount": "500.00"}
    ]
    csv_dir = write_snapshot(tmp_path / "csv", tables)
    parquet_dir = write_snapshot(tmp_path / "parquet", tables)
    for name, table_rows in tables.items():
        write_parquet(parquet_dir, name, list(reversed(table_rows)))  # row order does not matter either
    con_csv, from_csv = load(csv_dir)
    con_parquet, from_parquet = load(parquet_dir)
    assert from_csv.fingerprint == from_parquet.fingerprint
    assert from_csv.fingerprint.startswith("sha256:")
    for name in snapshot.TABLE_NAMES:
        assert rows(con_csv, f"SELECT * FROM {name}") == rows(con_parquet, f"SELECT * FROM {name}"), name


def test_parquet_columns_of_compatible_types_are_cast(tmp_path: Path) -> None:
    tables = default_tables()
    directory = write_snapshot(tmp_path / "p", tables)
    write_parquet(
        directory, "annual_reports", tables["annual_reports"], {"year": pa.int64(), "employees": pa.float64()}
    )
    write_parquet(
        directory, "tax", tables["tax"], {"tax_paid": pa.float64(), "rd_expense": pa.decimal128(20, 4)}
    )
    write_parquet(directory, "social_insurance", tables["social_insurance"], {"ui_arrears": pa.int8()})
    write_parquet(directory, "certifications", tables["certifications"], {"cert_date": pa.timestamp("us")})
    _, report = load(directory)
    assert report.rejected_total == 0
    assert report.fingerprint == load(write_snapshot(tmp_path / "c", tables))[1].fingerprint


def test_parquet_values_that_would_lose_information_are_bad_values(tmp_path: Path) -> None:
    tables = default_tables()
    tables["annual_reports"][0]["employees"] = "50.5"
    tables["social_insurance"][0]["ui_arrears"] = "2"
    directory = write_snapshot(tmp_path, tables)
    write_parquet(directory, "annual_reports", tables["annual_reports"], {"employees": pa.float64()})
    write_parquet(directory, "social_insurance", tables["social_insurance"], {"ui_arrears": pa.int8()})
    _, report = load(directory)
    assert report.tables["annual_reports"].examples == {
        "bad_value": [{"row": 1, "uscc": C0, "column": "employees", "value": "50.5"}]  # Parquet rows from 1
    }
    assert report.tables["social_insurance"].rejected == {"bad_value": 1}


def test_fingerprint_changes_when_one_value_changes(tmp_path: Path) -> None:
    before = load(write_snapshot(tmp_path / "a", default_tables()))[1].fingerprint
    tables = default_tables()
    tables["tax"][2]["tax_paid"] = "100000.01"
    assert load(write_snapshot(tmp_path / "b", tables))[1].fingerprint != before
    again = write_snapshot(tmp_path / "c", default_tables())
    os.utime(again / "tax.csv", (0, 0))  # timestamps are not contents
    assert load(again)[1].fingerprint == before


# --- tables that cannot be used ---------------------------------------------------------------------------


def refused(directory: Path) -> SnapshotError:
    with pytest.raises(SnapshotError) as e:
        load(directory)
    return e.value


def test_missing_column_names_the_file_and_the_column(tmp_path: Path) -> None:
    tables = default_tables()
    for row in tables["tax"]:
        del row["credit_rating"]
    error = refused(write_snapshot(tmp_path, tables))
    assert error.file is not None and error.file.endswith("tax.csv")
    assert error.field == "credit_rating"
    assert "表头应包含" in str(error)


def test_missing_required_file_is_named(tmp_path: Path) -> None:
    tables = default_tables()
    del tables["credit"]
    error = refused(write_snapshot(tmp_path, tables))
    assert "credit.parquet 或 credit.csv" in str(error)


def test_csv_and_parquet_of_one_table_are_refused(tmp_path: Path) -> None:
    tables = default_tables()
    directory = write_snapshot(tmp_path, tables)
    write_parquet(directory, "credit", tables["credit"])
    write_snapshot(directory, {"credit": tables["credit"]})
    assert "同时存在 credit.parquet 和 credit.csv" in str(refused(directory))


@pytest.mark.parametrize(
    ("table", "column", "kind", "says"),
    [
        ("bank_accounts", "uscc", pa.int64(), "前导零"),
        ("enterprises", "region_code", pa.int32(), "前导零"),
        ("enterprises", "name", pa.int32(), "应为文本"),
        ("enterprises", "reg_date", pa.int32(), "不能无损转换为 DATE"),
        ("credit", "serious_dishonest", pa.date32(), "不能无损转换为 BOOLEAN"),
    ],
)
def test_parquet_column_of_a_type_that_loses_information_is_refused(
    tmp_path: Path, table: str, column: str, kind: pa.DataType, says: str
) -> None:
    tables = default_tables()
    for i, row in enumerate(tables[table]):
        row[column] = str(20150601 + i) if kind != pa.date32() else "2015-06-01"
    directory = write_snapshot(tmp_path, tables)
    write_parquet(directory, table, tables[table], {column: kind})
    error = refused(directory)
    assert error.file is not None and error.file.endswith(f"{table}.parquet")
    assert error.field == column
    assert says in str(error)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("uscc,serious_dishonest,abnormal_operation\n淮安,否,否\n".encode("gbk"), "UTF-8"),
        (b"", "缺少表头"),
        (f"uscc,serious_dishonest,abnormal_operation\n{C0},false\n".encode(), "无法读取"),
        (f"uscc,uscc,serious_dishonest,abnormal_operation\n{C0},{C0},false,false\n".encode(), "重复"),
    ],
)
def test_unreadable_csv_is_refused_not_skipped(tmp_path: Path, content: bytes, says: str) -> None:
    directory = write_snapshot(tmp_path, default_tables())
    (directory / "credit.csv").write_bytes(content)
    error = refused(directory)
    assert error.file is not None and error.file.endswith("credit.csv")
    assert says in str(error)


# --- the conformance snapshot and the report ---------------------------------------------------------------


def test_conformance_snapshot_rejects_exactly_its_bad_rows() -> None:
    _, report = load(CONFORMANCE)
    ent = report.tables["enterprises"]
    assert (ent.rows_read, ent.rows_accepted) == (802, 799)
    bad = "91320803AYJQJF0DC0"  # the bad check character, on the last data row
    twice = "91320830TJWXC3ULYR"  # on rows 13 and 803
    assert ent.rejected == {"bad_uscc": 1, "duplicate_key": 2}
    assert ent.examples["bad_uscc"] == [{"row": 802, "uscc": bad, "column": "uscc", "value": bad}]
    assert [e["row"] for e in ent.examples["duplicate_key"]] == [13, 803]
    # Every other rejection is a row of the duplicated enterprise, gone from the accepted table.
    others = {name: t.rejected for name, t in report.tables.items() if name != "enterprises" and t.rejected}
    assert others == {
        "annual_reports": {"orphan": 2},
        "tax": {"orphan": 1},
        "social_insurance": {"orphan": 1},
        "credit": {"orphan": 1},
        "certifications": {"orphan": 1},
        "bank_accounts": {"orphan": 1},
    }
    assert {e["uscc"] for t in report.tables.values() for e in t.examples.get("orphan", [])} == {twice}
    assert report.rejected_total == 3 + 7


def test_report_as_json_and_as_text_for_the_data_office(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"][0]["uscc"] = bad_check(C0)
    _, report = load(write_snapshot(tmp_path, tables))
    data = json.loads(json.dumps(report.to_json(), ensure_ascii=False))
    assert data["fingerprint"] == report.fingerprint
    assert data["taken_at"] == "2025-09-30"
    assert data["tables"]["enterprises"]["rejected"] == {"bad_uscc": 1}
    assert data["tables"]["enterprises"]["rows_rejected"] == 1
    assert data["tables"]["enterprises"]["examples"]["bad_uscc"][0]["row"] == 2
    assert data["tables"]["tax"]["rejected"] == {"orphan": 1}
    assert data["tables"]["payments"]["file"] is None
    text = report.to_text()
    assert "表 enterprises" in text and "读入 3 行，接受 2 行，拒绝 1 行" in text
    assert "规则 统一社会信用代码校验位错误 (bad_uscc)：1 行" in text
    assert f"第 2 行  uscc={bad_check(C0)}" in text
    assert "企业不在已接受的企业表中 (orphan)" in text


def test_check_command_prints_the_report_and_exits_zero_with_rejected_rows(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"][0]["uscc"] = bad_check(C0)
    directory = write_snapshot(tmp_path / "s", tables)
    result = CliRunner().invoke(
        app,
        ["snapshot", "check", str(directory), "--json", str(tmp_path / "r.json"), "--today", "2025-01-01"],
    )
    assert result.exit_code == 0, result.output
    assert "统一社会信用代码校验位错误 (bad_uscc)：1 行" in result.output
    saved = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert saved["tables"]["enterprises"]["rejected"] == {"bad_uscc": 1}


def test_check_command_exits_one_naming_the_unusable_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = default_tables()
    for row in tables["tax"]:
        del row["credit_rating"]
    directory = write_snapshot(tmp_path, tables)
    monkeypatch.setattr(sys, "argv", ["zhida", "snapshot", "check", str(directory)])
    with pytest.raises(SystemExit) as exited:
        main()  # the console script: a ZhidaError becomes its message and exit code 1
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "tax.csv" in err and "credit_rating" in err


def test_statistics_listing_is_optional_and_checked_like_the_other_yearly_tables(tmp_path: Path) -> None:
    tables = default_tables()
    tables["stats_listing"] = [
        {"uscc": C0, "year": "2024", "above_scale": "true"},
        {"uscc": uscc(1), "year": "2024", "above_scale": "是"},  # bad_value
        {"uscc": uscc(2), "year": "2026", "above_scale": "false"},  # after taken_at's year
        {"uscc": uscc(99), "year": "2024", "above_scale": "true"},  # orphan
    ]
    con, report = load(write_snapshot(tmp_path / "with", tables))
    t = report.tables["stats_listing"]
    assert t.rejected == {"bad_value": 1, "year_out_of_range": 1, "orphan": 1}
    assert rows(con, "SELECT uscc, year, above_scale FROM stats_listing") == [(C0, 2024, True)]
    con, report = load(write_snapshot(tmp_path / "without", default_tables()))
    assert report.tables["stats_listing"].file is None
    assert rows(con, "SELECT count(*) FROM stats_listing") == [(0,)]
