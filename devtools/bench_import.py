"""Measure the bulk import of a match run: `python -m devtools.bench_import [ROWS] [URL]`.

Writes a synthetic run folder (ROWS candidates over four policies, two items each, one enterprise in
fifty without a registered account), then times `import_run` and the commit. Without URL it creates
a scratch PostgreSQL database on 127.0.0.1:5432 and drops it afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from matcher import runfolder
from payouts import imports, users
from payouts.db import make_engine, migrate, transaction

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
POLICIES = ("bench-a", "bench-b", "bench-c", "bench-d")
ITEMS = ("x", "y")


def write_synthetic_run(path: Path, rows: int) -> Path:
    """A run folder with `rows` candidates: each enterprise gets one item of each of the four policies."""
    path.mkdir(parents=True, exist_ok=True)
    enterprises = -(-rows // len(POLICIES))
    codes = [f"91{n:015d}X" for n in range(enterprises)]
    n = [i // len(POLICIES) for i in range(rows)]
    money = pa.decimal128(18, 2)
    amounts = [Decimal(1000 + (i * 37) % 90000).scaleb(-2) for i in range(rows)]
    pq.write_table(
        pa.table(
            {
                "policy_id": [POLICIES[i % len(POLICIES)] for i in range(rows)],
                "policy_version": pa.array([1] * rows, pa.int32()),
                "item_id": [ITEMS[(i // len(POLICIES)) % 2] for i in range(rows)],
                "uscc": [codes[k] for k in n],
                "amount": pa.array(amounts, money),
                "amount_before_allocation": pa.array(amounts, money),
            }
        ),
        path / "candidates.parquet",
    )
    has_account = [k % 50 != 0 for k in range(enterprises)]
    pq.write_table(
        pa.table(
            {
                "uscc": codes,
                "name": [f"基准企业{k}有限公司" for k in range(enterprises)],
                "contact_phone": [f"139{k:08d}" for k in range(enterprises)],
                "bank_name": ["中国银行某市分行" if a else None for a in has_account],
                "account_no": [f"6013{k:015d}" if a else None for k, a in enumerate(has_account)],
                "account_name": [f"基准企业{k}有限公司" if a else None for k, a in enumerate(has_account)],
            }
        ),
        path / "payees.parquet",
    )
    manifest = {
        "run_id": secrets.token_hex(16),
        "as_of": "2025-06-01",
        "snapshot": {"path": "synthetic", "fingerprint": "bench"},
        "rules": {"path": "synthetic", "fingerprint": "bench"},
        "policies": [
            {
                "id": p,
                "version": 1,
                "title": f"基准政策{p}",
                "department": "基准部门",
                "period": "2025",
                "budget": None,
                "allocation": "none",
                "confirmation": "required",
                "conditions": [],
                "items": [{"id": i, "title": i, "conditions": []} for i in ITEMS],
            }
            for p in POLICIES
        ],
        "over_budget": [],
        "counts": {"candidates": rows},
        "totals": {},
    }
    runfolder.write_manifest(path, manifest)
    return path


def bench(rows: int = 1_000_000, url: str | None = None) -> dict[str, Any]:
    """Import `rows` synthetic candidates into `url` (or a scratch PostgreSQL database) and time it."""
    scratch = None
    if url is None:
        scratch = f"zhida_bench_{secrets.token_hex(4)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{scratch}"')
        url = f"postgresql://postgres@127.0.0.1:5432/{scratch}"
    engine = make_engine(url)
    try:
        migrate(engine)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            run = write_synthetic_run(Path(tmp) / "run", rows)
            generated = time.perf_counter() - t
            now = dt.datetime.now(dt.UTC)
            name = f"bench-{secrets.token_hex(3)}"
            with transaction(engine) as s:
                users.create_user(s, name, "reviewer", now=now)
            t = time.perf_counter()
            with transaction(engine) as s:
                result = imports.import_run(s, run, name, now)
                t_commit = time.perf_counter()
            committed = time.perf_counter() - t_commit
            total = time.perf_counter() - t
        return {
            "rows": rows,
            "offers": result.offers,
            "held": result.held,
            "backend": engine.dialect.name,
            "generate_s": round(generated, 2),
            "import_s": {k: round(v, 2) for k, v in result.seconds.items()},
            "commit_s": round(committed, 2),
            "total_s": round(total, 2),
            "offers_per_s": round(rows / total),
        }
    finally:
        engine.dispose()
        if scratch is not None:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


if __name__ == "__main__":
    args = sys.argv[1:]
    report = bench(int(args[0]) if args else 1_000_000, args[1] if len(args) > 1 else None)
    sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
