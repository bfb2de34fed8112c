"""The ratio fields for the differential tests, computed here in Python from their inputs with Decimal,
independently of `matcher.ratios`, and inputs planted on and one fen (one person) around a threshold.

The definitions are the catalog's words (rules/catalog.py): rd_ratio = rd_expense / revenue, NULL when
revenue is 0; layoff_rate = max(0, insured_start - insured_end) / insured_start, 0 when insured_start is 0.
"""

from __future__ import annotations

import decimal
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from typing import Any

from hypothesis import strategies as st

# The thresholds the rules compare ratios with (the library's: 2.5%, 5%, 5.5%, 20%, ...).
RATIO_BOUNDS = [Decimal(x) for x in ("0", "0.02", "0.025", "0.05", "0.055", "0.2", "1")]
OFFSETS = [-1, 0, 1]  # fen of money, persons of counts
_CONTEXT = decimal.Context(prec=80)


def _divide(a: Decimal | int, b: Decimal | int) -> Decimal:
    with decimal.localcontext(_CONTEXT):
        return Decimal(a) / Decimal(b)


def with_ratios(row: dict[str, Any]) -> dict[str, Any]:
    """The row with rd_ratio and layoff_rate computed from their inputs."""
    rd, revenue = row.get("rd_expense"), row.get("revenue")
    start, end = row.get("insured_start"), row.get("insured_end")
    row["rd_ratio"] = None if rd is None or revenue is None or revenue == 0 else _divide(rd, revenue)
    if start is None or end is None:
        row["layoff_rate"] = None
    else:
        row["layoff_rate"] = Decimal(0) if start == 0 else _divide(max(start - end, 0), start)
    return row


def stored(value: Decimal | None) -> Decimal | None:
    """A ratio as the profile stores it: truncated to 12 places."""
    return None if value is None else value.quantize(Decimal("1E-12"), rounding=ROUND_DOWN)


def shown(value: Decimal | None) -> str:
    """A ratio as a near miss shows it: its 12 places without trailing zeros."""
    if value is None:
        return "NULL"
    text = format(stored(value), "f").rstrip("0").rstrip(".")
    return text


def planted_money(bound: Decimal, m: int, offset: int, on_numerator: bool) -> tuple[Decimal, Decimal]:
    """(numerator, denominator) in yuan whose quotient is `bound` exactly, then one fen off either one."""
    f = Fraction(bound)
    num, den = f.numerator * m, f.denominator * m
    if on_numerator:
        num += offset
    else:
        den += offset
    return Decimal(max(num, 0)).scaleb(-2), Decimal(max(den, 0)).scaleb(-2)


def planted_counts(bound: Decimal, m: int, offset: int) -> tuple[int, int]:
    """(insured_start, insured_end) losing exactly `bound` of the start, then one person more or fewer."""
    f = Fraction(bound)
    start = f.denominator * m
    lost = f.numerator * m + offset
    return start, min(max(start - lost, 0), start + 1)


PLANT = st.tuples(st.sampled_from(RATIO_BOUNDS), st.integers(1, 400), st.sampled_from(OFFSETS), st.booleans())
