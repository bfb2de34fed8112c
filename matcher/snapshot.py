"""Registry snapshots (Contract 2, docs/contracts.md#contract-2-registry-snapshots): load a folder of Parquet/CSV tables into DuckDB, validate, report.

Nothing is dropped silently: every rejected row is counted under each rule it broke, with the first
examples, and the accepted rows become one typed table per name in `TABLE_NAMES`, ordered by key. A
table that cannot be used at all (missing file or column, unreadable file, a Parquet type that loses
information) raises `SnapshotError` naming the file, the column and the fix.

The rules are those of `matcher.snapshot_rules`, rendered as DuckDB SQL (the Spark loader runs the same
trees). The work is set-based and reads each file once: one statement reads it into its table, typed
(values that do not cast without loss keep their text for the report), in key order, with one bit per rule
a row can be judged by alone (the row rules; the USCC check character, by `matcher.codes.uscc_valid_array`
as a vectorised function, every code being distinct; orphans against the accepted enterprises). Regions
and industries are checked once per distinct code and only the failing codes kept; duplicate keys are one
GROUP BY. The rejected rows (few) are copied aside with a flag per rule for the report and deleted from
the table, so the accepted rows are never copied; one last scan counts them, their NULLs and the
fingerprint's content hash.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml
from sqlglot import exp

from matcher.codes import uscc_valid_array
from matcher.snapshot_rules import (
    CODE_CHECKS,
    RULES,
    SPECS,
    TABLE_NAMES,
    TableSpec,
    column_cast,
    missing_columns,
    missing_table,
    row_checks,
    taken_at_date,
    two_files,
)
from rules.errors import SnapshotError, display_path

EXAMPLES = 5
"""Rows shown per broken rule in the report."""


@dataclass
class TableReport:
    """What loading one table did.

    `examples[rule]` holds the first rows (by row number) that broke the rule: `row` is the row number in
    the file (CSV: as a spreadsheet numbers it, the header being row 1; Parquet: from 1), `uscc`, the
    `column` at fault and its `value` as delivered. `nulls` counts NULLs per column over accepted rows.
    """

    name: str
    file: str | None
    rows_read: int = 0
    rows_accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    nulls: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # what was read but looks wrong (NUL bytes)
    content_hash: int = 0  # the fingerprint's sum of DuckDB's hash of every accepted row

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "warnings": self.warnings,
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_rejected": self.rows_read - self.rows_accepted,
            "rejected": self.rejected,
            "examples": self.examples,
            "nulls": self.nulls,
        }


@dataclass
class SnapshotReport:
    """The data-quality report of a snapshot and the fingerprint of its accepted contents.

    `today` is the day the date rules were checked against (snapshot.yaml's taken_at when given).
    """

    directory: str
    fingerprint: str
    taken_at: dt.date | None
    tables: dict[str, TableReport]
    today: dt.date | None = None

    @property
    def rejected_total(self) -> int:
        return sum(t.rows_read - t.rows_accepted for t in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "fingerprint": self.fingerprint,
            "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "today": self.today.isoformat() if self.today else None,
            "rejected_total": self.rejected_total,
            "rules": RULES,
            "tables": {name: t.to_json() for name, t in self.tables.items()},
        }

    def to_text(self) -> str:
        lines = [f"快照 {self.directory}", f"指纹 {self.fingerprint}"]
        lines.append(
            f"快照日期 {self.taken_at}" if self.taken_at else "快照日期 未提供（snapshot.yaml 无 taken_at）"
        )
        if self.today and self.today != self.taken_at:
            lines.append(f"日期规则的基准日 {self.today}")
        lines.append(f"共拒绝 {self.rejected_total:,} 行")
        for t in self.tables.values():
            source = t.file or "未提供（可选表）"
            lines.append(
                f"\n表 {t.name}（{source}）：读入 {t.rows_read:,} 行，接受 {t.rows_accepted:,} 行，"
                f"拒绝 {t.rows_read - t.rows_accepted:,} 行"
            )
            for rule, n in t.rejected.items():
                lines.append(f"  规则 {RULES[rule]} ({rule})：{n:,} 行")
                for ex in t.examples.get(rule, []):
                    value = "" if ex["column"] == "uscc" else f"  {ex['column']}={ex['value']}"
                    lines.append(f"    第 {ex['row']} 行  uscc={ex['uscc']}{value}")
            for warning in t.warnings:
                lines.append(f"  注意：{warning}")
            nulls = {c: n for c, n in t.nulls.items() if n}
            if nulls:
                lines.append("  空值：" + "，".join(f"{c} {n:,}" for c, n in nulls.items()))
        return "\n".join(lines)


def report_json(report: SnapshotReport) -> str:
    """The report as JSON text (UTF-8, Chinese kept readable)."""
    return json.dumps(report.to_json(), ensure_ascii=False, indent=2, default=str)


def load_snapshot(
    directory: Path,
    con: duckdb.DuckDBPyConnection,
    *,
    today: dt.date | None = None,
    ordered: bool = True,
) -> SnapshotReport:
    """Load, validate and report a snapshot folder.

    Afterwards `con` holds one table per name in `TABLE_NAMES` with only the accepted rows, typed as
    `SPECS` says and, if `ordered`, ordered by key. Date rules are checked against snapshot.yaml's
    taken_at, else `today`, else the current date.

    `ordered=False` is for a reader that orders what it reads itself, as a match run does (the profile is
    numbered and stored in USCC order, every output has its ORDER BY): the tables, the report and the
    fingerprint are the same, but the rows are stored as they came, which spares a sort of every table
    (about half the load's CPU at 1M enterprises, docs/performance.md).
    """
    if not directory.is_dir():
        raise SnapshotError("快照目录不存在或不是目录；请给出快照文件夹的路径", file=display_path(directory))
    taken_at = _taken_at(directory)
    day = taken_at or today or dt.date.today()
    sources = {name: _source(directory, spec) for name, spec in SPECS.items()}
    readers = {name: _reader(con, SPECS[name], path) for name, path in sources.items() if path is not None}
    tables: dict[str, TableReport] = {}
    # The stubs of DuckDB 2 want its own type objects; the strings work on every supported version.
    con.create_function(  # type: ignore[call-overload]
        _USCC_FUNCTION, uscc_valid_array, ["VARCHAR"], "BOOLEAN", type="arrow"
    )
    try:
        for name in TABLE_NAMES:  # enterprises first: the other tables reject rows of unknown enterprises
            spec, path = SPECS[name], sources[name]
            if path is None:
                con.execute(f"CREATE OR REPLACE TABLE {name} ({_column_list(spec)})")
                tables[name] = TableReport(name, None)
                continue
            read, delivered, bits = _stage(con, spec, readers[name], day, ordered)
            tables[name] = _settle(con, spec, readers[name].shown, read, delivered, bits)
            tables[name].warnings = readers[name].warnings
    finally:
        con.remove_function(_USCC_FUNCTION)
        for table in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE temporary AND starts_with(table_name, ?)", [_TEMP]
        ).fetchall():
            con.execute(f"DROP TABLE IF EXISTS temp.{_q(table[0])}")
    return SnapshotReport(display_path(directory), _fingerprint(tables), taken_at, tables, day)


# --- where the tables come from -------------------------------------------------------------------------

_TEMP = "_snapshot_"
"""Prefix of the temporary tables a load creates (and drops) in the caller's connection."""


def _taken_at(directory: Path) -> dt.date | None:
    meta = directory / "snapshot.yaml"
    if not meta.exists():
        return None
    shown = display_path(meta)
    try:
        data = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SnapshotError(f"不是有效的 UTF-8 YAML：{e}", file=shown) from None
    return taken_at_date(data.get("taken_at") if isinstance(data, dict) else None, shown)


def _source(directory: Path, spec: TableSpec) -> Path | None:
    parquet, csv_file = directory / f"{spec.name}.parquet", directory / f"{spec.name}.csv"
    if parquet.exists() and csv_file.exists():
        raise two_files(spec.name, display_path(directory))
    if parquet.exists():
        return parquet
    if csv_file.exists():
        return csv_file
    for suffix in EXCEL_SUFFIXES:  # said plainly, optional tables too: an Excel file is never read
        if (directory / f"{spec.name}{suffix}").exists():
            raise SnapshotError(
                excel_message(spec.name, f"{spec.name}{suffix}"),
                file=display_path(directory / f"{spec.name}{suffix}"),
            )
    if spec.optional:
        return None
    raise missing_table(spec.name, display_path(directory))


EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
_EXCEL_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")  # .xlsx (a zip), .xls (OLE2)
NUL_EXAMPLES = 5


def excel_message(table: str, file: str) -> str:
    """What to say of a table delivered as an Excel workbook: it is not read, and how to save it."""
    return (
        f"{file} 是 Excel 工作簿，快照不读取 Excel 文件；请在 Excel 中“另存为”，文件类型选"
        f"“CSV UTF-8（逗号分隔）(*.csv)”，保存为 {table}.csv（或导出为 {table}.parquet）后放入快照文件夹"
    )


@dataclass(frozen=True)
class _Reader:
    """How to read one table file: the FROM clause, its row-number expression and its column types,
    and what looked wrong in it (`warnings`)."""

    path: Path
    shown: str
    relation: str
    row_number: str
    types: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def _reader(con: duckdb.DuckDBPyConnection, spec: TableSpec, path: Path) -> _Reader:
    """Open a table file far enough to know its columns and their types; refuse what cannot be used."""
    shown = display_path(path)
    if path.suffix == ".csv":
        header = _csv_header(path, shown)
        columns = "{" + ", ".join(f"{_s(c)}: 'VARCHAR'" for c in header) + "}"
        # The sniffer is off on purpose: on ragged files it may pick a later header and skip rows silently.
        relation = (
            f"read_csv({_s(str(path))}, auto_detect = false, header = true, columns = {columns}, "
            "delim = ',', quote = '\"', escape = '\"', encoding = 'utf-8')"
        )
        reader = _Reader(
            path,
            shown,
            relation,
            "row_number() OVER () + 1",
            dict.fromkeys(header, "VARCHAR"),
            _nul_warnings(path),
        )
    else:
        relation = f"read_parquet({_s(str(path))}, file_row_number = true)"
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM read_parquet({_s(str(path))})").fetchall()
        except duckdb.Error as e:
            raise SnapshotError(f"无法读取 Parquet 文件：{_first_lines(e)}；请重新导出", file=shown) from None
        types = {str(name): str(kind) for name, kind, *_ in described}
        reader = _Reader(path, shown, relation, "file_row_number + 1", types)
    missing_columns(spec, reader.types, shown)
    for column, wanted in spec.columns.items():
        _cast(column, reader.types[column], wanted, shown)  # raises on a type that cannot be used
    return reader


def _nul_warnings(path: Path) -> list[str]:
    """A warning naming the file and the first lines (as a text editor numbers them) that hold NUL bytes."""
    found: list[int] = []
    total = distinct = 0
    line, last = 1, 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            if b"\x00" in chunk:
                start = 0
                while (at := chunk.find(b"\x00", start)) != -1:
                    line += chunk.count(b"\n", start, at)
                    total += 1
                    if line != last:
                        distinct, last = distinct + 1, line
                        if len(found) < NUL_EXAMPLES:
                            found.append(line)
                    start = at + 1
                line += chunk.count(b"\n", start)
            else:
                line += chunk.count(b"\n")
    if not total:
        return []
    where = "、".join(str(n) for n in found) + (f"等 {distinct:,} " if distinct > len(found) else " ")
    return [
        f"{path.name} 第 {where}行含 NUL 字符（\\x00，共 {total:,} 处）：这些不可见字符会原样留在读入的文本中；"
        "请检查导出程序，去掉后重新导出"
    ]


def _csv_header(path: Path, shown: str) -> list[str]:
    with path.open("rb") as f:
        magic = f.read(4)
    if magic.startswith(_EXCEL_MAGIC):
        raise SnapshotError(
            excel_message(path.stem, path.name) + "（该文件虽以 .csv 结尾，内容却是 Excel 工作簿）",
            file=shown,
        )
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f), None)
    except UnicodeDecodeError:
        raise SnapshotError("不是 UTF-8 编码；请以 UTF-8 编码导出 CSV", file=shown) from None
    except csv.Error as e:
        raise SnapshotError(f"表头无法解析：{e}", file=shown) from None
    if not header:
        raise SnapshotError("文件为空，缺少表头；第一行应为列名", file=shown)
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise SnapshotError("表头中的列名重复；每列只能出现一次", file=shown, field=name)
        seen.add(name)
    return header


# --- typing the columns ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cast:
    """How one column becomes its specified type: the typed value, and when the delivered value is bad."""

    typed: str  # SQL over the delivered column
    bad: str | None  # SQL over the delivered column and the typed one (`_t_<column>`); None: never bad


def _cast(column: str, source: str, wanted: str, shown: str) -> _Cast:
    """`matcher.snapshot_rules.column_cast` over the delivered column and `_t_<column>`, as DuckDB SQL;
    SnapshotError if no cast is safe."""
    cast = column_cast(
        column,
        source,
        wanted,
        shown,
        raw=exp.column(column, quoted=True),
        typed=exp.column("_t_" + column, quoted=True),
    )
    return _Cast(_sql(cast.typed), None if cast.bad is None else _sql(cast.bad))


def _stage(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, reader: _Reader, day: dt.date, ordered: bool
) -> tuple[int, set[str], list[_Rule]]:
    """Read the file once into the table `spec.name` (ordered by key if `ordered`), with the work columns:
    `_row`, the typed columns, per column that can be badly delivered `_raw_<column>` (the delivered text
    where it did not cast without loss, else NULL), and `_bad`, one bit per rule a row can be judged by
    alone (`_in_stage`: the row rules, the USCC check character and, but for enterprises, orphans).

    Returns the rows read, the columns with a `_raw_` column and the rules of the bits, in bit order."""
    casts = {c: _cast(c, reader.types[c], t, reader.shown) for c, t in spec.columns.items()}
    delivered = {c for c, k in casts.items() if k.bad is not None}
    inner = [f"{reader.row_number} AS _row"] + [
        f"{_q(c)}, {k.typed} AS {_q('_t_' + c)}" for c, k in casts.items()
    ]
    typed = ["_row"] + [f"{_q('_t_' + c)} AS {_q(c)}" for c in spec.columns]
    typed += [
        f"CASE WHEN {k.bad} THEN CAST({_q(c)} AS VARCHAR) END AS {_q('_raw_' + c)}"
        for c, k in casts.items()
        if k.bad is not None
    ]
    bits = _in_stage(spec, delivered, day)
    bad = " + ".join(f"CASE WHEN {r.broken} THEN {1 << n} ELSE 0 END" for n, r in enumerate(bits)) or "0"
    keys = ", ".join(f"s.{_q(c)}" for c in spec.key)
    try:
        (read,) = con.execute(
            f"CREATE OR REPLACE TABLE {spec.name} AS SELECT s.*, CAST({bad} AS BIGINT) AS _bad "
            f"FROM (SELECT {', '.join(typed)} FROM (SELECT {', '.join(inner)} FROM {reader.relation})) s "
            + (f"ORDER BY {keys}" if ordered else "")
        ).fetchone() or (0,)
    except duckdb.Error as e:
        con.execute(f"DROP TABLE IF EXISTS {spec.name}")
        raise SnapshotError(
            f"无法读取：{_first_lines(e)}；请检查文件是否完整、是否为带表头的 UTF-8 CSV", file=reader.shown
        ) from None
    return int(read), delivered, bits


# --- codes checked once per distinct value --------------------------------------------------------------


_USCC_FUNCTION = "_zhida_uscc_valid"
"""The vectorised USCC check (`matcher.codes.uscc_valid_array`) as a DuckDB function, while a load runs."""


def _code_lookups(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[_Rule, str]]:
    """For enterprises: per code rule of `matcher.snapshot_rules.CODE_CHECKS` but the USCC's (checked per
    row in `_stage`, every code being distinct), a temporary table of the distinct codes that fail it, and
    the rule that looks rows up in it, with the name of that table.

    The distinct codes are kept first and checked after, so that each is checked once (a check pushed below
    the DISTINCT would run on every row); only the failing ones (few) are kept, so that the rule is a cheap
    semi-join."""
    out = []
    for rule, column, valid in CODE_CHECKS:
        if rule == "bad_uscc":
            continue
        code = exp.column("code", quoted=True)
        distinct = _temp(f"{rule}_codes")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {distinct} AS SELECT DISTINCT {_q(column)} AS code FROM {table} "
            f"WHERE {_q(column)} IS NOT NULL"
        )
        failing = exp.select(code).from_(distinct).where(exp.Not(this=exp.Paren(this=valid(code))))
        lookup = _temp(rule)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {lookup} AS {_sql(failing)}")
        con.execute(f"DROP TABLE {distinct}")
        out.append((_Rule(rule, column, f"s.{_q(column)} IN (SELECT code FROM {lookup})"), lookup))
    return out


# --- rules, acceptance and the report --------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    """One check of a staged row `s`: its rule id, the column it reports and the SQL meaning "broken"."""

    rule: str
    column: str
    broken: str
    shown: str | None = None  # SQL of the value its examples show; default: the column as delivered


def _row_rules(spec: TableSpec, delivered: set[str], day: dt.date) -> list[_Rule]:
    """The per-row rules of a table (`matcher.snapshot_rules.row_checks`) over the staged row `s`, in
    report order. `delivered` are the columns with a `_raw_` column (values that did not cast without
    loss)."""
    checks = row_checks(
        spec,
        day,
        lambda c: exp.column(c, table="s", quoted=True),
        {c: exp.column("_raw_" + c, table="s", quoted=True).is_(exp.null()).not_() for c in delivered},
    )
    return [_Rule(check.rule, check.column, _sql(check.broken)) for check in checks]


def _in_stage(spec: TableSpec, delivered: set[str], day: dt.date) -> list[_Rule]:
    """The rules `_stage` evaluates as the file is read: the row rules, then for enterprises the USCC check
    character (`bad_uscc`, vectorised), for the other tables `orphan` (against the accepted enterprises)."""
    rules = _row_rules(spec, delivered, day)
    if spec.name == "enterprises":
        rules.append(_Rule("bad_uscc", "uscc", f"NOT {_USCC_FUNCTION}(s.uscc)"))
    else:
        rules.append(
            _Rule("orphan", "uscc", "s.uscc IS NOT NULL AND s.uscc NOT IN (SELECT uscc FROM enterprises)")
        )
    return rules


def _settle(
    con: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    shown: str,
    read: int,
    delivered: set[str],
    bits: list[_Rule],
) -> TableReport:
    """Remove the rejected rows from the table `spec.name` made by `_stage`, drop its work columns, and
    report.

    Order of the rules: per-row rules, the code rules, duplicate_key over the rows whose key is present,
    then orphan. A row is flagged by every rule it breaks. The rejected rows (few) are copied aside with
    their flags for the report, then deleted: the accepted rows are never copied, and stay in key order."""
    table, dup, rejected = spec.name, _temp("duplicate_keys"), _temp("rejected")
    keys = ", ".join(_q(c) for c in spec.key)
    # A duplicated key rejects all its rows: we cannot know which one is right.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {dup} AS SELECT {keys}, true AS _dup FROM {table} "
        f"WHERE {' AND '.join(f'{_q(c)} IS NOT NULL' for c in spec.key)} GROUP BY ALL HAVING count(*) > 1"
    )
    key_text = "concat_ws(', ', " + ", ".join(f"CAST({_q(c)} AS VARCHAR)" for c in spec.key) + ")"
    staged = [_Rule(r.rule, r.column, f"(s._bad & {1 << n}) <> 0", r.shown) for n, r in enumerate(bits)]
    orphan = [r for r in staged if r.rule == "orphan"]
    rules = [r for r in staged if r.rule != "orphan"]
    lookups: list[str] = []
    if spec.name == "enterprises":
        for code_rule, lookup in _code_lookups(con, table):
            rules.append(code_rule)
            lookups.append(lookup)
    rules.append(_Rule("duplicate_key", ", ".join(spec.key), "d._dup", key_text))
    rules += orphan
    joins = f"LEFT JOIN {dup} d ON " + " AND ".join(f"s.{_q(c)} = d.{_q(c)}" for c in spec.key)
    flags = ", ".join(f"coalesce({r.broken}, false) AS _f{n}" for n, r in enumerate(rules))
    broken = " OR ".join(f"_f{n}" for n in range(len(rules)))
    # The rules are evaluated once; the accepted rows are all the others.
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {rejected} AS "
        f"SELECT * FROM (SELECT s.*, {flags} FROM {table} s {joins}) WHERE {broken}"
    )
    con.execute(f"DELETE FROM {table} WHERE _row IN (SELECT _row FROM {rejected})")
    for work in ["_row", "_bad", *(f"_raw_{c}" for c in sorted(delivered))]:
        con.execute(f"ALTER TABLE {table} DROP COLUMN {_q(work)}")

    flags_of: dict[str, list[int]] = {}
    for n, r in enumerate(rules):
        flags_of.setdefault(r.rule, []).append(n)
    anyof = [" OR ".join(f"_f{n}" for n in ns) for ns in flags_of.values()]
    counts = _one(
        con, "SELECT " + ", ".join(f"count(*) FILTER (WHERE {cond})" for cond in anyof) + f" FROM {rejected}"
    )
    # One scan of the accepted rows: their count, the NULLs per column and the content hash of the fingerprint.
    columns = ", ".join(_q(c) for c in spec.columns)
    accepted = _one(
        con,
        f"SELECT count(*), coalesce(sum(CAST(hash({columns}) AS HUGEINT)), 0), "
        + ", ".join(f"count(*) - count({_q(c)})" for c in spec.columns)
        + f" FROM {table}",
    )
    report = TableReport(spec.name, shown, read, int(accepted[0]))
    report.content_hash = int(accepted[1])
    for (rule, ns), n in zip(flags_of.items(), counts, strict=True):
        if n:
            report.rejected[rule] = int(n)
            report.examples[rule] = _examples(con, [(f"_f{i}", rules[i]) for i in ns], delivered)
    report.nulls = {c: int(n) for c, n in zip(spec.columns, accepted[2:], strict=True)}
    for work_table in (dup, rejected, *lookups):
        con.execute(f"DROP TABLE {work_table}")
    return report


def _examples(
    con: duckdb.DuckDBPyConnection, flagged: list[tuple[str, _Rule]], delivered: set[str]
) -> list[dict[str, Any]]:
    """The first rejected rows (by row number) that broke one rule, given as (flag, rule) pairs (one per
    column it checks), with the column at fault and its value as delivered."""

    def shown(r: _Rule) -> str:
        if r.shown is not None:
            return r.shown
        text = f"CAST({_q(r.column)} AS VARCHAR)"
        return f"coalesce({_q('_raw_' + r.column)}, {text})" if r.column in delivered else text

    column = "CASE " + " ".join(f"WHEN {f} THEN {_s(r.column)}" for f, r in flagged) + " END"
    value = "CASE " + " ".join(f"WHEN {f} THEN {shown(r)}" for f, r in flagged) + " END"
    rows = con.execute(
        f"SELECT _row, uscc, {column}, {value} FROM {_temp('rejected')} "
        f"WHERE {' OR '.join(f for f, _ in flagged)} ORDER BY _row LIMIT {EXAMPLES}"
    ).fetchall()
    return [{"row": int(n), "uscc": u, "column": c, "value": v} for n, u, c, v in rows]


def _fingerprint(tables: dict[str, TableReport]) -> str:
    """sha256 over each table's name, columns, row count and an order-independent content hash.

    The content hash is the sum of DuckDB's hash of every accepted row (`TableReport.content_hash`, summed
    as `_settle` settles the table), so it depends on the values only: not on file names, formats, row
    order or timestamps (it does depend on DuckDB's hash function)."""
    digest = hashlib.sha256()
    for name in TABLE_NAMES:
        spec, table = SPECS[name], tables[name]
        digest.update(f"{name}({_column_list(spec)}):{table.rows_accepted}:{table.content_hash};".encode())
    return "sha256:" + digest.hexdigest()


# --- small SQL pieces -------------------------------------------------------------------------------------


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    """The one row of an aggregate query."""
    (row,) = con.execute(sql).fetchall()
    return tuple(row)


def _sql(tree: exp.Expr) -> str:
    return tree.sql("duckdb")


def _temp(name: str) -> str:
    return f"temp.{_TEMP}{name}"


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _s(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _s_list(values: Iterable[str]) -> str:
    return ", ".join(_s(v) for v in values)


def _column_list(spec: TableSpec) -> str:
    return ", ".join(f"{_q(c)} {t}" for c, t in spec.columns.items())


def _first_lines(error: Exception) -> str:
    """The gist of a DuckDB error (what and where, before its generic "possible fixes")."""
    lines: list[str] = []
    for line in str(error).strip().splitlines():
        if not line.strip() or line.startswith("Possible") or len(lines) == 3:
            break
        lines.append(line.strip())
    return "；".join(lines)
