"""Running the match plan on DuckDB, the embedded default engine."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from matcher.plan import (
    ALLOCATED,
    KEYS,
    MATCHES,
    PAID,
    STATUS_COUNTS,
    SUMMARY,
    TOTALS,
    ItemPlan,
    Rows,
    blocks,
    candidates_query,
    conditions_rows,
    item_plans,
    items_rows,
    keyed_name,
    keyed_query,
    keys_query,
    matches_query,
    paid_query,
    status_counts_query,
    summary_query,
    totals_query,
    unpriced_error,
    unpriced_query,
    views,
)
from matcher.profile import build_profile
from rules.policy import Policy

BATCH = 50  # items per statement of stage 1


def connect(memory_limit: str | None = None, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that spills to disk rather than running out of memory."""
    con = duckdb.connect()
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_dir is not None:
        con.execute(f"SET temp_directory = '{temp_dir}'")
    # Every output is written with an explicit ORDER BY on its key, so insertion order need not be kept.
    con.execute("SET preserve_insertion_order = false")
    return con


def execute(
    con: duckdb.DuckDBPyConnection,
    policies: list[Policy],
    as_of: dt.date,
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, float]:
    """Build the profiles, then run the plan (`match_profiles`) in `con`; return timings in seconds."""
    t = time.perf_counter()
    profiles = {}
    for year in sorted({p.assessment_year for p in policies}):
        step(f"画像 {year}")
        profiles[year] = build_profile(con, year, as_of)
    timings = {"profile": time.perf_counter() - t}
    return timings | match_profiles(con, policies, profiles, step=step)


def match_profiles(
    con: duckdb.DuckDBPyConnection,
    policies: list[Policy],
    profiles: dict[int, str],
    payments: str = "payments",
    step: Callable[[str], None] = lambda _: None,
    statements: dict[str, float] | None = None,
) -> dict[str, float]:
    """Run the plan over existing profile tables (one per assessment year); return the seconds of each
    stage (match, allocate, summary, views) and add those of each statement, by the table or view it
    makes, to `statements` if given (what is left of a stage is Python: building and rendering trees).

    Builds the items and their conditions, per block the verdict table (`verdicts_<n>`), its bit patterns
    (`patterns_<n>`) and the rows eligible for a budgeted or grouped item (`allocatable_<n>`), then
    `matches` (stage 1) off those, `allocated` (stage 2), the per-item counts and money off the patterns
    (`match_summary`), and the views over them all (`matcher.plan`: Contract 4's `results` and
    `candidates` among them).
    """
    spent = statements if statements is not None else {}

    def create(name: str, query: exp.Expr | str, kind: str = "TABLE", insert: bool = False) -> None:
        sql = query if isinstance(query, str) else query.sql("duckdb", copy=False)
        t0 = time.perf_counter()
        con.execute(f"INSERT INTO {name} {sql}" if insert else f"CREATE OR REPLACE {kind} {name} AS {sql}")
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

    t = time.perf_counter()
    step("匹配")
    plans = item_plans(policies)
    first = profiles[min(profiles)]
    numbered = "rid" in _columns(con, first)  # `build_profile` numbers the enterprises; other tables do not
    create(KEYS, f"SELECT uscc, rid FROM {first}" if numbered else keys_query(first))
    keyed = {}
    for year, profile in profiles.items():
        keyed[year] = profile if numbered else keyed_name(profile)
        if not numbered:
            create(keyed[year], keyed_query(profile))
    for rows in (items_rows(plans), conditions_rows(plans)):
        t0 = time.perf_counter()
        load_rows(con, rows)
        spent[rows.name] = time.perf_counter() - t0
    for block in blocks(plans):
        create(block.table, block.select(keyed[block.year]))
        create(block.patterns, block.patterns_select())
        create(block.allocatable, block.allocatable_select())
    # The stored eligible rows in statements of `BATCH` items: the same trees, smaller statements to plan.
    for n in range(0, len(plans), BATCH):
        batch = plans[n : n + BATCH]
        try:
            create(MATCHES, matches_query(batch), insert=n > 0)
        except duckdb.Error as e:
            if culprit := _unpriced_item(con, batch):
                raise unpriced_error(culprit.policy.id, culprit.item.id) from e
            raise
    timings = {"match": time.perf_counter() - t}
    t = time.perf_counter()
    step("分配")
    create(PAID, paid_query(payments))
    create(ALLOCATED, candidates_query())
    timings["allocate"] = time.perf_counter() - t
    t = time.perf_counter()
    step("汇总")
    create(STATUS_COUNTS, status_counts_query(plans))
    create(TOTALS, totals_query(plans))
    if unpriced := fetch_one(con, unpriced_query().sql("duckdb", copy=False)):
        raise unpriced_error(*unpriced)
    create(SUMMARY, summary_query())
    timings["summary"] = time.perf_counter() - t
    t = time.perf_counter()
    for name, tree in views(plans, keyed).items():
        create(name, tree, kind="VIEW")
    timings["views"] = time.perf_counter() - t
    return timings


def _arrow_type(t: exp.DataType) -> pa.DataType:
    if t.this == exp.DataType.Type.DECIMAL:
        precision, scale = (int(e.name) for e in t.expressions)
        return pa.decimal128(precision, scale)
    return _ARROW[t.this]


_ARROW = {
    exp.DataType.Type.INT: pa.int32(),
    exp.DataType.Type.BIGINT: pa.int64(),
    exp.DataType.Type.VARCHAR: pa.string(),
}


def load_rows(con: duckdb.DuckDBPyConnection, table: Rows) -> None:
    """Create (or replace) the plan's data table `table.name` from its rows, through Arrow."""
    columns = list(zip(*table.rows, strict=True)) or [() for _ in table.types]
    arrow = pa.table(
        [pa.array(c, type=_arrow_type(t)) for c, t in zip(columns, table.types.values(), strict=True)],
        names=list(table.types),
    )
    con.register("plan_rows", arrow)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table.name} AS SELECT * FROM plan_rows")
    finally:
        con.unregister("plan_rows")


def _unpriced_item(con: duckdb.DuckDBPyConnection, plans: list[ItemPlan]) -> ItemPlan | None:
    """The first stored item whose amount fails on its own eligible rows (run only after stage 1 failed:
    an amount too big for DECIMAL(18,2) is an error there, not NULL)."""
    for plan in plans:
        if plan.allocated:
            try:
                fetch_one(con, f"SELECT max(amount) FROM ({plan.eligible().sql('duckdb')})")
            except duckdb.Error:
                return plan
    return None


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]


def fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> tuple[Any, ...] | None:
    """The first row of a query, with the result fully consumed (DuckDB keeps an unfinished one open)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None
