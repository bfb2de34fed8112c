"""How values are shown to Chinese readers, in one place: China time, money, dates.

Templates (as filters), SMS texts, reports, notices and exports all format through these, so a total
reads the same on every page and in every file.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_DOWN, Decimal, InvalidOperation

CHINA = dt.timezone(dt.timedelta(hours=8))  # China Standard Time, no daylight saving
SIZE_LABELS = {"large": "大型", "medium": "中型", "small": "小型", "micro": "微型"}  # GB size classes
SIZE_NOT_APPLICABLE = "不适用划型"
"""How a size_class of not_applicable (a central bank, a regulator) reads; not a class to search by."""


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


def money_exact_cn(value: Decimal | str | int) -> str:
    """An amount a person must be able to trust to the fen (an SMS): 50万元 where that is exact, else
    12,345.67元 (never 1.23万元 for 12,345.67)."""
    amount = Decimal(value)
    short = money_cn(amount)
    for unit, scale in (("亿元", Decimal(10) ** 8), ("万元", Decimal(10) ** 4)):
        if short.endswith(unit) and Decimal(short.removesuffix(unit).replace(",", "")) * scale == amount:
            return short
    return f"{amount:,.2f}元"


def period(value: str | None) -> str:
    """A policy's period as people read it (it reaches the enterprise's bank statement): 一次性, 2025年度,
    2025年下半年 (2025H2), 2025年第三季度 (2025Q3); other forms as they are."""
    if value is None:
        return ""
    if value == "once":
        return "一次性"
    if len(value) == 4 and value.isdigit():
        return f"{value}年度"
    year, part = value[:4], value[4:]
    if year.isdigit() and part in _PARTS:
        return f"{year}年{_PARTS[part]}"
    return value


_PARTS = {
    "H1": "上半年",
    "H2": "下半年",
    "Q1": "第一季度",
    "Q2": "第二季度",
    "Q3": "第三季度",
    "Q4": "第四季度",
}


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
    """A moment on staff pages and in their exports: 2025年9月30日 14:05, China time (the day as `day`
    writes it)."""
    local = china(at)
    return "" if local is None else f"{day(local)} {local:%H:%M}"


def public_time(at: dt.datetime | str | None) -> str:
    """A moment as the public and enterprises read it: the same as staff read it, 2025年9月30日 14:05."""
    return staff_time(at)


def day(value: dt.date | dt.datetime | str | None) -> str:
    """A day as Chinese readers write it: 2025年9月30日 (a moment is taken in China time first)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = dt.date.fromisoformat(value[:10]) if len(value) <= 10 else dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        value = china(value) or value
    return f"{value.year}年{value.month}月{value.day}日"


def field_value(name: str, value: object) -> str:
    """A profile field's value as people read it, by the catalog field's type: 12.3%, 1,234.00 元, 35人,
    是/否, 中型; （空） for no value. `value` is typed (a match's row) or text (a run folder's)."""
    from rules.catalog import CATALOG  # the catalog loads the expression engine: only when needed

    if value is None or value == "NULL":
        return "（空）"
    if isinstance(value, bool):
        return "是" if value else "否"
    text = str(value)
    field = CATALOG.get(name)
    if field is None:
        return text
    try:
        if field.type == "ratio":
            # Truncated, never rounded: a ratio a hair below a 5% bound must not read "5.0%".
            return f"{(Decimal(text) * 100).quantize(Decimal('0.1'), ROUND_DOWN).normalize():f}%"
        if field.type == "money":
            return f"{Decimal(text):,.2f} 元"
        if field.type == "integer":
            return f"{Decimal(text).normalize():f}{field.unit if field.unit in ('人', '年') else ''}"
    except InvalidOperation:
        return text
    if field.type == "boolean":
        return {"true": "是", "false": "否"}.get(text.lower(), text)
    if field.type == "date":
        try:
            return day(value if isinstance(value, dt.date) else text)
        except ValueError:
            return text
    if name == "size_class":
        return SIZE_LABELS.get(text, SIZE_NOT_APPLICABLE if text == "not_applicable" else text)
    return text


_CODE = re.compile(r"`([^`]+)`")


def plain(text: str | None) -> str:
    """A message as staff read it on a page: a name or snippet the CLI marks with backticks (`budget`) in
    Chinese quotation marks instead (“budget”)."""
    return "" if text is None else _CODE.sub(r"“\1”", text)
