"""Department exports as delivered: an Excel workbook (.xlsx) or a CSV file in UTF-8, GBK or GB18030, read
as a header (one text per column, from one or more header rows, merged cells spread over the columns they
cover) and data rows numbered as Excel numbers them.

Nothing is guessed: a file that does not decode in the encoding the mapping names is refused naming that
encoding (and the one it does decode in, if any), a workbook with several sheets needs the sheet named.
"""

from __future__ import annotations

import codecs
import csv
import io
import posixpath
import re
import zipfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils import get_column_letter, range_boundaries

from matcher.ingest.mapping import ENCODINGS, Source
from rules.errors import IngestError, SourceProblem, display_path

Cell = Any  # str, int, float, bool, datetime, date, time or None, as openpyxl or the CSV reader gives it
EXCEL = (".xlsx", ".xlsm")
CSV = (".csv", ".txt")
_XLSX_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls


def column_letter(index: int) -> str:
    """The Excel letter of a 0-based column index (0 -> A, 26 -> AA)."""
    return str(get_column_letter(index + 1))


@dataclass
class Export:
    """One opened export: its name and sheet as shown in messages, its headers (one per column, '' where
    a column has none), and its data rows as (Excel row number, cells); `ragged`: a CSV, whose rows
    must be as long as its header."""

    file: str
    sheet: str | None
    headers: list[str]
    rows: Iterator[tuple[int, list[Cell]]]
    ragged: bool = False  # whether a row shorter than the header is wrong (CSV) or normal (Excel)

    def problem(self, message: str, hint: str | None = None, **where: Any) -> SourceProblem:
        return SourceProblem(self.file, message, hint=hint, sheet=self.sheet, **where)


def open_export(path: Path, source: Source) -> Export:
    """Open an export the way its mapping source says; IngestError if it cannot be read at all."""
    shown = display_path(path)
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise IngestError(
            [SourceProblem(shown, f"无法读取文件：{e.strerror}", hint="检查路径和权限")]
        ) from None
    if magic == _OLE_MAGIC:
        raise IngestError(
            [
                SourceProblem(
                    shown,
                    "这是旧版 Excel 97-2003 工作簿（.xls），无法读取",
                    hint="在 Excel 中另存为 .xlsx 工作簿后再导入",
                )
            ]
        )
    if magic == _XLSX_MAGIC:
        return _open_workbook(path, shown, source)
    if path.suffix.lower() in EXCEL:
        raise IngestError(
            [SourceProblem(shown, "文件以 .xlsx 结尾，内容却不是 Excel 工作簿", hint="重新从系统导出")]
        )
    if source.sheet is not None:
        raise IngestError(
            [
                SourceProblem(
                    shown,
                    f"映射写了工作表 {source.sheet}，但该文件是 CSV，没有工作表",
                    hint="删除映射中该文件的 sheet",
                )
            ]
        )
    return _open_csv(path, shown, source)


def _headers(rows: list[list[Cell]], merged: list[tuple[int, int, int, int]], first_row: int) -> list[str]:
    """One text per column from the header rows: a merged cell's text spread over the cells it covers, the
    parts of a column from top to bottom joined with '/', a part repeated by a vertical merge kept once."""
    width = max((len(r) for r in rows), default=0)
    grid = [[_header_text(r[c]) if c < len(r) else "" for c in range(width)] for r in rows]
    for min_col, min_row, max_col, max_row in merged:
        top = min_row - first_row
        if top < 0 or top >= len(grid):
            continue
        text = grid[top][min_col - 1] if min_col - 1 < width else ""
        for r in range(top, min(max_row - first_row + 1, len(grid))):
            for c in range(min_col - 1, min(max_col, width)):
                grid[r][c] = text
    out = []
    for c in range(width):
        parts: list[str] = []
        for r in range(len(grid)):
            if grid[r][c] and (not parts or parts[-1] != grid[r][c]):
                parts.append(grid[r][c])
        out.append("/".join(parts))
    return out


def _header_text(value: Cell) -> str:
    return "" if value is None else str(value).strip()


def _empty(cells: list[Cell]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


def _data_rows(rows: Iterator[tuple[int, list[Cell]]], source: Source) -> Iterator[tuple[int, list[Cell]]]:
    """The rows below the header, empty ones left out, the last `footer_rows` non-empty ones too."""
    held: deque[tuple[int, list[Cell]]] = deque()
    for number, cells in rows:
        if number < source.first_data_row or _empty(cells):
            continue
        held.append((number, cells))
        if len(held) > source.footer_rows:
            yield held.popleft()


# --- Excel ----------------------------------------------------------------------------------------------


def _open_workbook(path: Path, shown: str, source: Source) -> Export:
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many kinds for a damaged workbook
        raise IngestError(
            [
                SourceProblem(
                    shown, f"无法打开 Excel 工作簿：{e}", hint="在 Excel 中打开并另存为 .xlsx 后再导入"
                )
            ]
        ) from None
    names = list(book.sheetnames)
    if source.sheet is None and len(names) > 1:
        book.close()
        raise IngestError(
            [
                SourceProblem(
                    shown,
                    f"工作簿有 {len(names)} 个工作表（{'、'.join(names)}），映射未指明读哪一个",
                    hint="在映射中写 sheet: 工作表名",
                )
            ]
        )
    name = source.sheet if source.sheet is not None else names[0]
    if name not in names:
        book.close()
        raise IngestError(
            [
                SourceProblem(
                    shown,
                    f"没有名为「{name}」的工作表；工作簿中有：{'、'.join(names)}",
                    hint="更正映射中的 sheet",
                )
            ]
        )
    sheet = book[name]
    merged, has_formulas = _scan_sheet(path, sheet._worksheet_path)
    sheet.reset_dimensions()  # some exporters write a wrong <dimension>; read what is there
    values = sheet.iter_rows(values_only=True)
    formulas_book = None
    if has_formulas:
        # A formula saved without its result (a workbook written by a program, never opened in Excel)
        # reads as empty: read the formulas alongside to tell such a cell from an empty one.
        formulas_book = load_workbook(path, read_only=True, data_only=False)
        formulas = formulas_book[name]
        formulas.reset_dimensions()
        values = (
            tuple(Uncomputed(str(f)) if v is None and _is_formula(f) else v for v, f in zip_longest(vs, fs))
            for vs, fs in zip_longest(values, formulas.iter_rows(values_only=True), fillvalue=())
        )
    numbered = ((n, list(cells)) for n, cells in enumerate(values, start=1))
    header_rows: list[list[Cell]] = []
    for number, cells in numbered:
        if number >= source.header_rows[0]:
            header_rows.append(cells)
        if number == source.header_rows[-1]:
            break
    headers = _headers(header_rows, merged, source.header_rows[0])

    def rows() -> Iterator[tuple[int, list[Cell]]]:
        try:
            yield from _data_rows(numbered, source)
        finally:
            book.close()
            if formulas_book is not None:
                formulas_book.close()

    return Export(shown, name, headers, rows())


@dataclass(frozen=True)
class Uncomputed:
    """A formula cell saved without its result: not an empty cell, and not a value."""

    formula: str


def _is_formula(value: Cell) -> bool:
    return isinstance(value, str) and value.startswith("=")


_FORMULA = re.compile(rb"<(?:\w+:)?f[ >/]")
_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\s[^>]*?ref="([A-Z]+[0-9]+:[A-Z]+[0-9]+)"')


def _scan_sheet(path: Path, sheet_path: str) -> tuple[list[tuple[int, int, int, int]], bool]:
    """A worksheet's merged ranges as (min_col, min_row, max_col, max_row), and whether it holds any
    formula: a scan of its XML bytes (a read-only sheet parses neither, and an XML parse of a large sheet
    would cost as much as reading it)."""
    merged: list[tuple[int, int, int, int]] = []
    formulas = False
    tail = b""
    with zipfile.ZipFile(path) as archive, archive.open(posixpath.normpath(sheet_path).lstrip("/")) as xml:
        while chunk := xml.read(1 << 20):
            data = tail + chunk
            formulas = formulas or _FORMULA.search(data) is not None
            cut = data.rfind(b"<")  # an element cut by the chunk's end is searched with the next chunk
            for found in _MERGE.finditer(data, 0, cut if cut > 0 else len(data)):
                min_col, min_row, max_col, max_row = range_boundaries(found.group(1).decode())
                assert min_col and min_row and max_col and max_row
                merged.append((min_col, min_row, max_col, max_row))
            tail = data[cut:] if cut > 0 else b""
    return merged, formulas


# --- CSV ------------------------------------------------------------------------------------------------

_BOM = codecs.BOM_UTF8


def _decode(data: bytes, shown: str, encoding: str) -> str:
    """The text of a CSV file in the mapping's encoding; IngestError naming the encoding tried, the line
    where it failed and the encoding the file does decode in."""

    def others() -> str:
        fits = [e for e in ENCODINGS if e != encoding and _decodes(data, e)]
        return (
            f"该文件可按 {fits[0]} 解码：请把映射中该文件的 encoding 改为 {fits[0]}"
            if fits
            else "请确认导出时选择的编码，重新导出"
        )

    if data.startswith(_BOM) and encoding != "utf-8":
        raise IngestError(
            [
                SourceProblem(
                    shown,
                    f"映射写的编码是 {encoding}，但文件以 UTF-8 的 BOM 开头，是 UTF-8 编码",
                    hint="把映射中该文件的 encoding 改为 utf-8",
                )
            ]
        )
    try:
        text = data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise IngestError(
            [
                SourceProblem(
                    shown,
                    f"按 {encoding} 编码无法解码（第 {line} 行，第 {e.start:,} 字节）",
                    hint=others(),
                    line=None,
                )
            ]
        ) from None
    if encoding != "utf-8" and not data.isascii() and _decodes(data, "utf-8"):
        # GBK bytes of Chinese text are almost never valid UTF-8; UTF-8 read as GBK would be garbled text.
        raise IngestError(
            [
                SourceProblem(
                    shown,
                    f"映射写的编码是 {encoding}，但文件是 UTF-8 编码（按 {encoding} 读会成为乱码）",
                    hint="把映射中该文件的 encoding 改为 utf-8",
                )
            ]
        )
    return text


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError:
        return False
    return True


def _open_csv(path: Path, shown: str, source: Source) -> Export:
    text = _decode(path.read_bytes(), shown, source.encoding)
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise IngestError(
            [SourceProblem(shown, f"第 {line} 行含 NUL 字符（\\x00）", hint="检查导出程序，去掉后重新导出")]
        )
    reader = csv.reader(io.StringIO(text, newline=""))
    numbered = ((n, list(cells)) for n, cells in enumerate(reader, start=1))
    header_rows: list[list[Cell]] = []
    try:
        for number, cells in numbered:
            if number >= source.header_rows[0]:
                header_rows.append(cells)
            if number == source.header_rows[-1]:
                break
    except csv.Error as e:
        raise IngestError([SourceProblem(shown, f"CSV 无法解析：{e}", hint="检查引号是否成对")]) from None
    headers = _headers(header_rows, [], source.header_rows[0])

    def rows() -> Iterator[tuple[int, list[Cell]]]:
        try:
            yield from _data_rows(numbered, source)
        except csv.Error as e:
            raise IngestError([SourceProblem(shown, f"CSV 无法解析：{e}", hint="检查引号是否成对")]) from None

    return Export(shown, None, headers, rows(), ragged=True)


_SPACES = re.compile(r"\s+")


def shown_header(header: str) -> str:
    """A header as a message shows it: line breaks inside a cell as spaces."""
    return _SPACES.sub(" ", header)
