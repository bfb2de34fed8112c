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


def _cert(n: int, cert_type: str, cert_date: str, expiry: str = "") -> dict[str, str]:
    return {"uscc": uscc(n), "cert_type": cert_type, "cert_date": cert_date, "expiry_date": expiry}


def test_first_recognition_is_the_earliest_certificate_and_cert_date_the_valid_one(tmp_path: Path) -> None:
    """First recognised in 2018, re-recognised in 2021 and 2024: first date 2018, current certificate 2024;
    a certificate issued after as_of counts for neither."""
    tables = default_tables()
    tables["certifications"] = [
        _cert(0, "high_tech", "2018-11-30", "2021-11-29"),
        _cert(0, "high_tech", "2021-12-15", "2024-12-14"),
        _cert(0, "high_tech", "2024-12-06", "2027-12-05"),
        _cert(0, "srdi_little_giant", "2025-07-01", "2028-06-30"),
        _cert(1, "tech_sme", "2023-05-01", "2023-12-31"),  # expired: first date stays, no valid one
    ]
    first = profile_of(tmp_path / "a", tables, 0)
    assert (first["high_tech_first_date"], first["high_tech_cert_date"]) == (
        dt.date(2018, 11, 30),
        dt.date(2024, 12, 6),
    )
    assert first["is_high_tech"] is True
    assert first["srdi_little_giant_first_date"] == dt.date(2025, 7, 1)
    before = profile_of(tmp_path / "b", tables, 0, as_of=dt.date(2025, 6, 30))
    assert before["srdi_little_giant_first_date"] is None and before["srdi_little_giant_cert_date"] is None
    second = profile_of(tmp_path / "c", tables, 1)
    assert (second["tech_sme_first_date"], second["tech_sme_cert_date"]) == (dt.date(2023, 5, 1), None)
    assert second["is_tech_sme"] is False and second["high_tech_first_date"] is None


def test_two_valid_certificates_give_the_latest_cert_date(tmp_path: Path) -> None:
    tables = default_tables()
    tables["certifications"] = [
        _cert(0, "srdi", "2023-03-01", "2026-02-28"),
        _cert(0, "srdi", "2025-03-01", "2028-02-29"),
    ]
    row = profile_of(tmp_path, tables)
    assert (row["srdi_first_date"], row["srdi_cert_date"]) == (dt.date(2023, 3, 1), dt.date(2025, 3, 1))


def test_statistics_listing_of_the_year_and_the_year_before(tmp_path: Path) -> None:
    """新纳入规上: listed for 2024 and not for 2023; NULL where the bureau's list has no row."""
    tables = default_tables()
    tables["stats_listing"] = [
        {"uscc": uscc(0), "year": "2024", "above_scale": "true"},
        {"uscc": uscc(0), "year": "2023", "above_scale": "false"},
        {"uscc": uscc(1), "year": "2022", "above_scale": "true"},
    ]
    first = profile_of(tmp_path / "a", tables, 0)
    assert (first["listed_above_scale"], first["listed_above_scale_prev"]) == (True, False)
    second = profile_of(tmp_path / "b", tables, 1)
    assert (second["listed_above_scale"], second["listed_above_scale_prev"]) == (None, None)


def test_without_the_statistics_table_the_listing_is_null(tmp_path: Path) -> None:
    row = profile_of(tmp_path, default_tables())
    assert row["listed_above_scale"] is None and row["listed_above_scale_prev"] is None


def test_previous_year_figures_come_from_the_year_before_the_assessment_year(tmp_path: Path) -> None:
    tables = default_tables()
    tables["annual_reports"].append(
        {
            "uscc": uscc(0),
            "year": "2023",
            "employees": "40",
            "revenue": "8000000.00",
            "total_assets": "7000000.00",
        }
    )
    tables["tax"].append(
        {"uscc": uscc(0), "year": "2023", "tax_paid": "", "rd_expense": "400000.01", "credit_rating": "B"}
    )
    tables["annual_reports"].append(  # two years back: never read
        {"uscc": uscc(1), "year": "2022", "employees": "9", "revenue": "1.00", "total_assets": "1.00"}
    )
    row = profile_of(tmp_path / "a", tables, 0)
    assert (row["employees_prev"], row["revenue_prev"]) == (40, Decimal("8000000.00"))
    assert (row["rd_expense_prev"], row["tax_paid_prev"]) == (Decimal("400000.01"), None)
    assert row["revenue"] == Decimal("10000000.00")  # the assessment year's own figure is unchanged
    other = profile_of(tmp_path / "b", tables, 1)
    assert other["employees_prev"] is None and other["revenue_prev"] is None
