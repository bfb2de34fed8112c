"""The Spark engine: `matcher.engine.Engine` on a Spark session, and the snapshot loader for Spark.

`zhida match --engine spark` calls `run_match_spark`, which is `matcher.run.run` with a `SparkEngine`: the
same orchestration, the same plan trees (`matcher.plan`, `matcher.profile.profile_query`) as on DuckDB,
rendered by `spark_sql` in `matcher.dialect.ZhidaSpark`. No Python UDFs: the cluster runs plain Spark SQL.

Nothing is collected to the driver but counts and totals: intermediate tables are checkpointed on the
executors (memory, spilling to disk), the outputs of Contract 4 are written by Spark as Parquet folders of
part files under `--out` (`zhida offers import` and `matcher.results` read single files and folders alike):
the compact results of `matcher.results.compact_outputs` (the same queries as on DuckDB, those looked up by
uscc as sorted parts in small row groups) and, unless `--compact`, the near misses and missing data row by
row; `manifest.json` is written by the driver from aggregated counts.

Snapshot validation runs the rules of `matcher.snapshot_rules` (the DuckDB loader's: table specs, casts,
rule ids, code checks) over the raw tables, so a snapshot is accepted row for row as `zhida snapshot
check` accepts it. Spark reports counts per rule but no example rows (`zhida snapshot check` shows them).
Its fingerprint is computed by Spark over the accepted rows with Spark's xxhash64 (prefix
`spark-sha256:`): stable across Spark runs, but not the DuckDB fingerprint, whose row hash is DuckDB's own.

ANSI mode is always on: an overflow or a bad cast in a rule stops the run with the policy and item named
(`MatchError`), never a silent NULL.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
import yaml
from pyspark.errors import AnalysisException, PySparkException
from pyspark.sql import DataFrame, SparkSession
from sqlglot import exp

from matcher import engine
from matcher.dialect import ZhidaSpark
from matcher.engine import LISTS, OUTPUT_QUERIES, Engine, item_summary, ordered_query
from matcher.plan import (
    ITEMS,
    KEYS,
    ItemPlan,
    Rows,
    blocks,
    keyed_name,
    keyed_query,
)
from matcher.results import compact_outputs, pattern_ids
from matcher.run import RunResult, run
from matcher.snapshot import SnapshotReport, TableReport
from matcher.snapshot_rules import (
    SPECS,
    TABLE_NAMES,
    ColumnCast,
    TableSpec,
    code_checks,
    column_type,
    missing_columns,
    missing_table,
    taken_at_date,
    two_files,
)
from matcher.snapshot_rules import column_cast as rules_column_cast
from matcher.snapshot_rules import row_checks as row_checks_of
from rules.errors import MatchError, SnapshotError
from rules.policy import Policy
from rules.ruleset import RuleSet

ANSI = "spark.sql.ansi.enabled"
BASE_CONF: dict[str, str] = {
    ANSI: "true",
    # Dates become timestamps inside rules (`matcher.compile.field`); without a zone they mean what DuckDB's do.
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.ui.showConsoleProgress": "false",
}
# Settings a run needs whatever --conf says (ANSI off would turn overflows into silent NULLs).
PINNED = (ANSI, "spark.sql.session.timeZone", "spark.sql.timestampType")

# --- rendering ----------------------------------------------------------------------------------------------


def spark_sql(tree: exp.Expr) -> str:
    """A plan tree as the Spark SQL the engine runs (`matcher.dialect.ZhidaSpark`)."""
    return tree.sql(dialect=ZhidaSpark)


def _from_duckdb(text: str) -> exp.Expr:
    return sqlglot.parse_one(text, read="duckdb")


# --- session ------------------------------------------------------------------------------------------------


def parse_conf(pairs: Iterable[str]) -> dict[str, str]:
    """`key=value` settings (from --conf) as a dict; refuses a pair without `=`."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise MatchError(f"Spark 设置应写成 key=value，收到 {pair!r}")
        out[key.strip()] = value.strip()
    return out


def spark_session(
    master: str = "local[*]", conf: Mapping[str, str] | None = None, app_name: str = "zhida-match"
) -> SparkSession:
    """A Spark session for matching: `SPARK_REMOTE` (Spark Connect) if set, else `master`; ANSI mode on."""
    settings = {**BASE_CONF, **(conf or {})}
    for key in PINNED:
        if settings[key] != BASE_CONF[key]:
            raise MatchError(
                f"Spark 设置 {key} 必须为 {BASE_CONF[key]}（匹配依赖它：溢出或错误的类型转换必须报错）"
            )
    remote = os.environ.get("SPARK_REMOTE")
    if remote:
        _check_remote(remote)
    builder = SparkSession.builder.appName(app_name)
    builder = builder.remote(remote) if remote else builder.master(master)
    if not remote and master.startswith("local") and "spark.sql.shuffle.partitions" not in settings:
        # 200 shuffle partitions is for clusters; on one machine a few per core is faster.
        settings["spark.sql.shuffle.partitions"] = str(max(4, 2 * (os.cpu_count() or 1)))
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    for key in PINNED:  # an existing session (getOrCreate) gets them too
        spark.conf.set(key, BASE_CONF[key])
    return spark


def _check_remote(remote: str, timeout_s: float = 10) -> None:
    """Refuse a Spark Connect address that is malformed or where nothing answers: the client would
    otherwise retry for minutes without a word."""
    from pyspark.sql.connect.client import DefaultChannelBuilder

    try:
        channel = DefaultChannelBuilder(remote)
    except PySparkException as e:
        raise MatchError(f"SPARK_REMOTE 无效（{_error_text(e)}）；应写成 sc://主机:端口") from e
    host, _, port = channel.endpoint.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise MatchError(
            f"无法连接 SPARK_REMOTE 指定的 Spark Connect 服务 {channel.endpoint}（{e}）；"
            "请确认服务已启动、主机和端口正确，或取消 SPARK_REMOTE 以使用 --spark-master"
        ) from e


def _error_text(e: PySparkException) -> str:
    condition = e.getCondition() if hasattr(e, "getCondition") else e.getErrorClass()
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"{condition or type(e).__name__}: {first}"


def _materialise(spark: SparkSession, name: str, tree: exp.Expr) -> None:
    """Run `tree` now and keep its rows as the temporary view `name`.

    The rows are checkpointed in the executors (memory, spilling to disk), which also cuts the lineage: a
    view over a view would otherwise be analysed again, with every rule, wherever it is read.
    """
    frame = spark.sql(spark_sql(tree)).localCheckpoint(eager=True)
    frame.createOrReplaceTempView(name)


# --- snapshot: the rules of `matcher.snapshot_rules` over the raw tables -------------------------------------


def _t(column: str) -> exp.Column:
    return exp.column(f"t_{column}")


def _any(parts: Sequence[exp.Expr]) -> exp.Expr:
    return functools.reduce(lambda a, b: exp.Or(this=a, expression=b), parts)


_DUCKDB_OF_SPARK = {
    "string": "VARCHAR",
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamp_ntz": "TIMESTAMP",
    "boolean": "BOOLEAN",
}


def duckdb_type_of(spark_type: str) -> str:
    """The DuckDB name of a Spark column type, as the DuckDB loader would see the same data."""
    if spark_type.startswith("decimal("):
        return spark_type.upper()
    return _DUCKDB_OF_SPARK.get(spark_type, spark_type.upper())


def column_cast(column: str, source: str, wanted: str, shown: str) -> ColumnCast:
    """`matcher.snapshot_rules.column_cast` over the raw column and `t_<column>`."""
    return rules_column_cast(column, source, wanted, shown, raw=exp.column(column), typed=_t(column))


def row_checks(
    spec: TableSpec, day: dt.date, casts: Mapping[str, ColumnCast]
) -> list[tuple[str, str, exp.Expr]]:
    """The rules of `matcher.snapshot_rules` (row rules, then the code rules of enterprises), in the DuckDB
    loader's report order, as (rule, column, condition meaning rejected) over the typed columns `t_*`."""
    bad = {c: cast.bad for c, cast in casts.items() if cast.bad is not None}
    checks = row_checks_of(spec, day, _t, bad)
    if spec.name == "enterprises":
        checks += code_checks(_t)
    return [(check.rule, check.column, check.broken) for check in checks]


def _flag(n: int) -> str:
    return f"f{n}"


def checked_query(
    spec: TableSpec, raw: str, casts: Mapping[str, ColumnCast], day: dt.date
) -> tuple[exp.Select, list[tuple[str, str]]]:
    """Every raw row with its typed columns and one flag per rule (and `dup`, `orphan`); the flags' names."""
    checks = row_checks(spec, day, casts)
    typed = exp.select(
        *[exp.column(c) for c in spec.columns],
        *[exp.alias_(casts[c].typed.copy(), f"t_{c}") for c in spec.columns],
    ).from_(raw)
    key_present = exp.and_(*[_t(c).is_(exp.null()).not_() for c in spec.key])
    dup = exp.and_(
        key_present,
        exp.GT(
            this=exp.Window(
                this=exp.Count(this=exp.Star()),
                partition_by=[_t(c) for c in spec.key],
            ),
            expression=exp.Literal.number(1),
        ),
    )
    if spec.name == "enterprises":
        orphan: exp.Expr = exp.false()
        source: exp.Expr = exp.alias_(exp.Subquery(this=typed), "c", table=True)
        select = exp.select("c.*").from_(source)
    else:
        orphan = exp.and_(_t("uscc").is_(exp.null()).not_(), exp.column("e_uscc").is_(exp.null()))
        select = (
            exp.select("c.*")
            .from_(exp.alias_(exp.Subquery(this=typed), "c", table=True))
            .join(
                exp.alias_(
                    exp.Subquery(
                        this=exp.select(exp.alias_(exp.column("uscc"), "e_uscc")).from_("enterprises")
                    ),
                    "e",
                    table=True,
                ),
                on=exp.EQ(this=exp.column("e_uscc", "e"), expression=exp.column("t_uscc", "c")),
                join_type="left",
            )
        )
    select = select.select(
        *[
            exp.alias_(exp.Coalesce(this=exp.Paren(this=cond), expressions=[exp.false()]), _flag(n))
            for n, (_, _, cond) in enumerate(checks)
        ],
        exp.alias_(exp.Coalesce(this=exp.Paren(this=dup), expressions=[exp.false()]), "dup"),
        exp.alias_(exp.Coalesce(this=exp.Paren(this=orphan), expressions=[exp.false()]), "orphan"),
    )
    named = [(rule, _flag(n)) for n, (rule, _, _) in enumerate(checks)]
    named += [("duplicate_key", "dup"), ("orphan", "orphan")]
    return select, named


def _accepted(flags: Sequence[str]) -> exp.Expression:
    return exp.Not(this=exp.Paren(this=_any([exp.column(f) for f in flags])))


def accepted_query(spec: TableSpec, checked: str, flags: Sequence[str]) -> exp.Select:
    return exp.select(*[exp.alias_(_t(c), c) for c in spec.columns]).from_(checked).where(_accepted(flags))


def empty_query(spec: TableSpec) -> exp.Select:
    """An empty table with the spec's columns (an optional table that was not delivered)."""
    return exp.select(
        *[exp.alias_(exp.cast(exp.null(), column_type(t)), c) for c, t in spec.columns.items()]
    ).where(exp.false())


@dataclass(frozen=True)
class SnapshotSource:
    """Where a snapshot's tables are: a folder or URI of `<table>.parquet|csv`, or catalog tables by name."""

    location: str
    tables: dict[str, str] = field(default_factory=dict)  # table -> catalog name (mapping file)
    taken_at: dt.date | None = None

    @property
    def is_catalog(self) -> bool:
        return bool(self.tables)


def _is_local(location: str) -> bool:
    return "://" not in location or location.startswith("file:")


def _local(location: str) -> Path:
    for prefix in ("file://", "file:"):
        if location.startswith(prefix):
            return Path(location[len(prefix) :])
    return Path(location)


def snapshot_source(spark: SparkSession, location: str) -> SnapshotSource:
    """A snapshot given on the command line: a mapping file (`.yaml`: `tables:` table → catalog name, optional
    `taken_at`), or a folder/URI whose optional `snapshot.yaml` gives `taken_at`."""
    if location.endswith((".yaml", ".yml")):
        text = _read_text(spark, location)
        data = yaml.safe_load(text) if text is not None else None
        if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
            raise SnapshotError("表映射文件应包含 tables: {表名: 目录中的表}", file=location)
        unknown = sorted(set(data["tables"]) - set(SPECS))
        if unknown:
            raise SnapshotError(
                f"表映射文件中有未知的表 {', '.join(unknown)}；可用：{', '.join(SPECS)}", file=location
            )
        tables = {str(k): str(v) for k, v in data["tables"].items()}
        return SnapshotSource(location, tables, taken_at_date(data.get("taken_at"), location))
    meta_path = location.rstrip("/") + "/snapshot.yaml"
    text = _read_text(spark, meta_path)
    if text is None:
        return SnapshotSource(location)
    try:
        meta = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise SnapshotError(f"snapshot.yaml 不是有效的 YAML：{e}", file=meta_path) from None
    return SnapshotSource(
        location, taken_at=taken_at_date(meta.get("taken_at") if isinstance(meta, dict) else None, meta_path)
    )


def _read_text(spark: SparkSession, location: str) -> str | None:
    """A small text file (a mapping or snapshot.yaml) from a local path or any URI the session reads."""
    if _is_local(location):
        path = _local(location)
        return path.read_text(encoding="utf-8") if path.is_file() else None
    try:
        lines = spark.read.text(location, wholetext=True).collect()
    except AnalysisException:
        return None
    return str(lines[0][0]) if lines else None


def _read(spark: SparkSession, path: str, kind: str) -> DataFrame | None:
    """The file or folder of part files at `path`, or None when there is none."""
    if _is_local(path) and not _local(path).exists():
        return None
    reader = spark.read
    try:
        if kind == "parquet":
            return reader.parquet(path)
        # All text, as the DuckDB loader reads CSV; RFC 4180 quoting ("" inside quotes).
        return reader.options(header=True, inferSchema=False, encoding="UTF-8", escape='"').csv(path)
    except AnalysisException as e:
        if "PATH_NOT_FOUND" in str(e):
            return None
        raise SnapshotError(f"无法读取：{_error_text(e)}", file=path) from None


def _raw_table(
    spark: SparkSession, source: SnapshotSource, spec: TableSpec
) -> tuple[DataFrame | None, str | None]:
    if source.is_catalog:
        name = source.tables.get(spec.name)
        if name is None:
            if spec.optional:
                return None, None
            raise SnapshotError(f"表映射文件缺少必需的表 {spec.name}", file=source.location)
        try:
            return spark.table(name), name
        except AnalysisException as e:
            raise SnapshotError(
                f"无法读取目录中的表 {name}：{_error_text(e)}", file=source.location
            ) from None
    base = source.location.rstrip("/")
    parquet, csv = f"{base}/{spec.name}.parquet", f"{base}/{spec.name}.csv"
    frames = {p: _read(spark, p, kind) for p, kind in ((parquet, "parquet"), (csv, "csv"))}
    found = {p: df for p, df in frames.items() if df is not None}
    if len(found) == 2:
        raise two_files(spec.name, source.location)
    if found:
        ((path, df),) = found.items()
        return df, path
    if spec.optional:
        return None, None
    raise missing_table(spec.name, source.location)


def column_casts(spec: TableSpec, df: DataFrame, where: str) -> dict[str, ColumnCast]:
    """The cast of every specified column of a delivered table; SnapshotError for a missing or unusable one."""
    types = {f.name: duckdb_type_of(f.dataType.simpleString()) for f in df.schema.fields}
    missing_columns(spec, types, where)
    return {c: column_cast(c, types[c], wanted, where) for c, wanted in spec.columns.items()}


def _table_report(
    spark: SparkSession, spec: TableSpec, where: str, checked: str, named: list[tuple[str, str]]
) -> tuple[TableReport, str]:
    """Counts only: rows read and accepted, rows per broken rule, NULLs per column, and the content hash."""
    flags = [f for _, f in named]
    ok = _accepted(flags)
    rules: dict[str, list[str]] = {}
    for rule, flag in named:
        rules.setdefault(rule, []).append(flag)
    hashed = exp.cast(exp.func("XXHASH64", *[_t(c) for c in spec.columns]), "DECIMAL(38, 0)")
    query = exp.select(
        exp.alias_(exp.Count(this=exp.Star()), "rows_read"),
        exp.alias_(exp.func("COUNT_IF", ok.copy()), "rows_accepted"),
        *[
            exp.alias_(exp.func("COUNT_IF", _any([exp.column(f) for f in fl])), f"r_{n}")
            for n, fl in enumerate(rules.values())
        ],
        *[
            exp.alias_(exp.func("COUNT_IF", exp.and_(ok.copy(), _t(c).is_(exp.null()))), f"n_{n}")
            for n, c in enumerate(spec.columns)
        ],
        exp.alias_(
            exp.Coalesce(
                this=exp.Sum(this=exp.If(this=ok.copy(), true=hashed, false=exp.null())),
                expressions=[exp.cast(exp.Literal.number(0), "DECIMAL(38, 0)")],
            ),
            "content",
        ),
    ).from_(checked)
    (row,) = spark.sql(spark_sql(query)).collect()
    report = TableReport(spec.name, where, int(row["rows_read"]), int(row["rows_accepted"]))
    report.rejected = {rule: int(row[f"r_{n}"]) for n, rule in enumerate(rules) if row[f"r_{n}"]}
    report.nulls = {c: int(row[f"n_{n}"]) for n, c in enumerate(spec.columns)}
    return report, f"{spec.name}:{report.rows_accepted}:{row['content']};"


def load_snapshot_spark(
    spark: SparkSession, location: str, *, today: dt.date | None = None
) -> SnapshotReport:
    """Load, validate and report a snapshot in Spark: one cached view of accepted rows per table name.

    The same rules as `matcher.snapshot.load_snapshot` (DuckDB); rejected rows are counted per rule.
    """
    source = snapshot_source(spark, location)
    day = source.taken_at or today or dt.date.today()
    raws = {name: _raw_table(spark, source, SPECS[name]) for name in TABLE_NAMES}
    tables: dict[str, TableReport] = {}
    digest = hashlib.sha256()
    for name in TABLE_NAMES:  # enterprises first: the other tables drop rows of unknown enterprises
        spec = SPECS[name]
        df, where = raws[name]
        if df is None:
            _materialise(spark, name, empty_query(spec))
            tables[name] = TableReport(name, None)
            digest.update(f"{name}:0:0;".encode())
            continue
        assert where is not None
        raw = f"raw_{name}"
        df.createOrReplaceTempView(raw)
        checked, named = checked_query(spec, raw, column_casts(spec, df, where), day)
        _materialise(spark, f"chk_{name}", checked)
        accepted = accepted_query(spec, f"chk_{name}", [f for _, f in named])
        spark.sql(spark_sql(accepted)).createOrReplaceTempView(name)
        report, line = _table_report(spark, spec, where, f"chk_{name}", named)
        tables[name] = report
        digest.update(line.encode())
    return SnapshotReport(location, "spark-sha256:" + digest.hexdigest(), source.taken_at, tables, day)


# --- the match ----------------------------------------------------------------------------------------------


class SparkEngine(Engine):
    """The plan on a Spark session: every table checkpointed on the executors (`_materialise`); a failed
    statement is retried item by item to name the policy and item at fault."""

    name = "spark"

    def __init__(self, spark: SparkSession, *, lists: bool = True) -> None:
        super().__init__()
        self.spark = spark
        self.lists = lists  # also write near_misses.parquet and missing_data.parquet row by row

    def create(self, name: str, tree: exp.Expr, *, view: bool = False, ordered: bool = False) -> None:
        t0 = time.perf_counter()  # `ordered` does not apply: the tables are written in no order
        if view:
            self.spark.sql(spark_sql(tree)).createOrReplaceTempView(name)
        else:
            _materialise(self.spark, name, tree)
        self.timed(name, t0)

    def load_rows(self, table: Rows) -> None:
        schema = ", ".join(f"{name} {t.sql(dialect=ZhidaSpark)}" for name, t in table.types.items())
        self.spark.createDataFrame(table.rows, schema=schema).createOrReplaceTempView(table.name)

    def fetch(self, tree: exp.Expr) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.spark.sql(spark_sql(tree)).collect()]

    def load_snapshot(self, location: str) -> SnapshotReport:
        return load_snapshot_spark(self.spark, location)

    def write_outputs(self, out: str) -> None:
        base = out.rstrip("/")
        for name in OUTPUT_QUERIES:
            if name in LISTS and not self.lists:
                continue  # --compact: kept in results/ only
            # payees and contacts are sorted by uscc: the enterprise pages look one up (`matcher.results`)
            by_uscc = name in ("payees", "contacts")
            _write_parquet(self.spark.sql(output_query(name)), f"{base}/{name}.parquet", by_uscc=by_uscc)
        for block in self.spark.sql(spark_sql(_from_duckdb(f"SELECT DISTINCT block FROM {ITEMS}"))).collect():
            name, query = pattern_ids(int(block[0]))
            _materialise(self.spark, name, _from_duckdb(query))
        for output in compact_outputs(self._fetch_duckdb):
            frame = self.spark.sql(spark_sql(_from_duckdb(output.query)))
            _write_parquet(frame, f"{base}/{output.path}", by_uscc=output.by_uscc, one=not output.by_uscc)

    def _fetch_duckdb(self, query: str) -> list[tuple[Any, ...]]:
        return self.fetch(_from_duckdb(query))

    def write_text(self, location: str, text: str) -> None:
        _write_text(self.spark, location, text)

    def describe(self) -> dict[str, Any]:
        return {"spark": _session(self.spark)}

    def build_profile(self, assessment_year: int, as_of: dt.date) -> str:
        try:
            return super().build_profile(assessment_year, as_of)
        except PySparkException as e:
            raise MatchError(f"构建 {assessment_year} 年度画像时 Spark 出错：{_error_text(e)}") from e

    def number(self, profiles: Mapping[int, str]) -> dict[int, str]:
        # Any unique number serves as `rid` here (outputs are ordered by the texts): no global sort.
        numbered = exp.alias_(exp.func("MONOTONICALLY_INCREASING_ID"), "rid")
        self.create(KEYS, exp.select(exp.column("uscc"), numbered).from_(profiles[min(profiles)]))
        keyed = {year: keyed_name(profile) for year, profile in profiles.items()}
        for year, profile in profiles.items():
            self.create(keyed[year], keyed_query(profile))
        return keyed

    @contextmanager
    def guard(self, stage: str, plans: list[ItemPlan], keyed: Mapping[int, str]) -> Iterator[None]:
        try:
            yield
        except PySparkException as e:
            if stage == "allocate":
                raise MatchError(f"已兑现、就高不重复和预算分配在 Spark 上出错：{_error_text(e)}") from e
            culprit = self._culprit(plans, keyed)
            where = f"政策 {culprit.policy.id} 事项 {culprit.item.id}" if culprit is not None else "匹配"
            raise MatchError(
                f"{where} 在 Spark 上计算出错（溢出或类型转换错误不会变成空值）：{_error_text(e)}"
            ) from e

    def _culprit(self, plans: list[ItemPlan], profiles: Mapping[int, str]) -> ItemPlan | None:
        """The first item whose own conditions or amount fail (run only after the whole plan failed)."""
        for plan in plans:
            # The item alone in its block's table, its conditions on bits 0..n-1.
            alone = ItemPlan(plan.policy, plan.item, plan.no, plan.block, tuple(range(len(plan.bits))))
            (block,) = blocks([alone])
            try:
                _materialise(self.spark, block.table, block.select(profiles[block.year]))
                self.spark.sql(spark_sql(alone.eligible())).write.format("noop").mode("overwrite").save()
            except PySparkException:
                return plan
        return None


# Bytes per row group of an output looked up by uscc (`matcher.results`; DuckDB writes 4,096 rows): a
# lookup reads one row group, so it must stay small; Spark's default is 128 MiB.
ROW_GROUP_BYTES = 1 << 20


def _write_parquet(frame: DataFrame, location: str, *, by_uscc: bool = False, one: bool = False) -> None:
    """Write one output as a folder of Parquet parts: with `by_uscc` (the frame sorted by uscc) in small row
    groups, with `one` (a small output) as a single part."""
    writer = (frame.coalesce(1) if one else frame).write
    if by_uscc:
        writer = writer.option("parquet.block.size", str(ROW_GROUP_BYTES))
    writer.mode("overwrite").option("compression", "zstd").parquet(location)


def build_profile_spark(spark: SparkSession, assessment_year: int, as_of: dt.date) -> str:
    """Materialise the profile of one year (the `profile_query` tree) as a cached view; return its name."""
    return SparkEngine(spark).build_profile(assessment_year, as_of)


def match_profiles_spark(
    spark: SparkSession,
    policies: list[Policy],
    profiles: Mapping[int, str],
    payments: str = "payments",
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, float]:
    """`matcher.engine.match_profiles` on Spark, over existing profile views."""
    return engine.match_profiles(SparkEngine(spark), policies, profiles, payments, step)


def execute_spark(
    spark: SparkSession,
    policies: list[Policy],
    as_of: dt.date,
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, float]:
    """`matcher.engine.execute` on Spark: profiles of every assessment year, then the plan."""
    return engine.execute(SparkEngine(spark), policies, as_of, step)


def output_query(name: str) -> str:
    """The Spark SQL of one Contract 4 output over the `results`, `candidates` and snapshot views."""
    return spark_sql(_from_duckdb(ordered_query(name)))


def item_summary_spark(spark: SparkSession) -> list[dict[str, Any]]:
    """Per item: eligible, candidates, near-miss and missing-data counts and the money (one row per item)."""
    return item_summary(SparkEngine(spark))


def _write_text(spark: SparkSession, location: str, text: str) -> None:
    """Write a small text file (manifest.json) from the driver to a local path or a Hadoop URI."""
    if _is_local(location):
        path = _local(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    jvm: Any = getattr(spark, "_jvm", None)
    if jvm is None:
        raise MatchError(
            f"Spark Connect 会话无法从驱动端写 {location}；请把 --out 设为本地或共享文件系统上的目录"
        )
    hpath = jvm.org.apache.hadoop.fs.Path(location)
    fs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


SparkRunResult = RunResult[str]


def _session(spark: SparkSession) -> dict[str, str]:
    """The Spark version and master of a run, and for Spark Connect the server (without its token)."""
    info = {"version": spark.version, "master": str(spark.conf.get("spark.master", ""))}
    remote = os.environ.get("SPARK_REMOTE")
    if remote:
        info["remote"] = remote.split(";")[0]
    return info


def run_match_spark(
    snapshot: str,
    policies: Path,
    out: str,
    as_of: dt.date | None = None,
    *,
    spark: SparkSession,
    ruleset: RuleSet | None = None,
    step: Callable[[str], None] = lambda _: None,
    lists: bool = True,
) -> RunResult[str]:
    """`zhida match --engine spark` (`matcher.run.run` with a `SparkEngine`): load and validate, profile,
    match, allocate, write Contract 4 under `out`: the compact results, and with `lists` (not `--compact`)
    near_misses.parquet and missing_data.parquet besides."""
    shown = str(Path(snapshot).resolve()) if _is_local(snapshot) else snapshot
    written, report, timings = run(
        SparkEngine(spark, lists=lists), snapshot, shown, policies, out, as_of, ruleset=ruleset, step=step
    )
    return RunResult(out, written, report, timings)
