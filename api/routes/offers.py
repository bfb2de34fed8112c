"""Offers: search (by USCC, name, state, policy, run), one offer with its audit trail, the review queue
(初核: hold, drop, release with reasons) and sending the confirmation SMS of released offers.

Every offer id in a path or a body is checked against the user's department.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
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
    SettingsDep,
    SmsSender,
    StoreDep,
    in_scope,
    may,
    policy_department,
    scoped_offers,
    scoped_policy_ids,
    user_scope,
)
from api.routes import now, redirect, render
from payouts import audit, jointreview, offers, sms
from payouts.errors import NotFoundError
from payouts.models import MatchRun, Offer, OfferState, Payee, PolicyVersion, StaffUser
from payouts.payees import mask_account
from payouts.selection import (
    CENT,
    REGION_PREFIX,
    NothingChosen,
    OfferFilter,
    Preview,
    Selection,
    Tally,
)
from portal.supermarket import region_name, section_names
from reports.errors import ReportError
from reports.sla import light_condition
from reports.spreadsheet import csv_row, text_cell
from rules import formats

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
    item_title: str
    period: str
    uscc: str
    name: str
    industry_section: str | None = None
    size_class: str | None = None
    region_code: str | None = None  # the enterprise's region (GB/T 2260) from the profile
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
    """One page of a search: how many match in all (`more`: more than `total`, which is then the
    count's cap), and these."""

    total: int
    more: bool = False
    offset: int
    offers: list[OfferOut]


class OfferFilterIn(BaseModel):
    """The filters of the review queue or the offer list."""

    policy_id: str | None = Field(default=None, max_length=64)
    item_id: str | None = Field(default=None, max_length=64)
    run_id: str | None = Field(default=None, max_length=64)
    state: Literal["drafted", "held"] | None = None
    uscc: str | None = Field(default=None, max_length=18)
    name: str | None = Field(default=None, max_length=100)
    enterprise: str | None = Field(
        default=None, max_length=100, description="统一社会信用代码开头或企业名称的一部分"
    )
    region: str | None = Field(
        default=None, pattern=r"^\d{2}(\d{2}(\d{2})?)?$", description="行政区划代码前缀（2、4或6位）"
    )
    amount_min: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=2)
    amount_max: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=2)
    industry: str | None = Field(default=None, pattern=r"^[A-Z]$", description="行业门类（GB/T 4754 字母）")
    size_class: Literal["large", "medium", "small", "micro"] | None = Field(
        default=None, description="企业规模：large 大型、medium 中型、small 小型、micro 微型"
    )

    def offer_filter(self, states: tuple[str, ...]) -> OfferFilter:
        return OfferFilter(
            policy_id=self.policy_id,
            run_id=self.run_id,
            states=states,
            uscc=self.uscc,
            name=self.name,
            item_id=self.item_id,
            region=self.region,
            amount_min=self.amount_min,
            amount_max=self.amount_max,
            enterprise=self.enterprise,
            industry=self.industry,
            size_class=self.size_class,
        )


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
            filter=f.offer_filter(states) if f else None,
            scope=user_scope(user),
            deciding=True,  # an action acts on the offers whose review the user leads (payouts/scope.py)
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


SORTS: dict[str, tuple[str, list[Any]]] = {
    "created": ("导入顺序", [Offer.id]),
    "amount_desc": ("金额从高到低", [Offer.amount.desc(), Offer.id]),
    "amount_asc": ("金额从低到高", [Offer.amount, Offer.id]),
    "name": ("企业名称", [Payee.name, Offer.id]),
}
PAGE_SIZES = (20, 50, 100, 200, 500)


# Lists count their offers exactly up to this many (the export's limit too); beyond it they say "more
# than", so that a list of a million offers does not count them all for every page. A bulk action on
# every offer matching a filter shows its exact count and total before it acts (`preview_action`).
COUNT_CAP = 200_000


def count_upto(session: Session, where: list[Any]) -> int:
    """How many offers match `where`, counted up to `COUNT_CAP` + 1 (more than the cap: there are more)."""
    cap = COUNT_CAP
    some = select(Offer.id).where(*where).limit(cap + 1).subquery()
    return session.scalar(select(func.count()).select_from(some)) or 0


def _rows(
    session: Session, where: list[Any], limit: int, offset: int, sort: str = "created"
) -> tuple[int, list[OfferOut]]:
    """The count (see `count_upto`) and one page of the offers matching `where` (conditions on the offer
    alone). The page's ids are found on the offer table first and only they are joined to their payee
    and policy version: a deep page skips index entries, not joined rows."""
    order = SORTS.get(sort, SORTS["created"])[1]
    ids = select(Offer.id).where(*where)
    if sort == "name":
        ids = ids.join(Payee, Payee.id == Offer.payee_id)
    page = ids.order_by(*order).limit(limit).offset(offset).subquery()
    joined = (
        select(Offer, Payee, PolicyVersion.title, PolicyVersion.department, PolicyVersion.items)
        .join(Payee, Payee.id == Offer.payee_id)
        .join(
            PolicyVersion,
            and_(PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version),
        )
        .where(Offer.id.in_(select(page.c.id)))
        .order_by(*order)
    )
    rows = session.execute(joined).all()
    titles: dict[str, dict[str, str]] = {}  # a policy version's items JSON → item id → title
    out = []
    for o, p, title, dept, items in rows:
        if items not in titles:
            titles[items] = {i["id"]: i.get("title") or i["id"] for i in json.loads(items)}
        out.append(offer_out(o, p, title, dept, titles[items].get(o.item_id, o.item_id)))
    return count_upto(session, where), out


def offer_out(o: Offer, p: Payee, title: str, dept: str, item_title: str) -> OfferOut:
    return OfferOut(
        public_id=o.public_id,
        policy_id=o.policy_id,
        policy_version=o.policy_version,
        policy_title=title,
        department=dept,
        item_id=o.item_id,
        item_title=item_title,
        period=o.period,
        uscc=o.uscc,
        name=p.name,
        industry_section=o.industry_section,
        size_class=o.size_class,
        region_code=o.region_code,
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
    f: OfferFilter,
    *,
    sort: str = "created",
    limit: int = PAGE,
    offset: int = 0,
    also: Any = None,
) -> tuple[int, list[OfferOut]]:
    """Offers of the user's department matching `f`: the very condition a bulk action on "all matching"
    acts on (`Selection.condition`), so the list and the action never disagree. `also`: one more
    condition on the offer table (the offers an SLA light counts)."""
    where = Selection(filter=f, scope=user_scope(user)).condition()
    return _rows(session, [where] if also is None else [where, also], limit, offset, sort)


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
    "/offers",
    response_model=OfferPage,
    summary="查询要约：统一社会信用代码、企业名称、状态、政策、事项、匹配运行、地区、金额范围",
)
def list_offers(
    user: OfferReader,
    session: SessionDep,
    uscc: Annotated[str | None, Query(max_length=18)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    enterprise: Annotated[str | None, Query(max_length=100)] = None,
    state: OfferState | None = None,
    policy_id: Annotated[str | None, Query(max_length=64)] = None,
    item_id: Annotated[str | None, Query(max_length=64)] = None,
    run_id: Annotated[str | None, Query(max_length=64)] = None,
    region: Annotated[str | None, Query(pattern=r"^\d{2}(\d{2}(\d{2})?)?$")] = None,
    amount_min: Annotated[Decimal | None, Query(ge=0, max_digits=18, decimal_places=2)] = None,
    amount_max: Annotated[Decimal | None, Query(ge=0, max_digits=18, decimal_places=2)] = None,
    sort: Literal["created", "amount_desc", "amount_asc", "name"] = "created",
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> OfferPage:
    wanted = OfferFilter(
        policy_id=policy_id,
        run_id=run_id,
        states=(state.value,) if state else (),
        uscc=uscc,
        name=name,
        item_id=item_id,
        region=region,
        amount_min=amount_min,
        amount_max=amount_max,
        enterprise=enterprise,
    )
    total, rows = search(session, user, wanted, sort=sort, limit=limit, offset=offset)
    return OfferPage(total=min(total, COUNT_CAP), more=total > COUNT_CAP, offset=offset, offers=rows)


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


class OpinionIn(BaseModel):
    """A co-reviewing department's opinion (会签意见) on the ticked offers: agree or not (with a reason)."""

    offers: list[Annotated[str, Field(max_length=32)]] = Field(min_length=1, max_length=10_000)
    agree: bool
    note: str = Field(default="", max_length=500)


@router.post(
    "/review/opinion", response_model=Changed, summary="会签：本部门对所选要约出具意见（由牵头部门决定）"
)
def opinion(body: OpinionIn, user: Reviewer, session: SessionDep) -> Changed:
    ids = scoped_offers(session, user, body.offers)
    n = jointreview.give(session, ids, agree=body.agree, note=body.note, by=user.username, now=now())
    total = session.scalar(select(func.coalesce(func.sum(Offer.amount), 0)).where(Offer.public_id.in_(ids)))
    return Changed(changed=n, total=Decimal(total).quantize(CENT), offers=ids)


@pages.post("/offers/{public_id}/opinion")
def opinion_page(
    offer: OfferDep,
    user: Reviewer,
    session: SessionDep,
    agree: Annotated[str, Form(pattern="^(yes|no)$")],
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    jointreview.give(session, [offer.public_id], agree=agree == "yes", note=note, by=user.username, now=now())
    return redirect(f"/console/offers/{offer.public_id}", "已出具会签意见，由牵头部门决定")


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


class QueueQuery(BaseModel):
    """The review queue's filters as the console's forms send them; a blank field filters nothing.

    `item` is `policy_id/item_id` (an item chosen from the list); `q` is a USCC prefix or part of a name.
    """

    policy_id: str = Field(default="", max_length=64)
    item: str = Field(default="", max_length=130)
    run_id: str = Field(default="", max_length=64)
    state: str = Field(default="", max_length=16)
    region: str = Field(default="", max_length=6)
    amount_min: str = Field(default="", max_length=24)
    amount_max: str = Field(default="", max_length=24)
    q: str = Field(default="", max_length=100)
    industry: str = Field(default="", max_length=1)
    size_class: str = Field(default="", max_length=8)

    def values(self) -> dict[str, str]:
        return {k: v.strip() for k, v in self.model_dump(include=set(QueueQuery.model_fields)).items()}

    def filter_in(self) -> OfferFilterIn:
        """The filter these fields name; a malformed amount or region is refused (ValueError, in Chinese)."""
        v = self.values()
        policy_id, item_id = v["policy_id"], ""
        if "/" in v["item"]:
            item_policy, item_id = v["item"].split("/", 1)
            if policy_id and item_policy != policy_id:  # an item of another policy than the one chosen
                item_id = ""
            else:
                policy_id = item_policy
        if v["region"] and not REGION_PREFIX.fullmatch(v["region"]):
            raise ValueError("地区代码应为2、4或6位数字")
        if v["industry"] and v["industry"] not in section_names():
            raise ValueError("行业门类应从列表中选择")
        if v["size_class"] and v["size_class"] not in formats.SIZE_LABELS:
            raise ValueError("企业规模应从列表中选择：大型、中型、小型或微型")
        amounts: dict[str, Decimal | None] = {}
        for key, word in (("amount_min", "最低金额"), ("amount_max", "最高金额")):
            text = v[key].replace(",", "")
            try:
                amounts[key] = Decimal(text) if text else None
            except ArithmeticError:
                raise ValueError(f"{word}应为数字（元），例如 50000") from None
            value = amounts[key]
            if value is not None and (not value.is_finite() or value < 0 or value != value.quantize(CENT)):
                raise ValueError(f"{word}应为不小于0的金额，至多两位小数")
        return OfferFilterIn(
            policy_id=policy_id or None,
            item_id=item_id or None,
            run_id=v["run_id"] or None,
            state=v["state"] if v["state"] in REVIEW_STATES else None,  # type: ignore[arg-type]
            region=v["region"] or None,
            enterprise=v["q"] or None,
            industry=v["industry"] or None,
            size_class=v["size_class"] or None,  # type: ignore[arg-type]
            **amounts,
        )


# The queue's filter fields, in the order its forms carry them from step to step.
FILTER_KEYS = tuple(QueueQuery.model_fields)


def latest_policies(session: Session, store: Any, user: StaffUser) -> dict[str, PolicyVersion]:
    """The latest imported version of each policy the user may see, by policy id, in title order."""
    scope = scoped_policy_ids(session, store, user)
    latest: dict[str, PolicyVersion] = {}
    for pv in session.scalars(select(PolicyVersion).order_by(PolicyVersion.policy_id, PolicyVersion.version)):
        if scope is None or pv.policy_id in scope:
            latest[pv.policy_id] = pv
    return dict(sorted(latest.items(), key=lambda kv: kv[1].title))


def queue_choices(session: Session, store: Any, user: StaffUser) -> dict[str, Any]:
    """What the review queue's lists offer: policies and items by title, match runs by date, and the
    regions (GB/T 2260 names) of the enterprises waiting for review."""
    latest = latest_policies(session, store, user)
    policies = [(pid, pv.title) for pid, pv in latest.items()]
    items = [
        (pv.title, [(f"{pid}/{i['id']}", i.get("title") or i["id"]) for i in json.loads(pv.items)])
        for pid, pv in latest.items()
    ]
    mine = user_scope(user)
    imported = session.scalars(select(MatchRun).order_by(MatchRun.imported_at.desc()).limit(200)).all()
    # A run's offers as the user may see them: a department's or region's staff never the run-wide count.
    counts = {r.run_id: r.offers for r in imported}
    if not mine.everything:
        totals = offers.run_totals(session, list(counts), mine)
        counts = {r: totals.get(r, (0, 0))[0] for r in counts}
    runs = [
        (
            r.run_id,
            f"{formats.staff_time(r.imported_at)} 导入 · 数据日 {formats.day(r.as_of)} · {counts[r.run_id]:,} 条",
        )
        for r in imported
    ]
    codes = session.scalars(
        select(Offer.region_code)
        .where(Offer.state.in_(REVIEW_STATES), Offer.region_code.is_not(None), mine.offers())
        .distinct()
    )
    regions = region_choices({c for c in codes if c and len(c) == 6 and c.isdigit()}, mine.region)
    industries = [(code, f"{code} {name}") for code, name in sorted(section_names().items())]
    sizes = list(formats.SIZE_LABELS.items())
    return {
        "policies": policies,
        "items": items,
        "runs": runs,
        "regions": regions,
        "industries": industries,
        "size_classes": sizes,
        "industry_names": section_names(),
        "size_names": formats.SIZE_LABELS,
    }


def region_choices(codes: set[str], within: str | None) -> list[tuple[str, str]]:
    """The review queue's regions, from the enterprises' region codes (`offer.region_code`, GB/T 2260):
    each province, its cities and their counties, indented, by name; only those inside `within` (the user's
    region prefix, payouts/scope.py), so a county's staff are offered their county alone."""
    prefixes = set()
    for code in codes:
        prefixes.add(code[:2])
        if code[2:4] != "00":
            prefixes.add(code[:4])
        if code[4:] != "00":
            prefixes.add(code)
    shown = sorted(p for p in prefixes if within is None or p.startswith(within))
    depth = min((len(p) for p in shown), default=2)
    return [(p, "　" * ((len(p) - depth) // 2) + region_name(p)) for p in shown]


@pages.get("/review")
def review_page(
    request: Request,
    user: Reviewer,
    session: SessionDep,
    store: StoreDep,
    query: Annotated[QueueQuery, Query()],
    sort: Annotated[str, Query(max_length=16)] = "created",
    size: Annotated[int, Query(ge=1, le=500)] = PAGE,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> Response:
    sort = sort if sort in SORTS else "created"
    size = size if size in PAGE_SIZES else PAGE
    error = None
    try:
        f = query.filter_in()
        total, rows = search(
            session, user, f.offer_filter(_review_states(f)), sort=sort, limit=size, offset=offset
        )
    except ValueError as e:
        error, total, rows = str(e), 0, []
    filters = query.values()
    released = offers.preview_action(
        session, Selection(filter=OfferFilter(), scope=user_scope(user), deciding=True), "notify"
    )
    kept = {k: v for k, v in filters.items() if v}
    view = {
        **kept,
        **({"sort": sort} if sort != "created" else {}),
        **({"size": size} if size != PAGE else {}),
    }
    return render(
        request,
        "review.html",
        {
            "offers": rows,
            "total": min(total, COUNT_CAP),
            "more": total > COUNT_CAP,
            "offset": offset,
            "page": size,
            "filters": filters,
            "filtered": bool(kept),
            "filter_error": error,
            "sort": sort,
            "sorts": [(k, label) for k, (label, _) in SORTS.items()],
            "sizes": PAGE_SIZES,
            "query": urlencode(view),
            "filter_query": urlencode(kept),
            "released_waiting": released.tally.count,
            "can_send": may(user, "sms_send"),
            "filter_keys": FILTER_KEYS,
            **queue_choices(session, store, user),
        },
    )


def _review_states(f: OfferFilterIn) -> tuple[str, ...]:
    return (f.state,) if f.state else tuple(REVIEW_STATES)


EXPORT_LIMIT = COUNT_CAP
EXPORT_HEADER = [
    "统一社会信用代码",
    "企业名称",
    "地区",
    "行业",
    "规模",
    "政策",
    "事项",
    "期间",
    "金额（元）",
    "状态",
    "暂缓原因",
    "开户银行",
    "账号（脱敏）",
    "要约编号",
]


@pages.get("/review/export.csv")
def review_export(
    user: Reviewer,
    session: SessionDep,
    query: Annotated[QueueQuery, Query()],
    sort: Annotated[str, Query(max_length=16)] = "created",
) -> Response:
    """The filtered review queue as a CSV that opens in Chinese Excel as it is: UTF-8 with a BOM, codes
    and accounts as text (never 9.1E+17), accounts masked."""
    try:
        f = query.filter_in()
    except ValueError as e:
        return redirect("/console/review", str(e), "error")
    total, rows = search(
        session, user, f.offer_filter(_review_states(f)), sort=sort, limit=EXPORT_LIMIT, offset=0
    )
    if total > EXPORT_LIMIT:
        return redirect(
            "/console/review", f"导出至多 {EXPORT_LIMIT:,} 条，当前 {total:,} 条：请缩小筛选范围", "error"
        )
    lines = [
        [
            text_cell(o.uscc),
            o.name,
            region_name(o.region_code) if o.region_code else "",
            section_names().get(o.industry_section or "", ""),
            formats.SIZE_LABELS.get(o.size_class or "", ""),
            o.policy_title,
            o.item_title,
            formats.period(o.period),
            f"{o.amount:.2f}",
            o.state_label,
            o.hold_reason or "",
            o.bank_name or "",
            text_cell(o.account_masked),
            o.public_id,
        ]
        for o in rows
    ]
    stamp = now().astimezone(formats.CHINA).strftime("%Y%m%d-%H%M")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_HEADER)
    writer.writerows(csv_row(line) for line in lines)
    return Response(
        ("\ufeff" + buffer.getvalue()).encode(),  # the BOM: Excel reads UTF-8, not the ANSI code page
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="review-{stamp}.csv"'},
    )


def filter_words(session: Session, query: QueueQuery, *, notify: bool = False) -> str:
    """The filter a bulk action on "all matching" uses, in words: 政策：…；地区：…；金额：…"""
    f = query.filter_in()
    words = []
    if f.policy_id:
        title = session.scalar(
            select(PolicyVersion.title)
            .where(PolicyVersion.policy_id == f.policy_id)
            .order_by(PolicyVersion.version.desc())
            .limit(1)
        )
        words.append(f"政策：{title or f.policy_id}")
    if f.item_id:
        items = session.scalar(
            select(PolicyVersion.items)
            .where(PolicyVersion.policy_id == f.policy_id)
            .order_by(PolicyVersion.version.desc())
            .limit(1)
        )
        titles = {i["id"]: i.get("title") or i["id"] for i in json.loads(items or "[]")}
        words.append(f"事项：{titles.get(f.item_id, f.item_id)}")
    if f.run_id:
        run = session.scalar(select(MatchRun).where(MatchRun.run_id == f.run_id))
        words.append(f"匹配批次：{formats.staff_time(run.imported_at)} 导入" if run else "匹配批次：（无）")
    if f.region:
        words.append(f"地区：{region_name(f.region)}")
    if f.state and not notify:  # the SMS goes to released offers whatever the queue's state filter
        words.append(f"状态：{offers.label(f.state)}")
    if f.amount_min is not None or f.amount_max is not None:
        low = formats.money(f.amount_min) if f.amount_min is not None else "不限"
        high = formats.money(f.amount_max) if f.amount_max is not None else "不限"
        words.append(f"金额：{low} 至 {high} 元")
    if f.industry:
        words.append(f"行业：{section_names().get(f.industry, f.industry)}")
    if f.size_class:
        words.append(f"规模：{formats.SIZE_LABELS[f.size_class]}企业")
    if f.enterprise:
        words.append(f"企业：{f.enterprise}")
    everything = "全部已发布、待发送确认短信的要约" if notify else "全部待初核和暂缓的要约"
    return "；".join(words) or f"不限（{everything}）"


ACTION_WORDS = {"release": "发布", "hold": "暂缓", "drop": "剔除", "notify": "发送确认短信"}


class BulkForm(QueueQuery):
    """A bulk action's console form: the action, the ticked offers or the filter, and where to go back."""

    action: str = Field(max_length=16)
    scope: Literal["ticked", "matching"] = "ticked"
    offer: list[Annotated[str, Field(max_length=32)]] = Field(default_factory=list, max_length=10_000)
    reason: str = Field(default="", max_length=500)
    back: str = Field(default="/console/review", max_length=500)

    @property
    def back_url(self) -> str:
        return self.back if self.back.startswith("/console/") else "/console/review"

    def choice(self) -> dict[str, Any]:
        """The `Choice` fields: the ticked offers, or all matching the filter (ValueError if malformed)."""
        if self.scope == "matching":
            return {"filter": self.filter_in().model_dump(exclude_none=True)}
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
    except (NothingChosen, ValueError) as e:
        return redirect(back, str(e), "error")
    return render(
        request,
        "review_confirm.html",
        {
            "form": form,
            "word": ACTION_WORDS[form.action],
            "preview": offers.preview_action(session, selection, form.action),
            "scope_words": filter_words(session, form, notify=form.action == "notify")
            if form.scope == "matching"
            else None,
            "back": back,
            "target": "/console/sms/send" if form.action == "notify" else "/console/review/action",
            "filter_keys": FILTER_KEYS,
        },
    )


@pages.post("/review/action")
def review_action(
    user: Reviewer, session: SessionDep, form: Annotated[ConfirmedBulkForm, Form()]
) -> Response:
    back = form.back_url
    try:
        chosen = form.choice()
    except ValueError as e:
        return redirect(back, str(e), "error")
    fields = {**chosen, "expected_count": form.expected_count, "expected_total": form.expected_total}
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
    try:
        chosen = form.choice()
    except ValueError as e:
        return redirect(form.back_url, str(e), "error")
    body = SmsSend.model_validate(
        {**chosen, "expected_count": form.expected_count, "expected_total": form.expected_total}
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
    store: StoreDep,
    settings: SettingsDep,
    uscc: Annotated[str | None, Query(max_length=18)] = None,
    name: Annotated[str | None, Query(max_length=100)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    policy_id: Annotated[str | None, Query(max_length=64)] = None,
    sla: Annotated[str | None, Query(max_length=16)] = None,
    light: Annotated[str | None, Query(max_length=8)] = None,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> Response:
    valid = state if state in {s.value for s in OfferState} else None
    wanted = OfferFilter(
        policy_id=policy_id or None, states=(valid,) if valid else (), uscc=uscc or None, name=name or None
    )
    counted, lit = None, None
    if sla and light in LIGHT_WORDS:
        try:
            stage, counted = light_condition(session, settings.sla(), now(), sla, light)
            lit = f"{stage}环节{LIGHT_WORDS[light]}"
        except ReportError:
            counted = None
    total, rows = search(session, user, wanted, offset=offset, also=counted)
    filters = {"uscc": uscc or "", "name": name or "", "state": valid or "", "policy_id": policy_id or ""}
    if lit:
        filters |= {"sla": sla or "", "light": light or ""}
    return render(
        request,
        "offers.html",
        {
            "offers": rows,
            "total": min(total, COUNT_CAP),
            "more": total > COUNT_CAP,
            "offset": offset,
            "page": PAGE,
            "filters": filters,
            "query": urlencode({k: v for k, v in filters.items() if v}),
            "states": [(s.value, offers.label(s.value)) for s in OfferState],
            "policies": [(pid, pv.title) for pid, pv in latest_policies(session, store, user).items()],
            "light": lit,
            "unlit": urlencode({k: v for k, v in filters.items() if v and k not in ("sla", "light")}),
        },
    )


LIGHT_WORDS = {"green": "绿灯", "yellow": "黄灯", "red": "红灯"}


@pages.get("/offers/{public_id}")
def offer_page(request: Request, offer: OfferDep, user: CurrentUser, session: SessionDep) -> Response:
    _, rows = _rows(session, [Offer.id == offer.id], 1, 0)
    co_reviewers, given = jointreview.opinions(session, offer)
    events = audit.history(session, "offer", offer.public_id)
    staff = {e.actor for e in events}
    names = dict(
        session.execute(
            select(StaffUser.username, StaffUser.display_name).where(StaffUser.username.in_(staff))
        )
        .tuples()
        .all()
    )
    return render(
        request,
        "offer.html",
        {
            "offer": rows[0],
            "events": [
                (
                    e,
                    audit.actor_label(e.actor, names, {offer.uscc: rows[0].name}),
                    audit.action_label(e.action),
                )
                for e in events
            ],
            "can_review": may(user, "review"),
            "co_reviewers": co_reviewers,
            "opinions": given,
            # The lead decides; a co-reviewer of the policy gives its opinion (会签) while the offer is open.
            "can_decide": may(user, "review") and user_scope(user).sees_offer_deciding(session, offer),
            "can_opine": may(user, "review")
            and offer.state in jointreview.OPEN
            and any(user_scope(user).department(d) for d in co_reviewers),
        },
    )
