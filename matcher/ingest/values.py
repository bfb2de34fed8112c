"""One exported cell as the text a snapshot CSV holds for its field (Contract 2): dates as YYYY-MM-DD,
money in yuan with two decimals (converted from 万元 exactly, in Decimal), whole numbers, coded values by the
mapping's code list, true/false.

Nothing is guessed: a value that does not convert exactly raises `BadValue` with what is wrong and the fix.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from decimal import Decimal, InvalidOperation

from matcher.ingest.exports import Cell, Uncomputed
from matcher.ingest.mapping import UNITS, Column, DateFormat
from matcher.snapshot_rules import CODE_COLUMNS, MONEY

FEN = Decimal("0.01")
EXCEL_ERRORS = frozenset(
    {"#N/A", "#VALUE!", "#REF!", "#DIV/0!", "#NUM!", "#NAME?", "#NULL!", "#SPILL!", "#CALC!"}
)
"""What Excel shows in a cell whose formula failed: never a value."""
_NUMBER = re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?")
_SAFE_NUMERIC_CODES = {
    "region_code": re.compile(r"[1-9]\d{5}"),  # GB/T 2260 codes have six digits and never start with 0
    "contact_phone": re.compile(r"1\d{10}"),  # a mobile number; a landline would lose its leading 0
}
"""Code columns an Excel number cell may hold without loss, and the numbers that are safe."""
PERSONAL = frozenset({"contact_phone", "account_no"})
"""Fields whose values messages never quote (personal data: terminals and logs keep them)."""


class BadValue(Exception):
    """A cell that cannot become its field's value without guessing: what is wrong, and the fix."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def shown(value: Cell) -> str:
    """A cell's value as a message quotes it."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"“{value}”"


def convert(
    value: Cell, kind: str, column: Column, formats: tuple[DateFormat, ...], nulls: frozenset[str]
) -> str | None:
    """The snapshot text of `value` for a field of DuckDB type `kind` (None: empty)."""
    if isinstance(value, Uncomputed):
        raise BadValue(
            f"公式单元格 {value.formula} 没有保存计算结果",
            "请在 Excel 中打开该文件、保存一次（或把公式复制为数值）后重新导入",
        )
    if isinstance(value, str):
        value = value.strip()
        if not value or value in nulls:
            return None
        if value in EXCEL_ERRORS:
            raise BadValue(f"单元格为 Excel 错误值 {value}", "请更正该单元格的公式或数据后重新导出")
    if value is None:
        return None
    if column.codes is not None:
        return _code(value, column)
    if kind == "DATE":
        return _date(value, formats).isoformat()
    if kind == MONEY:
        return str(_money(value, column.unit))
    if kind in ("INTEGER", "BIGINT"):
        return str(_whole(value))
    if kind == "BOOLEAN":  # the mapping requires a code list for these; kept for a constant
        return str(value)
    return _text(value, column.field)


def _code(value: Cell, column: Column) -> str:
    assert column.codes is not None
    text = _text(value, column.field)
    if text in column.codes:
        return column.codes[text]
    close = difflib.get_close_matches(text, list(column.codes), n=1, cutoff=0.5)
    known = "、".join(column.codes)
    raise BadValue(
        f"{shown(value)} 不在代码表中" + (f"（是“{close[0]}”吗？）" if close else ""),
        f"可接受的值：{known}；若这是有效的值，请在映射文件该列的 codes 中加入它",
    )


def _text(value: Cell, field: str) -> str:
    if isinstance(value, bool):
        raise BadValue(f"单元格为逻辑值 {value}，应为文本", "请将该列设为文本格式后重新导出")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if field == "uscc" or not float(value).is_integer():
            raise BadValue(
                "单元格为数值格式" + ("" if field in PERSONAL else f" {shown(value)}") + "，应为文本",
                "统一社会信用代码等代码须以文本格式导出；请将该列设为文本格式后重新导出",
            )
        digits = str(int(value))
        safe = _SAFE_NUMERIC_CODES.get(field)
        if field in CODE_COLUMNS and (safe is None or not safe.fullmatch(digits)):
            quoted = "" if field in PERSONAL else f" {digits}"
            raise BadValue(
                f"单元格为数值格式{quoted}，代码的前导零可能已丢失",
                "请将该列设为文本格式后重新导出",
            )
        return digits
    if isinstance(value, dt.date | dt.time):
        raise BadValue(f"单元格为日期格式 {value}，应为文本", "请将该列设为文本格式后重新导出")
    return str(value)


def _date(value: Cell, formats: tuple[DateFormat, ...]) -> dt.date:
    examples = "、".join(f.example for f in formats)
    if isinstance(value, dt.datetime):
        if value.time() != dt.time(0):
            raise BadValue(f"日期带有时刻 {value}", "请导出不含时刻的日期")
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, int | float):
        raise BadValue(
            f"单元格为数值 {shown(value)}，不是日期（可能是未设日期格式的 Excel 日期序号）",
            "请将该列设为日期格式，或导出为文本日期如 " + (formats[0].example if formats else "2025-09-30"),
        )
    text = str(value)
    found: dict[dt.date, str] = {}
    for f in formats:
        try:
            day = f.parse(text)
        except ValueError:
            raise BadValue(f"“{text}”不是有效的日期", "请更正该单元格") from None
        if day is not None:
            found.setdefault(day, f.example)
    if len(found) > 1:
        readings = "，".join(f"按 {ex} 是 {d.year}年{d.month}月{d.day}日" for d, ex in found.items())
        raise BadValue(
            f"日期“{text}”有歧义：{readings}",
            "在映射文件的 date_formats 中只保留该文件实际使用的写法",
        )
    if not found:
        raise BadValue(
            f"无法识别的日期“{text}”",
            f"可接受的写法：{examples}；请更正该单元格，或在映射文件的 date_formats 中加入这种写法，写法以2025年9月30日为例",
        )
    return next(iter(found))


def _decimal(value: Cell) -> Decimal:
    if isinstance(value, bool) or isinstance(value, dt.date | dt.time):
        raise BadValue(f"{shown(value)} 不是数字", "请更正该单元格")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # Excel keeps numbers as binary floats; the shortest text that reads back as the same float is
        # the number Excel shows and the department typed.
        return Decimal(repr(value))
    text = str(value)
    if not _NUMBER.fullmatch(text):
        raise BadValue(f"“{text}”不是数字", "请只填写数字，可带千分位逗号和小数点，不带单位")
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise BadValue(f"“{text}”不是数字", "请只填写数字") from None


def _money(value: Cell, unit: str | None) -> Decimal:
    amount = _decimal(value) * UNITS[unit or "元"]
    exact = amount.quantize(FEN)
    if exact != amount:
        raise BadValue(
            f"{shown(value)}{unit or '元'} 折合 {amount.normalize():f} 元，不足一分的部分无法保留",
            "金额须精确到分；请核对该单元格或导出更精确的金额",
        )
    return exact


def _whole(value: Cell) -> int:
    number = _decimal(value)
    if number != number.to_integral_value():
        raise BadValue(f"{shown(value)} 不是整数", "人数、年度等须为整数；请更正该单元格")
    return int(number)
