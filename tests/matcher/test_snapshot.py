"""Loading and validating registry snapshots: every rule rejects what it should and reports it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from matcher.snapshot import load_snapshot
from rules.errors import SnapshotError
from tests.matcher.snapshots import bad_check, default_tables, enterprise, uscc, write_snapshot

CONFORMANCE = Path(__file__).resolve().parent.parent / "conformance" / "snapshot"


def load(directory: Path) -> tuple[duckdb.DuckDBPyConnection, Any]:
    con = duckdb.connect()
    return con, load_snapshot(directory, con)


def test_valid_snapshot_loads_with_contract_types(tmp_path: Path) -> None:
    con, report = load(write_snapshot(tmp_path, default_tables()))
    assert report.rejected_total == 0
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE social_insurance)").fetchall())
    assert types == {
        "uscc": "VARCHAR",
        "year": "INTEGER",
        "insured_start": "BIGINT",
        "insured_end": "BIGINT",
        "ui_premium_paid": "DECIMAL(18,2)",
        "ui_arrears": "BOOLEAN",
        "new_graduate_hires": "BIGINT",
    }
    assert con.execute("SELECT count(*) FROM payments").fetchall() == [(0,)]  # optional table, absent


def test_csv_keeps_leading_zeros_and_chinese_text(tmp_path: Path) -> None:
    tables = default_tables(1)
    tables["bank_accounts"][0]["account_no"] = "0012345"
    con, _ = load(write_snapshot(tmp_path, tables))
    assert con.execute("SELECT account_no FROM bank_accounts").fetchall() == [("0012345",)]
    assert con.execute("SELECT name FROM enterprises").fetchall() == [("淮安测试企业000有限公司",)]


@pytest.mark.parametrize(
    ("table", "change", "rule", "column"),
    [
        ("enterprises", {"uscc": bad_check(uscc(0))}, "bad_uscc", "uscc"),
        ("enterprises", {"reg_date": "2026-01-01"}, "future_date", "reg_date"),
        ("enterprises", {"status": "营业"}, "unknown_status", "status"),
        ("enterprises", {"region_code": "329999"}, "unknown_region", "region_code"),
        ("enterprises", {"industry_code": "C9999"}, "unknown_industry", "industry_code"),
        ("enterprises", {"reg_capital": "-1.00"}, "negative_money", "reg_capital"),
        ("enterprises", {"reg_date": "2015-13-01"}, "bad_value", "reg_date"),
        ("enterprises", {"uscc": ""}, "missing_key", "uscc"),
        ("annual_reports", {"employees": "-3"}, "negative_count", "employees"),
        ("annual_reports", {"revenue": "十万"}, "bad_value", "revenue"),
        ("annual_reports", {"year": "1980"}, "year_out_of_range", "year"),
        ("tax", {"credit_rating": "AA"}, "unknown_credit_rating", "credit_rating"),
        ("certifications", {"cert_type": "gaoxin"}, "unknown_cert_type", "cert_type"),
        (
            "certifications",
            {"cert_date": "2026-01-01", "expiry_date": "2028-01-01"},
            "future_date",
            "cert_date",
        ),
        ("certifications", {"expiry_date": "2022-01-01"}, "expiry_before_cert", "expiry_date"),
        ("bank_accounts", {"uscc": uscc(99)}, "orphan", "uscc"),
    ],
)
def test_each_rule_rejects_and_reports_its_row(
    tmp_path: Path, table: str, change: dict[str, str], rule: str, column: str
) -> None:
    tables = default_tables()
    tables[table][0] |= change
    _con, report = load(write_snapshot(tmp_path, tables))
    t = report.tables[table]
    assert t.rejected == {rule: 1}
    assert t.rows_accepted == t.rows_read - 1
    (example,) = t.examples[rule]
    assert example["row"] == 2  # the first data row, counting the CSV header as row 1
    assert example["column"] == column


def test_rejected_enterprise_takes_its_other_rows_along_as_orphans(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"][1]["status"] = "营业"
    con, report = load(write_snapshot(tmp_path, tables))
    assert report.tables["tax"].rejected == {"orphan": 1}
    assert con.execute("SELECT count(*) FROM tax").fetchall() == [(2,)]


def test_duplicated_key_rejects_all_its_rows(tmp_path: Path) -> None:
    tables = default_tables()
    tables["enterprises"].append(enterprise(0, name="另一家公司"))
    con, report = load(write_snapshot(tmp_path, tables))
    assert report.tables["enterprises"].rejected["duplicate_key"] == 2
    assert con.execute(f"SELECT count(*) FROM enterprises WHERE uscc = '{uscc(0)}'").fetchall() == [(0,)]


def test_nulls_are_counted_per_column_not_rejected(tmp_path: Path) -> None:
    tables = default_tables()
    tables["annual_reports"][0]["revenue"] = ""
    _, report = load(write_snapshot(tmp_path, tables))
    assert report.tables["annual_reports"].rejected == {}
    assert report.tables["annual_reports"].nulls["revenue"] == 1


def test_csv_and_parquet_of_the_same_content_have_the_same_fingerprint(tmp_path: Path) -> None:
    csv_dir = write_snapshot(tmp_path / "csv", default_tables())
    parquet_dir = write_snapshot(tmp_path / "parquet", default_tables())
    con = duckdb.connect()
    load_snapshot(csv_dir, con)
    for name in ("annual_reports", "tax"):
        pq.write_table(con.sql(f"SELECT * FROM {name}").to_arrow_table(), parquet_dir / f"{name}.parquet")
        (parquet_dir / f"{name}.csv").unlink()
    assert load(csv_dir)[1].fingerprint == load(parquet_dir)[1].fingerprint


def test_fingerprint_changes_when_one_value_changes(tmp_path: Path) -> None:
    before = load(write_snapshot(tmp_path / "a", default_tables()))[1].fingerprint
    tables = default_tables()
    tables["tax"][2]["tax_paid"] = "100000.01"
    assert load(write_snapshot(tmp_path / "b", tables))[1].fingerprint != before


def test_missing_column_is_unusable_and_named(tmp_path: Path) -> None:
    tables = default_tables()
    for row in tables["tax"]:
        del row["credit_rating"]
    with pytest.raises(SnapshotError, match="credit_rating") as e:
        load(write_snapshot(tmp_path, tables))
    assert "tax.csv" in str(e.value)


def test_missing_required_file_is_unusable(tmp_path: Path) -> None:
    tables = default_tables()
    del tables["credit"]
    with pytest.raises(SnapshotError, match="credit"):
        load(write_snapshot(tmp_path, tables))


def test_integer_uscc_in_parquet_is_unusable(tmp_path: Path) -> None:
    directory = write_snapshot(tmp_path, default_tables())
    (directory / "bank_accounts.csv").unlink()
    pq.write_table(
        pa.table(
            {"uscc": [1, 2], "bank_name": ["a", "b"], "account_no": ["1", "2"], "account_name": ["x", "y"]}
        ),
        directory / "bank_accounts.parquet",
    )
    with pytest.raises(SnapshotError, match="前导零") as e:
        load(directory)
    assert e.value.field == "uscc"


def test_conformance_snapshot_rejects_exactly_its_bad_rows() -> None:
    _con, report = load(CONFORMANCE)
    ent = report.tables["enterprises"]
    assert ent.rows_read == 802
    assert ent.rejected == {"bad_uscc": 1, "duplicate_key": 2}  # one bad check character, one USCC twice
    assert ent.rows_accepted == 799
    assert report.rejected_total == ent.rows_read - ent.rows_accepted + sum(
        t.rejected.get("orphan", 0) for name, t in report.tables.items() if name != "enterprises"
    )


def test_check_command_reports_and_exits_zero_with_rejections(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    tables = default_tables()
    tables["enterprises"][0]["uscc"] = bad_check(uscc(0))
    directory = write_snapshot(tmp_path / "s", tables)
    result = CliRunner().invoke(
        app, ["snapshot", "check", str(directory), "--json", str(tmp_path / "r.json")]
    )
    assert result.exit_code == 0, result.output
    assert "bad_uscc" in result.output
    assert '"bad_uscc": 1' in (tmp_path / "r.json").read_text(encoding="utf-8")
