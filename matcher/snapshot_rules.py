"""The snapshot rules (Contract 2), written once and run by every engine.

What a snapshot table is (`SPECS`: columns, types, key), which rules reject a row (`RULES`, with their
names for the data office), how a delivered column becomes its type without loss (`column_cast`), and
each rule as a sqlglot tree over the typed columns (`row_checks`, `code_checks`). The DuckDB loader
(`matcher.snapshot`) renders these trees over its staging table, the Spark loader (`matcher.spark_engine`)
over the raw tables; the Chinese messages of a refused table come from here too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from sqlglot import exp

from matcher.codes import industry_known, region_known, uscc_valid
from rules.catalog import CERT_TYPES, CREDIT_RATINGS, STATUSES
from rules.errors import SnapshotError

TABLE_NAMES = (
    "enterprises",
    "annual_reports",
    "tax",
    "social_insurance",
    "credit",
    "certifications",
    "stats_listing",
    "bank_accounts",
    "payments",
)
MONEY = "DECIMAL(18,2)"
FIRST_YEAR = 1990
"""Yearly rows before this year are `year_out_of_range` (as are years after the snapshot's own)."""
# Codes: stored as integers they would lose leading zeros, so such a column makes its table unusable.
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
    """One snapshot table of Contract 2: its columns with their DuckDB types, its key, whether optional."""

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
        # The statistics bureau's list of above-scale enterprises (规模以上/限额以上 名录), one row per year.
        TableSpec(
            "stats_listing",
            {"uscc": "VARCHAR", "year": "INTEGER", "above_scale": "BOOLEAN"},
            ("uscc", "year"),
            optional=True,
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
    "bad_value": "值无法无损转换为规定类型",
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
"""Rule id -> its name for the data office. The ids are stable: reports and other engines use them."""


# --- typing the columns ---------------------------------------------------------------------------------

_VARCHAR = "VARCHAR"
_INTEGER = re.compile(r"U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)")
_NUMBER = re.compile(r"U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|DECIMAL\(\d+,\d+\)|FLOAT|DOUBLE")
_TIMESTAMP = re.compile(r"TIMESTAMP(_S|_MS|_NS)?")
_EXACT = exp.DataType.build("DECIMAL(38, 10)")
"""A type every accepted number fits without rounding: a cast that changes the value against it lost data."""


def column_type(duckdb_type: str) -> exp.DataType:
    """A spec's column type (DuckDB's name) as a tree."""
    return exp.DataType.build(duckdb_type, dialect="duckdb")


@dataclass(frozen=True)
class ColumnCast:
    """How one delivered column becomes its specified type: the typed value over the delivered column,
    and the condition (over the delivered and the typed column) that the delivered value is bad."""

    typed: exp.Expr
    bad: exp.Expr | None  # None: a value delivered in this type is never bad


def _distinct(a: exp.Expr, b: exp.Expr) -> exp.Expr:
    return exp.Not(this=exp.NullSafeEQ(this=a, expression=b))


def column_cast(
    column: str, source: str, wanted: str, shown: str, *, raw: exp.Expr, typed: exp.Expr
) -> ColumnCast:
    """The cast of a column delivered as `source` (a DuckDB type name) into `wanted`, or SnapshotError
    naming the file `shown` and the column if no cast is safe. `raw` is the delivered column, `typed` the
    column that holds the cast value.

    Text is trimmed ('' is NULL) and cast with TRY_CAST; a number that would be rounded on the way
    (1.5 employees, 1.005 yuan) is bad, like text that does not cast at all."""
    target = column_type(wanted)
    text = exp.Nullif(this=exp.Trim(this=raw.copy()), expression=exp.Literal.string(""))
    if source == wanted:
        return ColumnCast(text if wanted == _VARCHAR else raw.copy(), None)
    if source == _VARCHAR:  # CSV, or text in Parquet
        bad: exp.Expr = typed.copy().is_(exp.null())
        if _NUMBER.fullmatch(wanted):
            bad = exp.Or(
                this=bad,
                expression=_distinct(
                    exp.TryCast(this=text.copy(), to=_EXACT.copy(), safe=True), typed.copy()
                ),
            )
        return ColumnCast(
            exp.TryCast(this=text, to=target, safe=True),
            exp.And(this=text.copy().is_(exp.null()).not_(), expression=exp.Paren(this=bad)),
        )
    if _NUMBER.fullmatch(wanted) and _NUMBER.fullmatch(source):
        lossy = exp.Or(
            this=typed.copy().is_(exp.null()),
            expression=_distinct(exp.TryCast(this=raw.copy(), to=_EXACT.copy(), safe=True), typed.copy()),
        )
        return ColumnCast(
            exp.TryCast(this=raw.copy(), to=target, safe=True),
            exp.And(this=raw.copy().is_(exp.null()).not_(), expression=exp.Paren(this=lossy)),
        )
    if wanted == "DATE" and _TIMESTAMP.fullmatch(source):
        return ColumnCast(exp.cast(raw.copy(), "DATE"), None)
    if wanted == "BOOLEAN" and _INTEGER.fullmatch(source):
        return ColumnCast(
            exp.TryCast(this=raw.copy(), to=target, safe=True),
            exp.Not(this=raw.copy().isin(exp.Literal.number(0), exp.Literal.number(1))),
        )
    if wanted == _VARCHAR and column in CODE_COLUMNS:
        fix = "代码会丢失前导零；请以文本（string/VARCHAR）类型导出"
    elif wanted == _VARCHAR:
        fix = "应为文本；请以文本（string/VARCHAR）类型导出"
    else:
        fix = f"不能无损转换为 {wanted}；请以 {wanted} 或文本类型导出"
    raise SnapshotError(f"列类型为 {source}，{fix}", file=shown, field=column)


# --- the rules over a row -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One rule on one column: its rule id (in `RULES`), the column it reports, the condition "broken"."""

    rule: str
    column: str
    broken: exp.Expr


def _strings(values: Iterable[str]) -> list[exp.Expr]:
    return [exp.Literal.string(v) for v in values]


def _date(day: dt.date) -> exp.Expr:
    return exp.cast(exp.Literal.string(day.isoformat()), "DATE")


def row_checks(
    spec: TableSpec, day: dt.date, typed: Callable[[str], exp.Expr], bad: Mapping[str, exp.Expr]
) -> list[Check]:
    """The per-row rules of a table, in report order, over the typed columns (`typed(column)`); `bad`
    holds, per column whose delivered value can be bad, the condition that it is."""

    def missing(c: str) -> exp.Expr:  # delivered empty, as opposed to delivered but not castable (bad_value)
        if c not in bad:
            return typed(c).is_(exp.null())
        not_bad = exp.Not(this=exp.Coalesce(this=exp.Paren(this=bad[c].copy()), expressions=[exp.false()]))
        return exp.and_(typed(c).is_(exp.null()), not_bad)

    zero = exp.Literal.number(0)
    out = [Check("missing_key", c, missing(c)) for c in spec.key]
    out += [Check("bad_value", c, bad[c].copy()) for c in spec.columns if c in bad]
    out += [Check("negative_money", c, exp.LT(this=typed(c), expression=zero.copy())) for c in spec.money]
    out += [Check("negative_count", c, exp.LT(this=typed(c), expression=zero.copy())) for c in spec.counts]
    if "year" in spec.columns:
        year = typed("year")
        out.append(
            Check(
                "year_out_of_range",
                "year",
                exp.Or(
                    this=exp.LT(this=year, expression=exp.Literal.number(FIRST_YEAR)),
                    expression=exp.GT(this=year.copy(), expression=exp.Literal.number(day.year)),
                ),
            )
        )
    if spec.name == "enterprises":
        out += [
            Check("future_date", "reg_date", exp.GT(this=typed("reg_date"), expression=_date(day))),
            Check("unknown_status", "status", exp.Not(this=typed("status").isin(*_strings(STATUSES)))),
        ]
    if spec.name == "tax":
        out.append(
            Check(
                "unknown_credit_rating",
                "credit_rating",
                exp.Not(this=typed("credit_rating").isin(*_strings(CREDIT_RATINGS))),
            )
        )
    if spec.name == "certifications":
        out += [
            Check(
                "unknown_cert_type", "cert_type", exp.Not(this=typed("cert_type").isin(*_strings(CERT_TYPES)))
            ),
            Check("future_date", "cert_date", exp.GT(this=typed("cert_date"), expression=_date(day))),
            Check(
                "expiry_before_cert",
                "expiry_date",
                exp.LT(this=typed("expiry_date"), expression=typed("cert_date")),
            ),
        ]
    return out


CODE_CHECKS: tuple[tuple[str, str, Callable[[exp.Expr], exp.Expr]], ...] = (
    ("bad_uscc", "uscc", uscc_valid),
    ("unknown_region", "region_code", region_known),
    ("unknown_industry", "industry_code", industry_known),
)
"""The code rules of the enterprises table, after its row rules: (rule, column, "the code is valid")."""


def code_checks(typed: Callable[[str], exp.Expr]) -> list[Check]:
    """The code rules of the enterprises table as checks over the typed columns."""
    return [
        Check(rule, column, exp.Not(this=exp.Paren(this=valid(typed(column)))))
        for rule, column, valid in CODE_CHECKS
    ]


# --- tables that cannot be used -------------------------------------------------------------------------


def missing_columns(spec: TableSpec, present: Iterable[str], shown: str) -> None:
    """SnapshotError naming the first required column a delivered table lacks, if any."""
    have = set(present)
    missing = [c for c in spec.columns if c not in have]
    if missing:
        raise SnapshotError(
            f"缺少必需的列 {', '.join(missing)}；表头应包含 {', '.join(spec.columns)}",
            file=shown,
            field=missing[0],
        )


def two_files(name: str, shown: str) -> SnapshotError:
    """The error for a table delivered both as Parquet and as CSV."""
    return SnapshotError(
        f"同时存在 {name}.parquet 和 {name}.csv，无法确定用哪一个；请删除其中一个", file=shown
    )


def missing_table(name: str, shown: str) -> SnapshotError:
    """The error for a required table that was not delivered."""
    return SnapshotError(
        f"缺少必需的表 {name}；请提供 {name}.parquet 或 {name}.csv（UTF-8，带表头；快照不读取 Excel 文件，"
        f"{name}.xlsx 须另存为 CSV UTF-8）",
        file=shown,
    )


def taken_at_date(value: object, shown: str) -> dt.date | None:
    """snapshot.yaml's (or a mapping file's) `taken_at` as a date; SnapshotError for anything else."""
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
            f"taken_at 应为日期 YYYY-MM-DD，收到 {value!r}", file=shown, field="taken_at"
        ) from None
