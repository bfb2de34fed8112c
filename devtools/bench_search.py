"""Measure the policy supermarket's search: `zhida supermarket bench` (or `python -m devtools.bench_search`).

Makes N synthetic policies (variants of the bundled library: each one moved to a random prefecture, with
that place's name in its title and department, a region condition, and a validity year between 2023 and
2026), indexes them with `supermarket.rebuild`, then runs typical searches (two-character words, longer
words, several words, with and without filters, sorted by relevance and by amount) and reports the p50,
p95 and worst time of one `supermarket.search` call (one page of 20 and the total count), in ms.
SQLite in a scratch file always; PostgreSQL in a scratch database on 127.0.0.1:5432 when reachable.
A benchmark, not a test: nothing fails when it is slow.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine, func, select

from matcher.codes import regions
from payouts.db import make_engine, migrate, transaction
from portal import supermarket
from portal.models import PolicyToken
from portal.supermarket import Search
from rules.policy import Condition, Policy
from rules.ruleset import library_dir, load_ruleset

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TODAY = dt.date(2025, 9, 30)
QUERIES: list[Search] = [
    Search(q="稳岗"),
    Search(q="研发"),
    Search(q="小巨人"),
    Search(q="高新技术企业"),
    Search(q="失业保险 返还"),
    Search(q="扩岗补助"),
    Search(q="专精特新"),
    Search(q="奖励"),
    Search(q="企业"),  # in nearly every policy: the widest result
    Search(q="税"),
    Search(q="研发", open_only=True, sort="amount"),
    Search(q="稳岗", region="43"),
    Search(q="奖励", category="资金奖补", region="4301"),
    Search(q="高新", industry="C", size="small"),
    Search(category="降本增效"),
    Search(open_only=True),
    Search(sort="amount"),
    Search(q="企业", page=3),
]


def synthetic_policies(n: int, seed: int = 0) -> list[Policy]:
    """`n` variants of the library's policies, each placed in a prefecture and a year."""
    rng = random.Random(seed)
    library = sorted(load_ruleset(library_dir()), key=lambda p: p.id)
    prefectures = sorted((r for r in regions().values() if r.level == "prefecture"), key=lambda r: r.code)
    out = []
    for i in range(n):
        base = library[i % len(library)]
        place = rng.choice(prefectures)
        province = regions()[place.code[:2] + "0000"].name
        year = rng.choice((2023, 2024, 2025, 2026))
        where = Condition(
            id="bench_region",
            text=f"注册地在{province}{place.name}",
            rule=f'region_code =~ "^{place.code[:4]}"',
        )
        out.append(
            base.model_copy(
                update={
                    "id": f"{base.id[:50]}-{i}",
                    "title": f"{place.name}{year}年{base.title}",
                    "department": f"{place.name}{base.department.split()[0]}",
                    "valid_from": dt.date(year, 1, 1),
                    "valid_to": dt.date(year, 12, 31),
                    "conditions": [where, *base.conditions],
                    "tags": [*base.tags, place.name],
                }
            )
        )
    return out


@dataclass(frozen=True)
class Timing:
    """What one backend measured."""

    backend: str
    policies: int
    tokens: int
    index_s: float
    searches: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    per_query_ms: dict[str, float]


def _label(s: Search) -> str:
    parts = [f"q={s.q}"] if s.q else []
    defaults = vars(Search())
    parts += [f"{k}={v}" for k, v in vars(s).items() if k != "q" and v != defaults[k]]
    return " ".join(parts) or "（全部）"


def measure(engine: Engine, policies: list[Policy], rounds: int) -> Timing:
    """Index `policies` into `engine`'s database, then time `rounds` passes over the typical searches."""
    now = dt.datetime.now(dt.UTC)
    t = time.perf_counter()
    with transaction(engine) as s:
        supermarket.rebuild(s, [(p, now) for p in policies], now)
    index_s = time.perf_counter() - t
    if engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load: the visibility map lets searches read the index only.
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM policy_token")
    with transaction(engine) as s:
        tokens = s.scalar(select(func.count()).select_from(PolicyToken)) or 0
        supermarket.search(s, QUERIES[0], TODAY)  # warm: jieba's dictionary, the connection
    times: list[float] = []
    per_query: dict[str, list[float]] = {}
    with transaction(engine) as s:
        for _ in range(rounds):
            for query in QUERIES:
                t = time.perf_counter()
                supermarket.search(s, query, TODAY)
                ms = (time.perf_counter() - t) * 1000
                times.append(ms)
                per_query.setdefault(_label(query), []).append(ms)
    cuts = statistics.quantiles(times, n=100)
    return Timing(
        backend=engine.dialect.name,
        policies=len(policies),
        tokens=tokens,
        index_s=round(index_s, 2),
        searches=len(times),
        p50_ms=round(cuts[49], 2),
        p95_ms=round(cuts[94], 2),
        max_ms=round(max(times), 2),
        per_query_ms={k: round(statistics.median(v), 2) for k, v in per_query.items()},
    )


def bench(n: int = 5000, rounds: int = 10, postgres: bool = True, seed: int = 0) -> list[Timing]:
    """Measure on SQLite and, when `postgres` and reachable, on PostgreSQL."""
    policies = synthetic_policies(n, seed)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(engine)
        try:
            out.append(measure(engine, policies, rounds))
        finally:
            engine.dispose()
    if postgres:
        scratch = f"zhida_bench_{secrets.token_hex(4)}"
        try:
            admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
        except psycopg.OperationalError:
            return out
        with admin:
            admin.execute(f'CREATE DATABASE "{scratch}"')
        engine = make_engine(f"postgresql://postgres@127.0.0.1:5432/{scratch}")
        try:
            migrate(engine)
            out.append(measure(engine, policies, rounds))
        finally:
            engine.dispose()
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
    return out


def as_dict(timing: Timing) -> dict[str, Any]:
    return dict(vars(timing))


if __name__ == "__main__":
    args = sys.argv[1:]
    results = bench(int(args[0]) if args else 5000)
    sys.stdout.write(json.dumps([as_dict(r) for r in results], ensure_ascii=False, indent=2) + "\n")
