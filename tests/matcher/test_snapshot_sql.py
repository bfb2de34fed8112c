"""The snapshot load's one pass in SQL (`matcher.snapshot`): a rejected row is neither lost nor misplaced
when the rules run over many vectors at once (the USCC check character as a vectorised function, the
other row rules as bits while the file is read, regions and industries per distinct code, duplicate keys
by GROUP BY), and a load leaves its connection as it found it."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from sqlglot import exp
from stdnum.cn import uscc as stdnum_uscc

from matcher.codes import is_uscc, uscc_valid, uscc_valid_array
from matcher.snapshot import SnapshotReport, load_snapshot
from rules.errors import SnapshotError
from tests.matcher.snapshots import bad_check, default_tables, enterprise, uscc, write_parquet, write_snapshot

N = 5_000
"""Enterprises in the large snapshot: more than two of DuckDB's vectors (2,048 rows)."""


def _codes() -> list[str | None]:
    rng = random.Random(29)
    good = [uscc(n, region) for n in range(0, 4000, 37) for region in ("320812", "350102", "610103")]
    bad = [bad_check(c) for c in good[:40]]
    bad += [c[:8] + rng.choice("IOSVZ") + c[9:] for c in good[40:60]]
    bad += [c[:17] for c in good[60:70]] + [c + "0" for c in good[70:80]] + ["A" + c[1:] for c in good[80:90]]
    bad += [good[90].lower(), good[91][:8] + "-" + good[91][8:], " " + good[92][1:], "", "９" + good[93][1:]]
    bad += [good[94][:17] + "Ｌ"[:1], good[95][:16] + "é"]  # multi-byte text of 18 bytes or 18 characters
    return [*good, *bad, None]


@pytest.mark.parametrize("offset", [0, 1, 37])
def test_the_vectorised_uscc_check_agrees_with_stdnum_and_with_the_sql_check(offset: int) -> None:
    codes = _codes()
    array = pa.array(["x"] * offset + codes, pa.string()).slice(offset)  # an array that does not start at 0
    vectorised = uscc_valid_array(array).to_pylist()
    con = duckdb.connect()
    con.execute("CREATE TABLE t (n INTEGER, code VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(codes)))
    check = uscc_valid(exp.column("code")).sql("duckdb")
    in_sql = [v for _, v in con.execute(f"SELECT n, {check} FROM t ORDER BY n").fetchall()]
    canonical = [None if c is None else c.isascii() and c.isalnum() and c == c.upper() for c in codes]
    expected = [
        None if c is None else bool(ok) and stdnum_uscc.is_valid(c)
        for c, ok in zip(codes, canonical, strict=True)
    ]
    assert vectorised == in_sql == expected
    assert vectorised == [None if c is None else is_uscc(c) for c in codes]
    assert sum(1 for v in vectorised if v) == 3 * len(range(0, 4000, 37))


def _large(directory: Path, parquet: bool) -> tuple[Path, dict[str, Any]]:
    """N enterprises with one annual report each; bad rows planted across vector boundaries.

    Returns the folder and what must be rejected: per rule, the 0-based data rows, and the rows of
    annual_reports that become orphans."""
    tables = default_tables(3)
    rows = [enterprise(n) for n in range(N)]
    planted: dict[str, list[int]] = {
        "bad_uscc": [0, 2047, 2048, 4095, N - 1],
        "duplicate_key": [100, 3000, 4500],
        "bad_value": [2500],
        "future_date": [3500],
        "unknown_region": [1000, 2049, 4001],
        "unknown_industry": [4096],
    }
    for n in planted["bad_uscc"]:
        rows[n]["uscc"] = bad_check(rows[n]["uscc"])
    for n in planted["duplicate_key"][1:]:
        rows[n]["uscc"] = rows[planted["duplicate_key"][0]]["uscc"]
    rows[2500]["reg_date"] = "2025-02-30"
    rows[3500]["reg_date"] = "2025-10-01"
    for n in planted["unknown_region"]:
        rows[n]["region_code"] = "329999"
    rows[4096]["industry_code"] = "C9999"
    tables["enterprises"] = rows
    reports = [
        {"uscc": r["uscc"], "year": "2024", "employees": "5", "revenue": "1.00", "total_assets": "2.00"}
        for r in rows
    ]
    tables["annual_reports"] = reports
    rejected = sorted({n for ns in planted.values() for n in ns})
    # The duplicated code's own first row is rejected too, so each of its three reports is an orphan; a
    # bad-USCC row's report is an orphan of a code that was never accepted.
    orphans = sorted(rejected)
    folder = write_snapshot(directory, tables)
    if parquet:
        write_parquet(folder, "enterprises", rows, {"reg_date": pa.string()})  # a date Parquet cannot hold
        write_parquet(folder, "annual_reports", reports)
    return folder, {"planted": planted, "rejected": rejected, "orphans": orphans, "rows": rows}


@pytest.mark.parametrize("parquet", [False, True], ids=["csv", "parquet"])
def test_rejected_rows_across_many_vectors_are_each_reported_at_their_line(
    tmp_path: Path, parquet: bool
) -> None:
    folder, expected = _large(tmp_path, parquet)
    first = 1 if parquet else 2  # Parquet rows count from 1; a CSV's first data row is line 2
    con = duckdb.connect()
    report = load_snapshot(folder, con)
    ent = report.tables["enterprises"]
    planted = expected["planted"]
    assert ent.rejected == {rule: len(rows) for rule, rows in planted.items()}
    for rule, rows in planted.items():
        assert [e["row"] for e in ent.examples[rule]] == [n + first for n in rows[:5]], rule
    assert ent.examples["bad_value"][0] | {"row": 0} == {
        "row": 0,
        "uscc": expected["rows"][2500]["uscc"],
        "column": "reg_date",
        "value": "2025-02-30",
    }
    assert (ent.rows_read, ent.rows_accepted) == (N, N - len(expected["rejected"]))
    accepted = {u for (u,) in con.execute("SELECT uscc FROM enterprises").fetchall()}
    rejected_codes = {expected["rows"][n]["uscc"] for n in expected["rejected"]}
    assert accepted == {r["uscc"] for r in expected["rows"]} - rejected_codes
    ar = report.tables["annual_reports"]
    assert ar.rejected == {"duplicate_key": 3, "orphan": len(expected["orphans"])}
    assert [e["row"] for e in ar.examples["orphan"]] == [n + first for n in expected["orphans"][:5]]
    assert ar.rows_accepted == N - len(expected["orphans"])
    assert con.execute("SELECT count(*), count(DISTINCT uscc) FROM annual_reports").fetchall() == [
        (ar.rows_accepted, ar.rows_accepted)
    ]
    # The accepted rows keep their key order and nothing of the load's work columns.
    assert [u for (u,) in con.execute("SELECT uscc FROM enterprises").fetchall()] == sorted(accepted)
    assert [c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE enterprises)").fetchall()] == [
        "uscc",
        "name",
        "reg_date",
        "region_code",
        "industry_code",
        "status",
        "reg_capital",
        "contact_phone",
    ]


def test_csv_and_parquet_of_the_large_snapshot_agree_on_everything_but_row_numbers(tmp_path: Path) -> None:
    csv_report = load_snapshot(_large(tmp_path / "csv", False)[0], duckdb.connect())
    parquet_report = load_snapshot(_large(tmp_path / "parquet", True)[0], duckdb.connect())
    assert csv_report.fingerprint == parquet_report.fingerprint
    for name, table in csv_report.tables.items():
        other = parquet_report.tables[name]
        assert (table.rejected, table.rows_accepted, table.nulls) == (
            other.rejected,
            other.rows_accepted,
            other.nulls,
        )


def _functions(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(
        "SELECT count(*) FROM duckdb_functions() WHERE starts_with(function_name, '_zhida')"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_load_leaves_its_connection_as_it_found_it_even_when_a_table_is_refused(tmp_path: Path) -> None:
    good = write_snapshot(tmp_path / "good", default_tables())
    broken = write_snapshot(tmp_path / "broken", default_tables())
    (broken / "credit.csv").write_text(f"uscc,serious_dishonest,abnormal_operation\n{uscc(0)},false\n")
    con = duckdb.connect()
    first: SnapshotReport = load_snapshot(good, con, today=dt.date(2025, 9, 30))
    with pytest.raises(SnapshotError) as refused:
        load_snapshot(broken, con)
    assert refused.value.file is not None and refused.value.file.endswith("credit.csv")
    assert _functions(con) == 0
    assert {
        t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    } == set()
    assert "credit" not in {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    again = load_snapshot(good, con)  # the same connection loads again, with the same result
    assert again.fingerprint == first.fingerprint and again.rejected_total == 0
    assert _functions(con) == 0


@pytest.mark.parametrize("parquet", [False, True], ids=["csv", "parquet"])
def test_a_load_for_a_match_run_keeps_the_same_rows_report_and_fingerprint_without_ordering(
    tmp_path: Path, parquet: bool
) -> None:
    folder, _ = _large(tmp_path, parquet)
    ordered_con, unordered_con = duckdb.connect(), duckdb.connect()
    ordered = load_snapshot(folder, ordered_con)
    unordered = load_snapshot(folder, unordered_con, ordered=False)
    assert unordered.fingerprint == ordered.fingerprint
    for name, table in ordered.tables.items():
        other = unordered.tables[name]
        assert (other.rows_read, other.rows_accepted, other.rejected, other.examples, other.nulls) == (
            table.rows_read,
            table.rows_accepted,
            table.rejected,
            table.examples,
            table.nulls,
        ), name
        assert (
            unordered_con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
            == ordered_con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()
        ), name
