"""Enterprise size class and the above-designated-size flag, as data and as sqlglot trees.

Two profile fields (Contract 3) are defined here once, as data, and rendered three ways from it: a
dialect-neutral SQL CASE tree (DuckDB and Spark SQL render it), and a plain-Python function that the
tests use as a second opinion.

- `size_class`: 统计上大中小微型企业划分办法(2017) (国统字〔2017〕213号), `SIZE_TABLE`. Large, medium and
  small must meet every lower bound their industry row lists, otherwise the enterprise drops a level; an
  enterprise that is not small is micro (below the small bound on at least one indicator).
- `above_scale`: 规模以上/限额以上 by yearly revenue against the bound of the enterprise's industry,
  `ABOVE_SCALE`.

Units: the document's bounds are persons (从业人员 X) and 10,000 yuan (营业收入 Y, 资产总额 Z); the
profile holds employees as an integer and revenue and total_assets in yuan, DECIMAL(18,2). Bounds are
converted to yuan as exact integers, never floats.

Missing data is not a default: when the industry is outside the table, or any indicator its row uses is
NULL, the field is NULL. Indicators a row does not use are not read.

Industries are matched by GB/T 4754-2017 code prefix (`C3911` starts with `C`), so a code that is too
coarse to decide (`G59` could be 装卸搬运 or 仓储; `K70` any of five rows) matches no row and gives NULL.
Outside the size table, hence NULL: 教育 (P), 卫生 (Q84), 铁路运输业 (G53), 房地产租赁经营 (K704, the
2017 name of 自有房地产经营活动, which the document's note excludes from 其他未列明行业), 公共管理 (S),
国际组织 (T).

金融业 (J) has its own standard, 金融业企业划型标准规定 (银发〔2015〕309号), by 资产总额 per kind of
financial enterprise; it is not applied here yet (NULL; see docs/matching.md#size-class).
Central banking and the regulators (中央银行服务 J661, 银行监管服务 J665, 证券期货监管服务 J675, 保险监管
服务 J685) are not enterprises the document classifies: their size class is `not_applicable`, a value,
so no enterprise is asked for figures that cannot decide it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sqlglot import exp

SizeClass = Literal["large", "medium", "small", "micro", "not_applicable"]
Indicator = Literal["X", "Y", "Z"]

# Yuan per 万元, the document's unit of money.
YUAN_PER_WAN = 10_000
NOT_APPLICABLE: SizeClass = "not_applicable"


@dataclass(frozen=True)
class Bounds:
    """Lower bounds of one indicator for large, medium and small, in the document's unit (persons or 万元)."""

    large: int
    medium: int
    small: int

    def __post_init__(self) -> None:
        if not self.large > self.medium > self.small > 0:
            raise ValueError(f"bounds must fall strictly from large to small: {self}")

    def for_class(self, size: SizeClass) -> int:
        """The lower bound of `size` (large, medium or small; micro has none)."""
        if size == "large":
            return self.large
        if size == "medium":
            return self.medium
        if size == "small":
            return self.small
        raise ValueError("micro has no lower bound")


@dataclass(frozen=True)
class SizeRow:
    """One industry row of the 2017 table: the codes it covers and its bounds per indicator.

    `codes` are GB/T 4754-2017 codes (section letter, then division/group digits) matched as prefixes of
    the enterprise's industry_code. `x` is 从业人员 (persons), `y` 营业收入 and `z` 资产总额 (万元); a row
    reads only the indicators it lists.
    """

    name: str
    codes: tuple[str, ...]
    x: Bounds | None = None
    y: Bounds | None = None
    z: Bounds | None = None

    def __post_init__(self) -> None:
        if not self.codes or not self.indicators():
            raise ValueError(f"size row {self.name} needs codes and at least one indicator")

    def indicators(self) -> tuple[tuple[Indicator, Bounds], ...]:
        """The indicators this row uses, with their bounds, in X, Y, Z order."""
        listed: tuple[tuple[Indicator, Bounds | None], ...] = (("X", self.x), ("Y", self.y), ("Z", self.z))
        return tuple((name, bounds) for name, bounds in listed if bounds is not None)


@dataclass(frozen=True)
class ScaleBound:
    """The 规模以上/限额以上 revenue bound (万元) of the industries whose codes are listed (prefixes)."""

    name: str
    codes: tuple[str, ...]
    revenue: int


_B = Bounds

# 统计上大中小微型企业划分办法(2017), 附表 统计上大中小微型企业划分标准.
SIZE_TABLE: tuple[SizeRow, ...] = (
    SizeRow("农、林、牧、渔业", ("A",), y=_B(20000, 500, 50)),
    SizeRow("工业", ("B", "C", "D"), x=_B(1000, 300, 20), y=_B(40000, 2000, 300)),
    SizeRow("建筑业", ("E",), y=_B(80000, 6000, 300), z=_B(80000, 5000, 300)),
    SizeRow("批发业", ("F51",), x=_B(200, 20, 5), y=_B(40000, 5000, 1000)),
    SizeRow("零售业", ("F52",), x=_B(300, 50, 10), y=_B(20000, 500, 100)),
    # Not 铁路运输业 (G53); 591 is 装卸搬运.
    SizeRow(
        "交通运输业",
        ("G54", "G55", "G56", "G57", "G58", "G591"),
        x=_B(1000, 300, 20),
        y=_B(30000, 3000, 200),
    ),
    SizeRow(
        "仓储业",
        ("G592", "G593", "G594", "G595", "G596", "G599"),
        x=_B(200, 100, 20),
        y=_B(30000, 1000, 100),
    ),
    SizeRow("邮政业", ("G60",), x=_B(1000, 300, 20), y=_B(30000, 2000, 100)),
    SizeRow("住宿业", ("H61",), x=_B(300, 100, 10), y=_B(10000, 2000, 100)),
    SizeRow("餐饮业", ("H62",), x=_B(300, 100, 10), y=_B(10000, 2000, 100)),
    SizeRow("信息传输业", ("I63", "I64"), x=_B(2000, 100, 10), y=_B(100000, 1000, 100)),
    SizeRow("软件和信息技术服务业", ("I65",), x=_B(300, 100, 10), y=_B(10000, 1000, 50)),
    SizeRow("房地产开发经营", ("K701",), y=_B(200000, 1000, 100), z=_B(10000, 5000, 2000)),
    SizeRow("物业管理", ("K702",), x=_B(1000, 300, 100), y=_B(5000, 1000, 500)),
    SizeRow("租赁和商务服务业", ("L",), x=_B(300, 100, 10), z=_B(120000, 8000, 100)),
    # 科学研究和技术服务业, 水利、环境和公共设施管理业, 居民服务、修理和其他服务业, 社会工作, 文化、体育和娱乐业,
    # 房地产中介服务 and 其他房地产业; not 自有房地产经营活动 (K704 房地产租赁经营 in GB/T 4754-2017).
    SizeRow("其他未列明行业", ("K703", "K709", "M", "N", "O", "Q85", "R"), x=_B(300, 100, 10)),
)

# Public bodies in section J that no size standard classifies.
NOT_APPLICABLE_CODES = ("J661", "J665", "J675", "J685")

# 规模以上/限额以上 by revenue (domain README; NBS statistical system as stated by local bureaus 2021-2024).
# 建筑业 (E) and 房地产开发经营 (K701) are set by qualification, A, J and the rest not by revenue: NULL.
ABOVE_SCALE: tuple[ScaleBound, ...] = (
    ScaleBound("工业", ("B", "C", "D"), 2000),
    ScaleBound("批发业", ("F51",), 2000),
    ScaleBound("零售业", ("F52",), 500),
    ScaleBound("住宿业和餐饮业", ("H",), 200),
    ScaleBound("交通运输、仓储和邮政业", ("G",), 2000),
    ScaleBound("信息传输、软件和信息技术服务业", ("I",), 2000),
    ScaleBound("水利、环境和公共设施管理业", ("N",), 2000),
    ScaleBound("卫生", ("Q84",), 2000),
    ScaleBound("租赁和商务服务业", ("L",), 1000),
    ScaleBound("科学研究和技术服务业", ("M",), 1000),
    ScaleBound("教育", ("P",), 1000),
    ScaleBound("房地产业（不含房地产开发经营）", ("K702", "K703", "K704", "K709"), 1000),
    ScaleBound("居民服务、修理和其他服务业", ("O",), 500),
    ScaleBound("文化、体育和娱乐业", ("R",), 500),
    ScaleBound("社会工作", ("Q85",), 500),
)

# The classes with lower bounds, tried from the top; an enterprise that meets none of them is micro.
_RANKED: tuple[SizeClass, ...] = ("large", "medium", "small")

# How many profile units (persons, yuan) one document unit of each indicator is.
_SCALE: Mapping[Indicator, int] = {"X": 1, "Y": YUAN_PER_WAN, "Z": YUAN_PER_WAN}


# --- Python -----------------------------------------------------------------------------------------------


def _covers(codes: Iterable[str], industry_code: str) -> bool:
    return any(industry_code.startswith(code) for code in codes)


def size_row_for(industry_code: str | None) -> SizeRow | None:
    """The 2017 table row an industry code falls in, or None when it is outside the table or too coarse."""
    if industry_code is None:
        return None
    return next((row for row in SIZE_TABLE if _covers(row.codes, industry_code)), None)


def not_applicable(industry_code: str | None) -> bool:
    """Whether no size standard classifies the industry (a central bank, a regulator)."""
    return industry_code is not None and _covers(NOT_APPLICABLE_CODES, industry_code)


def scale_bound_for(industry_code: str | None) -> ScaleBound | None:
    """The above-scale revenue bound of an industry code, or None where revenue does not set it."""
    if industry_code is None:
        return None
    return next((bound for bound in ABOVE_SCALE if _covers(bound.codes, industry_code)), None)


def size_class_py(
    industry_code: str | None,
    employees: int | None,
    revenue: Decimal | None,
    total_assets: Decimal | None,
) -> SizeClass | None:
    """The size class of one enterprise (revenue and total_assets in yuan), or None when it is unknown."""
    if not_applicable(industry_code):
        return NOT_APPLICABLE
    row = size_row_for(industry_code)
    if row is None:
        return None
    inputs: Mapping[Indicator, int | Decimal | None] = {"X": employees, "Y": revenue, "Z": total_assets}
    values: dict[Indicator, int | Decimal] = {}
    for indicator, _ in row.indicators():
        value = inputs[indicator]
        if value is None:
            return None
        values[indicator] = value
    for size in _RANKED:
        if all(
            values[indicator] >= bounds.for_class(size) * _SCALE[indicator]
            for indicator, bounds in row.indicators()
        ):
            return size
    return "micro"


def above_scale_py(industry_code: str | None, revenue: Decimal | None) -> bool | None:
    """Whether revenue (yuan) reaches the above-scale bound of the industry; None when unknown."""
    bound = scale_bound_for(industry_code)
    if bound is None or revenue is None:
        return None
    return revenue >= bound.revenue * YUAN_PER_WAN


# --- SQL --------------------------------------------------------------------------------------------------


def _industry_in(industry_code: exp.Expression, codes: Iterable[str]) -> exp.Expression:
    """`SUBSTRING(code, 1, n) IN (...)` per prefix length, OR-ed: a portable prefix match."""
    by_length: dict[int, list[str]] = {}
    for code in codes:
        by_length.setdefault(len(code), []).append(code)
    tests: list[exp.Expression] = [
        exp.Substring(
            this=industry_code.copy(), start=exp.Literal.number(1), length=exp.Literal.number(length)
        ).isin(*(exp.Literal.string(code) for code in sorted(same)))
        for length, same in sorted(by_length.items())
    ]
    # exp.Or rather than exp.or_, whose return type is not an Expression in every sqlglot version.
    return functools.reduce(lambda left, right: exp.Or(this=left, expression=right), tests)


def _at_least(value: exp.Expression, bound: int) -> exp.Expression:
    """`value >= bound`, the bound an exact integer literal (persons or yuan)."""
    return exp.GTE(this=value.copy(), expression=exp.Literal.number(bound))


def _row_class(row: SizeRow, inputs: Mapping[Indicator, exp.Expression]) -> exp.Expression:
    """The CASE that classifies an enterprise known to be in `row`."""
    used = row.indicators()
    case = exp.case().when(exp.or_(*(inputs[ind].copy().is_(exp.null()) for ind, _ in used)), exp.null())
    for size in _RANKED:
        meets_all = exp.and_(
            *(_at_least(inputs[ind], bounds.for_class(size) * _SCALE[ind]) for ind, bounds in used)
        )
        case = case.when(meets_all, exp.Literal.string(size))
    return case.else_(exp.Literal.string("micro"))


def size_class_expr(
    industry_code: exp.Expression,
    employees: exp.Expression,
    revenue: exp.Expression,
    total_assets: exp.Expression,
) -> exp.Expression:
    """The size class as a SQL CASE tree: 'large', 'medium', 'small', 'micro', 'not_applicable' or NULL.

    `revenue` and `total_assets` are yuan (DECIMAL(18,2)), `employees` persons. Renders to DuckDB and
    Spark SQL alike.
    """
    inputs: Mapping[Indicator, exp.Expression] = {"X": employees, "Y": revenue, "Z": total_assets}
    case = exp.case().when(
        _industry_in(industry_code, NOT_APPLICABLE_CODES), exp.Literal.string(NOT_APPLICABLE)
    )
    for row in SIZE_TABLE:
        case = case.when(_industry_in(industry_code, row.codes), _row_class(row, inputs))
    return case.else_(exp.null())


def above_scale_expr(industry_code: exp.Expression, revenue: exp.Expression) -> exp.Expression:
    """Above designated size as a SQL CASE tree: TRUE, FALSE, or NULL (revenue or the bound unknown).

    `revenue` is yuan (DECIMAL(18,2)).
    """
    case = exp.case()
    for bound in ABOVE_SCALE:
        case = case.when(
            _industry_in(industry_code, bound.codes), _at_least(revenue, bound.revenue * YUAN_PER_WAN)
        )
    return case.else_(exp.null())
