"""Registry snapshots (DESIGN.md Contract 2): load a folder of Parquet/CSV tables into DuckDB, validate, report.

Nothing is dropped silently: every rejected row is counted under the rule it broke, with the first
examples, and the accepted rows become one typed table per name in `TABLE_NAMES`, ordered by key. A
table that cannot be used at all (missing file or column, a Parquet type that loses information) raises
`SnapshotError` naming the file, the column and the fix.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml
from stdnum.cn import uscc as uscc_check

from matcher.codes import is_known_industry, is_known_region
from matcher.duckdb_engine import fetch_one
from rules.catalog import CREDIT_RATINGS, STATUSES
from rules.errors import SnapshotError, display_path

TABLE_NAMES = (
    "enterprises",
    "annual_reports",
    "tax",
    "social_insurance",
    "credit",
    "certifications",
    "bank_accounts",
    "payments",
)
CERT_TYPES = ("high_tech", "srdi", "srdi_little_giant", "tech_sme")
MONEY = "DECIMAL(18,2)"
# Columns that are codes: stored as integers they would lose leading zeros, so such a table is unusable.
CODE_COLUMNS = {
    "uscc",
    "region_code",
    "industry_code",
    "contact_phone",
    "account_no",
    "policy_id",
    "item_id",
    "period",
}


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: dict[str, str]  # column -> DuckDB type
    key: tuple[str, ...]
    optional: bool = False

    @property
    def money(self) -> list[str]:
        return [c for c, t in self.columns.items() if t == MONEY]

    @property
    def counts(self) -> list[str]:
        return [c for c, t in self.columns.items() if t == "BIGINT"]


SPECS: dict[str, TableSpec] = {
    s.name: s
    for s in (
        TableSpec(
            "enterprises",
            {
                "uscc": "VARCHAR",
                "name": "VARCHAR",
                "reg_date": "DATE",
                "region_code": "VARCHAR",
                "industry_code": "VARCHAR",
                "status": "VARCHAR",
                "reg_capital": MONEY,
                "contact_phone": "VARCHAR",
            },
            ("uscc",),
        ),
        TableSpec(
            "annual_reports",
            {
                "uscc": "VARCHAR",
                "year": "INTEGER",
                "employees": "BIGINT",
                "revenue": MONEY,
                "total_assets": MONEY,
            },
            ("uscc", "year"),
        ),
        TableSpec(
            "tax",
            {
                "uscc": "VARCHAR",
                "year": "INTEGER",
                "tax_paid": MONEY,
                "rd_expense": MONEY,
                "credit_rating": "VARCHAR",
            },
            ("uscc", "year"),
        ),
        TableSpec(
            "social_insurance",
            {
                "uscc": "VARCHAR",
                "year": "INTEGER",
                "insured_start": "BIGINT",
                "insured_end": "BIGINT",
                "ui_premium_paid": MONEY,
                "ui_arrears": "BOOLEAN",
                "new_graduate_hires": "BIGINT",
            },
            ("uscc", "year"),
        ),
        TableSpec(
            "credit",
            {"uscc": "VARCHAR", "serious_dishonest": "BOOLEAN", "abnormal_operation": "BOOLEAN"},
            ("uscc",),
        ),
        TableSpec(
            "certifications",
            {"uscc": "VARCHAR", "cert_type": "VARCHAR", "cert_date": "DATE", "expiry_date": "DATE"},
            ("uscc", "cert_type", "cert_date"),
        ),
        TableSpec(
            "bank_accounts",
            {"uscc": "VARCHAR", "bank_name": "VARCHAR", "account_no": "VARCHAR", "account_name": "VARCHAR"},
            ("uscc",),
        ),
        TableSpec(
            "payments",
            {
                "uscc": "VARCHAR",
                "policy_id": "VARCHAR",
                "item_id": "VARCHAR",
                "period": "VARCHAR",
                "amount": MONEY,
            },
            ("uscc", "policy_id", "item_id", "period"),
            optional=True,
        ),
    )
}

RULES = {
    "bad_uscc": "统一社会信用代码校验位错误",
    "missing_key": "主键为空",
    "duplicate_key": "主键重复（该主键的所有行均拒绝）",
    "bad_value": "值无法转换为规定类型",
    "negative_money": "金额为负数",
    "negative_count": "人数为负数",
    "future_date": "日期晚于快照日期",
    "unknown_status": "未知的登记状态",
    "unknown_credit_rating": "未知的纳税信用等级",
    "unknown_cert_type": "未知的资质类型",
    "expiry_before_cert": "有效期截止早于发证日期",
    "unknown_region": "未知的行政区划代码",
    "unknown_industry": "未知的行业代码",
    "year_out_of_range": "年度超出范围",
    "orphan": "企业不在已接受的企业表中",
}
EXAMPLES = 5


@dataclass
class TableReport:
    """What loading one table did."""

    name: str
    file: str | None
    rows_read: int = 0
    rows_accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    nulls: dict[str, int] = field(default_factory=dict)


@dataclass
class SnapshotReport:
    """The data-quality report of a snapshot and its content fingerprint."""

    directory: str
    fingerprint: str
    taken_at: dt.date | None
    tables: dict[str, TableReport]

    @property
    def rejected_total(self) -> int:
        return sum(t.rows_read - t.rows_accepted for t in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "fingerprint": self.fingerprint,
            "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "rejected_total": self.rejected_total,
            "tables": {
                name: {
                    "file": t.file,
                    "rows_read": t.rows_read,
                    "rows_accepted": t.rows_accepted,
                    "rejected": t.rejected,
                    "examples": t.examples,
                    "nulls": t.nulls,
                }
                for name, t in self.tables.items()
            },
        }

    def to_text(self) -> str:
        lines = [f"快照 {self.directory}", f"指纹 {self.fingerprint}"]
        if self.taken_at:
            lines.append(f"快照日期 {self.taken_at}")
        for t in self.tables.values():
            rejected = t.rows_read - t.rows_accepted
            lines.append(
                f"\n表 {t.name}（{t.file or '无文件'}）：读入 {t.rows_read:,} 行，接受 {t.rows_accepted:,} 行，拒绝 {rejected:,} 行"
            )
            for rule, n in t.rejected.items():
                lines.append(f"  {RULES[rule]} ({rule})：{n:,} 行")
                for ex in t.examples.get(rule, []):
                    lines.append(f"    第 {ex['row']} 行 uscc={ex['uscc']} {ex['column']}={ex['value']}")
            nulls = {c: n for c, n in t.nulls.items() if n}
            if nulls:
                lines.append("  空值：" + "，".join(f"{c} {n:,}" for c, n in nulls.items()))
        return "\n".join(lines)


def _taken_at(directory: Path) -> dt.date | None:
    meta = directory / "snapshot.yaml"
    if not meta.exists():
        return None
    try:
        data = yaml.safe_load(meta.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise SnapshotError(f"snapshot.yaml 不是有效的 YAML：{e}", file=meta) from None
    value = data.get("taken_at") if isinstance(data, dict) else None
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise SnapshotError(
            f"taken_at 应为 YYYY-MM-DD，收到 {value!r}", file=meta, field="taken_at"
        ) from None


def _source(directory: Path, spec: TableSpec) -> Path | None:
    parquet, csv = directory / f"{spec.name}.parquet", directory / f"{spec.name}.csv"
    if parquet.exists() and csv.exists():
        raise SnapshotError(
            f"同时存在 {parquet.name} 和 {csv.name}，无法确定用哪一个；请删除其中一个", file=directory
        )
    if parquet.exists():
        return parquet
    if csv.exists():
        return csv
    if spec.optional:
        return None
    raise SnapshotError(f"缺少必需的表 {spec.name}（{spec.name}.parquet 或 {spec.name}.csv）", file=directory)


def _read_raw(con: duckdb.DuckDBPyConnection, spec: TableSpec, path: Path) -> None:
    """raw_<t>: the file as read, with `_row`, the row number in the file (CSV: counting the header)."""
    shown = display_path(path)
    reader = (
        f"read_parquet('{path}')"
        if path.suffix == ".parquet"
        else f"read_csv('{path}', header = true, all_varchar = true, auto_detect = true)"
    )
    first = 2 if path.suffix == ".csv" else 1
    try:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE raw_{spec.name} AS SELECT row_number() OVER () + {first - 1} AS _row, * FROM {reader}"
        )
    except duckdb.Error as e:
        raise SnapshotError(f"无法读取：{e}", file=shown) from None
    types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE raw_{spec.name})").fetchall())
    missing = [c for c in spec.columns if c not in types]
    if missing:
        raise SnapshotError(
            f"缺少必需的列 {', '.join(missing)}；表头应包含 {', '.join(spec.columns)}",
            file=shown,
            field=missing[0],
        )
    for column in spec.columns:
        if column in CODE_COLUMNS and types[column] != "VARCHAR":
            raise SnapshotError(
                f"列类型为 {types[column]}，代码会丢失前导零；请以文本（VARCHAR/string）类型导出",
                file=shown,
                field=column,
            )


def _known_codes(con: duckdb.DuckDBPyConnection) -> None:
    """Per distinct code in enterprises: validity of USCC, region and industry, checked once in Python."""
    distinct = fetch_one(
        con,
        "SELECT list(DISTINCT uscc), list(DISTINCT region_code), list(DISTINCT industry_code) FROM raw_enterprises",
    )
    assert distinct is not None
    usccs, regions, industries = (list(x or []) for x in distinct)
    checks: dict[str, tuple[list[str], Callable[[str], bool]]] = {
        "valid_uscc": (usccs, _valid_uscc),
        "known_region": (regions, is_known_region),
        "known_industry": (industries, is_known_industry),
    }
    for name, (codes, ok) in checks.items():
        codes = [c for c in codes if c is not None]
        table = pa.table({"code": pa.array([c for c in codes if ok(c)], pa.string())})
        con.register(f"_{name}", table)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT code FROM _{name}")
        con.unregister(f"_{name}")


def _valid_uscc(code: str) -> bool:
    return bool(uscc_check.is_valid(code))


def _checks(spec: TableSpec, today: dt.date) -> list[tuple[str, str, str]]:
    """Per-row rules as (rule, column, SQL condition over typed columns `t_*` and raw ones) meaning rejected."""
    out: list[tuple[str, str, str]] = []
    for c in spec.key:
        out.append(("missing_key", c, f"(t_{c} IS NULL OR trim(CAST(t_{c} AS VARCHAR)) = '')"))
    for c in spec.columns:
        out.append(
            (
                "bad_value",
                c,
                f'("{c}" IS NOT NULL AND trim(CAST("{c}" AS VARCHAR)) <> \'\' AND t_{c} IS NULL)',
            )
        )
    out += [("negative_money", c, f"t_{c} < 0") for c in spec.money]
    out += [("negative_count", c, f"t_{c} < 0") for c in spec.counts]
    if "year" in spec.columns:
        out.append(("year_out_of_range", "year", f"(t_year < 1990 OR t_year > {today.year})"))
    if spec.name == "enterprises":
        out += [
            ("bad_uscc", "uscc", "(t_uscc IS NOT NULL AND t_uscc NOT IN (SELECT code FROM valid_uscc))"),
            ("future_date", "reg_date", f"t_reg_date > DATE '{today}'"),
            ("unknown_status", "status", f"t_status NOT IN ({_list(STATUSES)})"),
            ("unknown_region", "region_code", "t_region_code NOT IN (SELECT code FROM known_region)"),
            ("unknown_industry", "industry_code", "t_industry_code NOT IN (SELECT code FROM known_industry)"),
        ]
    if spec.name == "tax":
        out.append(
            ("unknown_credit_rating", "credit_rating", f"t_credit_rating NOT IN ({_list(CREDIT_RATINGS)})")
        )
    if spec.name == "certifications":
        out += [
            ("unknown_cert_type", "cert_type", f"t_cert_type NOT IN ({_list(CERT_TYPES)})"),
            ("future_date", "cert_date", f"t_cert_date > DATE '{today}'"),
            ("expiry_before_cert", "expiry_date", "t_expiry_date < t_cert_date"),
        ]
    return out


def _list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _load_table(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, path: Path | None, today: dt.date
) -> TableReport:
    report = TableReport(spec.name, display_path(path) if path else None)
    typed_cols = ", ".join(f"{c} {t}" for c, t in spec.columns.items())
    if path is None:  # an optional table that was not delivered
        con.execute(f"CREATE OR REPLACE TABLE {spec.name} ({typed_cols})")
        return report
    typed = ", ".join(
        f"TRY_CAST(NULLIF(trim(CAST(\"{c}\" AS VARCHAR)), '') AS {t}) AS t_{c}"
        if t != "VARCHAR"
        else f"NULLIF(trim(CAST(\"{c}\" AS VARCHAR)), '') AS t_{c}"
        for c, t in spec.columns.items()
    )
    checks = _checks(spec, today)
    flags = ", ".join(f"coalesce({cond}, false) AS f{n}" for n, (_, _, cond) in enumerate(checks))
    con.execute(f"CREATE OR REPLACE TEMP TABLE chk_{spec.name} AS SELECT *, {typed} FROM raw_{spec.name}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE flg_{spec.name} AS SELECT _row, {flags} FROM chk_{spec.name}")
    key = ", ".join(f"t_{c}" for c in spec.key)
    any_flag = " OR ".join(f"f{n}" for n in range(len(checks))) or "false"
    # A duplicated key rejects all its rows: we cannot know which is right.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE dup_{spec.name} AS
        SELECT _row FROM chk_{spec.name}
        WHERE ({key}) IN (SELECT ({key}) FROM chk_{spec.name} GROUP BY ALL HAVING count(*) > 1)"""
    )
    orphan = "false"
    if spec.name != "enterprises":
        orphan = "c.t_uscc NOT IN (SELECT uscc FROM enterprises)"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE rej_{spec.name} AS
        SELECT c._row, f.* EXCLUDE (_row),
          c._row IN (SELECT _row FROM dup_{spec.name}) AS dup,
          coalesce({orphan}, false) AS orphan
        FROM chk_{spec.name} c JOIN flg_{spec.name} f USING (_row)"""
    )
    accepted = f"NOT ({any_flag} OR dup OR orphan)"
    select = ", ".join(f"c.t_{c} AS {c}" for c in spec.columns)
    con.execute(
        f"""CREATE OR REPLACE TABLE {spec.name} AS
        SELECT {select} FROM chk_{spec.name} c JOIN rej_{spec.name} r USING (_row)
        WHERE {accepted}
        ORDER BY {", ".join(spec.key)}"""
    )
    report.rows_read = _scalar(con, f"SELECT count(*) FROM raw_{spec.name}")
    report.rows_accepted = _scalar(con, f"SELECT count(*) FROM {spec.name}")
    named = [(rule, column, f"f{n}") for n, (rule, column, _) in enumerate(checks)]
    named += [("duplicate_key", spec.key[0], "dup"), ("orphan", "uscc", "orphan")]
    rules: dict[str, list[tuple[str, str]]] = {}
    for rule, column, flag in named:
        rules.setdefault(rule, []).append((column, flag))
    counts = fetch_one(
        con,
        "SELECT "
        + ", ".join(f"count(*) FILTER (WHERE {' OR '.join(f for _, f in cols)})" for cols in rules.values())
        + f" FROM rej_{spec.name}",
    )
    assert counts is not None
    for (rule, cols), n in zip(rules.items(), counts, strict=True):
        if not n:
            continue
        report.rejected[rule] = int(n)
        column_of = "CASE " + " ".join(f"WHEN r.{f} THEN '{c}'" for c, f in cols) + " END"
        value_of = "CASE " + " ".join(f'WHEN r.{f} THEN CAST(c."{c}" AS VARCHAR)' for c, f in cols) + " END"
        rows = con.execute(
            f"""SELECT r._row, CAST(c.uscc AS VARCHAR), {column_of}, {value_of}
            FROM rej_{spec.name} r JOIN chk_{spec.name} c USING (_row)
            WHERE {" OR ".join(f"r.{f}" for _, f in cols)} ORDER BY r._row LIMIT {EXAMPLES}"""
        ).fetchall()
        report.examples[rule] = [{"row": r, "uscc": u, "column": col, "value": v} for r, u, col, v in rows]
    nulls = fetch_one(
        con, "SELECT " + ", ".join(f"count(*) - count({c})" for c in spec.columns) + f" FROM {spec.name}"
    )
    assert nulls is not None
    report.nulls = {c: int(n) for c, n in zip(spec.columns, nulls, strict=True)}
    for t in ("chk", "flg", "dup", "rej", "raw"):
        con.execute(f"DROP TABLE IF EXISTS {t}_{spec.name}")
    return report


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = fetch_one(con, sql)
    assert row is not None
    return int(row[0])


def _fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """Hash of the accepted contents: row count and an order-independent sum of row hashes per table."""
    digest = hashlib.sha256()
    for name in TABLE_NAMES:
        cols = ", ".join(SPECS[name].columns)
        row = fetch_one(con, f"SELECT count(*), coalesce(sum(CAST(hash({cols}) AS HUGEINT)), 0) FROM {name}")
        assert row is not None
        digest.update(f"{name}:{row[0]}:{row[1]};".encode())
    return "sha256:" + digest.hexdigest()


def load_snapshot(
    directory: Path, con: duckdb.DuckDBPyConnection, *, today: dt.date | None = None
) -> SnapshotReport:
    """Load, validate and report a snapshot folder; `con` gets one typed table of accepted rows per table."""
    if not directory.is_dir():
        raise SnapshotError("快照目录不存在或不是目录", file=directory)
    taken_at = _taken_at(directory)
    day = taken_at or today or dt.date.today()
    sources = {name: _source(directory, spec) for name, spec in SPECS.items()}
    for name, path in sources.items():
        if path is not None:
            _read_raw(con, SPECS[name], path)
    _known_codes(con)
    tables = {name: _load_table(con, SPECS[name], sources[name], day) for name in TABLE_NAMES}
    for name in ("valid_uscc", "known_region", "known_industry"):
        con.execute(f"DROP TABLE IF EXISTS {name}")
    return SnapshotReport(display_path(directory), _fingerprint(con), taken_at, tables)


def report_json(report: SnapshotReport) -> str:
    return json.dumps(report.to_json(), ensure_ascii=False, indent=2, default=str)
