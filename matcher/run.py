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
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from matcher.duckdb_engine import connect, execute
from matcher.overrides import OverrideSource, apply_overrides, load_overrides
from matcher.plan import ITEMS, KEYS, PAYABLE, SUMMARY, TOTALS
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


# Contract 4's outputs (and payees, contacts) over the plan's views: (query, order), the same on both engines,
# except that DuckDB writes the candidates in the same order with `write_candidates`.
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
        "FROM enterprises e JOIN match_keys k ON k.uscc = e.uscc LEFT JOIN bank_accounts b ON b.uscc = e.uscc "
        "WHERE k.rid IN (SELECT rid FROM payable)",
        "e.uscc",
    ),
    "contacts": (
        "SELECT e.uscc, e.name, e.contact_phone FROM enterprises e "
        "WHERE e.uscc IN (SELECT k.uscc FROM result_rids r JOIN match_keys k ON k.rid = r.rid)",
        "e.uscc",
    ),
}


def ordered_query(name: str) -> str:
    """An output's query with its ORDER BY, if it has one."""
    query, order = OUTPUT_QUERIES[name]
    return query if order is None else f"{query} ORDER BY {order}"


def write_outputs(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """The Parquet files of Contract 4 (and payees, contacts) from a connection that ran the plan."""
    for name in OUTPUT_QUERIES:
        if name == "candidates":
            write_candidates(con, out / f"{name}.parquet")
        else:
            _copy(con, ordered_query(name), out / f"{name}.parquet")


CHUNK_ROWS = 50_000_000  # candidates sorted at a time (24 bytes each)
BATCH_ROWS = 1 << 17  # at most this many candidates per Arrow batch, a Parquet row group each


def write_candidates(con: duckdb.DuckDBPyConnection, path: Path, chunk_rows: int = CHUNK_ROWS) -> None:
    """candidates.parquet in (policy_id, item_id, uscc) order, byte-identical for the same run, in bounded
    memory. DuckDB numbers the items in (policy_id, item_id) order and the enterprises (`rid`, 1 to N) in
    USCC order, so only the narrow rows (item, rid, amounts) are sorted, in chunks of whole items of at
    most `chunk_rows` rows (by the item's count in `item_totals`), and the ids and USCC are looked up by
    position. At 10M x 1000 (915 M candidates) a single sort carrying the texts ran out of 16 GiB."""
    if con.execute(f"SELECT count(*) = max(rid) AND min(rid) = 1 FROM {KEYS}").fetchall() == [(False,)]:
        raise MatchError("内部错误：企业编号不连续，无法写出 candidates.parquet")
    usccs = con.sql(f"SELECT uscc FROM {KEYS} ORDER BY rid").to_arrow_table().column("uscc").combine_chunks()
    items = con.sql(
        f"SELECT i.item, i.policy_id, i.policy_version, i.item_id, COALESCE(t.candidates, 0) AS rows "
        f"FROM {ITEMS} AS i LEFT JOIN {TOTALS} AS t ON t.item = i.item ORDER BY i.item"
    ).to_arrow_table()
    if items.column("item").to_pylist() != list(range(items.num_rows)):
        raise MatchError("内部错误：事项编号不连续，无法写出 candidates.parquet")
    version = items.column("policy_version").combine_chunks()
    # The ids as dictionaries of their distinct values (the Parquet dictionary, written as it is) and each
    # item's index into them.
    texts = {}
    for name in ("policy_id", "item_id"):
        values = items.column(name).combine_chunks()
        distinct = pc.unique(values)
        texts[name] = (pc.index_in(values, value_set=distinct), distinct)
    money = pa.decimal128(18, 2)
    schema = pa.schema(
        [
            pa.field(name, t, nullable=False)
            for name, t in [
                ("policy_id", pa.dictionary(pa.int32(), pa.string())),
                ("policy_version", pa.int32()),
                ("item_id", pa.dictionary(pa.int32(), pa.string())),
                ("uscc", pa.string()),
                ("amount", money),
                ("amount_before_allocation", money),
            ]
        ]
    )
    with pq.ParquetWriter(
        path,
        schema,
        compression="zstd",
        use_dictionary=["policy_id", "item_id"],
        store_schema=False,
        store_decimal_as_integer=True,
    ) as writer:
        for first, last in _chunks(items.column("rows").to_pylist(), chunk_rows):
            rows = con.sql(
                f"SELECT item, rid, amount, amount_before_allocation FROM {PAYABLE} "
                f"WHERE item BETWEEN {first} AND {last} ORDER BY item, rid"
            ).to_arrow_reader(BATCH_ROWS)
            for batch in rows:
                item = batch.column("item")
                policy_id, item_id = (
                    pa.DictionaryArray.from_arrays(pc.take(index, item), distinct)
                    for index, distinct in texts.values()
                )
                columns = [
                    policy_id,
                    pc.take(version, item),
                    item_id,
                    pc.take(usccs, pc.subtract(batch.column("rid"), 1)),
                    batch.column("amount"),
                    batch.column("amount_before_allocation"),
                ]
                writer.write_batch(pa.record_batch(columns, schema=schema))


def _chunks(rows: list[int], limit: int) -> list[tuple[int, int]]:
    """Ranges (first, last) of consecutive item numbers of at most `limit` rows (at least one item)."""
    out: list[tuple[int, int]] = []
    first, total = 0, 0
    for item, n in enumerate(rows):
        if item > first and total + n > limit:
            out.append((first, item - 1))
            first, total = item, 0
        total += n
    if rows:
        out.append((first, len(rows) - 1))
    return out


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
