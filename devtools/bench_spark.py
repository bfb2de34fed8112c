"""The Spark benchmark: the DuckDB benchmark's snapshot and synthetic policies (`devtools.bench_match`), run on
Spark by `matcher.spark_engine`, with stage times, peak memory of driver and JVM, and throughput per core.

`zhida bench match --engine spark` calls `run_spark_bench`. The benchmark imports the engine, never the
other way round.
"""

from __future__ import annotations

import os
import re
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from sqlglot import exp

from devtools.bench_match import AS_OF, synthetic_policies, synthetic_snapshot
from matcher.plan import MATCHES, PAYABLE
from matcher.spark_engine import build_profile_spark, load_snapshot_spark, match_profiles_spark, spark_sql


@dataclass
class SparkBenchResult:
    """One Spark benchmark: stage times, peak memory of driver and JVM, and throughput per core."""

    enterprises: int
    items: int
    cores: int
    load_s: float
    profile_s: float
    match_s: float
    allocate_s: float
    summary_s: float
    peak_rss_gib: float
    stored: int  # rows of `matches`: the eligible pairs of the items stage 2 needs
    candidates: int  # rows of `payable`

    @property
    def pairs_per_core_second(self) -> float:
        """(enterprise, item) pairs evaluated and allocated per core-second."""
        return (
            self.enterprises * self.items / ((self.match_s + self.allocate_s + self.summary_s) * self.cores)
        )

    @property
    def enterprises_per_core_second(self) -> float:
        """Enterprises loaded, validated and profiled per core-second."""
        return self.enterprises / ((self.load_s + self.profile_s) * self.cores)

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": "spark",
            "enterprises": self.enterprises,
            "items": self.items,
            "cores": self.cores,
            "load_s": round(self.load_s, 3),
            "profile_s": round(self.profile_s, 3),
            "match_s": round(self.match_s, 3),
            "allocate_s": round(self.allocate_s, 3),
            "summary_s": round(self.summary_s, 3),
            "peak_rss_gib": round(self.peak_rss_gib, 3),
            "stored": self.stored,
            "candidates": self.candidates,
            "pairs_per_core_second": round(self.pairs_per_core_second),
            "enterprises_per_core_second": round(self.enterprises_per_core_second),
        }


def _descendants(pid: int) -> list[int]:
    """Process ids below `pid` (the local-mode JVM is a child of the driver's launcher)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def peak_rss_gib() -> float:
    """Peak resident memory of this process and its children still running (the local Spark JVM), in GiB."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for pid in _descendants(os.getpid()):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        kib += int(found.group(1)) if found else 0
    return kib / 1024 / 1024


def _count(spark: SparkSession, table: str) -> int:
    (row,) = spark.sql(spark_sql(exp.select(exp.Count(this=exp.Star())).from_(table))).collect()
    return int(row[0])


def run_spark_bench(
    enterprises: int,
    items: int,
    work: Path,
    *,
    spark: SparkSession,
    cores: int,
    seed: int = 0,
    say: Callable[[str], None] = lambda _: None,
) -> SparkBenchResult:
    """The DuckDB benchmark's snapshot and synthetic policies (devtools.bench_match), run on Spark."""
    snapshot = synthetic_snapshot(work, enterprises, seed, say)
    policies = synthetic_policies(items, seed)
    say("载入并校验快照（Spark）")
    t = time.perf_counter()
    load_snapshot_spark(spark, str(snapshot))
    load_s = time.perf_counter() - t
    say("构建画像（Spark）")
    t = time.perf_counter()
    profile = build_profile_spark(spark, 2024, AS_OF)
    profile_s = time.perf_counter() - t
    say(f"匹配 {items} 个事项（Spark）")
    timings = match_profiles_spark(spark, policies, {2024: profile})
    return SparkBenchResult(
        enterprises,
        items,
        cores,
        load_s,
        profile_s,
        timings["match"],
        timings["allocate"],
        timings["summary"],
        peak_rss_gib(),
        _count(spark, MATCHES),
        _count(spark, PAYABLE),
    )
