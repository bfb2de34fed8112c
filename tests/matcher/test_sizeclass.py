"""Size class (统计上大中小微型企业划分办法 2017) and above-scale flag: SQL in DuckDB, Python, Spark rendering.

The expected bounds below are transcribed from the document independently of matcher.sizeclass, so a typo
in the module's table makes these tests fail.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from matcher.sizeclass import (
    ABOVE_SCALE,
    SIZE_TABLE,
    above_scale_expr,
    above_scale_py,
    size_class_expr,
    size_class_py,
)
from rules.catalog import SIZE_CLASSES

Row = tuple[str | None, int | None, Decimal | None, Decimal | None]

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("industry_code", pa.string()),
        ("employees", pa.int64()),
        ("revenue", pa.decimal128(18, 2)),
        ("total_assets", pa.decimal128(18, 2)),
    ]
)

CODE, EMPLOYEES, REVENUE, ASSETS = (exp.column(name) for name in SCHEMA.names[1:])
SIZE_SQL = size_class_expr(CODE, EMPLOYEES, REVENUE, ASSETS)
ABOVE_SQL = above_scale_expr(CODE, REVENUE)
SIZE_DUCKDB, ABOVE_DUCKDB = SIZE_SQL.sql("duckdb"), ABOVE_SQL.sql("duckdb")

# (row, a code in it, {indicator: (large, medium, small)}) in persons and 万元, from the document.
DOCUMENT_TABLE: list[tuple[str, str, dict[str, tuple[int, int, int]]]] = [
    ("农、林、牧、渔业", "A0111", {"Y": (20000, 500, 50)}),
    ("工业 B", "B0610", {"X": (1000, 300, 20), "Y": (40000, 2000, 300)}),
    ("工业 C", "C3911", {"X": (1000, 300, 20), "Y": (40000, 2000, 300)}),
    ("工业 D", "D4411", {"X": (1000, 300, 20), "Y": (40000, 2000, 300)}),
    ("建筑业", "E4710", {"Y": (80000, 6000, 300), "Z": (80000, 5000, 300)}),
    ("批发业", "F5124", {"X": (200, 20, 5), "Y": (40000, 5000, 1000)}),
    ("零售业", "F5211", {"X": (300, 50, 10), "Y": (20000, 500, 100)}),
    ("交通运输业 道路", "G5430", {"X": (1000, 300, 20), "Y": (30000, 3000, 200)}),
    ("交通运输业 装卸搬运", "G5910", {"X": (1000, 300, 20), "Y": (30000, 3000, 200)}),
    ("仓储业", "G5920", {"X": (200, 100, 20), "Y": (30000, 1000, 100)}),
    ("仓储业 其他", "G5990", {"X": (200, 100, 20), "Y": (30000, 1000, 100)}),
    ("邮政业", "G6010", {"X": (1000, 300, 20), "Y": (30000, 2000, 100)}),
    ("住宿业", "H6110", {"X": (300, 100, 10), "Y": (10000, 2000, 100)}),
    ("餐饮业", "H6210", {"X": (300, 100, 10), "Y": (10000, 2000, 100)}),
    ("信息传输业", "I6410", {"X": (2000, 100, 10), "Y": (100000, 1000, 100)}),
    ("软件和信息技术服务业", "I6513", {"X": (300, 100, 10), "Y": (10000, 1000, 50)}),
    ("房地产开发经营", "K7010", {"Y": (200000, 1000, 100), "Z": (10000, 5000, 2000)}),
    ("物业管理", "K7020", {"X": (1000, 300, 100), "Y": (5000, 1000, 500)}),
    ("租赁和商务服务业", "L7212", {"X": (300, 100, 10), "Z": (120000, 8000, 100)}),
    ("其他未列明 科学研究", "M7320", {"X": (300, 100, 10)}),
    ("其他未列明 居民服务", "O8010", {"X": (300, 100, 10)}),
    ("其他未列明 社会工作", "Q8510", {"X": (300, 100, 10)}),
    ("其他未列明 房地产中介", "K7030", {"X": (300, 100, 10)}),
]
CLASSES = ("large", "medium", "small")
BELOW = {"large": "medium", "medium": "small", "small": "micro"}


def _value(indicator: str, amount: int) -> int | Decimal:
    """A document value (persons or 万元) in profile units (persons or yuan)."""
    return amount if indicator == "X" else Decimal(amount) * 10000


def _one_below(indicator: str, value: int | Decimal) -> int | Decimal:
    """One profile unit below: one person, or one fen."""
    return value - 1 if indicator == "X" else value - Decimal("0.01")


def _row(code: str | None, values: dict[str, int | Decimal | None]) -> Row:
    employees = values.get("X")
    assert employees is None or isinstance(employees, int)
    revenue, assets = values.get("Y"), values.get("Z")
    assert not isinstance(revenue, int) and not isinstance(assets, int)
    return (code, employees, revenue, assets)


def _boundary_cases() -> Iterator[tuple[str, Row, str]]:
    """Per row and class: all indicators at the bound, then each one a unit below (unused ones NULL)."""
    for name, code, indicators in DOCUMENT_TABLE:
        for position, size in enumerate(CLASSES):
            at_bound = {ind: _value(ind, bounds[position]) for ind, bounds in indicators.items()}
            yield f"{name}-{size}-at-bound", _row(code, dict(at_bound)), size
            for ind in indicators:
                below = dict(at_bound)
                below[ind] = _one_below(ind, at_bound[ind])
                yield f"{name}-{size}-{ind}-one-below", _row(code, dict(below)), BELOW[size]


BOUNDARY_CASES = list(_boundary_cases())


def _table(rows: Sequence[Row]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[], [], [], []]
    return pa.Table.from_arrays(
        [pa.array(range(len(rows)), pa.int64())]
        + [pa.array(list(col), type=SCHEMA.field(i + 1).type) for i, col in enumerate(columns)],
        schema=SCHEMA,
    )


_CONNECTION: list[duckdb.DuckDBPyConnection] = []


def _connection() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB for the module: connecting per query would make the suite slow."""
    if not _CONNECTION:
        _CONNECTION.append(duckdb.connect())
    return _CONNECTION[0]


def _run(sql: str, rows: Sequence[Row]) -> list[object]:
    """Evaluate one SQL expression (over the SCHEMA columns) for every row, in one DuckDB query."""
    con = _connection()
    con.register("enterprises", _table(rows))
    try:
        result = con.execute(f"SELECT {sql} FROM enterprises ORDER BY id").fetchall()
    finally:
        con.unregister("enterprises")
    return [value for (value,) in result]


def size_sql(rows: Sequence[Row]) -> list[object]:
    return _run(SIZE_DUCKDB, rows)


def above_sql(rows: Sequence[Row]) -> list[object]:
    return _run(ABOVE_DUCKDB, [(code, None, revenue, None) for code, _, revenue, _ in rows])


def both_size(row: Row) -> tuple[object, object]:
    """(SQL in DuckDB, Python) size class of one enterprise."""
    return size_sql([row])[0], size_class_py(*row)


# --- size class -------------------------------------------------------------------------------------------


@functools.cache
def boundary_sql() -> list[object]:
    """The SQL answers for every boundary case, from one query (one query per case would be slow)."""
    return size_sql([row for _, row, _ in BOUNDARY_CASES])


@pytest.mark.parametrize(
    ("index", "row", "expected"),
    [(i, row, expected) for i, (_, row, expected) in enumerate(BOUNDARY_CASES)],
    ids=[name for name, _, _ in BOUNDARY_CASES],
)
def test_each_row_classifies_at_and_one_unit_below_every_bound(index: int, row: Row, expected: str) -> None:
    assert (boundary_sql()[index], size_class_py(*row)) == (expected, expected)


def test_industry_large_needs_1000_persons_and_40000_wan() -> None:
    y_large, y_below = Decimal("400000000.00"), Decimal("399999999.99")
    assert both_size(("C3911", 1000, y_large, None)) == ("large", "large")
    assert both_size(("C3911", 999, y_large, None)) == ("medium", "medium")
    assert both_size(("C3911", 1000, y_below, None)) == ("medium", "medium")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (("C3911", 1500, Decimal("10000000.00"), None), "small"),  # X large, Y (1000万) small
        (("C3911", 25, Decimal("500000000.00"), None), "small"),  # X small, Y large
        (("C3911", 19, Decimal("500000000.00"), None), "micro"),  # below small on X alone
        (("E4710", None, Decimal("900000000.00"), Decimal("2999999.99")), "micro"),  # Z below small
        (("F5124", 250, Decimal("9999999.99"), None), "micro"),  # 批发 Y below 1000万
        (("L7212", 5000, None, Decimal("80000000.00")), "medium"),  # 租赁 Z = 8000万, X large
        (("K7010", None, Decimal("2000000000.00"), Decimal("99999999.99")), "medium"),  # Z just below 10000万
    ],
)
def test_large_medium_small_need_every_bound_else_drop_a_level(row: Row, expected: str) -> None:
    assert both_size(row) == (expected, expected)


@pytest.mark.parametrize(
    "row",
    [
        ("C3911", 0, Decimal("0.00"), None),
        ("A0111", None, Decimal("499999.99"), None),
        ("M7320", 9, None, None),
        ("I6513", 10, Decimal("499999.99"), None),
    ],
)
def test_micro_is_below_small_on_one_indicator(row: Row) -> None:
    assert both_size(row) == ("micro", "micro")


@pytest.mark.parametrize(
    "row",
    [
        ("C3911", None, Decimal("500000000.00"), None),
        ("C3911", 1500, None, None),
        ("C3911", 5, None, None),  # below small on X, but unknown is unknown
        ("A0111", 10, None, Decimal("1.00")),
        ("E4710", 10, Decimal("900000000.00"), None),
        ("E4710", 10, None, Decimal("900000000.00")),
        ("K7010", 10, Decimal("900000000.00"), None),
        ("L7212", None, Decimal("1.00"), Decimal("900000000.00")),
        ("L7212", 400, Decimal("1.00"), None),
        ("M7320", None, Decimal("1.00"), Decimal("1.00")),
        ("G5920", None, Decimal("1.00"), Decimal("1.00")),
        (None, 1500, Decimal("500000000.00"), Decimal("500000000.00")),
    ],
)
def test_a_missing_indicator_or_industry_gives_null(row: Row) -> None:
    assert both_size(row) == (None, None)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (("F5211", 300, Decimal("200000000.00"), None), "large"),  # 零售 without total assets
        (("A0111", None, Decimal("200000000.00"), None), "large"),  # 农业 without employees or assets
        (("M7320", 300, None, None), "large"),  # 其他未列明 by employees only
        (("E4710", None, Decimal("800000000.00"), Decimal("800000000.00")), "large"),
    ],
)
def test_an_unused_indicator_may_be_null(row: Row, expected: str) -> None:
    assert both_size(row) == (expected, expected)


@pytest.mark.parametrize(
    "code",
    [
        "J6620",  # 金融业: its own standard, not applied yet
        "P8310",  # 教育
        "Q8411",  # 卫生
        "G5310",  # 铁路运输业
        "K7040",  # 房地产租赁经营 (自有房地产经营活动), excluded from 其他未列明
        "S9100",  # 公共管理
        "T9600",  # 国际组织
        "G59",  # too coarse: 装卸搬运 or 仓储
        "K70",  # too coarse
        "G",  # too coarse
        "",
    ],
)
def test_industries_outside_the_table_have_no_size_class(code: str) -> None:
    assert both_size((code, 5000, Decimal("9000000000.00"), Decimal("9000000000.00"))) == (None, None)


def test_the_table_rows_do_not_overlap() -> None:
    codes = [code for row in SIZE_TABLE for code in row.codes]
    for code in codes:
        others = [other for other in codes if other != code]
        assert not any(code.startswith(other) or other.startswith(code) for other in others), code


def test_the_bounds_are_integer_literals_never_float() -> None:
    for tree in (SIZE_SQL, ABOVE_SQL):
        numbers = [lit.this for lit in tree.find_all(exp.Literal) if not lit.is_string]
        assert numbers and all(number.isdigit() for number in numbers)


# --- above scale ------------------------------------------------------------------------------------------

# (code, bound in 万元), transcribed from the domain README.
ABOVE_BOUNDS = [
    ("B0610", 2000),
    ("C3911", 2000),
    ("D4411", 2000),
    ("F5124", 2000),
    ("F5211", 500),
    ("H6110", 200),
    ("H6210", 200),
    ("G5310", 2000),
    ("G5430", 2000),
    ("G5920", 2000),
    ("G6010", 2000),
    ("I6410", 2000),
    ("I6513", 2000),
    ("N7721", 2000),
    ("Q8411", 2000),
    ("L7212", 1000),
    ("M7320", 1000),
    ("P8310", 1000),
    ("K7020", 1000),
    ("K7030", 1000),
    ("K7040", 1000),
    ("K7090", 1000),
    ("O8010", 500),
    ("R8710", 500),
    ("Q8510", 500),
]


@pytest.mark.parametrize(("code", "bound"), ABOVE_BOUNDS)
def test_above_scale_is_revenue_at_the_industry_bound(code: str, bound: int) -> None:
    at = Decimal(bound) * 10000
    rows: list[Row] = [
        (code, None, at, None),
        (code, None, at - Decimal("0.01"), None),
        (code, None, None, None),
    ]
    expected = [True, False, None]
    assert above_sql(rows) == expected
    assert [above_scale_py(code, revenue) for code, _, revenue, _ in rows] == expected


@pytest.mark.parametrize(
    "code", ["E4710", "K7010", "A0111", "J6620", "S9100", "T9600", "F5", "Q", "K70", None]
)
def test_above_scale_is_null_where_revenue_does_not_set_it(code: str | None) -> None:
    row: Row = (code, None, Decimal("9000000000.00"), None)
    assert above_sql([row]) == [None]
    assert above_scale_py(code, row[2]) is None


def test_above_scale_rows_do_not_overlap() -> None:
    codes = [code for bound in ABOVE_SCALE for code in bound.codes]
    for code in codes:
        assert sum(code.startswith(other) or other.startswith(code) for other in codes) == 1, code


# --- SQL and Python agree; Spark renders the same plan ----------------------------------------------------

SAMPLE_CODES = [code for _, code, _ in DOCUMENT_TABLE] + [code for code, _ in ABOVE_BOUNDS]
SAMPLE_CODES += ["J6610", "J6631", "J6911", "P8310", "K7010", "E4710", "G59", "K70", "G", "X1234", None]
PERSON_BOUNDS = sorted(
    {b for _, _, inds in DOCUMENT_TABLE for ind, bs in inds.items() if ind == "X" for b in bs}
)
WAN_BOUNDS = sorted(
    {b for _, _, inds in DOCUMENT_TABLE for ind, bs in inds.items() if ind != "X" for b in bs}
)
WAN_BOUNDS += [bound for _, bound in ABOVE_BOUNDS]
FEN = Decimal("0.01")

employees_st = (
    st.none()
    | st.integers(0, 5000)
    | st.sampled_from(PERSON_BOUNDS).flatmap(lambda b: st.integers(b - 1, b + 1))
)
money_st = (
    st.none()
    | st.decimals(
        min_value=0, max_value=Decimal("5000000000"), places=2, allow_nan=False, allow_infinity=False
    )
    | st.sampled_from(WAN_BOUNDS).flatmap(
        lambda b: st.sampled_from([Decimal(b) * 10000 + d for d in (-FEN, Decimal(0), FEN)])
    )
)
rows_st = st.lists(
    st.tuples(st.sampled_from(SAMPLE_CODES), employees_st, money_st, money_st), min_size=200, max_size=400
)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(rows_st)
def test_sql_equals_python_on_a_generated_sample(rows: list[Row]) -> None:
    assert size_sql(rows) == [size_class_py(*row) for row in rows]
    assert above_sql(rows) == [above_scale_py(code, revenue) for code, _, revenue, _ in rows]


def test_results_are_catalog_size_classes() -> None:
    assert set(boundary_sql()) | {"not_applicable"} == set(SIZE_CLASSES)


@pytest.mark.parametrize("code", ["J6610", "J6650", "J6750", "J6850"])
def test_central_banking_and_regulators_are_not_applicable_whatever_their_figures(code: str) -> None:
    """Not NULL: a size class no standard defines is not missing data to ask the enterprise for."""
    for row in ((code, 5, Decimal("1.00"), Decimal("1.00")), (code, None, None, None)):
        assert both_size(row) == ("not_applicable", "not_applicable")


def test_spark_rendering_parses_and_gives_the_same_answers() -> None:
    rows = [row for _, row, _ in BOUNDARY_CASES] + [
        ("J6620", 1, Decimal(1), Decimal(1)),
        (None, 1, None, None),
    ]
    for tree, run in ((SIZE_SQL, size_sql), (ABOVE_SQL, above_sql)):
        spark = tree.sql("spark")
        parsed = sqlglot.parse_one(spark, read="spark")
        assert "SUBSTRING(industry_code, 1, " in spark
        # Spark cannot run here: take its text back through sqlglot into DuckDB and compare answers.
        assert _run(parsed.sql("duckdb"), rows) == run(rows)
