"""Public notice (公示) of payout batches and objections (异议).

- Staff (API /api/notices, console /console/notices): a finance maker puts an assembled batch on notice
  for its policy's period; staff of the policy's department resolve each objection with a reason.
- The public (/gongshi, no login): the running notices, each with its recipients (enterprise name, item,
  amount; no account data), and a form to object to one line, leaving contact details. The form carries
  a CSRF token bound to the notice and a per-browser nonce cookie, and is limited per IP.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import Session

from api.deps import (
    BatchReader,
    NoticeDep,
    NoticeOpener,
    NoticeReader,
    ObjectionDep,
    ObjectionResolver,
    SessionDep,
    SettingsDep,
    StoreDep,
    TokensDep,
    client_address,
    may,
    scoped_policy_ids,
    user_scope,
)
from api.routes import BrowserNonce, now, redirect, render
from payouts import notice
from payouts.errors import NotFoundError
from payouts.models import Batch, BatchLine, BatchState, Objection, PublicNotice, StaffUser
from rules.errors import PayoutError

router = APIRouter(prefix="/api/notices", tags=["notices"])
pages = APIRouter(prefix="/console/notices", include_in_schema=False)
public = APIRouter(prefix="/gongshi", tags=["public notice"])
NONCE = BrowserNonce("zhida_g", "/gongshi")
HTML = {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "页面"}
PUBLIC_RESPONSES: dict[int | str, dict[str, object]] = {200: HTML, 403: HTML, 404: HTML, 422: HTML, 429: HTML}


class NoticeOpen(BaseModel):
    """Put an assembled batch on public notice (for the policy's period, or `days` when it sets none)."""

    batch: str = Field(min_length=1, max_length=35)
    days: int | None = Field(default=None, ge=1, le=365)


class Resolution(BaseModel):
    """Uphold (the line leaves the batch) or dismiss an objection, with the reason."""

    upheld: bool
    reason: str = Field(min_length=1, max_length=500)


class LineOut(BaseModel):
    """A recipient as published: no account data."""

    line_no: int
    name: str
    item: str
    amount: Decimal


class ObjectionOut(BaseModel):
    """An objection and how it was resolved."""

    id: str
    line_no: int
    name: str
    contact: str
    text: str
    filed_at: dt.datetime
    state: str
    state_label: str
    resolved_at: dt.datetime | None
    resolution: str | None


class NoticeOut(BaseModel):
    """A public notice of one batch."""

    id: str
    batch: str
    policy_id: str
    title: str
    days: int
    working: bool = Field(description="days 为工作日（按国家法定节假日安排）")
    starts_at: dt.datetime
    ends_at: dt.datetime
    running: bool
    open_objections: int


class NoticeDetail(NoticeOut):
    """A notice with its published lines and every objection."""

    lines: list[LineOut]
    objections: list[ObjectionOut]


def notice_out(session: Session, n: PublicNotice) -> NoticeOut:
    reference, state = session.execute(
        select(Batch.reference, Batch.state).where(Batch.id == n.batch_id)
    ).one()
    return NoticeOut(
        id=n.public_id,
        batch=reference,
        policy_id=n.policy_id,
        title=n.title,
        days=n.days,
        working=n.working,
        starts_at=n.starts_at,
        ends_at=n.ends_at,
        running=n.starts_at <= now() < n.ends_at and state != BatchState.REJECTED.value,
        open_objections=notice.open_objections(session, n),
    )


def objection_out(session: Session, o: Objection) -> ObjectionOut:
    line_no = session.scalar(select(BatchLine.line_no).where(BatchLine.id == o.batch_line_id)) or 0
    return ObjectionOut(
        id=o.public_id,
        line_no=line_no,
        state_label=notice.OBJECTION_LABELS[o.state],
        **{
            k: getattr(o, k)
            for k in ("name", "contact", "text", "filed_at", "state", "resolved_at", "resolution")
        },
    )


def notice_detail(session: Session, n: PublicNotice) -> NoticeDetail:
    return NoticeDetail(
        **notice_out(session, n).model_dump(),
        lines=[LineOut(**vars(x)) for x in notice.lines(session, n)],
        objections=[objection_out(session, o) for o in notice.objections(session, n)],
    )


def _open(session: Session, user: StaffUser, reference: str, days: int | None) -> PublicNotice:
    batch = session.scalar(select(Batch).where(Batch.reference == reference))
    if batch is None or not user_scope(user).sees_batch(session, batch):
        raise NotFoundError(f"没有拨付批次 {reference}")
    return notice.open_notice(session, reference, user.username, now(), days=days)


def _resolve(session: Session, user: StaffUser, o: Objection, upheld: bool, reason: str) -> Objection:
    return notice.resolve(session, o.public_id, upheld, reason, user.username, now())


def _visible_notices(session: Session, store: StoreDep, user: StaffUser) -> list[PublicNotice]:
    """The notices of the batches the user sees (their policies, their region)."""
    mine = user_scope(user)
    rows = notice.notices(session, scoped_policy_ids(session, store, user))
    if mine.region is None:
        return rows
    seen = set(session.scalars(select(Batch.id).where(mine.batches())))
    return [n for n in rows if n.batch_id in seen]


# Staff API


@router.get("", response_model=list[NoticeOut], summary="公示（新的在前）")
def list_notices(user: NoticeReader, session: SessionDep, store: StoreDep) -> list[NoticeOut]:
    return [notice_out(session, n) for n in _visible_notices(session, store, user)]


@router.post("", response_model=NoticeDetail, status_code=201, summary="对待复核的批次发起公示")
def open_notice(body: NoticeOpen, user: NoticeOpener, session: SessionDep) -> NoticeDetail:
    return notice_detail(session, _open(session, user, body.batch, body.days))


@router.get("/{public_id}", response_model=NoticeDetail, summary="一次公示：名单和异议")
def get_notice(n: NoticeDep, session: SessionDep) -> NoticeDetail:
    return notice_detail(session, n)


@router.post(
    "/objections/{public_id}/resolve", response_model=ObjectionOut, summary="处理异议（成立则移出该笔明细）"
)
def resolve(body: Resolution, o: ObjectionDep, user: ObjectionResolver, session: SessionDep) -> ObjectionOut:
    return objection_out(session, _resolve(session, user, o, body.upheld, body.reason))


# Console


@pages.get("")
def notices_page(request: Request, user: NoticeReader, session: SessionDep, store: StoreDep) -> Response:
    rows = [notice_out(session, n) for n in _visible_notices(session, store, user)]
    return render(request, "notice_list.html", {"notices": rows})


@pages.post("")
def open_page(
    user: NoticeOpener,
    session: SessionDep,
    batch: Annotated[str, Form(max_length=35)],
    days: Annotated[int | None, Form(ge=1, le=365)] = None,
) -> Response:
    n = _open(session, user, batch, days)
    return redirect(
        f"/console/notices/{n.public_id}", f"已公示 {n.period_text}，公示期满且异议处理完毕后方可复核通过"
    )


@pages.get("/{public_id}")
def notice_page(request: Request, n: NoticeDep, user: NoticeReader, session: SessionDep) -> Response:
    return render(
        request,
        "notice_detail.html",
        {"n": notice_detail(session, n), "can_resolve": may(user, "objection_resolve")},
    )


@pages.post("/objections/{public_id}/resolve")
def resolve_page(
    o: ObjectionDep,
    user: ObjectionResolver,
    session: SessionDep,
    outcome: Annotated[str, Form(pattern="^(upheld|dismissed)$")],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    resolved = _resolve(session, user, o, outcome == "upheld", reason)
    n = session.get(PublicNotice, resolved.notice_id)
    text = "异议成立，该笔明细已移出批次" if outcome == "upheld" else "异议不成立，名单不变"
    return redirect(f"/console/notices/{n.public_id if n else ''}", text)


@pages.get("/batch/{reference}")
def batch_notice(reference: str, user: BatchReader, session: SessionDep) -> Response:
    """From a batch page to its notice (404 when it has none or it lies outside the user's department)."""
    batch = session.scalar(select(Batch).where(Batch.reference == reference))
    found = notice.of_batch(session, batch.id) if batch is not None else None
    if batch is None or found is None or not user_scope(user).sees_batch(session, batch):
        raise NotFoundError(f"批次 {reference} 没有公示")
    return redirect(f"/console/notices/{found.public_id}")


# The public pages


def _public_notice(session: Session, public_id: str) -> PublicNotice | None:
    if not re.fullmatch(r"[0-9a-f]{20}", public_id):
        return None
    n = session.scalar(select(PublicNotice).where(PublicNotice.public_id == public_id))
    return n if n is not None and n.starts_at <= now() else None


PUBLIC_PAGE = 50


def _notice_page(
    request: Request,
    session: Session,
    tokens: TokensDep,
    settings: SettingsDep,
    n: PublicNotice,
    status_code: int = 200,
    *,
    q: str = "",
    offset: int = 0,
    line: int | None = None,
    **context: object,
) -> Response:
    """One page of the published lines (searchable by name or line number) and the objection form for
    the line the reader chose from them (`line`): never one list of every line to pick from."""
    nonce = NONCE.current(request)
    chosen = notice.lines(session, n, line_no=line) if line else []
    response = render(
        request,
        "notice_public.html",
        {
            "n": notice_out(session, n),
            "lines": notice.lines(session, n, search=q, limit=PUBLIC_PAGE, offset=offset),
            "total": notice.count_lines(session, n, q),
            "q": q,
            "offset": offset,
            "page": PUBLIC_PAGE,
            "query": urlencode({"q": q} if q else {}),
            "chosen": chosen[0] if chosen else None,
            "form_csrf": tokens.csrf("objection", n.public_id, nonce),
            **context,
        },
        status_code=status_code,
    )
    NONCE.keep(response, nonce, settings.cookie_secure)
    return response


@public.get("", response_class=HTMLResponse, responses=PUBLIC_RESPONSES, summary="正在公示的拨付名单")
def public_list(request: Request, session: SessionDep) -> Response:
    rows = [notice_out(session, n) for n in notice.running(session, now())]
    return render(request, "notice_public_list.html", {"notices": rows})


@public.get("/{public_id}", response_class=HTMLResponse, responses=PUBLIC_RESPONSES, summary="一次公示的名单")
def public_notice(
    request: Request,
    public_id: str,
    session: SessionDep,
    tokens: TokensDep,
    settings: SettingsDep,
    q: Annotated[str, Query(max_length=100)] = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    line: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> Response:
    n = _public_notice(session, public_id)
    if n is None:
        return render(request, "notice_public_missing.html", {}, status_code=404)
    return _notice_page(request, session, tokens, settings, n, q=q.strip(), offset=offset, line=line)


@public.post(
    "/{public_id}/objection", response_class=HTMLResponse, responses=PUBLIC_RESPONSES, summary="提出异议"
)
def public_objection(
    request: Request,
    public_id: str,
    session: SessionDep,
    tokens: TokensDep,
    settings: SettingsDep,
    line_no: Annotated[int, Form(ge=1, le=1_000_000)],
    name: Annotated[str, Form(max_length=100)] = "",
    contact: Annotated[str, Form(max_length=100)] = "",
    text: Annotated[str, Form(max_length=2000)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    n = _public_notice(session, public_id)
    if n is None:
        return render(request, "notice_public_missing.html", {}, status_code=404)
    ip = client_address(request)
    limiter = request.app.state.limits["objection"]
    if not limiter.hit(ip):
        response = _notice_page(
            request, session, tokens, settings, n, 429, line=line_no, error="提交过于频繁，请稍后再试"
        )
        response.headers["Retry-After"] = str(limiter.retry_after(ip))
        return response
    if not tokens.csrf_ok(csrf, "objection", n.public_id, NONCE.given(request)):
        return _notice_page(
            request, session, tokens, settings, n, 403, line=line_no, error="页面已过期，请重新填写后提交"
        )
    typed = {"line_no": line_no, "name": name, "contact": contact, "text": text}
    try:
        o = notice.file_objection(
            session, n.public_id, line_no, name=name, contact=contact, text=text, now=now(), ip=ip
        )
    except PayoutError as e:  # raised before anything is written; shown on the form to correct
        return _notice_page(
            request, session, tokens, settings, n, 422, line=line_no, error=str(e), typed=typed
        )
    return _notice_page(request, session, tokens, settings, n, received=o.public_id[:8].upper())
