"""From the registry tables up: ratios are exact ("不低于5%" at exactly 5% is met), and the facts the real
documents name (first recognition, the statistics bureau's list, last year's figures) are what they say,
on both engines.

The differential test here starts from snapshot tables, not from ready profiles: random enterprises with
R&D expense and revenue, insured headcounts at the year's start and end, planted exactly on, one fen
(one person) above and one below every ratio threshold; certificates of every type issued on several
dates, some expired; rows of the statistics bureau's list for the assessment year and the year before
(or no such table at all); and last year's annual report and tax rows. They go through the real loader,
profile and plan; the profile is computed independently in Python with Decimal (`ratio_cases`,
`facts_of` here) and the rule-engine reference must agree on every status, and every near miss must
show the exact figures.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher.duckdb_engine import match_profiles
from matcher.profile import build_profile
from matcher.snapshot import load_snapshot
from rules.expressions import parse
from rules.reference import evaluate
from rules.validate import parse_policy_text
from tests.matcher.ratio_cases import (
    OFFSETS,
    PLANT,
    RATIO_BOUNDS,
    planted_counts,
    planted_money,
    shown,
    with_ratios,
)
from tests.matcher.snapshots import default_tables, enterprise, uscc, write_snapshot

AS_OF = dt.date(2025, 9, 30)
HEADER = (
    "version: 1\ntitle: 研发投入奖补\ndepartment: 测试局\nsource: {document: 测试}\n"
    'valid_from: 2025-01-01\nvalid_to: 2025-12-31\nassessment_year: 2024\nperiod: "2025"\n'
)


def _policy_text(pid: str, items: dict[str, list[str]]) -> str:
    text = f"id: {pid}\n{HEADER}items:\n"
    for item, rules in items.items():
        text += f"  - id: {item}\n    title: {item}\n    amount: '1000'\n    conditions:\n"
        text += "".join(
            f"      - id: {item}c{n}\n        text: 条件{n}\n        rule: '{r}'\n"
            for n, r in enumerate(rules)
        )
    return text


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _tables(rows: list[dict[str, Any]], listing: bool) -> dict[str, list[dict[str, Any]]]:
    """Snapshot tables for enterprises with the given yearly values (None: an empty cell; a row without
    `annual`/`tax`/`insured` has no row in that table), their certificates, last year's rows and, when
    `listing`, the statistics bureau's list (otherwise no such table is delivered)."""
    tables = default_tables(len(rows))
    tables["enterprises"] = [enterprise(n, reg_date=r["reg_date"].isoformat()) for n, r in enumerate(rows)]
    text = _text

    def keep(table: str, present: str, values: dict[str, str]) -> None:
        tables[table] = [
            t | {k: text(rows[n][v]) for k, v in values.items()}
            for n, t in enumerate(tables[table])
            if rows[n][present]
        ]

    keep("annual_reports", "annual", {"revenue": "revenue", "employees": "employees"})
    keep("tax", "tax", {"rd_expense": "rd_expense"})
    keep("social_insurance", "insured", {"insured_start": "insured_start", "insured_end": "insured_end"})
    tables["certifications"] = [
        {"uscc": r["uscc"], "cert_type": t, "cert_date": text(issued), "expiry_date": text(expiry)}
        for r in rows
        for t, issued, expiry in r["certificates"]
    ]
    for r in rows:
        if r["annual_prev"]:
            tables["annual_reports"].append(
                {
                    "uscc": r["uscc"],
                    "year": "2023",
                    "employees": text(r["employees_prev"]),
                    "revenue": text(r["revenue_prev"]),
                    "total_assets": "1000.00",
                }
            )
        if r["tax_prev"]:
            tables["tax"].append(
                {
                    "uscc": r["uscc"],
                    "year": "2023",
                    "tax_paid": text(r["tax_paid_prev"]),
                    "rd_expense": text(r["rd_expense_prev"]),
                    "credit_rating": "A",
                }
            )
    if listing:
        tables["stats_listing"] = [
            {"uscc": r["uscc"], "year": str(year), "above_scale": text(listed)}
            for r in rows
            for year, listed in r["listed"].items()
        ]
    return tables


# Certificates are drawn around the boundaries of "recognised in 2024": the turn of each year, the as-of
# date (a certificate issued on it, one expiring on it or the day before).
CERT_DATES = [
    dt.date(2018, 12, 31),
    dt.date(2021, 1, 1),
    dt.date(2023, 12, 31),
    dt.date(2024, 1, 1),
    dt.date(2024, 12, 31),
    dt.date(2025, 1, 1),
    dt.date(2025, 9, 30),
]
EXPIRIES = [None, dt.date(2025, 9, 29), dt.date(2025, 9, 30), dt.date(2027, 12, 31)]
CERT_TYPES = ["high_tech", "tech_sme", "srdi", "srdi_little_giant"]
PREV_MONEY = [None, Decimal("0.00"), Decimal("999999.99"), Decimal("1000000.00"), Decimal("1000000.01")]


@st.composite
def certificates(draw: st.DrawFn) -> list[tuple[str, dt.date, dt.date | None]]:
    """Up to four certificates, at most one per type and issue date (the table's key)."""
    drawn = draw(
        st.lists(
            st.tuples(st.sampled_from(CERT_TYPES), st.sampled_from(CERT_DATES), st.sampled_from(EXPIRIES)),
            max_size=4,
            unique_by=lambda c: (c[0], c[1]),
        )
    )
    return [
        (t, issued, expiry if expiry is None or expiry >= issued else None) for t, issued, expiry in drawn
    ]


def facts_of(row: dict[str, Any], listing: bool) -> dict[str, Any]:
    """The certificate dates and the statistics listing as the catalog defines them, from the drawn rows."""
    for t in CERT_TYPES:
        issued = [d for kind, d, _ in row["certificates"] if kind == t and d <= AS_OF]
        valid = [
            d for kind, d, e in row["certificates"] if kind == t and d <= AS_OF and (e is None or e >= AS_OF)
        ]
        row[f"{t}_first_date"] = min(issued, default=None)
        row[f"{t}_cert_date"] = max(valid, default=None)
    row["listed_above_scale"] = row["listed"].get(2024) if listing else None
    row["listed_above_scale_prev"] = row["listed"].get(2023) if listing else None
    return row


DATES = [dt.date(2019, 12, 31), dt.date(2020, 1, 1), dt.date(2023, 9, 30), dt.date(2024, 2, 29)]


@st.composite
def enterprise_values(draw: st.DrawFn, n: int) -> dict[str, Any]:
    """One enterprise's yearly values, as the profile reads them (None where a cell or a row is missing)."""
    row: dict[str, Any] = {
        "uscc": uscc(n),
        "reg_date": draw(st.sampled_from(DATES)),
        "employees": draw(st.sampled_from([None, 0, 9, 10, 11])),
        "annual": True,
        "tax": True,
        "insured": True,
    }
    bound, m, offset, on_numerator = draw(PLANT)
    row["rd_expense"], row["revenue"] = planted_money(bound, m, offset, on_numerator)
    rd_case = draw(st.sampled_from(["planted"] * 4 + ["zero revenue", "no rd", "no revenue", "no rows"]))
    if rd_case == "zero revenue":
        row["revenue"] = Decimal("0.00")
    elif rd_case == "no rd":
        row["rd_expense"] = None
    elif rd_case == "no revenue":
        row["revenue"] = None
    elif rd_case == "no rows":
        row["tax"] = row["annual"] = False
        row["rd_expense"] = row["revenue"] = row["employees"] = None
    bound, m, offset, _ = draw(PLANT)
    row["insured_start"], row["insured_end"] = planted_counts(bound, m, offset)
    row["tax_paid"] = Decimal("100000.00") if row["tax"] else None  # default_tables' tax_paid
    row["certificates"] = draw(certificates())
    row["listed"] = draw(st.dictionaries(st.sampled_from([2023, 2024]), st.booleans(), max_size=2))
    row["annual_prev"], row["tax_prev"] = draw(st.booleans()), draw(st.booleans())
    row["employees_prev"] = draw(st.sampled_from([None, 9, 10, 11])) if row["annual_prev"] else None
    row["revenue_prev"] = draw(st.sampled_from(PREV_MONEY)) if row["annual_prev"] else None
    row["tax_paid_prev"] = draw(st.sampled_from(PREV_MONEY)) if row["tax_prev"] else None
    row["rd_expense_prev"] = draw(st.sampled_from(PREV_MONEY)) if row["tax_prev"] else None
    insured_case = draw(st.sampled_from(["planted"] * 4 + ["none insured", "no end", "no row"]))
    if insured_case == "none insured":
        row["insured_start"] = 0
    elif insured_case == "no end":
        row["insured_end"] = None
    elif insured_case == "no row":
        row["insured"] = False
        row["insured_start"] = row["insured_end"] = None
    return with_ratios(row)


OPS = ["<", "<=", ">", ">=", "==", "!="]
FIELDS = ["rd_ratio", "layoff_rate"]


@st.composite
def fact_rule(draw: st.DrawFn) -> str:
    """A condition on the facts the real documents name, as the library's policies write them."""
    op = draw(st.sampled_from(OPS))
    cert = draw(st.sampled_from(CERT_TYPES))
    return draw(
        st.sampled_from(
            [
                f"{cert}_first_date.year == 2024",
                f'{cert}_first_date >= d"2024-01-01" and {cert}_first_date <= d"2024-12-31"',
                f'{cert}_cert_date.year == 2024 and {cert}_first_date < d"2024-01-01"',
                f'{cert}_cert_date {op} d"2025-01-01"',
                f"{cert}_cert_date {op} {cert}_first_date",
                "listed_above_scale and not listed_above_scale_prev",
                f"listed_above_scale {draw(st.sampled_from(['==', '!=']))} listed_above_scale_prev",
                f"rd_expense - rd_expense_prev {op} 1000000",
                f"rd_expense_prev {op} 1000000",
                f"revenue {op} revenue_prev * 1.2",
                f"employees_prev {op} 10",
                f"tax_paid_prev + tax_paid {op} 1000000.01",
                f"employees {op} employees_prev",
            ]
        )
    )


@st.composite
def ratio_rule(draw: st.DrawFn) -> str:
    op = draw(st.sampled_from(OPS))
    if draw(st.integers(0, 3)) == 0:
        return draw(fact_rule())
    return draw(
        st.one_of(
            st.builds(lambda f, b: f"{f} {op} {b}", st.sampled_from(FIELDS), st.sampled_from(RATIO_BOUNDS)),
            st.sampled_from(
                [
                    f"rd_ratio * 100 {op} 5",
                    f"rd_ratio + layoff_rate {op} 0.075",
                    f"$max([rd_ratio, layoff_rate]) {op} 0.055",
                    f"(employees >= 10 ? rd_ratio : layoff_rate) {op} 0.05",
                    f"rd_ratio {op} layoff_rate",
                    "layoff_rate in [0.2, 0.055]",
                    f'reg_date + t"P366D" {op} d"2021-01-01"',
                    f'reg_date - t"P1D" {op} d"2019-12-31"',
                ]
            ),
        )
    )


def _value_text(rule: str, row: dict[str, Any]) -> str:
    """What a near miss shows: each field the condition read, as the engines spell it."""
    parts = []
    for f in parse(rule).fields:
        v = row[f]
        parts.append(f"{f}={shown(v) if f in FIELDS else _text(v)}")
    return "; ".join(parts)


def _expected(policies: list[Any], rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], Any]:
    rules = {c.id: c.rule for p in policies for i in p.items for c in (*p.conditions, *i.conditions)}
    out: dict[tuple[str, str, str], Any] = {}
    by_uscc = {r["uscc"]: r for r in rows}
    for r in evaluate(policies, rows):
        key = (r.policy_id, r.item_id, r.uscc)
        if r.status == "near_miss":
            (cid,) = r.failed
            out[key] = ("near_miss", cid, _value_text(rules[cid], by_uscc[r.uscc]))
        elif r.status == "missing_data":
            out[key] = ("missing_data", ";".join(r.missing))
        elif r.status == "eligible":
            out[key] = ("eligible", r.amount)
    return out


def _got(results: list[tuple[Any, ...]]) -> dict[tuple[str, str, str], Any]:
    out: dict[tuple[str, str, str], Any] = {}
    for p, i, u, status, cid, value, fields, amount in results:
        if status == "near_miss":
            out[(p, i, u)] = (status, cid, value)
        elif status == "missing_data":
            out[(p, i, u)] = (status, fields)
        else:
            out[(p, i, u)] = (status, amount)
    return out


RESULTS = "SELECT policy_id, item_id, uscc, status, condition_id, value, fields, amount FROM results"


def _case(data: st.DataObject) -> tuple[list[Any], list[dict[str, Any]], str, bool]:
    listing = data.draw(st.booleans())
    rows = [facts_of(data.draw(enterprise_values(n)), listing) for n in range(data.draw(st.integers(1, 12)))]
    items = {
        f"i{n}": data.draw(st.lists(ratio_rule(), min_size=1, max_size=2))
        for n in range(data.draw(st.integers(1, 6)))
    }
    text = _policy_text("r0", items)
    return [parse_policy_text(text, "r0.yaml")], rows, text, listing


# 60 cases of one to twelve enterprises each: several hundred enterprises with a planted value on every
# ratio threshold, its neighbours one fen (one person) either side and the facts' edge cases, each through
# the loader, the profile and the plan (about 1 s a case). A longer run: ZHIDA_RATIO_EXAMPLES=1000.
@settings(
    max_examples=int(os.environ.get("ZHIDA_RATIO_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_match_from_registry_tables_equals_the_decimal_reference(data: st.DataObject) -> None:
    policies, rows, text, listing = _case(data)
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect()
        report = load_snapshot(write_snapshot(Path(tmp) / "snap", _tables(rows, listing)), con)
        assert report.rejected_total == 0, report.to_json()
        table = build_profile(con, 2024, AS_OF)
        match_profiles(con, policies, {2024: table})
        got = _got(con.execute(RESULTS).fetchall())
    assert got == _expected(policies, rows), text


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
def test_spark_match_from_registry_tables_equals_the_decimal_reference(
    spark: Any, data: st.DataObject
) -> None:
    from matcher.spark_engine import build_profile_spark, load_snapshot_spark, match_profiles_spark

    policies, rows, text, listing = _case(data)
    with tempfile.TemporaryDirectory() as tmp:
        load_snapshot_spark(spark, str(write_snapshot(Path(tmp) / "snap", _tables(rows, listing))))
        table = build_profile_spark(spark, 2024, AS_OF)
        match_profiles_spark(spark, policies, {2024: table})
        got = _got([tuple(r) for r in spark.sql(RESULTS).collect()])
    assert got == _expected(policies, rows), text


# --- the case a policy department will be asked about -------------------------------------------------------


def test_rd_ratio_of_exactly_five_percent_meets_not_below_five_percent(tmp_path: Path) -> None:
    """rd_expense 37,157.54 over revenue 743,150.80 is 5.00% exactly (as binary floats, 0.049999999999999996):
    `zhida match` makes it a candidate of `rd_ratio >= 0.05` and a near miss of `rd_ratio < 0.05` showing
    rd_ratio=0.05; one fen less is a near miss showing its exact figure."""
    rows = [
        {"rd": "37157.54", "revenue": "743150.80"},  # exactly 5%
        {"rd": "37157.53", "revenue": "743150.80"},  # one fen below
        {"rd": "37157.54", "revenue": "743150.81"},  # one fen more revenue: below
    ]
    tables = default_tables(len(rows))
    for t, r in zip(tables["tax"], rows, strict=True):
        t["rd_expense"] = r["rd"]
    for a, r in zip(tables["annual_reports"], rows, strict=True):
        a["revenue"] = r["revenue"]
    snapshot = write_snapshot(tmp_path / "snap", tables)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "r0.yaml").write_text(
        _policy_text("r0", {"atleast": ["rd_ratio >= 0.05"], "below": ["rd_ratio < 0.05"]}), encoding="utf-8"
    )
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "api", "match", "--snapshot", str(snapshot), "--policies", str(policies)]
    done = subprocess.run(
        [*cmd, "--as-of", "2025-09-30", "--out", str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    candidates = duckdb.sql(
        f"SELECT item_id, uscc FROM read_parquet('{out / 'candidates.parquet'}')"
    ).fetchall()
    exported = tmp_path / "near.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "api", "results", "near-misses", "--run", str(out), "--out", str(exported)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    near = duckdb.sql(f"SELECT item_id, uscc, value FROM read_parquet('{exported}') ORDER BY ALL").fetchall()
    assert sorted(candidates) == [("atleast", uscc(0)), ("below", uscc(1)), ("below", uscc(2))]
    assert sorted(near) == [
        ("atleast", uscc(1), "rd_ratio=0.049999986543"),  # 0.04999998654378...: truncated, never rounded up
        ("atleast", uscc(2), "rd_ratio=0.049999999327"),
        ("below", uscc(0), "rd_ratio=0.05"),
    ]


@pytest.mark.parametrize("offset", OFFSETS)
def test_a_planted_ratio_is_exactly_on_or_one_fen_off_its_bound(offset: int) -> None:
    """The plants themselves: on the bound exactly, or strictly on the side of the fen moved."""
    for bound in RATIO_BOUNDS[1:-1]:
        rd, revenue = planted_money(bound, 7, offset, True)
        ratio = with_ratios({"rd_expense": rd, "revenue": revenue})["rd_ratio"]
        assert (ratio > bound) - (ratio < bound) == offset
