"""Supplying missing data: the enterprise supplies a missing field with evidence (/e/supplied), the department
that holds the field verifies or rejects it (API /api/supplied, console /console/supplied).

- The enterprise may supply only a field of its own 数据缺失 lines in the latest run, and sees only its
  own submissions (`api.deps.load_enterprise_supplied`); it never downloads evidence.
- Staff see only the submissions of fields their department holds (`api.deps.load_supplied`); the
  evidence is served to them as an attachment with its sniffed type, `nosniff` and no caching.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from api.deps import (
    CurrentEnterprise,
    DataVerifier,
    EnterpriseSuppliedDep,
    SessionDep,
    SettingsDep,
    SuppliedDep,
    TokensDep,
    writes,
)
from api.enterprise_auth import ENTERPRISE_COOKIE
from api.routes import now, redirect, render
from api.settings import Settings
from portal import supplied
from portal.models import SuppliedValue
from rules.errors import PayoutError

router = APIRouter(prefix="/api/supplied", tags=["supplied"])
pages = APIRouter(prefix="/console/supplied", include_in_schema=False)
enterprise_pages = APIRouter(prefix="/e/supplied", include_in_schema=False)


class SuppliedOut(BaseModel):
    """A value an enterprise supplied for a missing field, and where it stands."""

    id: str
    uscc: str
    policy_id: str
    item_id: str
    field: str
    field_label: str
    missing_field: str
    snapshot_table: str
    snapshot_column: str
    year: int | None
    value: str
    department: str
    note: str | None
    evidence_name: str
    evidence_type: str
    evidence_size: int
    evidence_sha256: str
    state: str
    state_label: str
    submitted_at: dt.datetime
    submitted_by: str  # enterprise:<uscc>, or agent:<username> for 帮办代办
    decided_by: str | None
    decided_at: dt.datetime | None
    reason: str | None


class Decision(BaseModel):
    """Why the value is refused (required)."""

    reason: str = Field(min_length=1, max_length=500)


class OverrideOut(BaseModel):
    """The override a verification created: the snapshot cell the next match runs will read it for."""

    id: str
    uscc: str
    table: str
    column: str
    year: int | None
    value: str


def out(session: Session, row: SuppliedValue) -> SuppliedOut:
    return SuppliedOut(
        id=row.public_id,
        field_label=supplied.label(row),
        state_label=supplied.STATE_LABELS[row.state],
        decided_by=supplied.decided_by(session, row),
        **{
            k: getattr(row, k)
            for k in SuppliedOut.model_fields
            if k not in ("id", "field_label", "state_label", "decided_by")
        },
    )


def evidence_dir(settings: Settings) -> Path:
    """Where evidence files live: under the data folder, never under a served one."""
    return settings.data_dir / "evidence"


def _evidence_response(session: Session, row: SuppliedValue, user: str, settings: Settings) -> Response:
    file = supplied.evidence(session, row.public_id, user, evidence_dir(settings), now())
    response = FileResponse(
        file.path, media_type=file.media_type, filename=file.filename, content_disposition_type="attachment"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# Staff API


@router.get("", response_model=list[SuppliedOut], summary="本部门掌握字段的企业补充材料（待核实的在前）")
def list_supplied(user: DataVerifier, session: SessionDep) -> list[SuppliedOut]:
    return [out(session, r) for r in supplied.for_staff(session, user)]


@router.get("/{public_id}", response_model=SuppliedOut, summary="一份补充材料")
def get_supplied(row: SuppliedDep, session: SessionDep) -> SuppliedOut:
    return out(session, row)


@router.post("/{public_id}/verify", response_model=OverrideOut, summary="核实通过：下一次数据比对采用该值")
def verify(row: SuppliedDep, user: DataVerifier, session: SessionDep) -> OverrideOut:
    o = supplied.verify(session, row.public_id, user.username, now())
    return OverrideOut(
        id=o.public_id,
        uscc=o.uscc,
        table=o.snapshot_table,
        column=o.snapshot_column,
        year=o.year,
        value=o.value,
    )


@router.post("/{public_id}/reject", response_model=SuppliedOut, summary="退回补充材料（写明原因）")
def reject(body: Decision, row: SuppliedDep, user: DataVerifier, session: SessionDep) -> SuppliedOut:
    return out(session, supplied.reject(session, row.public_id, user.username, body.reason, now()))


@router.get(
    "/{public_id}/evidence",
    summary="下载证明材料（附件）",
    response_class=FileResponse,
    responses={
        200: {
            "content": {
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/webp": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
@writes  # the download is audited
def download_evidence(
    row: SuppliedDep, user: DataVerifier, session: SessionDep, settings: SettingsDep
) -> Response:
    return _evidence_response(session, row, user.username, settings)


# Console


@pages.get("")
def supplied_page(request: Request, user: DataVerifier, session: SessionDep) -> Response:
    rows = [out(session, r) for r in supplied.for_staff(session, user)]
    return render(request, "supplied_list.html", {"rows": rows, "department": user.department})


@pages.get("/{public_id}")
def supplied_detail_page(request: Request, row: SuppliedDep, session: SessionDep) -> Response:
    return render(request, "supplied_detail.html", {"row": out(session, row)})


@pages.post("/{public_id}/verify")
def verify_page(row: SuppliedDep, user: DataVerifier, session: SessionDep) -> Response:
    o = supplied.verify(session, row.public_id, user.username, now())
    return redirect(
        f"/console/supplied/{row.public_id}",
        f"已核实：{o.snapshot_table}.{o.snapshot_column} = {o.value}，下一次数据比对将采用该值",
    )


@pages.post("/{public_id}/reject")
def reject_page(
    row: SuppliedDep,
    user: DataVerifier,
    session: SessionDep,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    supplied.reject(session, row.public_id, user.username, reason, now())
    return redirect(f"/console/supplied/{row.public_id}", "已退回，企业可以看到退回原因")


# The enterprise's pages


def _enterprise_page(
    request: Request,
    session: Session,
    me: CurrentEnterprise,
    status_code: int = 200,
    **context: object,
) -> Response:
    lines = supplied.missing_lines(session, request.app.state.standings, me.uscc)
    groups, refusals = supplied.asks(lines)
    rows = supplied.of_enterprise(session, me.uscc)
    mine = [out(session, r) for r in rows]
    return render(
        request,
        "supplied_enterprise.html",
        {
            "ent": me,
            "ent_csrf": request.state.enterprise_csrf,
            "groups": groups,
            "refusals": refusals,
            "asked": sum(len(g.asks) for g in groups),
            "mine": mine,
            "titles": supplied.item_titles(session, rows),
            # Fields already supplied and waiting or verified: the ask shows that instead of an input.
            "pending": {(r.field, r.year): r for r in reversed(mine) if r.state != "rejected"},
            "max_mb": supplied.MAX_EVIDENCE // (1024 * 1024),
            **context,
        },
        status_code=status_code,
    )


@enterprise_pages.get("")
def enterprise_supplied_page(request: Request, me: CurrentEnterprise, session: SessionDep) -> Response:
    """What the enterprise is asked for (each missing field once, by department), and what it supplied."""
    return _enterprise_page(request, session, me)


def read_evidence(file: UploadFile) -> bytes:
    """At most one byte more than the limit is read, so that a huge upload is refused without holding it."""
    return file.file.read(supplied.MAX_EVIDENCE + 1)


MAX_FIELDS = 60  # fields one form may carry


def supply(
    request: Request,
    session: Session,
    settings: Settings,
    uscc: str,
    key: list[str],
    value: list[str],
    evidence: UploadFile,
    note: str,
    actor: str | None,
) -> list[SuppliedValue]:
    """Supply the typed values of the fields the enterprise is asked for (`key` and `value` pairs; empty
    values skipped) with one evidence file, as the enterprise (`actor` None) or a 帮办代办 agent;
    PayoutError before anything is written."""
    typed = dict(zip(key[:MAX_FIELDS], value[:MAX_FIELDS], strict=False))
    if len(key) != len(value) or len(key) > MAX_FIELDS:
        raise PayoutError("表单不完整，请刷新页面后重新填写")
    lines = supplied.missing_lines(session, request.app.state.standings, uscc)
    groups, _ = supplied.asks(lines)
    known = {a.key: a for g in groups for a in g.asks}  # only what this enterprise is asked for
    chosen = []
    for k, v in typed.items():
        if not v.strip():
            continue
        ask = known.get(k)
        if ask is None:
            raise PayoutError("最新一次数据比对中，没有这项缺失数据，请刷新页面后重新填写")
        chosen.append((ask.missing, ask.field.name, v))
    return supplied.submit_several(
        session,
        uscc=uscc,
        values=chosen,
        evidence=read_evidence(evidence),
        evidence_name=evidence.filename or "证明材料",
        evidence_dir=evidence_dir(settings),
        now=now(),
        note=note,
        actor=actor,
    )


@enterprise_pages.post("")
def enterprise_submit(
    request: Request,
    me: CurrentEnterprise,
    session: SessionDep,
    settings: SettingsDep,
    tokens: TokensDep,
    evidence: Annotated[UploadFile, File()],
    key: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
    value: Annotated[list[str], Form()] = [],  # noqa: B006
    note: Annotated[str, Form(max_length=500)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Supply one or more of the fields the enterprise is asked for (`key` and `value` pairs, in the order
    of the form's inputs; empty values are skipped), with one PDF or image as evidence for them all."""
    if not tokens.csrf_ok(csrf, "enterprise", request.cookies.get(ENTERPRISE_COOKIE, "")):
        return render(
            request, "error.html", {"title": "页面已过期", "detail": "请刷新页面后重试", "status": 403}, 403
        )
    typed = dict(zip(key[:MAX_FIELDS], value[:MAX_FIELDS], strict=False))
    try:
        rows = supply(request, session, settings, me.uscc, key, value, evidence, note, None)
    except PayoutError as e:  # raised before anything is written; shown on the form to correct
        return _enterprise_page(request, session, me, 422, error=str(e), typed=typed)
    if len(rows) == 1:
        return redirect(f"/e/supplied/{rows[0].public_id}", "已提交，等待数据所在部门核实")
    return redirect("/e/supplied", f"已提交 {len(rows)} 项数据，等待数据所在部门核实")


@enterprise_pages.get("/{public_id}")
def enterprise_supplied_detail(
    request: Request, row: EnterpriseSuppliedDep, me: CurrentEnterprise, session: SessionDep
) -> Response:
    """One of the enterprise's own submissions and its state (a rejection shows the reason)."""
    return render(
        request,
        "supplied_enterprise_detail.html",
        {
            "ent": me,
            "ent_csrf": request.state.enterprise_csrf,
            "row": out(session, row),
            "titles": supplied.item_titles(session, [row]),
        },
    )
