"""How values are shown to Chinese readers, in one place: China time, money, dates.

Templates (as filters), SMS texts, reports, notices and exports all format through these, so a total
reads the same on every page and in every file.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

CHINA = dt.timezone(dt.timedelta(hours=8))  # China Standard Time, no daylight saving


def money(value: Decimal | str | int | None) -> str:
    """Yuan with thousands separators and fen: 1,234,567.80 (empty for no value)."""
    return "" if value is None else f"{Decimal(value):,.2f}"


def money_cn(value: Decimal | str | int | None) -> str:
    """A total as a person reads it: 2.31亿元, 50万元, 3,000元 (amounts under 10,000 yuan as they are)."""
    if value is None:
        return ""
    amount = Decimal(value)
    for unit, scale in (("亿元", Decimal(10) ** 8), ("万元", Decimal(10) ** 4)):
        if abs(amount) >= scale:
            text = f"{(amount / scale).quantize(Decimal('0.01')):,}".rstrip("0").rstrip(".")
            return text + unit
    return f"{amount:,.2f}".removesuffix(".00") + "元"


def china(at: dt.datetime | str | None) -> dt.datetime | None:
    """The moment in China time (a naive value or text is taken as UTC, as the database stores it)."""
    if at is None or at == "":
        return None
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(CHINA)


def staff_time(at: dt.datetime | str | None) -> str:
    """A moment on staff pages: 2025-09-30 14:05, China time."""
    local = china(at)
    return "" if local is None else local.strftime("%Y-%m-%d %H:%M")


def public_time(at: dt.datetime | str | None) -> str:
    """A moment as the public and enterprises read it: 2025年09月30日 14:05, China time."""
    local = china(at)
    return "" if local is None else local.strftime("%Y年%m月%d日 %H:%M")
