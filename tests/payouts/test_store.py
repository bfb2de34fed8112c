"""The store: alembic migrations that match the models, exact money, and an append-only audit table."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.exc import DatabaseError
from sqlmodel import SQLModel

import portal.models  # noqa: F401  (the portal's tables are the schema's too)
from payouts import audit, scope
from payouts.db import PayoutSettings, alembic_config, make_engine, migrate, normalize_url
from payouts.imports import import_run
from payouts.models import Offer
from tests.payouts.conftest import PG_ADMIN


def test_migrations_create_exactly_the_tables_of_the_models(engine: Engine) -> None:
    # The models of payouts and portal, as devtools.migrations compares them.
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_sums_of_money_are_exact_to_the_fen(tx, small_run, t0) -> None:
    with tx() as s:
        import_run(s, small_run, "rev", t0)
        total = s.scalar(select(func.sum(Offer.amount)))
    # 0.1 + 0.2 style errors would show here if money were a float anywhere on the way.
    assert total == Decimal("59000.50")
    assert isinstance(total, Decimal)


def test_audit_events_cannot_be_updated_or_deleted(tx, t0) -> None:
    with tx() as s:
        audit.record(s, t0, "rev", "note", "user", "rev")
    for statement in ("UPDATE audit_event SET reason = 'x'", "DELETE FROM audit_event"):
        with pytest.raises(DatabaseError, match="append-only"), tx() as s:
            s.execute(text(statement))


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=12)),
        max_size=8,
    )
)
def test_the_fast_canonical_json_is_the_json_encoders(value: dict) -> None:
    assert audit.canonical(value) == json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def test_settings_read_the_environment_and_refuse_nonsense() -> None:
    s = PayoutSettings.from_env({"ZHIDA_LINK_TTL_DAYS": "10", "ZHIDA_SMS_REMINDER_DAYS": "1,3"})
    assert (s.link_ttl_days, s.reminder_days) == (10, (3, 1))
    assert PayoutSettings.from_env({}).database_url == "sqlite:///var/zhida.db"
    with pytest.raises(Exception, match="提醒"):
        PayoutSettings.from_env({"ZHIDA_LINK_TTL_DAYS": "2", "ZHIDA_SMS_REMINDER_DAYS": "3"})
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database of each kind with no schema yet."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    name = f"zhida_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL is not reachable ({e})")
    admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"postgresql://postgres@127.0.0.1:5432/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _offer_indexes(engine: Engine) -> set[str]:
    return {i["name"] for i in inspect(engine).get_indexes("offer") if i["name"]}


def test_migration_0021_indexes_the_region_code_for_a_regions_prefix_and_goes_down_again(
    empty_database: Engine,
) -> None:
    engine = empty_database
    migrate(engine, "0020")
    assert "ix_offer_region_code" not in _offer_indexes(engine)
    migrate(engine, "0021")
    assert "ix_offer_region_code" in _offer_indexes(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # an empty table: show the index is usable
            county = scope.Scope(region="430102")
            query = select(Offer.id).where(county.offers())
            compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[0] for r in conn.execute(text(f"EXPLAIN {compiled}")))
            made = conn.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_offer_region_code'")
            )
        assert "ix_offer_region_code" in plan, plan
        assert "varchar_pattern_ops" in made  # a prefix LIKE uses it under any collation, not only C
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0020")
    assert "ix_offer_region_code" not in _offer_indexes(engine)
    migrate(engine)
    assert "ix_offer_region_code" in _offer_indexes(engine)
