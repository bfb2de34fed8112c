"""Measure the on-demand results of a run folder: `python -m devtools.bench_enterprise RUN [LOOKUPS]`.

On a run of `zhida match` (Contract 4, format 3), times opening it (`matcher.results.RunResults`) and
the process's peak memory by then, then LOOKUPS standings of random enterprises (what each 我的政策 page
reads of the run: candidates, near misses with their values, missing data), and the first page of one
item's near misses in one county (the item with the most near misses, the county with the most
enterprises), with its count. Prints JSON.
"""

from __future__ import annotations

import json
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

from matcher import runfolder
from matcher.results import RunResults, Slice


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def bench(run: Path, lookups: int = 1000, seed: int = 0) -> dict[str, Any]:
    t = time.perf_counter()
    results = RunResults(run)
    opened = time.perf_counter() - t
    opened_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB: the process's peak so far
    enterprises = str(run / runfolder.RESULT_ENTERPRISES)
    # Only the sample becomes Python: 10M strings would weigh on the process's memory and on every full
    # garbage collection during the lookups, as they do not in the portal.
    ((count,),) = duckdb.sql(f"SELECT count(*) FROM read_parquet('{enterprises}')").fetchall()
    usccs = [
        u
        for (u,) in duckdb.sql(
            f"SELECT uscc FROM read_parquet('{enterprises}') USING SAMPLE {int(lookups)} ROWS (reservoir, {int(seed)})"
        ).fetchall()
    ]
    random.Random(seed).shuffle(usccs)
    times, found = [], 0
    for uscc in usccs:
        t = time.perf_counter()
        found += len(results.standing(uscc))
        times.append(time.perf_counter() - t)
    times.sort()
    (top,) = duckdb.sql(
        f"SELECT policy_id, item_id FROM read_parquet('{run / runfolder.RESULT_STATUSES}') s "
        f"JOIN (SELECT p{0} AS pattern, count(*) AS n FROM read_parquet('{enterprises}') GROUP BY 1) e "
        "ON e.pattern = s.pattern AND s.block = 0 WHERE s.status = 'near_miss' "
        "GROUP BY ALL ORDER BY sum(n) DESC, 1, 2 LIMIT 1"
    ).fetchall()
    ((county,),) = duckdb.sql(
        f"SELECT left(region_code, 6) FROM read_parquet('{enterprises}') GROUP BY 1 ORDER BY count(*) DESC LIMIT 1"
    ).fetchall()
    narrow = Slice(policy_id=top[0], item_id=top[1], region=county)
    page_times, count_times = [], []
    for _ in range(20):
        t = time.perf_counter()
        page = results.page("near_misses", narrow, limit=50)
        page_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        total = results.count("near_misses", narrow)
        count_times.append(time.perf_counter() - t)
    results.close()
    return {
        "run": str(run),
        "enterprises": count,
        "statuses": results.statuses.num_rows,
        "open_s": round(opened, 2),
        "open_peak_rss_gib": round(opened_rss / 2**20, 2),
        "standing_lookups": len(times),
        "standing_results": found,
        "standing_ms_median": _ms(statistics.median(times)),
        "standing_ms_p99": _ms(times[int(len(times) * 0.99) - 1]),
        "item_county": f"{top[0]}/{top[1]} in {county}",
        "item_county_rows": total,
        "item_county_first_page_rows": len(page),
        "item_county_first_page_ms_median": _ms(statistics.median(page_times)),
        "item_county_first_page_ms_max": _ms(max(page_times)),
        "item_county_count_ms_median": _ms(statistics.median(count_times)),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    if not args:
        sys.exit("用法：python -m devtools.bench_enterprise RUN [LOOKUPS]")
    report = bench(Path(args[0]), int(args[1]) if len(args) > 1 else 1000)
    sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
