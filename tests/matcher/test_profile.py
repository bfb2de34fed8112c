"""The enterprise profile: derived fields as Contract 3 defines them (docs/contracts.md#derived-fields), NULL where inputs are missing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from matcher.profile import build_profile, coverage, profile_row
from matcher.snapshot import load_snapshot
from rules.catalog import FIELDS
from tests.matcher.snapshots import default_tables, uscc, write_snapshot

AS_OF = dt.date(2025, 9, 30)


def profile_of(
    tmp_path: Path, tables: dict[str, list[dict[str, Any]]], n: int = 0, as_of: dt.date = AS_OF
) -> dict[str, Any]:
    con = duckdb.connect()
    load_snapshot(write_snapshot(tmp_path, tables), con)
    row = profile_row(con, build_profile(con, 2024, as_of), uscc(n))
    assert row is not None
    return row


def test_profile_has_every_catalog_field_in_order(tmp_path: Path) -> None:
    row = profile_of(tmp_path, default_tables())
    assert list(row) == [f.name for f in FIELDS]


def test_layoff_rate_and_rd_ratio(tmp_path: Path) -> None:
    row = profile_of(tmp_path, default_tables())
    assert row["layoff_rate"] == Decimal("0.04")  # 2 of 50, exactly
    assert row["rd_ratio"] == Decimal("0.05")
    assert row["industry_section"] == "C"


def test_layoff_rate_is_zero_without_insured_and_never_negative(tmp_path: Path) -> None:
    tables = default_tables()
    tables["social_insurance"][0] |= {"insured_start": "0", "insured_end": "5"}
    tables["social_insurance"][1] |= {"insured_start": "10", "insured_end": "12"}
    con = duckdb.connect()
    load_snapshot(write_snapshot(tmp_path, tables), con)
    table = build_profile(con, 2024, AS_OF)
    assert profile_row(con, table, uscc(0))["layoff_rate"] == 0  # type: ignore[index]
    assert profile_row(con, table, uscc(1))["layoff_rate"] == 0  # type: ignore[index]


def test_rd_ratio_is_null_when_revenue_is_zero(tmp_path: Path) -> None:
    tables = default_tables()
    tables["annual_reports"][0]["revenue"] = "0.00"
    assert profile_of(tmp_path, tables)["rd_ratio"] is None


@pytest.mark.parametrize(
    ("reg_date", "as_of", "years"),
    [
        ("2015-09-30", AS_OF, 10),
        ("2015-10-01", AS_OF, 9),
        ("2020-02-29", dt.date(2021, 2, 28), 0),
        ("2020-02-29", dt.date(2021, 3, 1), 1),
    ],
)
def test_age_in_completed_years(tmp_path: Path, reg_date: str, as_of: dt.date, years: int) -> None:
    tables = default_tables()
    tables["enterprises"][0]["reg_date"] = reg_date
    assert profile_of(tmp_path, tables, as_of=as_of)["age_years"] == years


@pytest.mark.parametrize(
    ("cert_date", "expiry", "as_of", "valid"),
    [
        ("2023-01-01", "2025-09-30", AS_OF, True),  # expiry day itself is still valid
        ("2023-01-01", "2025-09-29", AS_OF, False),
        ("2025-09-30", "", AS_OF, True),  # no expiry date: no end
        ("2023-01-01", "2025-12-31", dt.date(2022, 12, 31), False),  # not yet valid
    ],
)
def test_certificate_flag_valid_on_as_of(
    tmp_path: Path, cert_date: str, expiry: str, as_of: dt.date, valid: bool
) -> None:
    tables = default_tables()
    tables["certifications"][0] |= {"cert_date": cert_date, "expiry_date": expiry}
    row = profile_of(tmp_path, tables, as_of=as_of)
    assert row["is_high_tech"] is valid
    assert row["is_srdi"] is False  # no certificate of that type: False, not NULL


def test_missing_yearly_row_leaves_fields_null_not_zero(tmp_path: Path) -> None:
    tables = default_tables()
    tables["annual_reports"] = tables["annual_reports"][1:]
    tables["credit"] = tables["credit"][1:]
    row = profile_of(tmp_path, tables)
    assert row["employees"] is None and row["revenue"] is None and row["size_class"] is None
    assert row["above_scale"] is None and row["rd_ratio"] is None
    assert row["serious_dishonest"] is None


def test_rejected_yearly_row_leaves_fields_null(tmp_path: Path) -> None:
    tables = default_tables()
    tables["tax"][0]["credit_rating"] = "AA"  # rejected: unknown rating
    row = profile_of(tmp_path, tables)
    assert row["credit_rating"] is None and row["tax_paid"] is None


def test_other_years_are_not_read(tmp_path: Path) -> None:
    tables = default_tables()
    tables["annual_reports"][0]["year"] = "2023"
    assert profile_of(tmp_path, tables)["employees"] is None


def test_bank_account_flag(tmp_path: Path) -> None:
    tables = default_tables()
    tables["bank_accounts"] = tables["bank_accounts"][1:]
    assert profile_of(tmp_path, tables)["has_bank_account"] is False


def test_size_class_and_above_scale_from_the_2017_table(tmp_path: Path) -> None:
    tables = default_tables()
    tables["annual_reports"][0] |= {"employees": "300", "revenue": "20000000.00"}  # industry C: medium, 规上
    row = profile_of(tmp_path, tables)
    assert (row["size_class"], row["above_scale"]) == ("medium", True)


def test_coverage_counts_values(tmp_path: Path) -> None:
    tables = default_tables()
    tables["annual_reports"][0]["revenue"] = ""
    con = duckdb.connect()
    load_snapshot(write_snapshot(tmp_path, tables), con)
    total, counts = coverage(con, build_profile(con, 2024, AS_OF))
    assert total == 3
    assert counts["revenue"] == 2 and counts["uscc"] == 3
