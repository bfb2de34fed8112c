"""Measure payout batches at scale: `python -m devtools.bench_batches STEP URL [ROWS]`.

Steps, each meant to run in its own process so that its peak memory is its own
(e.g. under `/usr/bin/time -v`):
- `seed URL ROWS`: create the PostgreSQL database `URL` names (if absent), migrate it and import ROWS
  offers of one policy that needs no confirmation, released straight to confirmed (set-based: the
  bulk import and one UPDATE);
- `share URL`: make the policy's cost shared 1:1 between a city account (bank CSV) and a district
  account (treasury vouchers), as the finance checker would (payouts.finance);
- `create URL`, `approve URL`, `export URL OUT_DIR`: the batch steps on that policy (create makes one
  batch per payer; approve and export act on the newest batch, the district's when the cost is shared,
  exported in its payer's format);
- `page URL [QUERY]`: the console's batch page (`/console/batches/REF?QUERY`) as a checker opens it,
  through the whole service in process (FastAPI's TestClient, no network): after one warm-up, the median
  of five requests' time to the first byte and to the last, and the bytes of HTML.
Each prints one JSON line: the step, the batch's lines, seconds and peak RSS (getrusage).

`BENCH_BATCHES_MODULE` names the module to take `create_batch`, `approve` and `export` from
(default `payouts.batches`), to measure another implementation with the same data.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import resource
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import make_url, select

from matcher import runfolder
from payouts import imports, offers, users
from payouts.db import make_engine, migrate, transaction
from payouts.models import Batch

POLICY = "bench-batch"
T0 = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)


def write_run(path: Path, rows: int) -> Path:
    """A run folder: `rows` enterprises, one offer each of one policy with no budget and no confirmation."""
    path.mkdir(parents=True, exist_ok=True)
    codes = [f"91{n:015d}X" for n in range(rows)]
    amounts = pa.array(
        [Decimal(1000 + (i * 37) % 90000).scaleb(-2) for i in range(rows)], pa.decimal128(18, 2)
    )
    pq.write_table(
        pa.table(
            {
                "policy_id": [POLICY] * rows,
                "policy_version": pa.array([1] * rows, pa.int32()),
                "item_id": ["main"] * rows,
                "uscc": codes,
                "amount": amounts,
                "amount_before_allocation": amounts,
            }
        ),
        path / "candidates.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "uscc": codes,
                "name": [f"基准企业{k}有限公司" for k in range(rows)],
                "contact_phone": [f"139{k:08d}" for k in range(rows)],
                "bank_name": ["中国银行某市分行"] * rows,
                "account_no": [f"6013{k:015d}" for k in range(rows)],
                "account_name": [f"基准企业{k}有限公司" for k in range(rows)],
            }
        ),
        path / "payees.parquet",
    )
    policy = {
        "id": POLICY,
        "version": 1,
        "title": "基准拨付政策",
        "department": "基准部门",
        "period": "2025",
        "budget": None,
        "allocation": "none",
        "confirmation": "none",
        "conditions": [],
        "items": [{"id": "main", "title": "main", "conditions": []}],
    }
    manifest = {
        "run_id": f"bench-batches-{rows}",
        "as_of": "2025-06-01",
        "snapshot": {"path": "synthetic", "fingerprint": "bench"},
        "rules": {"path": "synthetic", "fingerprint": "bench"},
        "policies": [policy],
        "over_budget": [],
        "counts": {"candidates": rows},
        "totals": {},
    }
    runfolder.write_manifest(path, manifest)
    return path


def seed(url: str, rows: int) -> dict[str, Any]:
    name = make_url(url).database
    admin_url = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin_url.replace("+psycopg", ""), autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(url)
    migrate(engine)
    with transaction(engine) as s:
        for user, role in (
            ("bench-rev", "reviewer"),
            ("bench-maker", "finance_maker"),
            ("bench-checker", "finance_checker"),
        ):
            users.create_user(s, user, role, now=T0)
    with tempfile.TemporaryDirectory() as tmp, transaction(engine) as s:
        imports.import_run(s, write_run(Path(tmp) / "run", rows), "bench-rev", T0)
        confirmed = offers.release(s, "bench-rev", T0).confirmed
    engine.dispose()
    return {"confirmed": confirmed}


def share(s: Any) -> None:
    """The policy's cost shared 1:1 by a city (bank CSV) and a district (treasury vouchers)."""
    from payouts import finance

    for code, name, fmt, division in (
        ("city", "某市财政局", "bank_csv", None),
        ("district", "某区财政局", "treasury", "430102"),
    ):
        finance.set_payer_account(
            s,
            code,
            name=name,
            account_no=f"4301{len(code):014d}",
            bank_name="国家金库某市中心支库",
            file_format=fmt,
            adm_div_code=division,
            by="bench-checker",
            now=T0,
        )
    parts = [finance.Part(c, 1, "基准资金", "基准预算指标1号") for c in ("city", "district")]
    finance.set_funding(s, POLICY, parts, by="bench-checker", now=T0)


def _reference(s: Any) -> tuple[str, int]:
    batch = s.scalar(select(Batch).where(Batch.policy_id == POLICY).order_by(Batch.id.desc()).limit(1))
    return batch.reference, batch.line_count


def page(engine: Any, url: str, reference: str, query: str) -> dict[str, Any]:
    """Time the batch page (see the module docstring)."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings
    from payouts import signin
    from payouts.models import StaffUser

    with transaction(engine) as s:
        checker = s.scalar(select(StaffUser).where(StaffUser.username == "bench-checker"))
        token = signin.start_session(s, checker, dt.datetime.now(dt.UTC))
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=url,
            data_dir=Path(tmp) / "web",
            snapshots_root=Path(tmp),
            secret_key="bench-batches-secret-key-long-enough-0123456789",
        )
        client = TestClient(create_app(settings))
        headers = {"Authorization": f"Bearer {token}"}
        path = f"/console/batches/{reference}" + (f"?{query}" if query else "")
        timings = []
        for _ in range(6):
            t = time.perf_counter()
            with client.stream("GET", path, headers=headers) as r:
                chunks = r.iter_raw()
                first = next(chunks)
                at_first = time.perf_counter() - t
                size = len(first) + sum(len(c) for c in chunks)
            assert r.status_code == 200, r.status_code
            timings.append((at_first, time.perf_counter() - t, size))
        runs = sorted(timings[1:])
        first_byte, last_byte, size = runs[len(runs) // 2]
    return {
        "first_byte_ms": round(first_byte * 1000),
        "last_byte_ms": round(last_byte * 1000),
        "html_bytes": size,
    }


def main(args: list[str]) -> dict[str, Any]:
    step, url = args[0], args[1]
    impl = importlib.import_module(os.environ.get("BENCH_BATCHES_MODULE", "payouts.batches"))
    t = time.perf_counter()
    out: dict[str, Any] = {"step": step}
    if step == "seed":
        out |= seed(url, int(args[2]))
    else:
        engine = make_engine(url)
        with transaction(engine) as s:
            if step == "create":
                made = impl.create_batches(s, POLICY, "bench-maker", T0 + dt.timedelta(hours=1))
                out["batch"], out["lines"] = made[-1].reference, sum(b.line_count for b in made)
                out["batches"] = len(made)
            elif step == "share":
                share(s)
            else:
                out["batch"], out["lines"] = _reference(s)
                if step == "approve":
                    impl.approve(s, out["batch"], "bench-checker", T0 + dt.timedelta(hours=2))
                elif step == "page":
                    out |= page(engine, url, out["batch"], args[2] if len(args) > 2 else "")
                elif step == "export":
                    e = impl.export(s, out["batch"], "bench-maker", Path(args[2]), T0 + dt.timedelta(hours=3))
                    for name, path in (("csv", e.csv_path), ("xml", e.xml_path), ("voucher", e.voucher_path)):
                        if path is not None:
                            out[f"{name}_bytes"] = path.stat().st_size
                else:
                    raise SystemExit(f"unknown step {step}")
        engine.dispose()
    out["seconds"] = round(time.perf_counter() - t, 2)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1:]), ensure_ascii=False) + "\n")
