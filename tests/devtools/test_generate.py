"""The synthetic snapshot generator: Contract 2 tables, valid codes, realistic mixes, deliberate faults."""

from __future__ import annotations

import datetime as dt
import filecmp
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
import yaml
from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import InvalidChecksum
from typer.testing import CliRunner

from api.commands import generate as generate_command
from devtools.generate import (
    COUNTIES,
    INDUSTRIES,
    SCHEMAS,
    TABLES,
    UNKNOWN_INDUSTRY,
    UNKNOWN_REGION,
    USCC_ALPHABET,
    generate_snapshot,
    uscc_check_values,
)
from rules.errors import SnapshotError

N = 30_000  # two generation blocks: 25,000 + 5,000
SEED = 11
COUNTY_CODES = {c.code for c in COUNTIES}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("snapshot")
    generate_snapshot(out, N, SEED, chunk_size=25_000)
    return out


@pytest.fixture(scope="module")
def db(snapshot: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    for table in TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{snapshot / table}.parquet')")
    yield con
    con.close()


def one(db: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = db.execute(sql).fetchone()
    assert row is not None
    return row[0]


def fraction(db: duckdb.DuckDBPyConnection, sql: str) -> float:
    value = one(db, sql)
    assert isinstance(value, float | int)
    return float(value)


# --- determinism -------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(snapshot: Path, tmp_path: Path) -> None:
    again = generate_snapshot(tmp_path, N, SEED, chunk_size=25_000)
    assert sum(again.values()) > N
    for table in TABLES:
        assert filecmp.cmp(snapshot / f"{table}.parquet", tmp_path / f"{table}.parquet", shallow=False), table


def test_chunk_size_changes_row_groups_not_content(snapshot: Path, tmp_path: Path) -> None:
    generate_snapshot(tmp_path, N, SEED, chunk_size=1_000_000)
    for table in TABLES:
        assert pq.ParquetFile(tmp_path / f"{table}.parquet").num_row_groups <= 1
        assert pq.read_table(tmp_path / f"{table}.parquet").equals(
            pq.read_table(snapshot / f"{table}.parquet")
        )
    assert pq.ParquetFile(snapshot / "enterprises.parquet").num_row_groups == 2


def test_another_seed_gives_another_snapshot(snapshot: Path, tmp_path: Path) -> None:
    generate_snapshot(tmp_path, N, SEED + 1, chunk_size=25_000)
    ours = pq.read_table(snapshot / "enterprises.parquet")
    theirs = pq.read_table(tmp_path / "enterprises.parquet")
    assert ours.num_rows == theirs.num_rows
    assert not set(ours["uscc"].to_pylist()) & set(theirs["uscc"].to_pylist())
    assert ours["name"].to_pylist() != theirs["name"].to_pylist()


# --- contract 2 --------------------------------------------------------------------------------------------


def test_every_table_has_the_contract_columns_and_types(snapshot: Path) -> None:
    money = pa.decimal128(18, 2)
    for table in TABLES:
        assert pq.read_schema(snapshot / f"{table}.parquet").remove_metadata() == SCHEMAS[table], table
    assert SCHEMAS["annual_reports"].field("year").type == pa.int32()
    assert SCHEMAS["annual_reports"].field("employees").type == pa.int64()
    for table, column in [
        ("enterprises", "reg_capital"),
        ("annual_reports", "revenue"),
        ("annual_reports", "total_assets"),
        ("tax", "tax_paid"),
        ("tax", "rd_expense"),
        ("social_insurance", "ui_premium_paid"),
        ("payments", "amount"),
    ]:
        assert SCHEMAS[table].field(column).type == money, (table, column)
    assert SCHEMAS["social_insurance"].field("ui_arrears").type == pa.bool_()
    assert SCHEMAS["certifications"].field("expiry_date").type == pa.date32()


def test_snapshot_yaml_names_date_sources_seed_and_size(snapshot: Path) -> None:
    meta = yaml.safe_load((snapshot / "snapshot.yaml").read_text(encoding="utf-8"))
    assert meta["taken_at"] == dt.date(2025, 9, 30)
    assert set(meta["sources"]) == set(TABLES)
    assert meta["sources"]["enterprises"]["rows"] == N
    assert meta["generator"]["seed"] == SEED
    assert meta["generator"]["enterprises"] == N


def test_yearly_tables_cover_the_two_years_before_taken_at_once_per_firm(
    db: duckdb.DuckDBPyConnection,
) -> None:
    for table in ("annual_reports", "tax", "social_insurance"):
        years = [r[0] for r in db.execute(f"SELECT DISTINCT year FROM {table} ORDER BY 1").fetchall()]
        assert years == [2023, 2024], table
        # Duplicated registrations are a fault of the enterprises table only.
        assert (
            one(db, f"SELECT count(*) FROM (SELECT uscc, year FROM {table} GROUP BY ALL HAVING count(*) > 1)")
            == 0
        )


# --- codes -------------------------------------------------------------------------------------------------


def test_usccs_are_valid_except_the_deliberately_wrong_check_characters(
    db: duckdb.DuckDBPyConnection,
) -> None:
    codes = [r[0] for r in db.execute("SELECT uscc FROM enterprises").fetchall()]
    invalid = []
    for code in codes:
        try:
            stdnum_uscc.validate(code)
        except InvalidChecksum:
            invalid.append(code)  # any other stdnum error (length, alphabet) fails the test
    assert 0.0003 < len(invalid) / len(codes) < 0.003
    assert all(code[:2] == "91" for code in codes)


def test_check_characters_agree_with_stdnum() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 31, (500, 17))
    values[:, :8] = rng.integers(0, 10, (500, 8))
    checks = uscc_check_values(values)
    for row, check in zip(values.tolist(), checks.tolist(), strict=True):
        body = "".join(USCC_ALPHABET[v] for v in row)
        assert stdnum_uscc.calc_check_digit(body) == USCC_ALPHABET[check]


def gb11714_check(body: str) -> str:
    """The organisation-code check character, written out from GB 11714-1997 as a second opinion."""
    total = sum(int(ch, 36) * w for ch, w in zip(body, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def test_organisation_codes_carry_their_gb11714_check_character(db: duckdb.DuckDBPyConnection) -> None:
    assert gb11714_check("60003734") == "1"  # 91110000600037341L, stdnum's example
    codes = [r[0] for r in db.execute("SELECT uscc FROM enterprises USING SAMPLE 2000 ROWS").fetchall()]
    assert all(gb11714_check(code[8:16]) == code[16] for code in codes)


def test_region_codes_are_the_counties_of_huaian(db: duckdb.DuckDBPyConnection) -> None:
    regions = {r[0] for r in db.execute("SELECT DISTINCT region_code FROM enterprises").fetchall()}
    assert regions == COUNTY_CODES | {UNKNOWN_REGION}
    inside = {r[0] for r in db.execute("SELECT DISTINCT uscc[3:8] FROM enterprises").fetchall()}
    assert inside == COUNTY_CODES
    assert (
        one(
            db,
            f"SELECT count(*) FROM enterprises WHERE region_code <> '{UNKNOWN_REGION}' AND uscc[3:8] <> region_code",
        )
        == 0
    )
    biggest = one(db, "SELECT region_code FROM enterprises GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
    assert biggest == "320812"  # 清江浦区, the city centre


def test_every_emitted_code_is_known_to_the_code_lists(db: duckdb.DuckDBPyConnection) -> None:
    codes = pytest.importorskip("matcher.codes")
    if not hasattr(codes, "is_known_industry"):
        pytest.skip("matcher.codes has no is_known_industry yet")
    industries = {c.code for c in INDUSTRIES}
    assert [c for c in sorted(industries) if not codes.is_known_industry(c)] == []
    assert not codes.is_known_industry(UNKNOWN_INDUSTRY)
    emitted = {r[0] for r in db.execute("SELECT DISTINCT industry_code FROM enterprises").fetchall()}
    assert emitted - industries == {UNKNOWN_INDUSTRY}
    if hasattr(codes, "is_known_region"):
        assert all(codes.is_known_region(c) for c in COUNTY_CODES)
        assert not codes.is_known_region(UNKNOWN_REGION)


def test_industry_mix_is_manufacturing_heavy_across_the_sections(db: duckdb.DuckDBPyConnection) -> None:
    share = dict(
        db.execute(
            "SELECT industry_code[1], count(*) / sum(count(*)) OVER () FROM enterprises GROUP BY 1"
        ).fetchall()
    )
    assert set(share) == set("ABCDEFGHIJKLMNOPQR")
    assert 0.18 < share["C"] < 0.27
    assert share["C"] > max(v for k, v in share.items() if k not in "CF")


# --- deliberate faults -------------------------------------------------------------------------------------


def test_each_kind_of_bad_row_is_present_at_about_a_tenth_of_a_percent(db: duckdb.DuckDBPyConnection) -> None:
    low, high = 8, 70  # expected 30 of 30,000 each
    duplicates = one(db, "SELECT count(*) - count(DISTINCT uscc) FROM enterprises")
    assert low <= duplicates <= high
    assert low <= one(db, f"SELECT count(*) FROM enterprises WHERE region_code = '{UNKNOWN_REGION}'") <= high
    assert (
        low <= one(db, f"SELECT count(*) FROM enterprises WHERE industry_code = '{UNKNOWN_INDUSTRY}'") <= high
    )
    assert low <= one(db, "SELECT count(*) FROM enterprises WHERE reg_date > DATE '2025-09-30'") <= high
    assert low <= one(db, "SELECT count(*) FROM annual_reports WHERE revenue < 0") <= high


def test_duplicated_registrations_are_two_different_rows(db: duckdb.DuckDBPyConnection) -> None:
    pairs = db.execute(
        "SELECT uscc, list(name ORDER BY name), list(reg_date) FROM enterprises GROUP BY uscc HAVING count(*) > 1"
    ).fetchall()
    assert pairs
    assert sum(names[0] != names[1] or dates[0] != dates[1] for _, names, dates in pairs) >= len(pairs) - 1


# --- distributions -----------------------------------------------------------------------------------------


def test_revenue_grows_with_employees_and_assets_follow(db: duckdb.DuckDBPyConnection) -> None:
    by_employees = fraction(
        db,
        "SELECT corr(ln(employees + 1), ln(revenue::DOUBLE + 1)) FROM annual_reports WHERE year = 2024 AND revenue > 0",
    )
    by_assets = fraction(
        db,
        "SELECT corr(ln(revenue::DOUBLE + 1), ln(total_assets::DOUBLE)) FROM annual_reports WHERE revenue > 0",
    )
    over_years = fraction(
        db,
        """SELECT corr(ln(a.revenue::DOUBLE + 1), ln(b.revenue::DOUBLE + 1))
           FROM annual_reports a JOIN annual_reports b ON a.uscc = b.uscc AND a.year = 2023 AND b.year = 2024
           WHERE a.revenue > 0 AND b.revenue > 0""",
    )
    assert by_employees > 0.5
    assert by_assets > 0.5
    assert over_years > 0.8
    assert one(db, "SELECT max(employees) FROM annual_reports") >= 1000


def test_insured_staff_carry_over_and_layoffs_sit_near_the_thresholds(db: duckdb.DuckDBPyConnection) -> None:
    carried = fraction(
        db,
        """SELECT avg((a.insured_end = b.insured_start)::INT) FROM social_insurance a
           JOIN social_insurance b ON a.uscc = b.uscc AND a.year = 2023 AND b.year = 2024""",
    )
    assert carried > 0.95
    rates = db.execute(
        """SELECT (insured_start - insured_end) / insured_start FROM social_insurance
           WHERE year = 2024 AND insured_start > 0 AND insured_end < insured_start"""
    ).fetchall()
    rates_ = np.array([r[0] for r in rates])
    total = fraction(db, "SELECT count(*) FROM social_insurance WHERE year = 2024 AND insured_start > 0")
    assert 0.1 < rates_.size / total < 0.5  # many small firms round a small cut to nobody
    assert np.mean((rates_ > 0.04) & (rates_ <= 0.07)) > 0.05
    assert np.mean((rates_ > 0.15) & (rates_ <= 0.25)) > 0.05
    assert np.any(rates_ == 0.2)  # small firms land exactly on the 20% line


def test_premiums_are_half_to_one_percent_of_payroll(db: duckdb.DuckDBPyConnection) -> None:
    median = fraction(
        db,
        """SELECT median(ui_premium_paid / ((insured_start + insured_end) / 2 * 62000))
           FROM social_insurance WHERE insured_start + insured_end > 0""",
    )
    assert 0.005 < median < 0.01
    assert one(db, "SELECT count(*) FROM social_insurance WHERE ui_premium_paid < 0") == 0


def test_rd_expense_is_a_few_percent_of_revenue_in_manufacturing_and_it(
    db: duckdb.DuckDBPyConnection,
) -> None:
    rows = db.execute(
        """SELECT e.industry_code[1], avg((t.rd_expense > 0)::INT), median(t.rd_expense / a.revenue) FILTER (t.rd_expense > 0),
                  max(t.rd_expense / a.revenue)
           FROM tax t JOIN annual_reports a USING (uscc, year) JOIN enterprises e USING (uscc)
           WHERE a.revenue > 0 AND e.industry_code[1] IN ('C', 'I', 'K') GROUP BY 1"""
    ).fetchall()
    stats = {section: (share, median, top) for section, share, median, top in rows}
    for section in ("C", "I"):
        share, median, top = stats[section]
        assert share > 0.2 and 0.01 < median < 0.08 and top <= 0.151, section
    assert stats["K"][0] < 0.01  # real estate does not do R&D


def test_credit_blacklists_and_ratings_have_realistic_rates(db: duckdb.DuckDBPyConnection) -> None:
    assert 0.004 < fraction(db, "SELECT avg(serious_dishonest::INT) FROM credit") < 0.02
    assert 0.015 < fraction(db, "SELECT avg(abnormal_operation::INT) FROM credit") < 0.06
    ratings = [
        r[0]
        for r in db.execute(
            "SELECT credit_rating FROM tax WHERE year = 2024 AND credit_rating IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC"
        ).fetchall()
    ]
    assert ratings[0] == "B" and set(ratings) == {"A", "B", "M", "C", "D"}
    assert 0.15 < fraction(db, "SELECT avg((credit_rating = 'A')::INT) FROM tax") < 0.4


def test_statuses_are_mostly_active_with_some_closed(db: duckdb.DuckDBPyConnection) -> None:
    share = dict(
        db.execute("SELECT status, count(*) / sum(count(*)) OVER () FROM enterprises GROUP BY 1").fetchall()
    )
    assert set(share) == {"存续", "在业", "迁出", "吊销", "注销"}
    assert share["存续"] + share["在业"] > 0.85


def test_some_data_is_missing(db: duckdb.DuckDBPyConnection) -> None:
    no_account = fraction(
        db, "SELECT avg((uscc NOT IN (SELECT uscc FROM bank_accounts))::INT) FROM enterprises"
    )
    assert 0.015 < no_account < 0.05
    no_report = fraction(
        db, "SELECT avg((uscc NOT IN (SELECT uscc FROM annual_reports))::INT) FROM enterprises"
    )
    assert 0.02 < no_report < 0.2
    for table, column in [
        ("annual_reports", "revenue"),
        ("annual_reports", "employees"),
        ("tax", "rd_expense"),
        ("tax", "credit_rating"),
        ("social_insurance", "ui_premium_paid"),
        ("social_insurance", "insured_start"),
        ("credit", "serious_dishonest"),
    ]:
        nulls = fraction(db, f"SELECT avg(({column} IS NULL)::INT) FROM {table}")
        assert 0.002 < nulls < 0.06, (table, column)


def test_firm_names_start_with_their_own_city_province_or_county(db: duckdb.DuckDBPyConnection) -> None:
    """A firm coded 370102 (济南) is 济南…, never 淮安市…: the name prefix follows the region code."""
    for county in COUNTIES:
        starts = {
            r[0]
            for r in db.execute(
                "SELECT DISTINCT name FROM enterprises WHERE region_code = ?", [county.code]
            ).fetchall()
        }
        assert starts
        allowed = (county.city, county.province, county.name_prefix)
        wrong = [n for n in starts if not n.startswith(allowed)]
        assert not wrong, (county.code, wrong[:3])
    assert one(db, "SELECT count(*) FROM enterprises WHERE region_code = '370102' AND name LIKE '淮安%'") == 0


def test_statistics_listing_follows_revenue_and_shows_newly_listed_firms(
    db: duckdb.DuckDBPyConnection,
) -> None:
    """统计局 名录: industrial firms listed exactly when their year's revenue reaches 2000万; some cross it."""
    wrong = one(
        db,
        """SELECT count(*) FROM stats_listing l
           JOIN annual_reports a USING (uscc, year) JOIN enterprises e USING (uscc)
           WHERE e.industry_code[1] = 'C' AND l.above_scale <> (a.revenue >= 20000000)""",
    )
    assert wrong == 0
    newly = one(
        db,
        """SELECT count(*) FROM stats_listing now JOIN stats_listing before USING (uscc)
           WHERE now.year = 2024 AND before.year = 2023 AND now.above_scale AND NOT before.above_scale""",
    )
    assert newly > 0
    assert one(db, "SELECT count(*) FROM stats_listing WHERE uscc NOT IN (SELECT uscc FROM enterprises)") == 0


def test_high_tech_firms_were_first_recognised_in_different_years_some_re_recognised(
    db: duckdb.DuckDBPyConnection,
) -> None:
    """Several certificates per firm, so first recognition and re-recognition can be told apart."""
    years = one(
        db,
        "SELECT count(DISTINCT year(first)) FROM (SELECT min(cert_date) AS first FROM certifications"
        " WHERE cert_type = 'high_tech' GROUP BY uscc)",
    )
    assert years >= 5
    renewed = one(
        db,
        "SELECT count(*) FROM (SELECT uscc FROM certifications WHERE cert_type = 'high_tech'"
        " GROUP BY uscc HAVING count(*) > 1)",
    )
    assert renewed > 0


def test_certificates_have_types_validity_and_expired_ones(db: duckdb.DuckDBPyConnection) -> None:
    types = dict(db.execute("SELECT cert_type, count(*) FROM certifications GROUP BY 1").fetchall())
    assert set(types) == {"high_tech", "srdi", "srdi_little_giant", "tech_sme"}
    assert (
        one(db, "SELECT count(*) FROM certifications WHERE uscc NOT IN (SELECT uscc FROM enterprises)") == 0
    )
    assert (
        one(
            db,
            """SELECT count(*) FROM certifications
               WHERE cert_type = 'high_tech' AND expiry_date <> cert_date + INTERVAL 3 YEAR - INTERVAL 1 DAY""",
        )
        == 0
    )
    assert one(db, "SELECT count(*) FROM certifications WHERE expiry_date < DATE '2025-09-30'") > 0
    assert one(db, "SELECT count(*) FROM certifications WHERE expiry_date IS NULL") > 0
    valid_high_tech = fraction(
        db,
        """SELECT count(DISTINCT uscc) / (SELECT count(*) FROM enterprises) FROM certifications
           WHERE cert_type = 'high_tech' AND cert_date <= DATE '2025-09-30' AND expiry_date >= DATE '2025-09-30'""",
    )
    assert 0.003 < valid_high_tech < 0.05


def test_payments_are_a_few_hundred_earlier_payouts_to_known_firms(db: duckdb.DuckDBPyConnection) -> None:
    rows = db.execute("SELECT policy_id, item_id, period, amount FROM payments").fetchall()
    assert 100 <= len(rows) <= 600
    assert all(
        re.fullmatch(r"[a-z]+-20\d\d", policy) and re.fullmatch(r"20\d\d", period)
        for policy, _, period, _ in rows
    )
    assert all(amount > 0 for *_, amount in rows)
    assert one(db, "SELECT count(*) FROM payments WHERE uscc NOT IN (SELECT uscc FROM enterprises)") == 0
    assert one(db, "SELECT count(DISTINCT period) FROM payments WHERE policy_id = 'wengang-2025'") == 2


# --- options, speed, command -------------------------------------------------------------------------------


def test_taken_at_moves_the_years_and_registration_dates(tmp_path: Path) -> None:
    generate_snapshot(tmp_path, 2_000, 5, taken_at=dt.date(2024, 6, 30))
    con = duckdb.connect()
    years = con.execute(f"SELECT DISTINCT year FROM '{tmp_path}/tax.parquet' ORDER BY 1").fetchall()
    assert [y for (y,) in years] == [2022, 2023]
    late = con.execute(
        f"SELECT count(*) FROM '{tmp_path}/enterprises.parquet' WHERE reg_date > DATE '2024-06-30'"
    ).fetchone()
    assert late is not None and late[0] < 20  # only the deliberate future dates
    policies = {
        p for (p,) in con.execute(f"SELECT DISTINCT policy_id FROM '{tmp_path}/payments.parquet'").fetchall()
    }
    assert policies <= {"wengang-2024", "kuogang-2024", "yanfa-2023"}


def test_ten_thousand_enterprises_take_a_second_or_two(tmp_path: Path) -> None:
    started = time.perf_counter()
    rows = generate_snapshot(tmp_path, 10_000, 1)
    assert time.perf_counter() - started < 4.0  # about 0.3 s on an idle core
    assert rows["enterprises"] == 10_000


def test_progress_reports_every_enterprise_once(tmp_path: Path) -> None:
    seen: list[int] = []
    generate_snapshot(tmp_path, 60_000, 2, chunk_size=50_000, progress=seen.append)
    assert seen == [50_000, 10_000]


@pytest.mark.parametrize(
    "args", [{"enterprises": 0}, {"enterprises": 10, "seed": -1}, {"enterprises": 10, "chunk_size": 0}]
)
def test_bad_arguments_are_refused(tmp_path: Path, args: dict[str, int]) -> None:
    with pytest.raises(SnapshotError):
        generate_snapshot(tmp_path, **args)  # type: ignore[arg-type]


def test_a_folder_with_csv_tables_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tax.csv").write_text("uscc,year\n", encoding="utf-8")
    with pytest.raises(SnapshotError, match=r"tax\.csv"):
        generate_snapshot(tmp_path, 10)
    assert not (tmp_path / "enterprises.parquet").exists()


def test_command_writes_the_snapshot_and_prints_a_summary(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(generate_command.generate)
    out = tmp_path / "snap"
    result = CliRunner().invoke(
        app, ["--enterprises", "3000", "--seed", "4", "--out", str(out), "--taken-at", "2025-06-30"]
    )
    assert result.exit_code == 0, result.output
    assert "enterprises.parquet" in result.output and "3,000" in result.output and "用时" in result.output
    assert yaml.safe_load((out / "snapshot.yaml").read_text(encoding="utf-8"))["taken_at"] == dt.date(
        2025, 6, 30
    )
