"""Measure the enterprise pages' per-run cache: `python -m devtools.bench_enterprise [ENTERPRISES]`.

Writes a synthetic run folder (three near misses and half a candidate per enterprise, over twenty
policies, in random uscc order, as the matcher writes them), times building the cache once, then times
200 lookups of random enterprises (what each "my policies" page reads of the run).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from portal.standings import _build_cache, _RowGroups


def write_synthetic_run(path: Path, enterprises: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    code = f"printf('91%015dX', (hash(i) % {enterprises})::BIGINT)"
    con.execute(
        f"""COPY (SELECT 'p' || (i % 20) AS policy_id, 'main' AS item_id, {code} AS uscc,
                  'layoff' AS condition_id, 'layoff_rate=0.061' AS value FROM range({3 * enterprises}) t(i))
            TO '{path / "near_misses.parquet"}' (FORMAT PARQUET)"""
    )
    con.execute(
        f"""COPY (SELECT 'p' || (i % 20) AS policy_id, 1 AS policy_version, 'main' AS item_id,
                  {code.replace("hash(i)", "hash(i * 7)")} AS uscc, 100.00::DECIMAL(18,2) AS amount,
                  100.00::DECIMAL(18,2) AS amount_before_allocation FROM range({enterprises // 2}) t(i))
            TO '{path / "candidates.parquet"}' (FORMAT PARQUET)"""
    )
    con.close()
    return path


def bench(enterprises: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        run = write_synthetic_run(Path(tmp) / "run", enterprises)
        t = time.perf_counter()
        _build_cache(run, Path(tmp) / "cache.parquet")
        built = time.perf_counter() - t
        groups = _RowGroups(Path(tmp) / "cache.parquet")
        keys = [f"91{random.randrange(enterprises):015d}X" for _ in range(200)]
        times = []
        for key in keys:
            t = time.perf_counter()
            groups.rows(key)
            times.append(time.perf_counter() - t)
        return {
            "enterprises": enterprises,
            "cache_rows": groups.metadata.num_rows,
            "row_groups": groups.metadata.num_row_groups,
            "build_s": round(built, 1),
            "lookup_ms_median": round(statistics.median(times) * 1000, 2),
            "lookup_ms_p95": round(sorted(times)[int(len(times) * 0.95)] * 1000, 2),
        }


if __name__ == "__main__":
    args = sys.argv[1:]
    report = bench(int(args[0]) if args else 1_000_000)
    sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
