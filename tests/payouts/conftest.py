"""Fixtures for the payouts tests: a real database on each backend, staff users and run folders.

Every test that takes `engine` runs twice: on an SQLite file and on a fresh PostgreSQL database
(`zhida_test_<random>` on 127.0.0.1:5432, dropped at the end). Without PostgreSQL the second run is
skipped with the reason, except in CI (`CI` set), where it fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, select, text
from sqlmodel import Session

from payouts import imports, offers, sms, users
from payouts.db import PayoutSettings, make_engine, migrate, transaction
from payouts.models import Offer

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TABLES = (
    "policy_funding",
    "payer_account",
    "sms_optout",
    "sms_reply",
    "policy_text",
    "job",
    "payee_change",
    "staff_token",
    "login_code",
    "enterprise_login",
    "objection",
    "public_notice",
    "data_override",
    "supplied_value",
    "rating",
    "mandate",
    "application_opinion",
    "application_return",
    "application_material",
    "application",
    "confirmation",
    "sms_message",
    "batch_line",
    "bank_return",
    "batch",
    "offer_opinion",
    "offer",
    "payee",
    "policy_version",
    "match_run",
    "staff_session",
    "staff_user",
    "department",
    "audit_member",
    "audit_event",
)


T0 = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)


def add_staff(session: Session) -> None:
    """The staff of the examples: a reviewer, two makers, two checkers, an auditor."""
    for name, role in (
        ("rev", "reviewer"),
        ("maker", "finance_maker"),
        ("maker2", "finance_maker"),
        ("checker", "finance_checker"),
        ("checker2", "finance_checker"),
        ("auditor", "auditor"),
    ):
        users.create_user(session, name, role, now=T0)


def uscc(n: int) -> str:
    """An 18-character enterprise code for example enterprise `n`."""
    return f"91430100{n:09d}X"


def policy(
    pid: str,
    *,
    budget: str | None = "100000.00",
    confirmation: str = "required",
    items: tuple[str, ...] = ("main",),
    period: str = "2025",
    version: int = 1,
) -> dict[str, Any]:
    """A policy entry of a run manifest."""
    return {
        "id": pid,
        "version": version,
        "title": f"{pid} 惠企补贴",
        "department": "市工业和信息化局",
        "period": period,
        "budget": budget,
        "allocation": "pro_rata",
        "confirmation": confirmation,
        "conditions": [{"id": "ok", "text": "依法经营", "clause": "第二条"}],
        "items": [{"id": i, "title": f"{i} 事项", "conditions": []} for i in items],
    }


def payee(n: int, *, account: bool = True, phone: bool = True) -> dict[str, Any]:
    """The registered contact and account of example enterprise `n`."""
    return {
        "uscc": uscc(n),
        "name": f"示例企业{n}有限公司",
        "contact_phone": f"1380000{n:04d}" if phone else None,
        "bank_name": "中国建设银行某市分行" if account else None,
        "account_no": f"4300150{n:013d}" if account else None,
        "account_name": f"示例企业{n}有限公司" if account else None,
    }


def write_run(
    path: Path,
    policies: list[dict[str, Any]],
    candidates: list[tuple[str, str, int, str]],
    payees: list[dict[str, Any]],
    *,
    run_id: str | None = None,
    parts: int = 1,
    over_budget: tuple[str, ...] = (),
) -> Path:
    """Write a match run folder (Contract 4). Candidates are (policy, item, enterprise n, amount).

    With `parts` > 1, candidates.parquet is a folder of part files, as Spark writes it.
    """
    path.mkdir(parents=True, exist_ok=True)
    versions = {p["id"]: p["version"] for p in policies}
    money = pa.decimal128(18, 2)
    table = pa.table(
        {
            "policy_id": [c[0] for c in candidates],
            "policy_version": pa.array([versions[c[0]] for c in candidates], pa.int32()),
            "item_id": [c[1] for c in candidates],
            "uscc": [uscc(c[2]) for c in candidates],
            "amount": pa.array([Decimal(c[3]) for c in candidates], money),
            "amount_before_allocation": pa.array([Decimal(c[3]) for c in candidates], money),
        }
    )
    if parts > 1:
        folder = path / "candidates.parquet"
        folder.mkdir(exist_ok=True)
        size = -(-len(table) // parts)
        for i in range(parts):
            pq.write_table(table.slice(i * size, size), folder / f"part-{i:05d}.parquet")
        (folder / "_SUCCESS").write_text("")
    else:
        pq.write_table(table, path / "candidates.parquet")
    columns = ["uscc", "name", "contact_phone", "bank_name", "account_no", "account_name"]
    columns += [k for k in ("region_code",) if any(k in p for p in payees)]
    payee_schema = pa.schema([(k, pa.string()) for k in columns])
    pq.write_table(pa.Table.from_pylist(payees, schema=payee_schema), path / "payees.parquet")
    manifest = {
        "run_id": run_id or secrets.token_hex(16),
        "as_of": "2025-06-01",
        "snapshot": {"path": "/data/snapshot", "fingerprint": "snap-" + secrets.token_hex(4)},
        "rules": {"path": "/data/policies", "fingerprint": "rules-" + secrets.token_hex(4)},
        "policies": policies,
        "over_budget": list(over_budget),
        "counts": {"candidates": len(candidates)},
        "totals": {},
    }
    (path / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return path


def _postgres_engine(tmp: Path) -> Iterator[Engine]:
    name = f"zhida_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        message = f"PostgreSQL is not reachable on 127.0.0.1:5432 ({e})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(
        f"postgresql://postgres@127.0.0.1:5432/{name}",
        pool_size=10,
        max_overflow=60,
        # A throw-away database: commits need not wait for the disk.
        connect_args={"options": "-c synchronous_commit=off"},
    )
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated database of each kind, shared by the tests of the session."""
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "postgresql":
        yield from _postgres_engine(tmp)
        return
    engine = make_engine(f"sqlite:///{tmp / 'zhida.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def reset(engine: Engine) -> None:
    """Empty every table (the audit log included, bypassing its append-only guard) and the chain head."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            for table in TABLES:  # DELETE is quicker than TRUNCATE on tables this small
                conn.execute(text(f"DELETE FROM {table}"))
        else:
            triggers = conn.execute(
                text(
                    "SELECT name, sql FROM sqlite_master "
                    "WHERE type = 'trigger' AND tbl_name IN ('audit_event', 'audit_member')"
                )
            ).all()
            for name, _ in triggers:
                conn.execute(text(f"DROP TRIGGER {name}"))
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
            for _, sql in triggers:
                conn.execute(text(sql))
        conn.execute(text("UPDATE audit_head SET seq = 0, hash = :h"), {"h": "0" * 64})


@pytest.fixture
def engine(backend: Engine) -> Engine:
    """The backend's database, emptied, with the staff users of the examples."""
    reset(backend)
    with transaction(backend) as s:
        add_staff(s)
    return backend


@pytest.fixture
def fresh(backend: Engine) -> Callable[[], None]:
    """Empty the backend's database and add the example staff again, as often as a test needs."""

    def again() -> None:
        reset(backend)
        with transaction(backend) as s:
            add_staff(s)

    return again


@pytest.fixture
def tx(engine: Engine) -> Callable[[], AbstractContextManager[Session]]:
    """Open one transaction, as a request or a CLI command would."""
    return lambda: transaction(engine)


@pytest.fixture
def small_run(tmp_path: Path) -> Path:
    """Two policies, six enterprises: #5 has no account, #6 no phone; `gaoxin` needs no confirmation."""
    return write_run(
        tmp_path / "run1",
        [
            policy("wengang", budget="10000.00", items=("sme", "large")),
            policy("gaoxin", budget=None, confirmation="none"),
        ],
        [
            ("wengang", "sme", 1, "1000.00"),
            ("wengang", "sme", 2, "2000.00"),
            ("wengang", "large", 3, "3000.00"),
            ("wengang", "sme", 4, "1500.50"),
            ("wengang", "sme", 5, "800.00"),
            ("wengang", "sme", 6, "700.00"),
            ("gaoxin", "main", 1, "50000.00"),
        ],
        [payee(1), payee(2), payee(3), payee(4), payee(5, account=False), payee(6, phone=False)],
    )


@pytest.fixture
def t0() -> dt.datetime:
    """The examples' "now": 2 June 2025, 09:00 UTC."""
    return T0


@pytest.fixture
def ex() -> SimpleNamespace:
    """The example-data helpers, for tests to build their own run folders."""
    return SimpleNamespace(T0=T0, uscc=uscc, policy=policy, payee=payee, write_run=write_run)


SETTINGS = PayoutSettings(link_base="https://zd.example.gov.cn/c/", link_ttl_days=30, reminder_days=(3, 1))


@pytest.fixture
def settings() -> PayoutSettings:
    """Payout settings of the examples (30-day links, reminders 3 and 1 days before)."""
    return SETTINGS


@pytest.fixture
def notified(tx, small_run: Path, t0: dt.datetime) -> SimpleNamespace:
    """`small_run` imported, released and notified; `links[n]` is the token enterprise n received."""
    phone = sms.MemoryGateway()
    with tx() as s:
        imports.import_run(s, small_run, "rev", t0)
        offers.release(s, "rev", t0)
        sms.send_notices(s, phone, t0, SETTINGS)
    links = {}
    with tx() as s:
        for message in phone.sent:
            n = int(message.phone[-4:])
            links[n] = message.params["link"].removeprefix(SETTINGS.link_base)
        ids = {
            int(o.uscc[8:17]): o.public_id
            for o in s.scalars(select(Offer).where(Offer.policy_id == "wengang"))
        }
    return SimpleNamespace(phone=phone, links=links, ids=ids, run=small_run)


# Enterprise n → its region (GB/T 2260): 1, 2 in 芙蓉区, 3, 4 in 天心区, 5 in 株洲 (another city of the
# province), 6 in 广州 (another province).
REGIONS = {1: "430102", 2: "430102", 3: "430103", 4: "430103", 5: "430202", 6: "440103"}


@pytest.fixture
def regional_run(tmp_path: Path) -> Path:
    """A policy of the province's 人社厅 (paid without confirmation) with enterprises in six regions
    (`REGIONS`: 1, 2 in 芙蓉区, 3, 4 in 天心区, 5 in 株洲, 6 in 广州)."""
    entry = {
        **policy("wengang", budget=None, confirmation="none"),
        "department": "湖南省人力资源和社会保障厅",
    }
    return write_run(
        tmp_path / "run",
        [entry],
        [("wengang", "main", n, f"{n}000.00") for n in REGIONS],
        [{**payee(n), "region_code": code} for n, code in REGIONS.items()],
    )
