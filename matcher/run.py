"""A match run in DuckDB: load the snapshot, build the profiles, run the plan, write Contract 4.

`zhida match --snapshot DIR --policies DIR --out DIR [--as-of DATE]` calls `run_match`. The run folder
holds candidates.parquet, near_misses.parquet, missing_data.parquet, payees.parquet (the registered
contact and account of every candidate, for the payouts part), contacts.parquet (the registered name and
contact phone of every enterprise with a result, for the enterprise sign-in) and manifest.json. The
same snapshot and rules give byte-identical candidates and the same fingerprints.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from matcher.duckdb_engine import connect, execute
from matcher.overrides import OverrideSource, apply_overrides, load_overrides
from matcher.plan import SUMMARY
from matcher.snapshot import SnapshotReport, load_snapshot
from rules.errors import MatchError
from rules.policy import Policy
from rules.ruleset import RuleSet, load_ruleset


@dataclass
class RunResult:
    """What a run did: where it wrote, the manifest, and the snapshot report."""

    out: Path
    manifest: dict[str, Any]
    snapshot: SnapshotReport
    timings: dict[str, float] = field(default_factory=dict)


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    con.execute(f"COPY ({query}) TO '{path}' (FORMAT PARQUET, COMPRESSION ZSTD)")


# Contract 4's outputs (and payees, contacts) over the plan's views: (query, order), the same on both engines.
# The near-miss and missing-data rows are written as they are computed, in no order: Contract 4 compares
# them as sets and only the candidates must be byte-identical, and sorting them is most of a run's cost and
# memory (at 1M x 200, 43 M near-miss rows carried about 190 bytes of sort state each: 38 s and 10 GiB for
# the five files sorted, 19 s and 4 GiB without; at 10M x 1000, about 2 billion rows, the sort would spill
# some 400 GB). Their content is the same on every run; read them with an ORDER BY.
OUTPUT_QUERIES: dict[str, tuple[str, str | None]] = {
    "candidates": (
        "SELECT policy_id, policy_version, item_id, uscc, amount, amount_before_allocation FROM candidates",
        "policy_id, item_id, uscc",
    ),
    "near_misses": (
        "SELECT policy_id, item_id, uscc, condition_id, value FROM results WHERE status = 'near_miss'",
        None,
    ),
    "missing_data": (
        "SELECT policy_id, item_id, uscc, string_split(fields, ';') AS fields FROM results "
        "WHERE status = 'missing_data'",
        None,
    ),
    "payees": (
        "SELECT e.uscc, e.name, e.contact_phone, b.bank_name, b.account_no, b.account_name "
        "FROM enterprises e LEFT JOIN bank_accounts b ON b.uscc = e.uscc "
        "WHERE e.uscc IN (SELECT uscc FROM candidates)",
        "e.uscc",
    ),
    "contacts": (
        "SELECT e.uscc, e.name, e.contact_phone FROM enterprises e "
        "WHERE e.uscc IN (SELECT k.uscc FROM statuses s JOIN match_keys k ON k.rid = s.rid)",
        "e.uscc",
    ),
}
# DuckDB numbers enterprises in USCC order and items in (policy_id, item_id) order (`build_profile`,
# `item_plans`): there the candidates' order is (item, rid), on integers.
NUMBERED_ORDER = {"candidates": "item, rid"}


def ordered_query(name: str, numbered: bool = False) -> str:
    """An output's query with its ORDER BY, if it has one; `numbered`: on DuckDB's integer numbers."""
    query, order = OUTPUT_QUERIES[name]
    if numbered:
        order = NUMBERED_ORDER.get(name, order)
    return query if order is None else f"{query} ORDER BY {order}"


def write_outputs(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """The Parquet files of Contract 4 (and payees, contacts) from a connection that ran the plan."""
    for name in OUTPUT_QUERIES:
        _copy(con, ordered_query(name, numbered=True), out / f"{name}.parquet")


def policy_manifest(p: Policy) -> dict[str, Any]:
    conds = [{"id": c.id, "text": c.text, "clause": c.clause, "rule": c.rule} for c in p.conditions]
    return {
        "id": p.id,
        "version": p.version,
        "title": p.title,
        "department": p.department,
        "period": p.period,
        "budget": None if p.budget is None else format(p.budget, "f"),
        "allocation": p.allocation,
        "confirmation": p.confirmation,
        "notice_days": p.notice_days,
        "conditions": conds,
        "items": [
            {
                "id": i.id,
                "title": i.title,
                "conditions": [
                    {"id": c.id, "text": c.text, "clause": c.clause, "rule": c.rule} for c in i.conditions
                ],
            }
            for i in p.items
        ],
    }


def run_match(
    snapshot: Path,
    policies: Path,
    out: Path,
    as_of: dt.date | None = None,
    *,
    ruleset: RuleSet | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    step: Callable[[str], None] = lambda _: None,
    overrides: OverrideSource = None,
) -> RunResult:
    as_of = as_of or dt.date.today()
    started = time.perf_counter()
    ruleset = ruleset or load_ruleset(policies)
    active = list(ruleset.active(as_of))
    if not active:
        raise MatchError(
            f"{as_of} 没有处于有效期内的政策（{policies}），请检查 --as-of 或政策的 valid_from/valid_to"
        )
    con = con or connect(temp_dir=out / ".spill")
    out.mkdir(parents=True, exist_ok=True)
    step("载入快照")
    t = time.perf_counter()
    report = load_snapshot(snapshot, con)
    timings = {"load": time.perf_counter() - t}
    applied = apply_overrides(con, load_overrides(overrides))  # verified values, over the loaded tables only
    timings |= execute(con, active, as_of, step)
    step("写出结果")
    t = time.perf_counter()
    write_outputs(con, out)
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    written = manifest(
        "duckdb",
        str(snapshot.resolve()),
        policies,
        ruleset,
        active,
        report,
        as_of,
        timings,
        item_summary(con),
        applied,
    )
    (out / "manifest.json").write_text(
        json.dumps(written, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    spill = out / ".spill"
    if spill.exists() and not any(spill.iterdir()):
        spill.rmdir()
    return RunResult(out, written, report, timings)


def item_summary(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per item: eligible (after allocation), near-miss and missing-data counts and the money."""
    rows = con.execute(f"SELECT * FROM {SUMMARY} ORDER BY policy_id, item_id").fetchall()
    keys = (
        "policy_id",
        "item_id",
        "eligible",
        "candidates",
        "near_misses",
        "missing_data",
        "amount",
        "amount_before_allocation",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


def manifest(
    engine: str,
    snapshot: str,
    policies: Path,
    ruleset: RuleSet,
    active: list[Policy],
    report: SnapshotReport,
    as_of: dt.date,
    timings: dict[str, float],
    items: list[dict[str, Any]],
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """manifest.json of a run on any engine, from the per-item summary (see `item_summary`) and the
    overrides applied to the snapshot (`matcher.overrides`; the Spark engine applies none)."""
    totals: dict[str, Decimal] = {}
    for row in items:
        totals[row["policy_id"]] = totals.get(row["policy_id"], Decimal(0)) + row["amount"]
    over = [
        p.id
        for p in active
        if p.budget is not None and p.allocation == "none" and totals.get(p.id, Decimal(0)) > p.budget
    ]
    return {
        "run_id": uuid.uuid4().hex,
        "engine": engine,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "as_of": as_of.isoformat(),
        "snapshot": {"path": snapshot, "fingerprint": report.fingerprint},
        "rules": {"path": str(policies.resolve()), "fingerprint": ruleset.fingerprint},
        "policies": [policy_manifest(p) for p in active],
        "inactive_policies": [p.key for p in ruleset if p not in active],
        "over_budget": over,
        "counts": {
            "enterprises": report.tables["enterprises"].rows_accepted,
            "items": len(items),
            "candidates": sum(r["candidates"] for r in items),
            "near_misses": sum(r["near_misses"] for r in items),
            "missing_data": sum(r["missing_data"] for r in items),
        },
        "items": [
            {k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in row.items()} for row in items
        ],
        "totals": {pid: format(v, "f") for pid, v in sorted(totals.items())},
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "overrides": overrides or {"count": 0, "applied": [], "skipped": []},
    }
