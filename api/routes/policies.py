"""Policies: upload a YAML file (checked exactly as `zhida rules validate` checks it), list versions,
simulate the impact of a draft against the published version, publish.

A policy user sees and writes only their department's policies.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import (
    DraftDep,
    PolicyReader,
    PolicyWriter,
    SessionDep,
    SettingsDep,
    StoreDep,
    department,
    in_scope,
    may,
)
from api.matchjobs import snapshot_dirs
from api.policystore import PolicyStore, StoredPolicy
from api.routes import now, redirect, render
from api.settings import Settings
from matcher.duckdb_engine import connect
from matcher.simulate import simulate
from matcher.snapshot import load_snapshot
from payouts.errors import NotFoundError
from rules.errors import PolicyError, Problem

router = APIRouter(prefix="/api/policies", tags=["policies"])
pages = APIRouter(prefix="/console/policies", include_in_schema=False)
MAX_UPLOAD = 1 << 20  # a policy file is a few kilobytes
DIMENSION_LABELS = {"region": "地区（地市）", "industry_section": "行业门类", "size_class": "企业规模"}


class PolicyOut(BaseModel):
    """A stored policy version: draft or published."""

    id: str
    version: int
    status: str
    title: str
    department: str
    valid_from: str
    valid_to: str
    file_name: str
    sha256: str
    uploaded_by: str
    uploaded_at: str
    published_by: str | None
    published_at: str | None


class PolicyList(BaseModel):
    """The published versions and the drafts the user may see."""

    published: list[PolicyOut]
    drafts: list[PolicyOut]


class BreakdownRow(BaseModel):
    """Enterprises and money of one region, industry section or size class, before and after."""

    key: str | None
    old_enterprises: int
    new_enterprises: int
    old_amount: Decimal
    new_amount: Decimal


class ImpactOut(BaseModel):
    """What publishing the draft would change, on one snapshot and evaluation date."""

    policy_id: str
    version: int
    against_version: int | None
    snapshot: str
    as_of: dt.date
    old_enterprises: int
    new_enterprises: int
    gained: int
    lost: int
    old_amount: Decimal
    new_amount: Decimal
    delta_amount: Decimal
    breakdown: dict[str, list[BreakdownRow]]


def policy_out(record: StoredPolicy) -> PolicyOut:
    return PolicyOut(**{k: getattr(record, k) for k in PolicyOut.model_fields})


def impact_of(
    store: PolicyStore, record: StoredPolicy, settings: Settings, snapshot: str, as_of: dt.date
) -> ImpactOut:
    """Simulate the draft against the latest published version (or against no policy) on a snapshot."""
    found = snapshot_dirs(settings.snapshots_root)
    if snapshot not in found:
        raise NotFoundError(f"没有快照 {snapshot}")
    new = store.parsed(record)
    latest = store.latest_published(record.id)
    old = store.parsed(latest) if latest is not None else None
    con = connect()
    try:
        load_snapshot(found[snapshot], con)
        impact = simulate(con, new, old, as_of)
    finally:
        con.close()
    return ImpactOut(
        policy_id=record.id,
        version=record.version,
        against_version=latest.version if latest else None,
        snapshot=snapshot,
        as_of=as_of,
        old_enterprises=impact.old_enterprises,
        new_enterprises=impact.new_enterprises,
        gained=impact.gained,
        lost=impact.lost,
        old_amount=impact.old_amount,
        new_amount=impact.new_amount,
        delta_amount=impact.delta_amount,
        breakdown={
            dim: [
                BreakdownRow(
                    key=None if k is None else str(k),
                    old_enterprises=o,
                    new_enterprises=n,
                    old_amount=oa,
                    new_amount=na,
                )
                for k, o, n, oa, na in rows
            ]
            for dim, rows in impact.breakdown.items()
        },
    )


def _too_big(name: str) -> PolicyError:
    return PolicyError(
        [Problem(name, None, "?", "文件过大（超过 1 MiB），这不像一个政策文件", "一个文件只写一个政策")]
    )


@router.get("", response_model=PolicyList, summary="政策列表：已发布版本和草稿")
def list_policies(user: PolicyReader, store: StoreDep) -> PolicyList:
    mine = department(user)
    return PolicyList(
        published=[policy_out(r) for r in store.list("published", mine)],
        drafts=[policy_out(r) for r in store.list("draft", mine)],
    )


@router.post("", response_model=PolicyOut, status_code=201, summary="上传政策文件（校验规则与命令行相同）")
def upload(
    user: PolicyWriter, store: StoreDep, session: SessionDep, file: Annotated[UploadFile, File()]
) -> PolicyOut:
    data = file.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise _too_big(file.filename or "policy.yaml")
    record, _ = store.upload(
        session, data, file.filename or "policy.yaml", user.username, department(user), now()
    )
    return policy_out(record)


@router.get("/{policy_id}/versions", response_model=list[PolicyOut], summary="一项政策的全部版本")
def versions(policy_id: str, user: PolicyReader, store: StoreDep) -> list[PolicyOut]:
    rows = [r for r in [*store.list("published"), *store.list("draft")] if r.id == policy_id]
    rows = [r for r in rows if in_scope(user, r.department)]
    if not rows:
        raise NotFoundError(f"没有政策 {policy_id}")
    return [policy_out(r) for r in sorted(rows, key=lambda r: -r.version)]


@router.get(
    "/{policy_id}/drafts/{version}/impact", response_model=ImpactOut, summary="影响测算：与已发布版本相比"
)
def impact(
    draft: DraftDep,
    user: PolicyReader,
    store: StoreDep,
    settings: SettingsDep,
    snapshot: Annotated[str, Query(max_length=200)],
    as_of: dt.date | None = None,
) -> ImpactOut:
    return impact_of(store, draft, settings, snapshot, as_of or settings.default_as_of())


@router.post(
    "/{policy_id}/drafts/{version}/publish", response_model=PolicyOut, summary="发布草稿（发布后不可更改）"
)
def publish(draft: DraftDep, user: PolicyWriter, store: StoreDep, session: SessionDep) -> PolicyOut:
    return policy_out(store.publish(session, draft, user.username, now()))


# Console


@pages.get("")
def policies_page(request: Request, user: PolicyReader, store: StoreDep) -> Response:
    mine = department(user)
    return render(
        request,
        "policies.html",
        {
            "published": store.list("published", mine),
            "drafts": store.list("draft", mine),
            "can_write": may(user, "policy_write"),
        },
    )


@pages.post("/upload")
def upload_page(
    request: Request,
    user: PolicyWriter,
    store: StoreDep,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
) -> Response:
    name = file.filename or "policy.yaml"
    data = file.file.read(MAX_UPLOAD + 1)
    try:
        if len(data) > MAX_UPLOAD:
            raise _too_big(name)
        record, _ = store.upload(session, data, name, user.username, department(user), now())
    except PolicyError as e:  # shown beside the lines they are about, not a dead end
        lines = data[:MAX_UPLOAD].decode("utf-8-sig", errors="replace").splitlines()
        by_line: dict[int, list[object]] = {}
        for p in e.problems:
            by_line.setdefault(p.line or 0, []).append(p)
        mine = department(user)
        return render(
            request,
            "policies.html",
            {
                "published": store.list("published", mine),
                "drafts": store.list("draft", mine),
                "can_write": True,
                "refused": {"file": name, "lines": lines, "by_line": by_line, "problems": e.problems},
            },
            status_code=422,
        )
    return redirect(
        f"/console/policies/{record.id}/drafts/{record.version}", f"已上传 {name}：校验通过，保存为草稿"
    )


@pages.get("/{policy_id}/drafts/{version}")
def draft_page(
    request: Request,
    draft: DraftDep,
    user: PolicyReader,
    store: StoreDep,
    settings: SettingsDep,
    snapshot: str | None = None,
    as_of: dt.date | None = None,
) -> Response:
    snapshots = list(snapshot_dirs(settings.snapshots_root))
    result = None
    if snapshot is not None:
        result = impact_of(store, draft, settings, snapshot, as_of or settings.default_as_of())
    return render(
        request,
        "policy_draft.html",
        {
            "draft": draft,
            "text": store.text(draft).splitlines(),
            "latest": store.latest_published(draft.id),
            "snapshots": snapshots,
            "snapshot": snapshot or (snapshots[0] if snapshots else None),
            "as_of": as_of or settings.default_as_of(),
            "impact": result,
            "labels": DIMENSION_LABELS,
            "can_write": may(user, "policy_write"),
        },
    )


@pages.post("/{policy_id}/drafts/{version}/publish")
def publish_page(draft: DraftDep, user: PolicyWriter, store: StoreDep, session: SessionDep) -> Response:
    record = store.publish(session, draft, user.username, now())
    return redirect("/console/policies", f"已发布 {record.title} 第 {record.version} 版")
