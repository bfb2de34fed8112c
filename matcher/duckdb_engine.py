"""Running the match plan on DuckDB, the embedded default engine."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from matcher.plan import candidates_query, item_plans, results_query
from matcher.profile import build_profile
from rules.policy import Policy

BATCH = 25  # items per statement


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
    """Build the profiles, then the `results` and `candidates` tables in `con`; return timings in seconds."""
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
) -> dict[str, float]:
    """Run the plan over existing profile tables (one per assessment year) into `results` and `candidates`."""
    t = time.perf_counter()
    step("匹配")
    plans = item_plans(policies)
    # Items run in batches of one UNION ALL statement each: the same trees, smaller statements to plan.
    for n in range(0, len(plans), BATCH):
        select = results_query(plans[n : n + BATCH], profiles).sql("duckdb")
        con.execute(
            f"CREATE OR REPLACE TABLE results AS {select}" if n == 0 else f"INSERT INTO results {select}"
        )
    timings = {"match": time.perf_counter() - t}
    t = time.perf_counter()
    step("分配")
    query = candidates_query("results", payments, policies).sql("duckdb")
    con.execute(f"CREATE OR REPLACE TABLE candidates AS {query}")
    timings["allocate"] = time.perf_counter() - t
    return timings


def fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> tuple[Any, ...] | None:
    """The first row of a query, with the result fully consumed (DuckDB keeps an unfinished one open)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None
