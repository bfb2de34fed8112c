"""Offers: search (by USCC, name, state, policy, run), one offer with its audit trail, the review queue
(初核: hold, drop, release with reasons) and sending the confirmation SMS of released offers.

Every offer id in a path or a body is checked against the user's department.
"""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Annotated, Any, Literal
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
    in_scope,
    may,
    policy_department,
    scoped_offers,
    scoped_policy_ids,
)
from api.routes import now, redirect, render
from payouts import audit, offers, sms
from payouts.errors import NotFoundError
from payouts.models import MatchRun, Offer, OfferState, Payee, PolicyVersion, StaffUser
from payouts.payees import mask_account
from payouts.selection import NothingChosen, OfferFilter, Preview, Selection, Tally

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


class OfferFilterIn(BaseModel):
    """The filters of the review queue or the offer list."""

    policy_id: str | None = Field(default=None, max_length=64)
    run_id: str | None = Field(default=None, max_length=64)
    state: Literal["drafted", "held"] | None = None
    uscc: str | None = Field(default=None, max_length=18)
    name: str | None = Field(default=None, max_length=100)


class Choice(BaseModel):
    """The offers a bulk action acts on: the ticked ones (`offers`), or every offer matching `filter`.

    Exactly one of the two; a request naming neither is refused, never taken as "all offers".
    """

    offers: list[Annotated[str, Field(max_length=32)]] | None = Field(default=None, max_length=10_000)
    filter: OfferFilterIn | None = None

    def selection(self, user: StaffUser, *, review_queue: bool = True) -> Selection:
        f = self.filter
        states = ((f.state,) if f.state else tuple(REVIEW_STATES)) if f and review_queue else ()
        return Selection(
            offers=tuple(self.offers) if self.offers is not None else None,
            filter=OfferFilter(f.policy_id, f.run_id, states, f.uscc, f.name) if f else None,
            department=department(user),
        )


class Confirmed(Choice):
    """A chosen set with the count and total its user saw in the preview: refused if they changed."""

    expected_count: int = Field(ge=0)
    expected_total: Decimal = Field(ge=0, max_digits=18, decimal_places=2)

    @property
    def expected(self) -> Tally:
        return Tally(self.expected_count, self.expected_total)


class PreviewRequest(Choice):
    """Which bulk action, on which offers."""

    action: Literal["release", "hold", "drop", "notify"]


class PolicyShareOut(BaseModel):
    policy_id: str
    title: str
    direct: bool = Field(description="政策无需意愿确认：发布即直接确认，进入拨付")
    count: int
    total: Decimal


class PreviewOut(BaseModel):
    """What the action would act on now: send `count` and `total` back as expected_count/expected_total."""

    count: int
    total: Decimal
    direct_count: int
    direct_total: Decimal
    policies: list[PolicyShareOut]


class ReviewAction(Confirmed):
    """Offers to hold or drop, and why (required)."""

    reason: str = Field(min_length=1, max_length=500)


class ReleaseRequest(Confirmed):
    """Drafted offers to release (ticked ones may also be held ones)."""


class Changed(BaseModel):
    """The offers an action changed."""

    changed: int
    total: Decimal
    offers: list[str]


class ReleaseOut(BaseModel):
    """What release did: sent on to SMS, confirmed outright (no confirmation needed), held for no phone."""

    released: int
    confirmed: int
    held_no_phone: int
    total: Decimal


class SmsSend(Confirmed):
    """Send the confirmation SMS of the released offers chosen."""


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


def preview_out(p: Preview) -> PreviewOut:
    return PreviewOut(
        count=p.tally.count,
        total=p.tally.total,
        direct_count=p.direct.count,
        direct_total=p.direct.total,
        policies=[PolicyShareOut(**vars(share)) for share in p.policies],
    )


def checked_selection(
    session: Session, user: StaffUser, choice: Choice, review_queue: bool = True
) -> Selection:
    """The user's selection; ticked offers or a filter's policy outside the user's department are
    refused by name (they do not exist for the user)."""
    selection = choice.selection(user, review_queue=review_queue)
    if selection.offers is not None:
        scoped_offers(session, user, selection.offers)
    pid = choice.filter.policy_id if choice.filter else None
    if pid and not in_scope(user, policy_department(session, pid)):
        raise NotFoundError(f"没有政策 {pid}")
    return selection


def gateway(request: Request) -> sms.SmsGateway:
    """The demo phone when it is on (it keeps the links to show them), else the outbox."""
    phone = request.app.state.phone
    return (
        phone
        if phone is not None
        else sms.OutboxGateway(
            echo=lambda line: log.info("sms", extra={"fields": {"to": line.split(" ", 1)[0]}})
        )
    )


def send_sms(
    request: Request, session: Session, user: StaffUser, selection: Selection, expected: Tally
) -> sms.SendResult:
    settings = request.app.state.settings.payouts()
    return sms.send_notices(
        session,
        gateway(request),
        now(),
        settings,
        actor=user.username,
        selection=selection,
        expected=expected,
    )


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


@router.post(
    "/review/preview",
    response_model=PreviewOut,
    summary="批量操作前预览：将处理的要约笔数、金额和政策（确认时原样带回笔数和金额）",
)
def review_preview(body: PreviewRequest, user: Reviewer, session: SessionDep) -> PreviewOut:
    selection = checked_selection(session, user, body, review_queue=body.action != "notify")
    return preview_out(offers.preview_action(session, selection, body.action))


@router.post("/review/hold", response_model=Changed, summary="初核：暂缓所选要约（须写明原因）")
def hold(body: ReviewAction, user: Reviewer, session: SessionDep) -> Changed:
    return set_aside(session, user, OfferState.HELD, body)


@router.post("/review/drop", response_model=Changed, summary="初核：剔除所选要约（须写明原因）")
def drop(body: ReviewAction, user: Reviewer, session: SessionDep) -> Changed:
    return set_aside(session, user, OfferState.DROPPED, body)


def set_aside(session: Session, user: StaffUser, to: OfferState, body: ReviewAction) -> Changed:
    selection = checked_selection(session, user, body)
    done = offers.set_aside(session, to, selection, body.reason, user.username, now(), expected=body.expected)
    return Changed(changed=len(done), total=done.tally.total, offers=done.ids)


@router.post("/review/release", response_model=ReleaseOut, summary="初核通过：发布所选要约")
def release(body: ReleaseRequest, user: Reviewer, session: SessionDep) -> ReleaseOut:
    selection = checked_selection(session, user, body)
    r = offers.release(session, user.username, now(), selection=selection, expected=body.expected)
    return ReleaseOut(
        released=r.released, confirmed=r.confirmed, held_no_phone=r.held_no_phone, total=r.tally.total
    )


@router.post("/sms/send", response_model=SmsOut, summary="给所选的已发布要约发送确认短信")
def send(body: SmsSend, request: Request, user: SmsSender, session: SessionDep) -> SmsOut:
    selection = checked_selection(session, user, body, review_queue=False)
    r = send_sms(request, session, user, selection, body.expected)
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
    released = offers.preview_action(
        session, Selection(filter=OfferFilter(), department=department(user)), "notify"
    )
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
            "released_waiting": released.tally.count,
            "policies": policies,
            "can_send": may(user, "sms_send"),
        },
    )


ACTION_WORDS = {"release": "发布", "hold": "暂缓", "drop": "剔除", "notify": "发送确认短信"}


class BulkForm(BaseModel):
    """A bulk action's console form: the action, the ticked offers or the filter, and where to go back."""

    action: str = Field(max_length=16)
    scope: Literal["ticked", "matching"] = "ticked"
    offer: list[Annotated[str, Field(max_length=32)]] = Field(default_factory=list, max_length=10_000)
    reason: str = Field(default="", max_length=500)
    policy_id: str = Field(default="", max_length=64)
    run_id: str = Field(default="", max_length=64)
    state: str = Field(default="", max_length=16)
    back: str = Field(default="/console/review", max_length=500)

    @property
    def back_url(self) -> str:
        return self.back if self.back.startswith("/console/") else "/console/review"

    def choice(self) -> dict[str, Any]:
        """The `Choice` fields: the ticked offers, or all matching the filter."""
        if self.scope == "matching":
            f = {"policy_id": self.policy_id, "run_id": self.run_id, "state": self.state}
            return {"filter": {k: v or None for k, v in f.items()}}
        return {"offers": self.offer or None}


class ConfirmedBulkForm(BulkForm):
    """The confirmation page's form: the same choice with the count and total it showed."""

    expected_count: int = Field(ge=0)
    expected_total: Decimal = Field(ge=0, max_digits=18, decimal_places=2)


@pages.post("/review/preview")
def review_confirm_page(
    request: Request, user: Reviewer, session: SessionDep, form: Annotated[BulkForm, Form()]
) -> Response:
    """The second step of a bulk action: what it will act on (count, total, policies), to confirm."""
    back = form.back_url
    if form.action not in ACTION_WORDS:
        return redirect(back, "未知操作", "error")
    if form.action in ("hold", "drop") and not form.reason.strip():
        return redirect(back, "暂缓或剔除须写明原因", "error")
    try:
        choice = Choice.model_validate(form.choice())
        selection = checked_selection(session, user, choice, review_queue=form.action != "notify")
    except NothingChosen as e:
        return redirect(back, str(e), "error")
    return render(
        request,
        "review_confirm.html",
        {
            "form": form,
            "word": ACTION_WORDS[form.action],
            "preview": offers.preview_action(session, selection, form.action),
            "back": back,
            "target": "/console/sms/send" if form.action == "notify" else "/console/review/action",
        },
    )


@pages.post("/review/action")
def review_action(
    user: Reviewer, session: SessionDep, form: Annotated[ConfirmedBulkForm, Form()]
) -> Response:
    back = form.back_url
    fields = {**form.choice(), "expected_count": form.expected_count, "expected_total": form.expected_total}
    # A refused action raises (the error page says why) so that its transaction rolls back whole.
    if form.action in ("hold", "drop"):
        if not form.reason.strip():
            return redirect(back, "暂缓或剔除须写明原因", "error")
        to = OfferState.HELD if form.action == "hold" else OfferState.DROPPED
        done = set_aside(session, user, to, ReviewAction.model_validate({**fields, "reason": form.reason}))
        return redirect(back, f"已{ACTION_WORDS[form.action]} {done.changed:,} 条，合计 {done.total:,.2f} 元")
    if form.action == "release":
        r = release(ReleaseRequest.model_validate(fields), user, session)
        return redirect(
            back,
            f"已发布 {r.released:,} 条，直接确认 {r.confirmed:,} 条（政策无需意愿确认），"
            f"因无联系电话暂缓 {r.held_no_phone:,} 条，合计 {r.total:,.2f} 元",
        )
    return redirect(back, "未知操作", "error")


@pages.post("/sms/send")
def send_page(
    request: Request, user: SmsSender, session: SessionDep, form: Annotated[ConfirmedBulkForm, Form()]
) -> Response:
    body = SmsSend.model_validate(
        {**form.choice(), "expected_count": form.expected_count, "expected_total": form.expected_total}
    )
    selection = checked_selection(session, user, body, review_queue=False)
    r = send_sms(request, session, user, selection, body.expected)
    text = f"确认短信：发送 {r.sent:,} 条，失败 {r.failed:,} 条"
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
