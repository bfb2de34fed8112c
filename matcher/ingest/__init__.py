"""Department data as it comes: `zhida snapshot import` turns Excel and CSV exports (Chinese headers, GBK,
dates as 2025/9/30 or 2025年9月30日, money in 万元) into a registry snapshot (Contract 2) through a mapping
file (`matcher.ingest.mapping`).

Every problem is collected (up to `MAX_PROBLEMS` listed, all counted) with its file, sheet, Excel row,
column letter and header, the field and the fix; when there is any, nothing is written. The snapshot is
written into a temporary folder beside `--out` and renamed into place only when complete, with each
source's SHA-256 and row count in `snapshot.yaml`.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import fnmatch
import hashlib
import os
import shutil
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from matcher.ingest.exports import Export, column_letter, open_export, shown_header
from matcher.ingest.mapping import Mapping, Source, load_mapping
from matcher.ingest.values import BadValue, convert
from matcher.snapshot_rules import SPECS, TABLE_NAMES
from rules.errors import IngestError, SourceProblem, display_path

__all__ = ["MAX_PROBLEMS", "ImportResult", "SourceResult", "import_snapshot", "load_mapping"]

MAX_PROBLEMS = 100
"""Problems listed in full; the rest are counted."""


@dataclass
class SourceResult:
    """One export as imported: where it came from, what it fed, its SHA-256 and rows, and for each field
    the column (letter and header) it was read from."""

    file: str
    table: str
    department: str | None
    sheet: str | None
    sha256: str = ""
    rows: int = 0
    columns: dict[str, tuple[str, str]] = field(default_factory=dict)  # field -> (letter, header)


@dataclass
class ImportResult:
    """A written snapshot: its folder, the rows per table and the sources, in the order they were read."""

    out: Path
    taken_at: dt.date | None
    tables: dict[str, int]
    sources: list[SourceResult]
    # per table: for each source that fed it, (its index in `sources`, the Excel row of each row written)
    _origins: dict[str, list[tuple[int, array[int]]]] = field(default_factory=dict, repr=False)

    def locate(self, table: str, row: int, column: str, message: str) -> SourceProblem:
        """A row the snapshot check reported (`row` as the snapshot CSV numbers it, header = row 1) at its
        place in the export it came from."""
        segments = self._origins.get(table, [])
        starts, total = [], 0
        for _, rows in segments:
            starts.append(total)
            total += len(rows)
        index = row - 2
        if not segments or not 0 <= index < total:
            return SourceProblem(f"{table}.csv", message, row=row, field=column)
        n = bisect_right(starts, index) - 1
        source_index, rows = segments[n]
        source = self.sources[source_index]
        letter, header = source.columns.get(column, (None, None))
        return SourceProblem(
            source.file,
            message,
            sheet=source.sheet,
            row=rows[index - starts[n]],
            column=letter,
            header=header,
            field=column,
        )


class _Problems:
    """The problems found so far: the first `MAX_PROBLEMS` kept, all counted."""

    def __init__(self) -> None:
        self.kept: list[SourceProblem] = []
        self.total = 0

    def add(self, problem: SourceProblem) -> None:
        self.total += 1
        if len(self.kept) < MAX_PROBLEMS:
            self.kept.append(problem)

    def extend(self, problems: list[SourceProblem]) -> None:
        for p in problems:
            self.add(p)


def _assign(mapping: Mapping, files: list[Path], problems: _Problems) -> list[tuple[Source, Path]]:
    """Each file given with the mapping source that describes it, in the mapping's order."""
    by_source: dict[int, list[Path]] = {}
    seen: dict[str, Path] = {}
    patterns = [s.file for s in mapping.sources]
    for path in files:
        shown = display_path(path)
        if path.name in seen:
            problems.add(
                SourceProblem(
                    shown, f"与 {display_path(seen[path.name])} 同名，无法区分", hint="每个导出文件只给一次"
                )
            )
            continue
        seen[path.name] = path
        if not path.is_file():
            problems.add(SourceProblem(shown, "文件不存在", hint="检查路径"))
            continue
        fits = [n for n, s in enumerate(mapping.sources) if fnmatch.fnmatchcase(path.name, s.file)]
        if not fits:
            close = difflib.get_close_matches(path.name, patterns, n=1, cutoff=0.4)
            problems.add(
                SourceProblem(
                    shown,
                    f"映射文件 {mapping.file} 中没有描述该文件的 file",
                    hint=f"是 {close[0]} 吗？请更正文件名或映射中的 file"
                    if close
                    else "在映射的 sources 中为它加一项",
                )
            )
        elif len(fits) > 1 and not _sheets_apart([mapping.sources[n] for n in fits]):
            lines = "、".join(f"第 {mapping.sources[n].line} 行" for n in fits)
            problems.add(
                SourceProblem(
                    shown,
                    f"映射文件中有多项 file 与之匹配（{lines}）",
                    hint="让每个文件只匹配一项；同一工作簿的不同工作表各写 sheet",
                )
            )
        else:
            for n in fits:  # one workbook may feed several tables, a sheet each
                by_source.setdefault(n, []).append(path)
    for n, source in enumerate(mapping.sources):
        if n not in by_source:
            problems.add(
                SourceProblem(
                    mapping.file,
                    f"映射中的导出文件 {source.file}（表 {source.table}）未在命令行给出",
                    hint="在命令中加上该文件，或从映射中删除这一项",
                    line=source.line,
                )
            )
    fed = {s.table for s in mapping.sources}
    missing = [t for t in TABLE_NAMES if not SPECS[t].optional and t not in fed]
    if missing:
        problems.add(
            SourceProblem(
                mapping.file,
                f"快照缺少必需的表 {'、'.join(missing)}：映射中没有导出文件提供它们",
                hint="在映射的 sources 中为每张表加上提供它的导出文件",
            )
        )
    return [(s, p) for n, s in enumerate(mapping.sources) for p in sorted(by_source.get(n, []))]


def _sheets_apart(sources: list[Source]) -> bool:
    """Whether several sources of one file each name a sheet of their own."""
    sheets = [s.sheet for s in sources]
    return None not in sheets and len(set(sheets)) == len(sheets)


def _header_problems(export: Export, source: Source) -> tuple[dict[str, int], list[SourceProblem]]:
    """Where each mapped header is (column index), and what is wrong with the header row."""
    problems: list[SourceProblem] = []
    where = (
        {"row": source.header_rows[-1]} if len(source.header_rows) == 1 else {"row": source.header_rows[0]}
    )
    index: dict[str, int] = {}
    for n, header in enumerate(export.headers):
        if not header:
            continue
        if header in index:
            problems.append(
                export.problem(
                    f"表头「{shown_header(header)}」出现两次（{column_letter(index[header])} 列和 {column_letter(n)} 列）",
                    "无法确定用哪一列；请在导出文件中删除或改名其中一列",
                    column=column_letter(n),
                    **where,
                )
            )
        index.setdefault(header, n)
    mapped = {c.header for c in source.columns}
    unknown = [h for h in index if h not in mapped and h not in source.ignore]
    absent = [c for c in source.columns if c.header not in index]
    for header in unknown:
        close = difflib.get_close_matches(header, [c.header for c in absent], n=1, cutoff=0.5)
        problems.append(
            export.problem(
                "映射文件中没有这个表头",
                (f"是映射中的「{close[0]}」吗？请使两处一致；" if close else "")
                + "不导入的列请写入映射的 ignore 列表",
                column=column_letter(index[header]),
                header=shown_header(header),
                **where,
            )
        )
    for column in absent:
        close = difflib.get_close_matches(column.header, unknown, n=1, cutoff=0.5)
        hint = (
            f"文件中有「{shown_header(close[0])}」，是它吗？请使两处一致"
            if close
            else f"请检查表头所在的行和列名；映射写的表头行是 header_rows: {list(source.header_rows)}"
        )
        problems.append(
            export.problem(
                f"找不到映射要求的表头「{column.header}」，它提供字段 {column.field}", hint, **where
            )
        )
    return index, problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _rows(
    export: Export, source: Source, index: dict[str, int], problems: _Problems
) -> Iterator[tuple[int, list[str | None]]]:
    """The export's data rows as snapshot rows (the table's columns in order), each with its Excel row;
    every cell that does not convert is a problem, and its row is not yielded."""
    spec = SPECS[source.table]
    by_field = {c.field: c for c in source.columns}
    positions = [index.get(by_field[f].header) if f in by_field else None for f in spec.columns]
    stray: set[int] = set()
    width = len(export.headers)
    for number, cells in export.rows:
        if export.ragged and len(cells) < width:
            # Excel writes every separator; a short CSV line is usually a line broken inside a value.
            problems.add(
                export.problem(
                    f"该行只有 {len(cells)} 列，表头有 {width} 列",
                    "检查该行及上一行：值中含换行或逗号时须用双引号括起；请修正后重新导出",
                    row=number,
                )
            )
            continue
        out: list[str | None] = []
        bad = False
        for f, position in zip(spec.columns, positions, strict=True):
            if position is None:
                out.append(source.constants.get(f))
                continue
            value = cells[position] if position < len(cells) else None
            column = by_field[f]
            try:
                out.append(convert(value, spec.columns[f], column, source.date_formats, source.null_values))
            except BadValue as e:
                bad = True
                problems.add(
                    export.problem(
                        e.message,
                        e.hint,
                        row=number,
                        column=column_letter(position),
                        header=shown_header(column.header),
                        field=f,
                    )
                )
        for n in range(len(cells)):
            if (n >= width or not export.headers[n]) and n not in stray and not _blank(cells[n]):
                stray.add(n)
                problems.add(
                    export.problem(
                        "该列没有表头却有数据",
                        "请补上表头并在映射中写明它的去向或写入 ignore，或删除该列的数据",
                        row=number,
                        column=column_letter(n),
                    )
                )
        if not bad:
            yield number, out


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _snapshot_yaml(
    mapping: Mapping, taken_at: dt.date | None, tables: dict[str, int], sources: list[SourceResult]
) -> str:
    document: dict[str, Any] = {}
    if taken_at is not None:
        document["taken_at"] = taken_at
    document["sources"] = {
        table: {
            "department": "、".join(
                dict.fromkeys(s.department for s in sources if s.table == table and s.department)
            )
            or None,
            "file": f"{table}.csv",
            "rows": rows,
            "from": [
                {
                    k: v
                    for k, v in (
                        ("file", Path(s.file).name),
                        ("sheet", s.sheet),
                        ("sha256", s.sha256),
                        ("rows", s.rows),
                    )
                    if v is not None
                }
                for s in sources
                if s.table == table
            ],
        }
        for table, rows in tables.items()
    }
    document["imported"] = {
        "by": "zhida snapshot import",
        "mapping": Path(mapping.file).name,
        "mapping_sha256": _sha256(mapping.path),
    }
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def import_snapshot(
    mapping: Mapping, files: list[Path], out: Path, *, taken_at: dt.date | None = None
) -> ImportResult:
    """Read every export through the mapping and write the snapshot folder `out` (which must not exist,
    or be empty); IngestError listing every problem, in which case nothing is written."""
    problems = _Problems()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise IngestError(
            [
                SourceProblem(
                    display_path(out), "输出目录已存在且不为空", hint="换一个新目录，导入不会覆盖已有的快照"
                )
            ]
        )
    assigned = _assign(mapping, files, problems)
    day = taken_at or mapping.taken_at
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{out.name}.importing-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    temp.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the snapshot is an ordinary folder
    try:
        result = ImportResult(out, day, {}, [])
        handles: dict[str, Any] = {}
        writers: dict[str, Any] = {}
        for table in dict.fromkeys(s.table for s, _ in assigned):
            handles[table] = (temp / f"{table}.csv").open("w", encoding="utf-8", newline="")
            writers[table] = csv.writer(handles[table], lineterminator="\n")
            writers[table].writerow(SPECS[table].columns)
            result.tables[table] = 0
        try:
            for source, path in assigned:
                _read_one(source, path, result, writers[source.table], problems)
        finally:
            for handle in handles.values():
                handle.close()
        if problems.total:
            raise IngestError(problems.kept, problems.total)
        (temp / "snapshot.yaml").write_text(
            _snapshot_yaml(mapping, day, result.tables, result.sources), encoding="utf-8"
        )
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return result


def _read_one(source: Source, path: Path, result: ImportResult, writer: Any, problems: _Problems) -> None:
    try:
        export = open_export(path, source)
    except IngestError as e:
        problems.extend(e.problems)
        return
    index, header_problems = _header_problems(export, source)
    if header_problems:  # a wrong header would make every row wrong: report the header only
        problems.extend(header_problems)
        return
    item = SourceResult(
        export.file,
        source.table,
        source.department,
        export.sheet,
        columns={c.field: (column_letter(index[c.header]), shown_header(c.header)) for c in source.columns},
    )
    rows: array[int] = array("l")
    try:
        for number, values in _rows(export, source, index, problems):
            if not problems.total:
                writer.writerow(["" if v is None else v for v in values])
            rows.append(number)
    except IngestError as e:
        problems.extend(e.problems)
        return
    item.rows = len(rows)
    item.sha256 = _sha256(path)
    result.tables[source.table] += len(rows)
    result._origins.setdefault(source.table, []).append((len(result.sources), rows))
    result.sources.append(item)
