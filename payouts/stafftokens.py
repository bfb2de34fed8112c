"""CLI identity tokens: who runs a `zhida` command that records an actor.

A staff user proves who they are once, with their password (`zhida users token NAME`), and receives a
random token to put in `ZHIDA_STAFF_TOKEN`; every command that changes offers, batches, accounts or users
takes its actor from that token, never from a name typed on the command line. Only the SHA-256 of a token
is stored; it ends when it expires (8 hours by default), when it is revoked, when its user is disabled or
when their password changes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update
from sqlmodel import Session

from payouts import audit
from payouts.errors import RoleError
from payouts.models import StaffToken, StaffUser
from payouts.users import get_user

TOKEN_ENV = "ZHIDA_STAFF_TOKEN"
TOKEN_HOURS = 8
HOW_TO_GET_ONE = f"请先运行 zhida users token 用户名（输入本人密码）取得令牌，再设置环境变量 {TOKEN_ENV}（有效 {TOKEN_HOURS} 小时）"


class NoIdentity(RoleError):
    """A command that records an actor found no valid staff token."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def password_fp(user: StaffUser) -> str:
    """A digest of the user's stored password hash: a token dies when the password changes."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()


def issue(session: Session, username: str, now: dt.datetime, *, hours: int = TOKEN_HOURS) -> str:
    """A new token for `username` (whose password the caller has checked); audited, stored hashed."""
    if not 1 <= hours <= 24:
        raise RoleError("令牌有效期应为 1 至 24 小时")
    user = get_user(session, username)
    if not user.active:
        raise RoleError(f"用户 {username} 已停用")
    token = "zst_" + secrets.token_urlsafe(32)
    expires = now + dt.timedelta(hours=hours)
    assert user.id is not None
    session.add(
        StaffToken(
            token_hash=_hash(token),
            user_id=user.id,
            password_fp=password_fp(user),
            created_at=now,
            expires_at=expires,
        )
    )
    audit.record(session, now, username, "issue_cli_token", "user", username, None, None, hours=hours)
    return token


def revoke_all(session: Session, username: str, now: dt.datetime) -> int:
    """End every token of `username` (audited); how many were still open."""
    user = get_user(session, username)
    ended = session.execute(
        update(StaffToken)
        .where(StaffToken.user_id == user.id, StaffToken.revoked_at.is_(None), StaffToken.expires_at > now)
        .values(revoked_at=now)
    ).rowcount
    audit.record(session, now, username, "revoke_cli_tokens", "user", username, None, None, count=ended)
    return int(ended)


def resolve(session: Session, token: str | None, now: dt.datetime) -> StaffUser:
    """The active staff user a token stands for; NoIdentity (with how to get a token) otherwise."""
    if not token:
        raise NoIdentity(f"未能确认操作人身份：没有职员令牌。{HOW_TO_GET_ONE}")
    row = session.scalar(select(StaffToken).where(StaffToken.token_hash == _hash(token.strip())))
    user = session.get(StaffUser, row.user_id) if row is not None else None
    if (
        row is None
        or user is None
        or row.revoked_at is not None
        or row.expires_at <= now
        or not user.active
        or row.password_fp != password_fp(user)
    ):
        raise NoIdentity(f"未能确认操作人身份：职员令牌无效、已过期或已撤销。{HOW_TO_GET_ONE}")
    return user
