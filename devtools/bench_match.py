"""The matcher benchmark: synthetic snapshot × synthetic policies shaped like the library's.

Prints, side by side in one run: a raw scan of the profile columns the rules read, the match itself,
their ratio, peak memory, and the per-enterprise rule-engine reference extrapolated from a sample, as a
speed-up ratio. Figures, not assertions: machines are noisy, ratios less so.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from devtools.generate import generate_snapshot
from matcher.duckdb_engine import connect, match_profiles, write_outputs
from matcher.profile import build_profile, catalog_columns
from matcher.snapshot import load_snapshot
from rules.expressions import ExpressionProblem, parse
from rules.policy import Policy
from rules.reference import evaluate
from rules.ruleset import library_dir, load_ruleset

AS_OF = dt.date(2025, 9, 30)
_NUMBER = re.compile(r"(?<![\w.\"])(\d+(?:\.\d+)?)(?![\w\"])")


def synthetic_policies(items: int, seed: int = 0) -> list[Policy]:
    """`items` items from variants of the library's active policies, with thresholds and rates jittered."""
    rng = random.Random(seed)
    templates = [
        m for p in load_ruleset(library_dir()) if p.active_on(AS_OF) and (m := p.matchable()) is not None
    ]
    out: list[Policy] = []
    count = 0
    while count < items:
        base = templates[len(out) % len(templates)]

        def jitter(text: str) -> str:
            def one(m: re.Match[str]) -> str:
                v = Decimal(m.group(1))
                return str((v * Decimal(rng.choice(["0.8", "0.9", "1", "1.1", "1.25"]))).normalize())

            jittered = _NUMBER.sub(one, text)
            try:
                parse(jittered)
            except (
                ExpressionProblem
            ):  # a jitter that breaks a literal (e.g. a slice bound) keeps the original
                return text
            return jittered

        data = base.model_dump()
        data["id"] = f"{base.id}-s{len(out)}"
        data["exclusive_group"] = None
        for cond in data["conditions"]:
            cond["rule"] = jitter(cond["rule"])
        data["items"] = data["items"][: max(1, min(len(data["items"]), items - count))]
        for item in data["items"]:
            item["exclusive_group"] = None
            item["amount"] = jitter(item["amount"])
            for cond in item["conditions"]:
                cond["rule"] = jitter(cond["rule"])
        policy = Policy.model_validate(data)
        out.append(policy)
        count += len(policy.items)
    return out


@dataclass
class BenchResult:
    enterprises: int
    items: int
    load_s: float
    profile_s: float
    scan_s: float
    match_s: float
    allocate_s: float
    summary_s: float  # per-item counts and money: every eligible pair's amount, open items' included
    write_s: float | None  # None: not written
    peak_rss_gib: float
    reference_per_pair_s: float
    views_s: float
    statements: dict[str, float]  # seconds per table or view made
    files: dict[str, float] = field(default_factory=dict)  # seconds per output written (`write_outputs`)

    @property
    def total_s(self) -> float:
        """From the snapshot on disk to every output written (its generation, the raw scan and the
        reference excluded)."""
        return self.load_s + self.profile_s + self.computed_s + (self.write_s or self.views_s)

    @property
    def python_s(self) -> float:
        """Match, allocation, summary and views less their statements: building and rendering the trees."""
        return self.computed_s + self.views_s - sum(self.statements.values())

    @property
    def match_vs_scan(self) -> float:
        return self.match_s / self.scan_s if self.scan_s else float("inf")

    @property
    def reference_extrapolated_s(self) -> float:
        return self.reference_per_pair_s * self.enterprises * self.items

    @property
    def computed_s(self) -> float:
        """Every pair's verdict and every eligible pair's amount, allocated and counted: what the reference
        computes."""
        return self.match_s + self.allocate_s + self.summary_s

    @property
    def speedup(self) -> float:
        return self.reference_extrapolated_s / self.computed_s

    @property
    def speedup_with_write(self) -> float | None:
        if self.write_s is None:
            return None
        return self.reference_extrapolated_s / (self.computed_s + self.write_s)


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def synthetic_snapshot(work: Path, enterprises: int, seed: int, say: Callable[[str], None]) -> Path:
    """The benchmark's synthetic snapshot of `enterprises` under `work`, generated once per size and seed."""
    snapshot = work / f"snapshot-{enterprises}-{seed}"
    if not (snapshot / "enterprises.parquet").exists():
        say(f"生成 {enterprises:,} 户合成快照 → {snapshot}")
        generate_snapshot(snapshot, enterprises, seed)
    return snapshot


def run_bench(
    enterprises: int,
    items: int,
    work: Path,
    *,
    seed: int = 0,
    memory_limit: str = "16GB",
    sample: int = 300,
    write: bool = True,
    say: Callable[[str], None] = lambda _: None,
) -> BenchResult:
    snapshot = synthetic_snapshot(work, enterprises, seed, say)
    policies = synthetic_policies(items, seed)
    con = connect(memory_limit=memory_limit, temp_dir=work / "spill")
    say("载入并校验快照")
    t = time.perf_counter()
    load_snapshot(snapshot, con, ordered=False)  # as a match run loads it
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    profile = build_profile(con, 2024, AS_OF)
    profile_s = time.perf_counter() - t
    used = sorted(
        {f for p in policies for c in p.conditions for f in parse(c.rule).fields}
        | {f for p in policies for i in p.items for c in i.conditions for f in parse(c.rule).fields}
        | {f for p in policies for i in p.items for f in parse(i.amount).fields}
        | {"uscc"}
    )
    say(f"原始扫描 {len(used)} 列")
    t = time.perf_counter()
    con.execute(f"SELECT {', '.join(f'count({c})' for c in used)} FROM {profile}").fetchall()
    scan_s = time.perf_counter() - t
    say(f"匹配 {items} 个事项")
    statements: dict[str, float] = {}
    timings = match_profiles(con, policies, {2024: profile}, statements=statements)
    write_s = None
    files: dict[str, float] = {}
    if write:
        say("写出结果（Contract 4）")
        out = work / f"out-{enterprises}x{items}-{seed}"
        out.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        write_outputs(con, out, files)
        write_s = timings["views"] + time.perf_counter() - t
    say(f"参照实现（rule-engine 逐户）抽样 {sample} 户")
    rows_cur = con.execute(
        f"SELECT {catalog_columns()} FROM {profile} USING SAMPLE {sample} ROWS (reservoir, 42)"
    )
    names = [d[0] for d in rows_cur.description]
    rows = [dict(zip(names, r, strict=True)) for r in rows_cur.fetchall()]
    t = time.perf_counter()
    evaluate(policies, rows)
    per_pair = (time.perf_counter() - t) / max(1, len(rows) * items)
    return BenchResult(
        enterprises,
        items,
        load_s,
        profile_s,
        scan_s,
        timings["match"],
        timings["allocate"],
        timings["summary"],
        write_s,
        _peak_rss_gib(),
        per_pair,
        timings["views"],
        statements,
        files,
    )
