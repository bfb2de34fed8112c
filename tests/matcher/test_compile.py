"""The compiler's per-construct meaning, and one plan rendering to both DuckDB and Spark SQL."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
import sqlglot

from matcher.compile import COMPILERS, condition_sql
from matcher.plan import (
    blocks,
    candidates_query,
    candidates_view,
    item_plans,
    matches_query,
    results_view,
    status_counts_query,
    statuses_view,
    summary_query,
    totals_query,
)
from matcher.profile import profile_query
from rules.expressions import SUPPORTED
from rules.ruleset import library_dir, load_ruleset


def test_compiler_covers_exactly_the_language_subset() -> None:
    assert set(COMPILERS) == set(SUPPORTED)


def _eval(rule: str, **row: object) -> bool | None:
    con = duckdb.connect()
    cols = ", ".join(f"? AS {k}" for k in row)
    con.execute(f"CREATE TABLE t AS SELECT {cols}", list(row.values()))
    result = con.execute(f"SELECT {condition_sql(rule).sql('duckdb')} FROM t").fetchall()[0]
    assert result is not None
    return result[0]


@pytest.mark.parametrize(
    ("rule", "row", "expected"),
    [
        ('industry_code =~ "C3"', {"industry_code": "C3911"}, True),  # =~ anchors at the start ...
        ('industry_code =~ "39"', {"industry_code": "C3911"}, False),
        ('industry_code =~ "C39$"', {"industry_code": "C3911"}, False),  # ... and $ still means the end
        ('industry_code =~~ "39"', {"industry_code": "C3911"}, True),  # =~~ searches
        ('industry_code !~ "C3"', {"industry_code": "C3911"}, False),
        ('name[:2] == "淮安"', {"name": "淮安市机械厂"}, True),  # slicing counts characters, not bytes
        ('name[2:4] == "市机"', {"name": "淮安市机械厂"}, True),
        ('name[10:] == ""', {"name": "淮安"}, True),  # out of range gives empty text, as in Python
        ("name.length == 6", {"name": "淮安市机械厂"}, True),
        ('"机械" in name', {"name": "淮安市机械厂"}, True),
        ('status < "在"', {"status": "存续"}, "存续" < "在"),  # code-point order, as in Python
        ("credit_rating == null", {"credit_rating": "A"}, False),
        ("credit_rating != null", {"credit_rating": "A"}, True),
        ("revenue / 10000 >= 2000", {"revenue": 20000000}, True),
        ("revenue / 10000 >= 2000", {"revenue": 19999999.99}, False),
        ('size_class in ["small", "micro"]', {"size_class": "large"}, False),
        ("layoff_rate <= 0.055", {"layoff_rate": 0.055}, True),
        ("reg_date.year >= 2021", {"reg_date": dt.date(2021, 1, 1)}, True),
        ('reg_date >= d"2021-01-01"', {"reg_date": dt.date(2020, 12, 31)}, False),
        ("employees >= 10 or revenue > 0", {"employees": 20, "revenue": None}, None),  # NULL field: unknown
    ],
)
def test_construct_means_what_rule_engine_means(rule: str, row: dict[str, object], expected: object) -> None:
    assert _eval(rule, **row) == expected


def test_library_plan_renders_to_spark_sql_that_parses() -> None:
    policies = list(load_ruleset(library_dir()))
    plans = item_plans(policies)
    profiles = {p.assessment_year: f"profile_{p.assessment_year}" for p in policies}
    trees = [
        profile_query(2024, dt.date(2025, 9, 30)),
        *[b.select(profiles[b.year]) for b in blocks(plans)],
        matches_query(plans),
        statuses_view(plans),
        candidates_query(),
        results_view(plans, profiles),
        candidates_view(),
        status_counts_query(plans),
        summary_query(),
        totals_query(plans),
        *[b.patterns_select() for b in blocks(plans)],
        *[b.allocatable_select() for b in blocks(plans)],
    ]
    for tree in trees:
        spark = tree.sql("spark")
        assert sqlglot.parse_one(spark, read="spark") is not None


def test_regexes_render_per_dialect_and_plain_prefixes_as_substrings() -> None:
    regex = condition_sql('industry_code =~ "C3[0-9]"')
    assert "RLIKE" in regex.sql("spark") and "REGEXP_MATCHES" in regex.sql("duckdb")
    prefix = condition_sql('region_code =~ "^3208"').sql("duckdb")
    assert "REGEXP" not in prefix and "SUBSTRING(region_code, 1, 4) = '3208'" in prefix
    assert _eval('region_code =~ "^3208"', region_code="320803") is True
    assert _eval('region_code =~ "3208"', region_code="3208") is True
    assert _eval('region_code !~ "^3208"', region_code="320") is True
    assert _eval('region_code =~ "^3208"', region_code=None) is None
