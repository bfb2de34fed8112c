"""Staff users as the administrators see them (三员分立): who holds which role, in Chinese, and the latest
changes to users for the security administrator's review. Users are changed with `zhida users` by a
system administrator (never their own account); nothing here changes anything.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import SessionDep, UsersReader
from api.routes import render
from payouts import audit, departments, users
from payouts.models import Role

router = APIRouter(prefix="/api/users", tags=["users"])
pages = APIRouter(prefix="/console/users", include_in_schema=False)


class UserOut(BaseModel):
    """A staff user: role (and its Chinese label), department with its level and region (辖区: whose
    enterprises they see), whether they may sign in."""

    username: str
    display_name: str
    role: str
    role_label: str
    department: str | None
    department_level: str | None = None
    region: str  # 全部地区, or e.g. 芙蓉区（430102）
    active: bool


class DepartmentOut(BaseModel):
    """A department: level, region and superior, in words."""

    name: str
    level: str
    region: str
    parent: str


class UserChangeOut(BaseModel):
    """One change to a user, from the audit log."""

    at: dt.datetime
    actor: str
    action: str
    action_label: str
    username: str
    from_state: str | None
    to_state: str | None


def _labelled(value: str | None) -> str | None:
    """A role value as its Chinese label (other states as they are)."""
    return users.ROLE_LABELS[Role(value)] if value in {r.value for r in Role} else value


@router.get("", response_model=list[UserOut], summary="职员用户及其角色")
def listing(user: UsersReader, session: SessionDep) -> list[UserOut]:
    placed = {d.id: departments.describe(session, d) for d in departments.all_departments(session)}
    out = []
    for u in users.staff(session):
        shown = placed.get(u.department_id) if u.department_id is not None else None
        out.append(
            UserOut(
                username=u.username,
                display_name=u.display_name,
                role=u.role,
                role_label=users.ROLE_LABELS[Role(u.role)],
                department=u.department,
                department_level=shown.level if shown else None,
                region=shown.region if shown else "全部地区",
                active=u.active,
            )
        )
    return out


@router.get("/departments", response_model=list[DepartmentOut], summary="部门：层级、辖区和上级部门")
def department_listing(user: UsersReader, session: SessionDep) -> list[DepartmentOut]:
    return [
        DepartmentOut(**vars(departments.describe(session, d))) for d in departments.all_departments(session)
    ]


@router.get(
    "/changes", response_model=list[UserChangeOut], summary="用户和角色的最近变更（供安全管理员审查）"
)
def changes(user: UsersReader, session: SessionDep) -> list[UserChangeOut]:
    return [
        UserChangeOut(
            at=e.at,
            actor=e.actor,
            action=e.action,
            action_label=audit.action_label(e.action),
            username=e.entity_id,
            from_state=_labelled(e.from_state),
            to_state=_labelled(e.to_state),
        )
        for e in users.user_changes(session)
    ]


@pages.get("")
def users_page(request: Request, user: UsersReader, session: SessionDep) -> Response:
    staff = listing(user, session)
    return render(
        request,
        "users.html",
        {
            "staff": staff,
            "changes": changes(user, session),
            "departments": department_listing(user, session),
            "names": {u.username: u.display_name for u in staff},
        },
    )
