"""Staff sign-in in the database (payouts/signin.py), on SQLite and PostgreSQL: sessions that end,
lockout that persists, unlock by a security administrator, and the audit of each."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from payouts import signin, users
from payouts.errors import RoleError
from payouts.models import AuditEvent, StaffUser

T0 = dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)
LIMITS = signin.SessionLimits()
POLICY = signin.LockoutPolicy()


def _user(s, name: str = "rev") -> StaffUser:  # type: ignore[no-untyped-def]
    return s.scalar(select(StaffUser).where(StaffUser.username == name))


def test_a_session_lives_until_idle_old_or_ended(tx) -> None:  # type: ignore[no-untyped-def]
    with tx() as s:
        token = signin.start_session(s, _user(s), T0)
    with tx() as s:
        live = signin.live_session(s, token, T0 + dt.timedelta(minutes=29), LIMITS)
        assert live is not None and live.user.username == "rev" and live.touch_due
        signin.touch(s, live.id, T0 + dt.timedelta(minutes=29))
    with tx() as s:
        assert signin.live_session(s, token, T0 + dt.timedelta(minutes=58), LIMITS) is not None
        assert signin.live_session(s, token, T0 + dt.timedelta(minutes=60), LIMITS) is None  # idle
        assert signin.live_session(s, token, T0 + dt.timedelta(hours=8, minutes=1), LIMITS) is None
        assert signin.end_session(s, token, T0 + dt.timedelta(minutes=30))
    with tx() as s:
        assert signin.live_session(s, token, T0 + dt.timedelta(minutes=31), LIMITS) is None
        assert not signin.end_session(s, token, T0 + dt.timedelta(minutes=32))  # already ended


def test_lockout_is_kept_in_the_database_until_unlocked(tx) -> None:  # type: ignore[no-untyped-def]
    with tx() as s:
        users.create_user(s, "sec", "security_admin", now=T0)
        users.create_user(s, "sys", "system_admin", now=T0)
    for i in range(5):
        with tx() as s:
            result = signin.sign_in(
                s, "rev", lambda u: False, T0 + dt.timedelta(minutes=i), POLICY, "192.0.2.1"
            )
    assert result.refused == "locked"
    with tx() as s:
        assert (
            signin.sign_in(s, "rev", lambda u: True, T0 + dt.timedelta(hours=5), POLICY).refused == "locked"
        )
    with pytest.raises(RoleError), tx() as s:
        users.unlock(s, "rev", "auditor", T0 + dt.timedelta(hours=6))
    with tx() as s:
        users.unlock(s, "rev", "sec", T0 + dt.timedelta(hours=6))
    with tx() as s:
        ok = signin.sign_in(s, "rev", lambda u: True, T0 + dt.timedelta(hours=7), POLICY)
        assert ok.token is not None and ok.refused is None
        users.set_active(s, "rev", False, by="sys", now=T0 + dt.timedelta(hours=7))
    with tx() as s:
        assert signin.live_session(s, ok.token, T0 + dt.timedelta(hours=7), LIMITS) is None
        actions = list(
            s.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == "rev").order_by(AuditEvent.seq))
        )
    assert actions == [
        "create_user",
        *["sign_in_failed"] * 5,
        "lock",
        "sign_in_refused",
        "unlock",
        "sign_in",
        "set_active",
    ]
