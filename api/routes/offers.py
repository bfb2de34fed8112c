"""Offers: search (by USCC, name, state, policy, run), one offer with its audit trail, the review queue
(初核: hold, drop, release with reasons) and sending the confirmation SMS of released offers.

Every offer id in a path or a body is checked against the user's department.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import and_, func, select
from sqlmodel import Session

from api.deps import (
    CurrentUser,
    OfferDep,
    OfferReader,
    Reviewer,
    SessionDep,
    SmsSender,
    StoreDep,
    department,
    may,
    scoped_offers,
    scoped_policy_ids,
)
from api.routes import now, redirect, render
from payouts import audit, offers, sms
from payouts.errors import NotFoundError
from payouts.models import MatchRun, Offer, OfferState, Payee, PolicyVersion, StaffUser
from payouts.payees import mask_account

router = APIRouter(prefix="/api", tags=["offers"])
pages = APIRouter(prefix="/console", include_in_schema=False)
log = logging.getLogger("zhida.sms")
PAGE = 50


class OfferOut(BaseModel):
    """An offer as staff see it; the account is masked."""

    public_id: str
    policy_id: str
    policy_version: int
    policy_title: str
    department: str
    item_id: str
    period: str
    uscc: str
    name: str
    amount: Decimal
    amount_before_allocation: Decimal
    state: str
    state_label: str
    hold_reason: str | None
    bank_name: str | None
    account_masked: str
    deadline: dt.datetime | None
    created_at: dt.datetime
    released_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    paid_at: dt.datetime | None


class OfferPage(BaseModel):
    """One page of a search: how many match in all, and these."""

    total: int
    offset: int
    offers: list[OfferOut]


class ReviewAction(BaseModel):
    """Offers to hold or drop, and why (required)."""

    offers: list[Annotated[str, Field(max_length=32)]] = Field(min_length=1, max_length=10_000)
    reason: str = Field(min_length=1, max_length=500)


class ReleaseRequest(BaseModel):
    """Which drafted offers to release: of a run, of a policy, or these (held ones too)."""

    run_id: str | None = Field(default=None, max_length=64)
    policy_id: str | None = Field(default=None, max_length=64)
    offers: list[Annotated[str, Field(max_length=32)]] | None = Field(default=None, max_length=10_000)


class Changed(BaseModel):
    """The offers an action changed."""

    changed: int
    offers: list[str]


class ReleaseOut(BaseModel):
    """What release did: sent on to SMS, confirmed outright (no confirmation needed), held for no phone."""

    released: int
    confirmed: int
    held_no_phone: int


class SmsSend(BaseModel):
    """How many notices to send at most (default: all waiting)."""

    limit: int | None = Field(default=None, ge=1, le=100_000)


class SmsOut(BaseModel):
    """What the gateway did."""

    sent: int
    failed: int
    errors: list[str]


class EventOut(BaseModel):
    """One audit event."""

    seq: int
    at: dt.datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    hash: str


def _rows(session: Session, where: list[Any], limit: int, offset: int) -> tuple[int, list[OfferOut]]:
    joined = (
        select(Offer, Payee, PolicyVersion.title, PolicyVersion.department)
        .join(Payee, Payee.id == Offer.payee_id)
        .join(
            PolicyVersion,
            and_(PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version),
        )
        .where(*where)
    )
    total = session.scalar(select(func.count()).select_from(joined.subquery())) or 0
    rows = session.execute(joined.order_by(Offer.id).limit(limit).offset(offset)).all()
    return total, [offer_out(o, p, title, dept) for o, p, title, dept in rows]


def offer_out(o: Offer, p: Payee, title: str, dept: str) -> OfferOut:
    return OfferOut(
        public_id=o.public_id,
        policy_id=o.policy_id,
        policy_version=o.policy_version,
        policy_title=title,
        department=dept,
        item_id=o.item_id,
        period=o.period,
        uscc=o.uscc,
        name=p.name,
        amount=o.amount,
        amount_before_allocation=o.amount_before_allocation,
        state=o.state,
        state_label=offers.label(o.state),
        hold_reason=o.hold_reason,
        bank_name=p.bank_name,
        account_masked=mask_account(p.account_no),
        deadline=o.deadline,
        created_at=o.created_at,
        released_at=o.released_at,
        confirmed_at=o.confirmed_at,
        paid_at=o.paid_at,
    )


def search(
    session: Session,
    user: StaffUser,
    *,
    uscc: str | None = None,
    name: str | None = None,
    states: list[str] | None = None,
    policy_id: str | None = None,
    run_id: str | None = None,
    limit: int = PAGE,
    offset: int = 0,
) -> tuple[int, list[OfferOut]]:
    """Offers of the user's department matching every given filter, in creation order."""
    where: list[Any] = []
    mine = department(user)
    if mine is not None:
        where.append(PolicyVersion.department == mine)
    if uscc:
        where.append(Offer.uscc.startswith(uscc.upper(), autoescape=True))
    if name:
        where.append(Payee.name.contains(name, autoescape=True))
    if states:
        where.append(Offer.state.in_(states))
    if policy_id:
        where.append(Offer.policy_id == policy_id)
    if run_id:
        where.append(
            Offer.match_run_id == select(MatchRun.id).where(MatchRun.run_id == run_id).scalar_subquery()
        )
    return _rows(session, where, limit, offset)


def release_scoped(
    session: Session, user: StaffUser, store: StoreDep, body: ReleaseRequest, at: dt.datetime
) -> offers.ReleaseResult:
    """Release as asked, never beyond the user's department: a scoped user releases policy by policy."""
    if body.offers is not None:
        ids = scoped_offers(session, user, body.offers)
        return offers.release(
            session, user.username, at, run_id=body.run_id, policy_id=body.policy_id, public_ids=ids
        )
    scope = scoped_policy_ids(session, store, user)
    if scope is None:
        return offers.release(session, user.username, at, run_id=body.run_id, policy_id=body.policy_id)
    if body.policy_id is not None and body.policy_id not in scope:
        raise NotFoundError(f"没有政策 {body.policy_id}")
    total = offers.ReleaseResult()
    for pid in sorted(scope if body.policy_id is None else {body.policy_id}):
        r = offers.release(session, user.username, at, run_id=body.run_id, policy_id=pid)
        total.released += r.released
        total.confirmed += r.confirmed
        total.held_no_phone += r.held_no_phone
    return total


def gateway(request: Request) -> sms.SmsGateway:
    """The demo phone when it is on (it keeps the links to show them), else the outbox."""
    phone = request.app.state.phone
    return (
        phone
        if phone is not None
        else sms.OutboxGateway(echo=lambda line: log.info("sms", extra={"fields": {"to": line[:11]}}))
    )


def send_sms(request: Request, session: Session, user: StaffUser, limit: int | None) -> sms.SendResult:
    settings = request.app.state.settings.payouts()
    return sms.send_notices(session, gateway(request), now(), settings, limit=limit, actor=user.username)


@router.get(
    "/offers", response_model=OfferPage, summary="查询要约：统一社会信用代码、企业名称、状态、政策、匹配运行"
)
def list_offers(
    user: OfferReader,
    session: SessionDep,
    uscc: Annotated[str | None, Query(max_length=18)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    state: OfferState | None = None,
    policy_id: Annotated[str | None, Query(max_length=64)] = None,
    run_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> OfferPage:
    total, rows = search(
        session,
        user,
        uscc=uscc,
        name=name,
        states=[state.value] if state else None,
        policy_id=policy_id,
        run_id=run_id,
        limit=limit,
        offset=offset,
    )
    return OfferPage(total=total, offset=offset, offers=rows)


@router.get("/offers/{public_id}", response_model=OfferOut, summary="一条要约")
def get_offer(offer: OfferDep, session: SessionDep) -> OfferOut:
    _, rows = _rows(session, [Offer.id == offer.id], 1, 0)
    return rows[0]


@router.get("/offers/{public_id}/audit", response_model=list[EventOut], summary="一条要约的审计轨迹")
def offer_audit(offer: OfferDep, session: SessionDep) -> list[EventOut]:
    return [
        EventOut.model_validate(e, from_attributes=True)
        for e in audit.history(session, "offer", offer.public_id)
    ]


@router.post("/review/hold", response_model=Changed, summary="初核：暂缓（须写明原因）")
def hold(body: ReviewAction, user: Reviewer, session: SessionDep) -> Changed:
    done = offers.hold(session, scoped_offers(session, user, body.offers), body.reason, user.username, now())
    return Changed(changed=len(done), offers=[o.public_id for o in done])


@router.post("/review/drop", response_model=Changed, summary="初核：剔除（须写明原因）")
def drop(body: ReviewAction, user: Reviewer, session: SessionDep) -> Changed:
    done = offers.drop(session, scoped_offers(session, user, body.offers), body.reason, user.username, now())
    return Changed(changed=len(done), offers=[o.public_id for o in done])


@router.post("/review/release", response_model=ReleaseOut, summary="初核通过：发布要约")
def release(body: ReleaseRequest, user: Reviewer, session: SessionDep, store: StoreDep) -> ReleaseOut:
    r = release_scoped(session, user, store, body, now())
    return ReleaseOut(released=r.released, confirmed=r.confirmed, held_no_phone=r.held_no_phone)


@router.post("/sms/send", response_model=SmsOut, summary="给已发布的要约发送确认短信")
def send(body: SmsSend, request: Request, user: SmsSender, session: SessionDep) -> SmsOut:
    r = send_sms(request, session, user, body.limit)
    return SmsOut(sent=r.sent, failed=r.failed, errors=r.errors[:100])


# Console

REVIEW_STATES = [OfferState.DRAFTED.value, OfferState.HELD.value]


@pages.get("/review")
def review_page(
    request: Request,
    user: Reviewer,
    session: SessionDep,
    store: StoreDep,
    policy_id: Annotated[str | None, Query(max_length=64)] = None,
    run_id: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> Response:
    states = [state] if state in REVIEW_STATES else REVIEW_STATES
    total, rows = search(
        session, user, states=states, policy_id=policy_id or None, run_id=run_id or None, offset=offset
    )
    filters = {"policy_id": policy_id or "", "run_id": run_id or "", "state": state or ""}
    released = session.scalar(select(func.count()).where(Offer.state == OfferState.RELEASED.value)) or 0
    scope = scoped_policy_ids(session, store, user)
    policies = sorted(
        set(session.scalars(select(PolicyVersion.policy_id).distinct())) & scope
        if scope is not None
        else set(session.scalars(select(PolicyVersion.policy_id).distinct()))
    )
    return render(
        request,
        "review.html",
        {
            "offers": rows,
            "total": total,
            "offset": offset,
            "page": PAGE,
            "filters": filters,
            "query": urlencode({k: v for k, v in filters.items() if v}),
            "released_waiting": released,
            "policies": policies,
            "can_send": may(user, "sms_send"),
        },
    )


@pages.post("/review/action")
def review_action(
    user: Reviewer,
    session: SessionDep,
    store: StoreDep,
    action: Annotated[str, Form(max_length=16)],
    offer: Annotated[list[str], Form(max_length=10_000)] = [],  # noqa: B006  (FastAPI copies defaults)
    reason: Annotated[str, Form(max_length=500)] = "",
    policy_id: Annotated[str, Form(max_length=64)] = "",
    run_id: Annotated[str, Form(max_length=64)] = "",
    back: Annotated[str, Form(max_length=500)] = "/console/review",
) -> Response:
    ids = offer
    back = back if back.startswith("/console/") else "/console/review"
    if action in ("hold", "drop"):
        if not ids:
            return redirect(back, "请先勾选要约", "error")
        do = offers.hold if action == "hold" else offers.drop
        done = do(session, scoped_offers(session, user, ids), reason, user.username, now())
        return redirect(back, f"已{'暂缓' if action == 'hold' else '剔除'} {len(done)} 条")
    if action == "release":
        body = (
            ReleaseRequest(offers=ids)
            if ids
            else ReleaseRequest(policy_id=policy_id or None, run_id=run_id or None)
        )
        r = release_scoped(session, user, store, body, now())
        return redirect(
            back,
            f"已发布 {r.released} 条，直接确认 {r.confirmed} 条（政策无需意愿确认），因无联系电话暂缓 {r.held_no_phone} 条",
        )
    return redirect(back, f"未知操作 {action}", "error")


@pages.post("/sms/send")
def send_page(request: Request, user: SmsSender, session: SessionDep) -> Response:
    r = send_sms(request, session, user, None)
    text = f"确认短信：发送 {r.sent} 条，失败 {r.failed} 条"
    if request.app.state.phone is not None:
        text += "（演示：短信内容见“演示手机”页面）"
    return redirect("/console/review", text)


@pages.get("/offers")
def offers_page(
    request: Request,
    user: OfferReader,
    session: SessionDep,
    uscc: Annotated[str | None, Query(max_length=18)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    policy_id: Annotated[str | None, Query(max_length=64)] = None,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> Response:
    valid = state if state in {s.value for s in OfferState} else None
    total, rows = search(
        session,
        user,
        uscc=uscc,
        name=name,
        states=[valid] if valid else None,
        policy_id=policy_id or None,
        offset=offset,
    )
    filters = {"uscc": uscc or "", "name": name or "", "state": valid or "", "policy_id": policy_id or ""}
    return render(
        request,
        "offers.html",
        {
            "offers": rows,
            "total": total,
            "offset": offset,
            "page": PAGE,
            "filters": filters,
            "query": urlencode({k: v for k, v in filters.items() if v}),
            "states": [(s.value, offers.label(s.value)) for s in OfferState],
        },
    )


@pages.get("/offers/{public_id}")
def offer_page(request: Request, offer: OfferDep, user: CurrentUser, session: SessionDep) -> Response:
    _, rows = _rows(session, [Offer.id == offer.id], 1, 0)
    return render(
        request,
        "offer.html",
        {
            "offer": rows[0],
            "events": audit.history(session, "offer", offer.public_id),
            "can_review": may(user, "review"),
        },
    )
