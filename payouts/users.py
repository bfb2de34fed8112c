"""Staff users and what each role may do.

Domain functions take a username and call `require(session, username, permission)`; the API's
authentication (and password hashing, for which `password_hash` is kept) comes with the API.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlmodel import Session

from payouts import audit
from payouts.errors import NotFoundError, RoleError
from payouts.models import Role, StaffUser

PERMISSIONS: dict[str, frozenset[Role]] = {
    "import": frozenset({Role.POLICY, Role.REVIEWER, Role.ADMIN}),
    "review": frozenset({Role.REVIEWER, Role.ADMIN}),
    "correct_account": frozenset({Role.REVIEWER, Role.ADMIN}),
    "batch_make": frozenset({Role.FINANCE_MAKER}),
    "batch_check": frozenset({Role.FINANCE_CHECKER}),
    "bank_files": frozenset({Role.FINANCE_MAKER, Role.FINANCE_CHECKER}),
    "audit": frozenset({Role.AUDITOR, Role.ADMIN}),
    "manage_users": frozenset({Role.ADMIN}),
    # Supplied data and public notice (payouts.supplied, payouts.notice).
    "data_verify": frozenset({Role.POLICY, Role.REVIEWER, Role.ADMIN}),
    "notice_open": frozenset({Role.FINANCE_MAKER, Role.ADMIN}),
    "objection_resolve": frozenset({Role.POLICY, Role.REVIEWER, Role.ADMIN}),
}

ROLE_LABELS = {
    Role.POLICY: "政策部门",
    Role.REVIEWER: "初核",
    Role.FINANCE_MAKER: "资金拨付（制单）",
    Role.FINANCE_CHECKER: "资金拨付（复核）",
    Role.AUDITOR: "审计",
    Role.ADMIN: "管理员",
}


def create_user(
    session: Session,
    username: str,
    role: str,
    *,
    display_name: str | None = None,
    department: str | None = None,
    by: str = "system",
    now: dt.datetime | None = None,
) -> StaffUser:
    """Add a staff user with one role; refuses an unknown role or a username already taken."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        role = Role(role)
    except ValueError:
        raise RoleError(f"未知角色 {role!r}，可选：{', '.join(r.value for r in Role)}") from None
    if session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise RoleError(f"用户名 {username} 已存在")
    user = StaffUser(
        username=username,
        display_name=display_name or username,
        role=role.value,
        department=department,
        created_at=now,
    )
    session.add(user)
    audit.record(session, now, by, "create_user", "user", username, None, "active", role=role.value)
    return user


def get_user(session: Session, username: str) -> StaffUser:
    """The staff user called `username`."""
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is None:
        raise NotFoundError(f"没有用户 {username}")
    return user


def require(session: Session, username: str, permission: str) -> StaffUser:
    """The active user `username`, if their role grants `permission`; otherwise RoleError."""
    user = get_user(session, username)
    if not user.active:
        raise RoleError(f"用户 {username} 已停用")
    if Role(user.role) not in PERMISSIONS[permission]:
        allowed = "、".join(ROLE_LABELS[r] for r in sorted(PERMISSIONS[permission]))
        raise RoleError(f"用户 {username}（{ROLE_LABELS[Role(user.role)]}）无权进行此操作，需要：{allowed}")
    return user
