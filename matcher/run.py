"""A match run: load the snapshot, build the profiles, run the plan, write Contract 4; on any engine.

`run` drives an engine (`matcher.engine.Engine`); `zhida match --snapshot DIR --policies DIR --out DIR
[--as-of DATE]` calls `run_match`, the run on DuckDB (`matcher.spark_engine.run_match_spark` on Spark). The run folder
holds candidates.parquet, the near misses and missing data (kept compact under results/ on either engine,
`matcher.results`; near_misses.parquet and missing_data.parquet besides unless --compact), payees.parquet (the registered
contact and account of every candidate, for the payouts part), contacts.parquet (the registered name and
contact phone of every enterprise with a result, for the enterprise sign-in) and manifest.json. The
same snapshot and rules give byte-identical candidates and the same fingerprints.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar

import duckdb

from matcher import runfolder
from matcher.duckdb_engine import DuckDBEngine, connect
from matcher.duckdb_engine import write_candidates as write_candidates
from matcher.engine import Engine, execute, item_summary
from matcher.overrides import OverrideSource
from matcher.snapshot import SnapshotReport
from rules.errors import MatchError
from rules.policy import Policy
from rules.ruleset import RuleSet, load_ruleset

Out = TypeVar("Out", Path, str)


@dataclass
class RunResult(Generic[Out]):
    """What a run did: where it wrote (a folder, or for Spark also a URI), the manifest, and the snapshot
    report."""

    out: Out
    manifest: runfolder.Manifest
    snapshot: SnapshotReport
    timings: dict[str, float] = field(default_factory=dict)


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
        "notice_working_days": p.notice_working_days,
        "service_phone": p.service_phone,
        "review_days": p.review_limit_days,
        "payment_days": p.payment_limit_days,
        "outreach": p.outreach,
        # Joint review (会签) by several departments, the first leading; absent: the department alone.
        **({"reviewers": list(p.reviewers)} if p.reviewers else {}),
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
) -> RunResult[Path]:
    """`zhida match` on DuckDB (`run` with a `DuckDBEngine`): the run folder `out`, spilling under it."""
    con = con or connect(temp_dir=out / ".spill")
    out.mkdir(parents=True, exist_ok=True)
    written, report, timings = run(
        DuckDBEngine(con),
        str(snapshot),
        str(snapshot.resolve()),
        policies,
        str(out),
        as_of,
        ruleset=ruleset,
        step=step,
        overrides=overrides,
    )
    spill = out / ".spill"
    if spill.exists() and not any(spill.iterdir()):
        spill.rmdir()
    return RunResult(out, written, report, timings)


def run(
    engine: Engine,
    snapshot: str,
    shown: str,
    policies: Path,
    out: str,
    as_of: dt.date | None = None,
    *,
    ruleset: RuleSet | None = None,
    step: Callable[[str], None] = lambda _: None,
    overrides: OverrideSource = None,
) -> tuple[runfolder.Manifest, SnapshotReport, dict[str, float]]:
    """A match run on any engine: load and validate the snapshot, apply overrides, build the profiles, run
    the plan, write the outputs and manifest.json (naming the snapshot as `shown`) under `out`; returns the
    manifest, the snapshot report and the timings."""
    as_of = as_of or dt.date.today()
    started = time.perf_counter()
    ruleset = ruleset or load_ruleset(policies)
    # Apply items (快申快享) and policies that pay nothing (权益, 资质) are not matched: see `Policy.matchable`.
    active = [m for p in ruleset.active(as_of) if (m := p.matchable()) is not None]
    if not active:
        raise MatchError(
            f"{as_of} 没有处于有效期内的政策（{policies}），请检查 --as-of 或政策的 valid_from/valid_to"
        )
    step("载入快照")
    t = time.perf_counter()
    report = engine.load_snapshot(snapshot)
    timings = {"load": time.perf_counter() - t}
    applied = engine.apply_overrides(overrides)
    timings |= execute(engine, active, as_of, step)
    step("写出结果")
    t = time.perf_counter()
    engine.write_outputs(out)
    timings["write"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started
    items = item_summary(engine)
    written = manifest(engine.name, shown, policies, ruleset, active, report, as_of, timings, items, applied)
    written |= engine.describe()
    text = runfolder.manifest_text(written)
    engine.write_text(f"{out.rstrip('/')}/{runfolder.MANIFEST}", text)
    return runfolder.parse_manifest(text), report, timings


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
        "inactive_policies": [p.key for p in ruleset if not p.active_on(as_of)],
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
