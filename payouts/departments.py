"""Departments as data: a hierarchy of province, city and county departments, each with its region code
(GB/T 2260) and its superior in the same line (芙蓉区人社局 → 长沙市人社局 → 湖南省人社厅 → 人社部).

A department decides two things for its staff (`payouts/scope.py`): which policies they act on (those of
their own department and of its superiors, matched by name: a county 人社局 reviews a policy of the
province's 人社厅) and which enterprises (those whose region code starts with the department's prefix:
2 digits for a province, 4 for a city, 6 for a county; a national department, or one not yet placed,
has none). Departments are kept by the system administrator; every change is audited.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from payouts import audit
from payouts.errors import NotFoundError, RoleError
from payouts.models import Department, DepartmentLevel
from payouts.users import require


def region_name(code: str) -> str | None:
    from matcher.codes import region_name as name  # the code lists load Arrow and sqlglot: only when asked

    return name(code)


LEVEL_LABELS = {
    DepartmentLevel.NATIONAL: "国家级",
    DepartmentLevel.PROVINCE: "省级",
    DepartmentLevel.CITY: "市级",
    DepartmentLevel.COUNTY: "县级",
}
# How many digits of the region code a level's staff are confined to.
PREFIX_DIGITS = {DepartmentLevel.PROVINCE: 2, DepartmentLevel.CITY: 4, DepartmentLevel.COUNTY: 6}
_ORDER = list(DepartmentLevel)  # national above province above city above county


def prefix(level: str | None, region_code: str | None) -> str | None:
    """The region prefix of a department's staff, or None (every region) for a national or unplaced one."""
    if level is None or region_code is None or level == DepartmentLevel.NATIONAL.value:
        return None
    return region_code[: PREFIX_DIGITS[DepartmentLevel(level)]]


def _level(value: str) -> DepartmentLevel:
    try:
        return DepartmentLevel(value)
    except ValueError:
        known = "、".join(f"{lv.value}（{LEVEL_LABELS[lv]}）" for lv in DepartmentLevel)
        raise RoleError(f"未知层级 {value!r}，可选：{known}") from None


def _check_region(level: DepartmentLevel, region_code: str | None) -> str | None:
    """The region code, if it fits the level: none for national; a listed GB/T 2260 code otherwise, whole
    province (xx0000) for a province, a city (xxxx00) for a city, a county for a county."""
    if level is DepartmentLevel.NATIONAL:
        if region_code:
            raise RoleError("国家级部门不设行政区划代码：请去掉 --region")
        return None
    example = {"province": "430000", "city": "430100", "county": "430102"}[level.value]
    if not region_code:
        raise RoleError(f"{LEVEL_LABELS[level]}部门须有行政区划代码（GB/T 2260 六位），如 --region {example}")
    if len(region_code) != 6 or not region_code.isdigit() or region_name(region_code) is None:
        raise RoleError(f"行政区划代码 {region_code!r} 不在 GB/T 2260 代码表中：应为六位，如 {example}")
    shape_ok = {
        DepartmentLevel.PROVINCE: region_code.endswith("0000"),
        DepartmentLevel.CITY: region_code.endswith("00") and not region_code.endswith("0000"),
        DepartmentLevel.COUNTY: not region_code.endswith("00"),
    }[level]
    if not shape_ok:
        raise RoleError(f"行政区划代码 {region_code} 不是{LEVEL_LABELS[level]}的代码，如 {example}")
    return region_code


def get(session: Session, name: str) -> Department:
    """The department called `name` (exactly as policy files write it)."""
    row = session.scalar(select(Department).where(Department.name == name))
    if row is None:
        raise NotFoundError(f"没有部门“{name}”：请先由系统管理员用 zhida departments add 添加")
    return row


def _check_parent(
    session: Session, level: DepartmentLevel, region: str | None, parent: str | None
) -> int | None:
    if parent is None:
        return None
    up = get(session, parent)
    if up.level is None:
        raise RoleError(f"上级部门“{parent}”尚未设定层级和区划：请先用 zhida departments set 设定")
    if _ORDER.index(DepartmentLevel(up.level)) >= _ORDER.index(level):
        raise RoleError(f"上级部门“{parent}”（{LEVEL_LABELS[DepartmentLevel(up.level)]}）须高于本部门的层级")
    mine, theirs = prefix(level.value, region), prefix(up.level, up.region_code)
    if theirs is not None and not (mine or "").startswith(theirs):
        raise RoleError(f"上级部门“{parent}”的辖区 {theirs} 不包含本部门的行政区划代码 {region}")
    return up.id


def _placement(
    session: Session, level: str, region_code: str | None, parent: str | None
) -> tuple[DepartmentLevel, str | None, int | None]:
    """A department's level, region code and superior's id, each checked against the others (`add` and
    `place` alike)."""
    lv = _level(level)
    region = _check_region(lv, region_code)
    return lv, region, _check_parent(session, lv, region, parent)


def add(
    session: Session,
    name: str,
    *,
    level: str,
    region_code: str | None,
    parent: str | None,
    by: str,
    now: dt.datetime,
) -> Department:
    """Add a department (a system administrator's act, audited); refuses a name taken, a region that does
    not fit the level, or a superior that is not above it or whose region does not contain it."""
    require(session, by, "manage_users")
    name = name.strip()
    if not name or len(name) > 100:
        raise RoleError("部门名称不能为空，至多 100 个字符，应与政策文件的 department 完全一致")
    if session.scalar(select(Department.id).where(Department.name == name)) is not None:
        raise RoleError(f"部门“{name}”已存在：更改层级、区划或上级请用 zhida departments set")
    lv, region, parent_id = _placement(session, level, region_code, parent)
    row = Department(name=name, level=lv.value, region_code=region, parent_id=parent_id, created_at=now)
    session.add(row)
    session.flush()
    audit.record(
        session, now, by, "add_department", "department", name, None, lv.value, region=region, parent=parent
    )
    return row


def place(
    session: Session,
    name: str,
    *,
    level: str,
    region_code: str | None,
    parent: str | None,
    by: str,
    now: dt.datetime,
) -> Department:
    """Set a department's level, region and superior (e.g. one carried over by migration 0018); audited.
    Its staff's scope changes with it; departments under it must still fit inside it."""
    require(session, by, "manage_users")
    row = get(session, name)
    lv, region, parent_id = _placement(session, level, region_code, parent)
    if parent_id == row.id or (parent_id is not None and row.id in _ancestor_ids(session, parent_id)):
        raise RoleError(f"部门“{name}”不能成为自己的上级")
    mine = prefix(lv.value, region)
    for child in session.scalars(select(Department).where(Department.parent_id == row.id)):
        theirs = prefix(child.level, child.region_code)
        if child.level and _ORDER.index(DepartmentLevel(child.level)) <= _ORDER.index(lv):
            raise RoleError(f"下级部门“{child.name}”的层级须低于本部门")
        if mine is not None and not (theirs or "").startswith(mine):
            raise RoleError(f"下级部门“{child.name}”的辖区不在 {mine} 之内")
    old = f"{row.level or '未设定'} {row.region_code or ''}".strip()
    row.level, row.region_code, row.parent_id = lv.value, region, parent_id
    audit.record(
        session, now, by, "place_department", "department", name, old, lv.value, region=region, parent=parent
    )
    return row


def _ancestor_ids(session: Session, department_id: int) -> list[int]:
    ids: list[int] = []
    current: int | None = department_id
    while current is not None and current not in ids:
        ids.append(current)
        current = session.scalar(select(Department.parent_id).where(Department.id == current))
    return ids


def line(session: Session, department_id: int) -> list[Department]:
    """The department and its superiors, nearest first (芙蓉区人社局, 长沙市人社局, 湖南省人社厅)."""
    return [session.get_one(Department, i) for i in _ancestor_ids(session, department_id)]


@dataclass(frozen=True)
class Listed:
    """A department as `zhida departments list` and the console's users page show it."""

    name: str
    level: str
    region: str
    parent: str


def describe(session: Session, row: Department) -> Listed:
    """Level and region in words (省级, 湖南省长沙市 430100) and the superior's name."""
    level = LEVEL_LABELS[DepartmentLevel(row.level)] if row.level else "未设定"
    where = "全部地区"
    if row.region_code:
        where = f"{region_name(row.region_code) or row.region_code}（{row.region_code}）"
    up = session.get(Department, row.parent_id) if row.parent_id else None
    return Listed(row.name, level, where, up.name if up else "")


def all_departments(session: Session) -> list[Department]:
    """Every department, by region code (national first), then name."""
    rows = session.scalars(select(Department)).all()
    return sorted(rows, key=lambda d: (d.region_code or "", d.name))
