"""The mapping file of `zhida snapshot import` (docs/contracts.md#the-mapping-file): how each department
export becomes a snapshot table.

A mapping names, per source file, the snapshot table it feeds, where its header is, which header feeds
which field (with the unit of money and the code list of coded values), the date formats it uses and the
fields it does not hold but that are the same on every row. `load_mapping` reads and checks the file as a
whole and raises `IngestError` listing every problem with its line.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from matcher.snapshot_rules import MONEY, SPECS, TABLE_NAMES, taken_at_date
from rules.errors import IngestError, SnapshotError, SourceProblem, display_path

UNITS: dict[str, Decimal] = {
    "元": Decimal(1),
    "千元": Decimal(1000),
    "万元": Decimal(10000),
    "亿元": Decimal(10**8),
}
"""Money units a department may export in, and how many yuan one of them is."""
ENCODINGS = ("utf-8", "gbk", "gb18030")
"""CSV encodings: UTF-8 (with or without BOM), and the two national ones Chinese Excel saves in."""
EXAMPLE_DAY = dt.date(2025, 9, 30)
"""A date format is written as this day would be written in the file: 2025/9/30, 2025年9月30日, 20250930."""

_SOURCE_KEYS = (
    "file",
    "department",
    "table",
    "sheet",
    "header_rows",
    "footer_rows",
    "encoding",
    "date_formats",
    "null_values",
    "columns",
    "ignore",
    "constants",
)
_COLUMN_KEYS = ("field", "unit", "codes")


@dataclass(frozen=True)
class DateFormat:
    """One accepted way of writing a date, given by example (`EXAMPLE_DAY` as the file writes it)."""

    example: str
    pattern: re.Pattern[str]

    def parse(self, text: str) -> dt.date | None:
        """The date `text` denotes in this format, None if it is not written this way; ValueError if it is
        written this way but is no date (2025/2/30)."""
        found = self.pattern.fullmatch(text)
        if found is None:
            return None
        return dt.date(int(found["y"]), int(found["m"]), int(found["d"]))


def date_format(example: Any) -> DateFormat | None:
    """The format of an example of 2025-09-30, None if the example is not that day written with a
    four-digit year, the month 9 or 09 and the day 30 (in any order, with any separators)."""
    if isinstance(example, dt.date):
        example = example.isoformat()  # YAML reads an unquoted 2025-09-30 as a date
    if not isinstance(example, str):
        return None
    parts = re.fullmatch(r"(\D*)(\d+)(\D*)(\d+)(\D*)(\d+)(\D*)", example)
    compact = example.strip() == "20250930"
    if compact:
        return DateFormat(example, re.compile(r"(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})"))
    if parts is None:
        return None
    names = {"2025": "y", "09": "m", "9": "m", "30": "d"}
    groups = [parts[2], parts[4], parts[6]]
    if sorted(names.get(g, "?") for g in groups) != ["d", "m", "y"]:
        return None
    digits = {"y": r"\d{4}", "m": r"\d{1,2}", "d": r"\d{1,2}"}
    regex = re.escape(parts[1])
    for n, group in enumerate(groups):
        name = names[group]
        regex += f"(?P<{name}>{digits[name]})" + re.escape(parts[2 * n + 3])
    return DateFormat(example, re.compile(regex))


@dataclass(frozen=True)
class Column:
    """One header of a source and the snapshot field it feeds."""

    header: str
    field: str
    unit: str | None = None  # money only; None: 元
    codes: dict[str, str] | None = None  # value as exported -> value in the snapshot


@dataclass(frozen=True)
class Source:
    """One department export as the mapping describes it. `file` may hold * and ? (e.g. 企业登记_*.xlsx)."""

    file: str
    table: str
    line: int  # where the source starts in the mapping file
    department: str | None = None
    sheet: str | None = None
    header_rows: tuple[int, ...] = (1,)
    footer_rows: int = 0
    encoding: str = "utf-8"
    date_formats: tuple[DateFormat, ...] = ()
    null_values: frozenset[str] = frozenset()
    columns: tuple[Column, ...] = ()
    ignore: frozenset[str] = frozenset()
    constants: dict[str, str | None] = field(default_factory=dict)

    @property
    def first_data_row(self) -> int:
        return self.header_rows[-1] + 1


@dataclass(frozen=True)
class Mapping:
    """A whole mapping file: the snapshot's date and its sources, in order."""

    file: str  # as shown in messages
    path: Path
    taken_at: dt.date | None
    sources: tuple[Source, ...]


# --- reading the file with its lines --------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _compose(text: str) -> dict[Path_, int]:
    """Each key path of the document with the 1-based line it starts on."""
    lines: dict[Path_, int] = {}

    def visit(node: yaml.Node, path: Path_) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*path, str(key.value))] = key.start_mark.line + 1
                visit(value, (*path, str(key.value)))
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                visit(value, (*path, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        visit(root, ())
    return lines


class _Checker:
    """Collects the problems of one mapping file, each at its line."""

    def __init__(self, file: str, lines: dict[Path_, int]) -> None:
        self.file, self.lines = file, lines
        self.problems: list[SourceProblem] = []

    def line(self, path: Path_) -> int | None:
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def add(self, path: Path_, message: str, hint: str | None = None) -> None:
        self.problems.append(SourceProblem(self.file, message, hint=hint, line=self.line(path)))

    def keys(self, raw: dict[str, Any], allowed: tuple[str, ...], path: Path_) -> None:
        for key in raw:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
                hint = f"你是想写 `{close[0]}` 吗？" if close else "允许的键：" + "、".join(allowed)
                self.add((*path, str(key)), f"未知的键 `{key}`", hint)


def _text(value: Any) -> str:
    """A YAML scalar as the text a file would hold (true -> "true", 2024 -> "2024")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; IngestError with every problem (file, line, what, fix)."""
    shown = display_path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise IngestError(
            [SourceProblem(shown, f"无法读取映射文件：{e.strerror}", hint="检查路径和权限")]
        ) from None
    except UnicodeDecodeError:
        raise IngestError(
            [SourceProblem(shown, "映射文件不是 UTF-8 编码", hint="用编辑器把文件另存为 UTF-8")]
        ) from None
    try:
        raw = yaml.safe_load(text)
        lines = _compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise IngestError(
            [
                SourceProblem(
                    shown,
                    f"YAML 格式错误：{getattr(e, 'problem', None) or e}",
                    hint="检查缩进、冒号和引号",
                    line=mark.line + 1 if mark is not None else None,
                )
            ]
        ) from None
    check = _Checker(shown, lines)
    if not isinstance(raw, dict) or not isinstance(raw.get("sources"), list) or not raw["sources"]:
        check.add(
            (),
            "映射文件应为键值映射，并在 sources 下列出至少一个导出文件",
            "参照 docs/contracts.md 的映射文件示例",
        )
        raise IngestError(check.problems)
    check.keys(raw, ("taken_at", "sources"), ())
    taken_at: dt.date | None = None
    try:
        taken_at = taken_at_date(raw.get("taken_at"), shown)
    except SnapshotError:
        check.add(("taken_at",), f"taken_at 应为日期，如 2025-09-30，收到 {raw.get('taken_at')!r}")
    sources = []
    for n, entry in enumerate(raw["sources"]):
        source = _source(check, entry, ("sources", n))
        if source is not None:
            sources.append(source)
    if check.problems:
        raise IngestError(check.problems)
    return Mapping(shown, path, taken_at, tuple(sources))


def _source(check: _Checker, raw: Any, path: Path_) -> Source | None:
    before = len(check.problems)
    if not isinstance(raw, dict):
        check.add(path, "每个导出文件应为键值映射（file、table、columns 等）")
        return None
    check.keys(raw, _SOURCE_KEYS, path)
    file, table = raw.get("file"), raw.get("table")
    if not isinstance(file, str) or not file.strip():
        check.add(path, "缺少 file：导出文件的文件名（可用 * 匹配，如 企业登记_*.xlsx）")
    if table not in SPECS:
        close = difflib.get_close_matches(str(table), TABLE_NAMES, n=1, cutoff=0.5)
        check.add(
            (*path, "table"),
            f"未知的快照表 `{table}`",
            f"你是想写 `{close[0]}` 吗？" if close else "可用的表：" + "、".join(TABLE_NAMES),
        )
        return None
    spec = SPECS[table]
    header_rows = _header_rows(check, raw.get("header_rows", 1), (*path, "header_rows"))
    footer = raw.get("footer_rows", 0)
    if not isinstance(footer, int) or isinstance(footer, bool) or footer < 0:
        check.add((*path, "footer_rows"), f"footer_rows 应为非负整数（表尾不是数据的行数），收到 {footer!r}")
        footer = 0
    encoding = str(raw.get("encoding", "utf-8")).lower().replace("_", "-")
    if encoding == "utf8":
        encoding = "utf-8"
    if encoding not in ENCODINGS:
        check.add(
            (*path, "encoding"), f"不支持的编码 `{raw.get('encoding')}`", "可用：" + "、".join(ENCODINGS)
        )
    formats: list[DateFormat] = []
    raw_formats = raw.get("date_formats", ["2025-09-30"])
    for i, example in enumerate(raw_formats if isinstance(raw_formats, list) else [raw_formats]):
        parsed = date_format(example)
        if parsed is None:
            check.add(
                (*path, "date_formats", i),
                f"无法识别的日期格式示例 {example!r}",
                "按文件的写法写出2025年9月30日这一天，如 2025/9/30、2025年9月30日、20250930",
            )
        else:
            formats.append(parsed)
    nulls = raw.get("null_values", [])
    if not isinstance(nulls, list):
        check.add((*path, "null_values"), 'null_values 应为列表，如 ["-", "无"]')
        nulls = []
    columns = _columns(check, spec.name, raw.get("columns"), (*path, "columns"))
    ignore = raw.get("ignore", [])
    if not isinstance(ignore, list):
        check.add((*path, "ignore"), "ignore 应为表头的列表，如 [序号, 备注]")
        ignore = []
    constants_raw = raw.get("constants", {}) or {}
    constants: dict[str, str | None] = {}
    if not isinstance(constants_raw, dict):
        check.add((*path, "constants"), "constants 应为 字段: 值 的映射，如 year: 2024")
    else:
        for name, value in constants_raw.items():
            if name not in spec.columns:
                _unknown_field(check, (*path, "constants", str(name)), spec.name, str(name))
            constants[str(name)] = None if value is None else _text(value)
    mapped = [c.field for c in columns] + list(constants)
    for name in spec.columns:
        if mapped.count(name) > 1:
            check.add(
                (*path, "columns"), f"字段 {name} 由多列（或列与 constants）同时提供", "每个字段只能来自一处"
            )
    missing = [c for c in spec.columns if c not in mapped]
    if missing:
        check.add(
            (*path, "columns"),
            f"表 {spec.name} 的字段 {'、'.join(missing)} 没有来源",
            "在 columns 中写出提供它的表头；文件中没有的，在 constants 中给出固定值，"
            "确实没有数据的写 字段: null，该字段将为空",
        )
    if len(check.problems) > before:
        return None
    return Source(
        file=str(file).strip(),
        table=spec.name,
        line=check.line(path) or 1,
        department=None if raw.get("department") is None else str(raw["department"]),
        sheet=None if raw.get("sheet") is None else _text(raw["sheet"]),
        header_rows=header_rows,
        footer_rows=footer,
        encoding=encoding,
        date_formats=tuple(formats),
        null_values=frozenset(_text(v).strip() for v in nulls),
        columns=tuple(columns),
        ignore=frozenset(_text(v).strip() for v in ignore),
        constants=constants,
    )


def _header_rows(check: _Checker, raw: Any, path: Path_) -> tuple[int, ...]:
    rows = raw if isinstance(raw, list) else [raw]
    good = rows and all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in rows)
    if good and list(rows) == list(range(rows[0], rows[0] + len(rows))):
        return tuple(rows)
    check.add(path, f"header_rows 应为表头所在的行号（从 1 起），跨两行的表头写 [2, 3]，收到 {raw!r}")
    return (1,)


def _unknown_field(check: _Checker, path: Path_, table: str, name: str) -> None:
    known = list(SPECS[table].columns)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    check.add(
        path,
        f"表 {table} 没有字段 `{name}`",
        f"你是想写 `{close[0]}` 吗？" if close else "该表的字段：" + "、".join(known),
    )


def _columns(check: _Checker, table: str, raw: Any, path: Path_) -> list[Column]:
    if not isinstance(raw, dict) or not raw:
        check.add(path, "columns 应为 表头: 字段 的映射，如 统一社会信用代码: uscc")
        return []
    spec = SPECS[table]
    out = []
    for header, target in raw.items():
        where = (*path, str(header))
        if isinstance(target, str):
            target = {"field": target}
        if not isinstance(target, dict):
            check.add(where, "应写 字段名，或 {field: 字段名, unit: 万元, codes: {...}}")
            continue
        check.keys(target, _COLUMN_KEYS, where)
        name = str(target.get("field"))
        if name not in spec.columns:
            _unknown_field(check, (*where, "field") if "field" in target else where, table, name)
            continue
        kind = spec.columns[name]
        unit = target.get("unit")
        if unit is not None and kind != MONEY:
            check.add((*where, "unit"), f"字段 {name} 不是金额，不能写 unit")
        elif unit is not None and unit not in UNITS:
            check.add((*where, "unit"), f"未知的金额单位 `{unit}`", "可用：" + "、".join(UNITS))
        codes = target.get("codes")
        if codes is not None and (not isinstance(codes, dict) or not codes):
            check.add((*where, "codes"), "codes 应为 导出值: 快照值 的映射，如 {是: true, 否: false}")
            codes = None
        if codes is not None and kind not in ("VARCHAR", "BOOLEAN"):
            check.add((*where, "codes"), f"字段 {name} 不是代码或是否字段，不能写 codes")
        if kind == "BOOLEAN":
            if codes is None:
                check.add(
                    where,
                    f"字段 {name} 为是否字段，须写 codes 说明导出值的含义",
                    "如 codes: {是: true, 否: false}",
                )
            elif any(_text(v) not in ("true", "false") for v in codes.values()):
                check.add((*where, "codes"), f"字段 {name} 的 codes 只能映射到 true 或 false")
        out.append(
            Column(
                header=str(header).strip(),
                field=name,
                unit=None if unit is None else str(unit),
                codes=None if codes is None else {_text(k).strip(): _text(v) for k, v in codes.items()},
            )
        )
    return out
