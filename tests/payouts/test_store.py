"""The store: alembic migrations that match the models, exact money, and an append-only audit table."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DatabaseError
from sqlmodel import SQLModel

import portal.models  # noqa: F401  (the portal's tables are the schema's too)
from payouts import audit
from payouts.db import PayoutSettings, normalize_url
from payouts.imports import import_run
from payouts.models import Offer


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
