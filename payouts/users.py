"""Staff users and what each role may do.

Domain functions take a username and call `require(session, username, permission)`; the API's
authentication (and password hashing, for which `password_hash` is kept) comes with the API.
"""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select
from sqlmodel import Session

from payouts import audit, signin
from payouts.errors import NotFoundError, RoleError
from payouts.models import AuditEvent, Department, Role, StaffUser

PERMISSIONS: dict[str, frozenset[Role]] = {
    "import": frozenset({Role.POLICY, Role.REVIEWER}),
    "review": frozenset({Role.REVIEWER}),
    # A payee change is proposed by one reviewer and approved by another person (a reviewer or a
    # finance checker), never the proposer (payouts.payees).
    "correct_account": frozenset({Role.REVIEWER}),
    "approve_account_change": frozenset({Role.REVIEWER, Role.FINANCE_CHECKER}),
    "batch_make": frozenset({Role.FINANCE_MAKER}),
    "batch_check": frozenset({Role.FINANCE_CHECKER}),
    "bank_files": frozenset({Role.FINANCE_MAKER, Role.FINANCE_CHECKER}),
    # The finance structure (payouts.finance): payer accounts and who pays each policy. The finance
    # bureau's checker keeps it; a policy's author or reviewer never chooses the account that pays.
    "finance_config": frozenset({Role.FINANCE_CHECKER}),
    # Separation of duties (三员分立): users, security, audit; none of the three moves money.
    "audit": frozenset({Role.AUDITOR}),
    "manage_users": frozenset({Role.SYSTEM_ADMIN}),
    "review_roles": frozenset({Role.SECURITY_ADMIN}),
    "unlock_accounts": frozenset({Role.SECURITY_ADMIN}),
    "security_settings": frozenset({Role.SECURITY_ADMIN}),
    # Supplied data and public notice (portal.supplied, payouts.notice).
    "data_verify": frozenset({Role.POLICY, Role.REVIEWER}),
    "notice_open": frozenset({Role.FINANCE_MAKER}),
    "objection_resolve": frozenset({Role.POLICY, Role.REVIEWER}),
    # Applications (快申快享, portal.applications): the reviewing departments' staff.
    "application_review": frozenset({Role.POLICY, Role.REVIEWER}),
    # 帮办代办 (portal.agency): acting for an enterprise that gave a written authorisation (委托书).
    "act_for": frozenset({Role.AGENT}),
}

ROLE_LABELS = {
    Role.POLICY: "政策部门",
    Role.REVIEWER: "初核",
    Role.FINANCE_MAKER: "资金拨付（制单）",
    Role.FINANCE_CHECKER: "资金拨付（复核）",
    Role.AUDITOR: "安全审计员",
    Role.SYSTEM_ADMIN: "系统管理员",
    Role.SECURITY_ADMIN: "安全管理员",
    Role.AGENT: "帮办代办",
}


def department_ref(
    session: Session, name: str, *, carry_over: bool = False, by: str = "system", now: dt.datetime
) -> Department:
    """The department called `name`, which must exist (`zhida departments add`); with `carry_over`, one
    not yet known is added without a level or region, as migration 0018 carried over the names users had
    (its staff see every region until the department is placed), e.g. for the demo's users."""
    row = session.scalar(select(Department).where(Department.name == name))
    if row is not None:
        return row
    if not carry_over:
        raise NotFoundError(
            f"没有部门“{name}”：请先由系统管理员用 zhida departments add 添加，名称与政策文件一致"
        )
    row = Department(name=name, created_at=now)
    session.add(row)
    session.flush()
    audit.record(session, now, by, "add_department", "department", name, None, None, carried_over=True)
    return row


def create_user(
    session: Session,
    username: str,
    role: str,
    *,
    display_name: str | None = None,
    department: str | None = None,
    carry_over: bool = False,
    by: str = "system",
    now: dt.datetime | None = None,
) -> StaffUser:
    """Add a staff user with one role and, by name, a department that exists (see `department_ref` for
    `carry_over`); refuses an unknown role, an unknown department or a username already taken."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        role = Role(role)
    except ValueError:
        raise RoleError(f"未知角色 {role!r}，可选：{', '.join(r.value for r in Role)}") from None
    if session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise RoleError(f"用户名 {username} 已存在")
    dept = department_ref(session, department, carry_over=carry_over, by=by, now=now) if department else None
    user = StaffUser(
        username=username,
        display_name=display_name or username,
        role=role.value,
        department=dept.name if dept else None,
        department_id=dept.id if dept else None,
        created_at=now,
    )
    session.add(user)
    audit.record(
        session,
        now,
        by,
        "create_user",
        "user",
        username,
        None,
        "active",
        role=role.value,
        department=user.department,
    )
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


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise RoleError(f"未知角色 {value!r}，可选：{', '.join(r.value for r in Role)}") from None


def _administered(session: Session, username: str, by: str, what: str) -> StaffUser:
    """The user `username`, if `by` is a system administrator acting on someone else (nobody changes
    their own role, department or status: a user cannot grant themselves anything)."""
    require(session, by, "manage_users")
    if username == by:
        raise RoleError(f"不能{what}自己的账户：请由另一位系统管理员办理")
    return get_user(session, username)


def set_role(session: Session, username: str, role: str, *, by: str, now: dt.datetime) -> StaffUser:
    """Give `username` another role (a system administrator's act, audited); never one's own."""
    new = _role(role)
    user = _administered(session, username, by, "更改")
    if new is Role.POLICY and not user.department:
        raise RoleError("政策部门用户必须有部门：请先设置部门")
    old = user.role
    user.role = new.value
    audit.record(session, now, by, "set_role", "user", username, old, new.value)
    return user


def set_department(
    session: Session, username: str, department: str | None, *, by: str, now: dt.datetime
) -> StaffUser:
    """Move `username` to another department, which must exist (None: all departments; never for a policy
    user)."""
    user = _administered(session, username, by, "更改")
    if user.role == Role.POLICY.value and not department:
        raise RoleError("政策部门用户必须有部门")
    dept = department_ref(session, department, now=now) if department else None
    old = user.department
    user.department = dept.name if dept else None
    user.department_id = dept.id if dept else None
    audit.record(session, now, by, "set_department", "user", username, old, user.department)
    return user


_PHONE = re.compile(r"1[3-9][0-9]{9}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,}")


def set_contact(
    session: Session,
    username: str,
    *,
    phone: str | None,
    email: str | None,
    head: bool,
    by: str,
    now: dt.datetime,
) -> StaffUser:
    """Where the SLA's reminders reach `username` (mobile, e-mail; empty: none) and whether the user heads
    the department (overdue work is escalated to its heads, `reports.supervision`)."""
    user = _administered(session, username, by, "更改")
    if phone and not _PHONE.fullmatch(phone):
        raise RoleError(f"手机号 {phone!r} 不正确：应为 11 位手机号码，如 13900001111")
    if email and not _EMAIL.fullmatch(email):
        raise RoleError(f"邮箱 {email!r} 不正确：应形如 name@example.gov.cn")
    if head and not user.department:
        raise RoleError(f"{username} 没有部门，不能设为部门负责人：请先用 set-department 设定部门")
    user.phone, user.email, user.head = phone or None, email or None, head
    audit.record(session, now, by, "set_contact", "user", username, None, "head" if head else "staff")
    return user


def set_active(session: Session, username: str, active: bool, *, by: str, now: dt.datetime) -> StaffUser:
    """Disable or enable `username` (a disabled user can neither sign in nor use a CLI token)."""
    user = _administered(session, username, by, "停用或启用")
    old = "active" if user.active else "disabled"
    user.active = active
    # A disabled user's sessions end at once (not only at their next request's check of `active`).
    ended = 0 if active else signin.end_sessions(session, user, now, "disabled")
    audit.record(
        session,
        now,
        by,
        "set_active",
        "user",
        username,
        old,
        "active" if active else "disabled",
        sessions_ended=ended,
    )
    return user


def has_system_admin(session: Session) -> bool:
    """Whether an active system administrator exists (until one does, the CLI may create the first)."""
    found = select(StaffUser.id).where(StaffUser.role == Role.SYSTEM_ADMIN.value, StaffUser.active.is_(True))
    return session.scalar(found.limit(1)) is not None


USER_ACTIONS = ("create_user", "set_role", "set_department", "set_active", "set_password", "unlock")


def staff(session: Session) -> list[StaffUser]:
    """Every staff user, by username (for the administrators' review of who holds which role)."""
    return list(session.scalars(select(StaffUser).order_by(StaffUser.username)).all())


def user_changes(session: Session, limit: int = 100) -> list[AuditEvent]:
    """The latest changes to users (created, role, department, disabled, password), newest first: what
    the security administrator reviews and the auditor can check."""
    query = (
        select(AuditEvent)
        .where(AuditEvent.entity == "user", AuditEvent.action.in_(USER_ACTIONS))
        .order_by(AuditEvent.seq.desc())
        .limit(limit)
    )
    return list(session.scalars(query).all())


def unlock(session: Session, username: str, by: str, now: dt.datetime) -> StaffUser:
    """Unlock an account locked by wrong passwords (a security administrator's act, audited)."""
    require(session, by, "unlock_accounts")
    user = get_user(session, username)
    if user.locked_at is None:
        raise RoleError(f"用户 {username} 未被锁定，无需解锁")
    locked_at = user.locked_at
    user.locked_at, user.failed_logins, user.failed_since = None, 0, None
    audit.record(
        session, now, by, "unlock", "user", username, "locked", "active", locked_at=locked_at.isoformat()
    )
    return user
