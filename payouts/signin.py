"""Staff sign-in: server-side sessions that end, lockout after wrong passwords, and the sign-in audit.

- A session token is 256 random bits (`secrets`), stored only as its SHA-256 in `staff_session`, so a
  copy of the database opens nothing. The same token is the API's bearer token and the console's
  cookie; ending the row (sign-out, a new password, a disabled user) ends it wherever it is used.
- A session dies `idle` after its last request and `absolute` after sign-in, whatever it does. Its
  `last_seen_at` is coarse: `touch` is due only when it is more than `touch_every` old, so that a read
  (a read-only transaction) never needs to write; the caller writes it in a short transaction of its own.
- `max_failures` wrong passwords within `window` lock the account (`staff_user.locked_at`) in the
  database, shared by every worker and kept across restarts, until a security administrator unlocks it
  (`payouts.users.unlock`). A locked account is refused even with the right password.
- Every sign-in, refusal (the name kept, never the password), lockout and sign-out is an audit event on
  entity "user".

Password checking (argon2) stays with the API (`api/auth.py`): `sign_in` takes it as `verify`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select, update
from sqlmodel import Session

from payouts import audit
from payouts.models import StaffSession, StaffUser
from rules import formats

TOKEN_BYTES = 32  # 256 bits
ANONYMOUS = "anonymous"  # the actor of a refused sign-in: nobody has proved who they are


@dataclass(frozen=True)
class SessionLimits:
    """How long a staff session lives: since its last request, since sign-in; how often it is touched."""

    idle: dt.timedelta = dt.timedelta(minutes=30)
    absolute: dt.timedelta = dt.timedelta(hours=8)
    touch_every: dt.timedelta = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class LockoutPolicy:
    """How many wrong passwords within how long lock a staff account."""

    max_failures: int = 5
    window: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class SignIn:
    """The answer to a sign-in: the user and their new session token, or why it was refused."""

    user: StaffUser | None
    token: str | None
    refused: Literal["wrong", "locked"] | None = None


@dataclass(frozen=True)
class LiveSession:
    """A session that is alive now: its id, its user, and whether its `last_seen_at` is due a touch."""

    id: int
    user: StaffUser
    touch_due: bool


def token_digest(token: str) -> str:
    """What is stored of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: StaffUser, now: dt.datetime, ip: str | None = None) -> str:
    """A new session for `user`; its token (given to the user once, never stored)."""
    assert user.id is not None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(
        StaffSession(token_hash=token_digest(token), user_id=user.id, created_at=now, last_seen_at=now, ip=ip)
    )
    session.flush()
    return token


def authenticate(
    session: Session,
    username: str,
    verify: Callable[[StaffUser | None], bool],
    now: dt.datetime,
    policy: LockoutPolicy,
    ip: str | None = None,
) -> SignIn:
    """Check a password (`verify`, always run, so that every answer costs the same) against the lockout:
    a locked account is refused, a wrong password counts against the account and locks it at
    `policy.max_failures`. Refusals are audited; the caller commits a refusal as well as a success."""
    user = session.scalar(select(StaffUser).where(StaffUser.username == username).with_for_update())
    ok = verify(user)
    name = username[:64]
    if user is not None and user.locked_at is not None:
        audit.record(session, now, ANONYMOUS, "sign_in_refused", "user", name, reason="账户已锁定", ip=ip)
        return SignIn(None, None, "locked")
    if not ok or user is None:
        audit.record(session, now, ANONYMOUS, "sign_in_failed", "user", name, reason="密码错误", ip=ip)
        if user is not None and _count_failure(session, user, now, policy, ip):
            return SignIn(None, None, "locked")
        return SignIn(None, None, "wrong")
    user.failed_logins, user.failed_since = 0, None
    return SignIn(user, None)


def sign_in(
    session: Session,
    username: str,
    verify: Callable[[StaffUser | None], bool],
    now: dt.datetime,
    policy: LockoutPolicy,
    ip: str | None = None,
) -> SignIn:
    """`authenticate`, then open a session (audited as a sign-in)."""
    checked = authenticate(session, username, verify, now, policy, ip)
    if checked.user is None:
        return checked
    token = start_session(session, checked.user, now, ip)
    audit.record(session, now, checked.user.username, "sign_in", "user", checked.user.username, ip=ip)
    return SignIn(checked.user, token)


def _count_failure(
    session: Session, user: StaffUser, now: dt.datetime, policy: LockoutPolicy, ip: str | None
) -> bool:
    """Count one wrong password; whether it locked the account."""
    if user.failed_since is None or now - user.failed_since > policy.window:
        user.failed_logins, user.failed_since = 0, now
    user.failed_logins += 1
    if user.failed_logins < policy.max_failures:
        return False
    user.locked_at = now
    audit.record(
        session,
        now,
        "system",
        "lock",
        "user",
        user.username,
        "active",
        "locked",
        reason=f"自 {formats.staff_time(user.failed_since)} 起密码错误 {user.failed_logins} 次",
        ip=ip,
    )
    return True


def live_session(session: Session, token: str, now: dt.datetime, limits: SessionLimits) -> LiveSession | None:
    """The session of `token` if it is alive now (not ended, not idle too long, not too old, its user
    active); None otherwise. Reads only."""
    row = session.execute(
        select(StaffSession, StaffUser)
        .join(StaffUser, StaffUser.id == StaffSession.user_id)
        .where(StaffSession.token_hash == token_digest(token))
    ).first()
    if row is None:
        return None
    staff_session, user = row
    if (
        staff_session.ended_at is not None
        or not user.active
        or now - staff_session.last_seen_at > limits.idle
        or now - staff_session.created_at > limits.absolute
    ):
        return None
    assert staff_session.id is not None
    return LiveSession(staff_session.id, user, now - staff_session.last_seen_at > limits.touch_every)


def touch(session: Session, session_id: int, now: dt.datetime) -> None:
    """Record activity on a session (a short write of its own; never moves `last_seen_at` back)."""
    session.execute(
        update(StaffSession)
        .where(
            StaffSession.id == session_id,
            StaffSession.ended_at.is_(None),  # type: ignore[union-attr]
            StaffSession.last_seen_at < now,
        )
        .values(last_seen_at=now)
    )


def end_session(session: Session, token: str, now: dt.datetime, ip: str | None = None) -> bool:
    """Sign out: end the session of `token` (audited); whether there was an open one."""
    row = session.execute(
        select(StaffSession, StaffUser)
        .join(StaffUser, StaffUser.id == StaffSession.user_id)
        .where(StaffSession.token_hash == token_digest(token), StaffSession.ended_at.is_(None))  # type: ignore[union-attr]
    ).first()
    if row is None:
        return False
    staff_session, user = row
    staff_session.ended_at, staff_session.end_reason = now, "sign_out"
    audit.record(session, now, user.username, "sign_out", "user", user.username, ip=ip)
    return True


def end_sessions(session: Session, user: StaffUser, now: dt.datetime, reason: str) -> int:
    """End every open session of `user` (a new password, a disabled account); how many were open."""
    result = session.execute(
        update(StaffSession)
        .where(StaffSession.user_id == user.id, StaffSession.ended_at.is_(None))  # type: ignore[union-attr]
        .values(ended_at=now, end_reason=reason)
    )
    return int(getattr(result, "rowcount", 0) or 0)
