"""The compiler's per-construct meaning, and one plan rendering to both DuckDB and Spark SQL.

Spark SQL is rendered in the engine's own dialect (`matcher.dialect.ZhidaSpark`) and run on the shared
local Spark session (tests/matcher/conftest.py), so what is checked is what the Spark engine runs."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal
from typing import Any

import duckdb
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import UnsupportedError

from matcher.compile import COMPILERS, condition_sql
from matcher.dialect import ZhidaSpark
from matcher.plan import (
    blocks,
    candidates_query,
    candidates_view,
    field_text,
    item_plans,
    matches_query,
    results_view,
    status_counts_query,
    statuses_view,
    summary_query,
    totals_query,
)
from matcher.profile import profile_query
from matcher.ratios import RATIOS, SCALE, exact, value_sql
from rules.catalog import CATALOG
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


CONSTRUCTS = [
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
    # ratios compare as exact fractions, read from their numerator and denominator fields
    ("layoff_rate <= 0.055", {"layoff_rate": 1, "insured_start": 1000, "insured_end": 945}, True),
    ("layoff_rate > 0.055", {"layoff_rate": 1, "insured_start": 1000, "insured_end": 945}, False),
    ("layoff_rate == 0", {"layoff_rate": 1, "insured_start": 0, "insured_end": 3}, True),
    ("layoff_rate < 0.3334", {"layoff_rate": 1, "insured_start": 3, "insured_end": 2}, True),
    *[
        (
            f"rd_ratio {op} 0.05",
            {"rd_ratio": 1, "rd_expense": Decimal(rd), "revenue": Decimal("743150.80")},
            verdict,
        )
        for op, rd, verdict in (
            (">=", "37157.54", True),  # exactly 5.00%: 0.049999999999999996 as a DOUBLE quotient
            ("==", "37157.54", True),
            ("<=", "37157.54", True),
            (">=", "37157.53", False),
            (">", "37157.55", True),
        )
    ],
    (
        "rd_ratio * 20 == 1",
        {"rd_ratio": 1, "rd_expense": Decimal("37157.54"), "revenue": Decimal("743150.80")},
        True,
    ),
    (
        "rd_ratio in [0.1, 0.05]",
        {"rd_ratio": 1, "rd_expense": Decimal("37157.54"), "revenue": Decimal("743150.80")},
        True,
    ),
    (
        "$max([rd_ratio, layoff_rate]) - 0.01 >= 0.04",
        {
            "rd_ratio": 1,
            "rd_expense": Decimal("1.00"),
            "revenue": Decimal("20.00"),
            "layoff_rate": 1,
            "insured_start": 3,
            "insured_end": 3,
        },
        True,
    ),
    (
        "(employees > 5 ? rd_ratio : layoff_rate) + layoff_rate < 1 / 3 + 0.0001",
        {
            "employees": 1,
            "rd_ratio": 1,
            "rd_expense": Decimal("1.00"),
            "revenue": Decimal("3.00"),
            "layoff_rate": 1,
            "insured_start": 3,
            "insured_end": 2,
        },
        False,
    ),
    # the stored value equals the threshold, the ratio does not: the comparison is cross-multiplied there
    *[
        (
            f"rd_ratio {op} 0.333333333333",
            {"rd_ratio": 1, "rd_expense": Decimal("1.00"), "revenue": Decimal("3.00")},
            v,
        )
        for op, v in ((">", True), (">=", True), ("==", False), ("!=", True), ("<=", False), ("<", False))
    ],
    ("layoff_rate < 0.333333333333", {"layoff_rate": 1, "insured_start": 3, "insured_end": 2}, False),
    ("reg_date.year >= 2021", {"reg_date": dt.date(2021, 1, 1)}, True),
    ('reg_date >= d"2021-01-01"', {"reg_date": dt.date(2020, 12, 31)}, False),
    # a date moved by a duration, both ways, on the boundary day (2024 is a leap year)
    ('reg_date + t"P365D" <= d"2025-06-30"', {"reg_date": dt.date(2024, 6, 30)}, True),
    ('reg_date + t"P365D" <= d"2025-06-30"', {"reg_date": dt.date(2024, 7, 1)}, False),
    ('t"P1D" + reg_date == d"2024-03-01"', {"reg_date": dt.date(2024, 2, 29)}, True),
    ('reg_date + (t"P1D" + t"PT12H") < d"2024-03-02"', {"reg_date": dt.date(2024, 2, 29)}, True),
    ('(reg_date + t"P1D").month == 3', {"reg_date": dt.date(2024, 2, 29)}, True),
    ('reg_date - t"P366D" == d"2023-02-28"', {"reg_date": dt.date(2024, 2, 29)}, True),
    ("employees >= 10 or revenue > 0", {"employees": 20, "revenue": None}, None),  # NULL field: unknown
]


def _stored(row: dict[str, object]) -> dict[str, object]:
    """The row with each ratio field as the profile stores it (`matcher.ratios.value_sql`): the quotient
    of its inputs truncated towards zero to `SCALE` places."""
    out = dict(row)
    if "rd_ratio" in row:
        out["rd_ratio"] = _truncated(exact(row["rd_expense"], row["revenue"]))  # type: ignore[arg-type]
    if "layoff_rate" in row:
        start, end = row["insured_start"], row["insured_end"]
        out["layoff_rate"] = _truncated(exact(max(start - end, 0), start) if start else Decimal(0))  # type: ignore[operator]
    return out


def _truncated(value: Decimal) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-SCALE), rounding=ROUND_DOWN)


CONSTRUCTS = [(rule, _stored(row), verdict) for rule, row, verdict in CONSTRUCTS]


@pytest.mark.parametrize(("rule", "row", "expected"), CONSTRUCTS)
def test_construct_means_what_rule_engine_means(rule: str, row: dict[str, object], expected: object) -> None:
    assert _eval(rule, **row) == expected


def test_library_plan_renders_in_the_spark_engine_dialect() -> None:
    """Every tree of the library's plan renders in ZhidaSpark (which raises on anything unsupported)
    without a construct Spark lacks, and reads back as Spark SQL. The plan is of what a run matches: the
    apply-free items (`Policy.matchable`), as matcher/run.py builds it."""
    policies = [m for p in load_ruleset(library_dir()) if (m := p.matchable()) is not None]
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
        spark = tree.sql(dialect=ZhidaSpark)
        assert "INT128" not in spark and "TRY(" not in spark
        assert sqlglot.parse_one(spark, read=ZhidaSpark) is not None


def test_the_spark_dialect_refuses_what_it_cannot_express_instead_of_dropping_it() -> None:
    tree = sqlglot.parse_one("SELECT read_parquet('a.parquet', 'b.parquet')", read="duckdb")
    assert tree.sql("spark").strip() == "SELECT"  # sqlglot's Spark only warns, and drops the call
    with pytest.raises(UnsupportedError, match="READ_PARQUET"):
        tree.sql(dialect=ZhidaSpark)


def _spark_eval(spark: Any, rule: str, **row: object) -> object:
    frame = spark.createDataFrame([tuple(row.values())], schema=_spark_schema(row))
    frame.createOrReplaceTempView("t")
    return spark.sql(f"SELECT {condition_sql(rule).sql(dialect=ZhidaSpark)} FROM t").collect()[0][0]


def _spark_schema(row: dict[str, object]) -> str:
    def kind(name: str, value: object) -> str:
        if value is None:
            return SPARK_TYPES[CATALOG[name].type]
        if isinstance(value, bool):
            return "BOOLEAN"
        if isinstance(value, int):
            return "BIGINT"
        if isinstance(value, float):
            return "DOUBLE"
        if isinstance(value, dt.date):
            return "DATE"
        if isinstance(value, Decimal):
            return "DECIMAL(38,12)" if name in RATIOS else "DECIMAL(18,2)"
        return "STRING"

    return ", ".join(f"{k} {kind(k, v)}" for k, v in row.items())


SPARK_TYPES = {"string": "STRING", "integer": "BIGINT", "money": "DECIMAL(18,2)", "ratio": "DECIMAL(38,12)"}


@pytest.mark.parametrize(("rule", "row", "expected"), CONSTRUCTS)
def test_construct_means_the_same_on_spark_in_the_engine_dialect(
    spark: Any, rule: str, row: dict[str, object], expected: object
) -> None:
    assert _spark_eval(spark, rule, **row) == expected


RATIO_INPUTS = [  # rd_expense, revenue: the ratio as a near miss shows it
    ("37157.54", "743150.80", "0.05"),
    ("1.00", "3.00", "0.333333333333"),
    ("9999999999999999.99", "0.01", "999999999999999999"),
    ("0.01", "9999999999999999.99", "0"),
    ("3.33", "123456789.01", "0.000000026973"),
    ("5.00", "0.00", None),
]


def test_a_ratio_reads_the_same_exact_figure_on_spark_and_duckdb(spark: Any) -> None:
    """The profile's ratio column (integer arithmetic to 12 places) and its near-miss text, at the
    extremes of DECIMAL(18, 2) inputs, on both engines."""
    col: Any = exp.column
    value = value_sql(RATIOS["rd_ratio"], col)
    inner = exp.select(exp.alias_(value, "rd_ratio")).from_("t")
    tree = exp.select(field_text("rd_ratio", "v")).from_(
        exp.alias_(exp.Subquery(this=inner), "v", table=True)
    )
    rows = [(Decimal(a), Decimal(b)) for a, b, _ in RATIO_INPUTS]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (rd_expense DECIMAL(18, 2), revenue DECIMAL(18, 2))")
    con.executemany("INSERT INTO t VALUES (?, ?)", [list(r) for r in rows])
    spark.createDataFrame(
        rows, schema="rd_expense DECIMAL(18,2), revenue DECIMAL(18,2)"
    ).createOrReplaceTempView("t")
    on_spark = [r[0] for r in spark.sql(tree.sql(dialect=ZhidaSpark)).collect()]
    on_duckdb = [r[0] for r in con.execute(tree.sql("duckdb")).fetchall()]
    assert on_spark == on_duckdb == [shown for _, _, shown in RATIO_INPUTS]


def test_exact_integer_products_beyond_64_bits_agree_on_spark_and_duckdb(spark: Any) -> None:
    """INT128 (the pro-rata fen products) is DECIMAL(38, 0) on Spark, with the same exact value."""
    product = exp.Mul(
        this=exp.cast(exp.Literal.number(99999999999999), "INT128"),
        expression=exp.cast(exp.Literal.number(9999999999), "INT128"),
    )
    tree = exp.select(exp.cast(product, "VARCHAR"))
    (on_duckdb,) = duckdb.connect().execute(tree.sql("duckdb")).fetchall()[0]
    (on_spark,) = spark.sql(tree.sql(dialect=ZhidaSpark)).collect()[0]
    assert on_spark == on_duckdb == str(99999999999999 * 9999999999)


def test_regexes_render_per_dialect_and_plain_prefixes_as_substrings() -> None:
    regex = condition_sql('industry_code =~ "C3[0-9]"')
    assert "RLIKE" in regex.sql("spark") and "REGEXP_MATCHES" in regex.sql("duckdb")
    prefix = condition_sql('region_code =~ "^3208"').sql("duckdb")
    assert "REGEXP" not in prefix and "SUBSTRING(region_code, 1, 4) = '3208'" in prefix
    assert _eval('region_code =~ "^3208"', region_code="320803") is True
    assert _eval('region_code =~ "3208"', region_code="3208") is True
    assert _eval('region_code !~ "^3208"', region_code="320") is True
    assert _eval('region_code =~ "^3208"', region_code=None) is None
