"""The derived ratios (rd_ratio, layoff_rate) as exact fractions: the one definition of each.

A quotient of two money values is rarely a finite binary fraction: 37,157.54 / 743,150.80 is exactly
0.05, but as a DOUBLE it is 0.049999999999999996, below a `rd_ratio >= 0.05` threshold it meets. So a
ratio is never divided to be compared. Each is a numerator and a positive denominator over the
profile's stored fields (`Ratio`), and the compiler (`matcher.compile`) compares `num op c × den`,
cross-multiplied on exact decimals (`docs/matching.md#ratios`).

The profile's column of a ratio is NULL exactly when the ratio is undefined (an input NULL, or the
definition says so), which is what masks a condition's verdict. Its value is the quotient truncated
towards zero to `SCALE` places (`value_sql`): exact whenever the ratio has at most `SCALE` decimal places
(5.00% is 0.05), never rounded up past a threshold it does not reach. It is what a near miss shows.
The Python side (`exact`) divides at `PRECISION` digits for the reference and `zhida explain`.
"""

from __future__ import annotations

import decimal
import functools
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import sqlglot
from sqlglot import exp

from rules.catalog import CATALOG
from rules.expressions import PRECISION

Column = Callable[[str], exp.Expression]

# Places of a ratio's value in the profile (truncated): DECIMAL(38, SCALE).
SCALE = 12
VALUE_TYPE = f"DECIMAL(38, {SCALE})"


@dataclass(frozen=True)
class Ratio:
    """A ratio field: `numerator / denominator` over stored fields, NULL when an input is NULL or when
    `undefined` holds. The denominator is positive wherever the ratio is defined, the numerator carries
    the sign; `scale` is the decimal places of both (money 2, counts 0)."""

    name: str
    numerator: Callable[[Column], exp.Expression]
    denominator: Callable[[Column], exp.Expression]
    undefined: Callable[[Column], exp.Expression] | None
    scale: int


def _sql(text: str, col: Column) -> exp.Expression:
    """A definition written as SQL over bare field names, with each field made by `col`."""
    tree = _template(text).transform(lambda n: col(n.name) if isinstance(n, exp.Column) else n)
    assert isinstance(tree, exp.Expression)
    return tree


@functools.cache
def _template(text: str) -> exp.Expr:
    """A SQL text parsed once; never modified (`transform` gives a new tree)."""
    return sqlglot.parse_one(text, read="duckdb")


# rd_expense / revenue, NULL when revenue is 0. The snapshot rejects negative money, yet a negative
# revenue would still divide right: its sign moves to the numerator.
RD_RATIO = Ratio(
    "rd_ratio",
    numerator=lambda c: _sql("CASE WHEN revenue < 0 THEN -rd_expense ELSE rd_expense END", c),
    denominator=lambda c: _sql("ABS(revenue)", c),
    undefined=lambda c: _sql("revenue = 0", c),
    scale=2,
)
# max(0, insured_start - insured_end) / insured_start, 0 when insured_start is 0 (counts are never
# negative in an accepted snapshot).
LAYOFF_RATE = Ratio(
    "layoff_rate",
    numerator=lambda c: _sql(
        "CASE WHEN insured_start = 0 THEN 0 ELSE GREATEST(insured_start - insured_end, 0) END", c
    ),
    denominator=lambda c: _sql("CASE WHEN insured_start = 0 THEN 1 ELSE insured_start END", c),
    undefined=None,
    scale=0,
)

RATIOS: dict[str, Ratio] = {r.name: r for r in (RD_RATIO, LAYOFF_RATE)}

_INT128 = exp.DataType.build("INT128")

# The quotient truncated to SCALE places, on integers (DuckDB HUGEINT, Spark DECIMAL(38, 0)): the whole
# part, then SCALE digits of the remainder; each step's type keeps Spark's decimals exact (no operand
# wider than the result it needs, so no precision is dropped).
_VALUE = f"""
CAST(
  CAST(:a // :b AS DECIMAL(31, {SCALE}))
  + CAST((:a % :b) * {10**SCALE} // :b AS DECIMAL(13, 0)) * {format(Decimal(1).scaleb(-SCALE), "f")}
  AS {VALUE_TYPE})
"""


def value_sql(ratio: Ratio, col: Column) -> exp.Expression:
    """The ratio's profile column: NULL when undefined, else the quotient truncated to SCALE places."""
    unit = 10**ratio.scale

    def integer(x: exp.Expression) -> exp.Expression:
        if ratio.scale == 0:
            return exp.cast(x, _INT128, copy=False)
        wide = exp.cast(x, f"DECIMAL(38, {ratio.scale})", copy=False)
        return exp.cast(exp.Mul(this=wide, expression=exp.Literal.number(unit)), _INT128, copy=False)

    a, b = integer(ratio.numerator(col)), integer(ratio.denominator(col))
    value = _template(_VALUE).transform(
        lambda n: (a if n.name == "a" else b).copy() if isinstance(n, exp.Placeholder) else n
    )
    nulls: list[exp.Expression] = [
        exp.Is(this=col(f), expression=exp.null()) for f in CATALOG[ratio.name].inputs
    ]
    if ratio.undefined is not None:
        nulls.append(ratio.undefined(col))
    return exp.Case(ifs=[exp.If(this=exp.or_(*nulls, copy=False), true=exp.null())], default=value)


def exact(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    """A ratio's value in Python, to PRECISION significant digits (exact where it terminates sooner)."""
    with decimal.localcontext(decimal.Context(prec=PRECISION)):
        return Decimal(numerator) / Decimal(denominator)
