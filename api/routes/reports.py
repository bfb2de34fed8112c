"""Reports: the funnel, money per policy, SLA lights per stage, and the public disclosure list (公示) of
payments made, as CSV or Excel. Users of one department get their department's policies only.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import and_, case, func, select
from sqlmodel import Session

from api.deps import ReportReader, SessionDep, SettingsDep, StoreDep, scoped_policy_ids, user_scope
from api.routes import now, render
from api.runlists import rows_workbook
from payouts.errors import NotFoundError
from payouts.models import MatchRun, Offer, OfferState, Payee, PolicyVersion
from reports import funnel
from reports.sla import lights
from reports.spreadsheet import csv_row
from rules import formats

router = APIRouter(prefix="/api/reports", tags=["reports"])
pages = APIRouter(prefix="/console/reports", include_in_schema=False)
SLUG = r"^[a-z0-9][a-z0-9_-]*$"  # policy ids (rules.policy.Slug): safe in a file name
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ZERO = Decimal("0.00")
DISCLOSURE_HEADER = [
    "序号",
    "企业名称",
    "统一社会信用代码",
    "政策",
    "兑现事项",
    "期间",
    "金额（元）",
    "拨付日期",
]


class StageOut(BaseModel):
    """Offers and money that reached one stage."""

    stage: str
    label: str
    count: int
    amount: Decimal


class FunnelOut(BaseModel):
    """The funnel (an offer counts at every stage it reached) and the offers per current state."""

    stages: list[StageOut]
    states: list[StageOut]


class PolicyMoney(BaseModel):
    """Money of one policy: budget, matched, confirmed and paid."""

    policy_id: str
    title: str
    department: str
    budget: Decimal | None
    offers: int
    matched: Decimal
    confirmed: Decimal
    paid: Decimal
    paid_count: int


class LightOut(BaseModel):
    """Offers of one stage (over all policies when `policy_id` is null) by SLA colour."""

    stage: str
    label: str
    limit: str
    policy_id: str | None
    green: int
    yellow: int
    red: int


def _check(scope: set[str] | None, policy_id: str | None) -> list[str | None]:
    """The policies to report on: the one asked for (if the user may see it), or all the user may."""
    if policy_id is not None:
        if scope is not None and policy_id not in scope:
            raise NotFoundError(f"没有政策 {policy_id}")
        return [policy_id]
    return [None] if scope is None else sorted(scope)


def funnel_of(
    session: Session,
    scope: set[str] | None,
    policy_id: str | None,
    run_id: str | None,
    region: str | None = None,
) -> FunnelOut:
    if run_id is not None and session.scalar(select(MatchRun.id).where(MatchRun.run_id == run_id)) is None:
        raise NotFoundError(f"没有导入过匹配批次 {run_id}")
    pids = _check(scope, policy_id)
    policy_ids = None if pids == [None] else {p for p in pids if p is not None}

    def out(rows: list[funnel.Stage]) -> list[StageOut]:
        return [StageOut(stage=s.stage, label=s.label, count=s.count, amount=s.amount) for s in rows]

    return FunnelOut(
        stages=out(funnel.stages(session, run_id=run_id, policy_ids=policy_ids, region=region)),
        states=out(funnel.by_state(session, run_id=run_id, policy_ids=policy_ids, region=region)),
    )


def money_per_policy(session: Session, scope: set[str] | None) -> list[PolicyMoney]:
    """Per policy (its latest imported version): budget, and the money matched, confirmed and paid."""
    paid = Offer.state == OfferState.PAID.value
    rows = session.execute(
        select(
            Offer.policy_id,
            func.count(),
            func.coalesce(func.sum(Offer.amount), 0),
            func.coalesce(func.sum(case((Offer.confirmed_at.is_not(None), Offer.amount), else_=0)), 0),
            func.coalesce(func.sum(case((paid, Offer.amount), else_=0)), 0),
            func.coalesce(func.sum(case((paid, 1), else_=0)), 0),
        ).group_by(Offer.policy_id)
    ).all()
    latest = {
        v.policy_id: v for v in session.scalars(select(PolicyVersion).order_by(PolicyVersion.version))
    }  # the last of each policy wins
    out = []
    for pid, n, matched, confirmed, paid_amount, paid_n in rows:
        if scope is not None and pid not in scope:
            continue
        v = latest[pid]
        out.append(
            PolicyMoney(
                policy_id=pid,
                title=v.title,
                department=v.department,
                budget=v.budget,
                offers=n,
                matched=Decimal(matched).quantize(ZERO),
                confirmed=Decimal(confirmed).quantize(ZERO),
                paid=Decimal(paid_amount).quantize(ZERO),
                paid_count=paid_n,
            )
        )
    return sorted(out, key=lambda r: r.policy_id)


def disclosure_rows(session: Session, scope: set[str] | None, policy_id: str | None) -> list[list[Any]]:
    """The payments made, for public disclosure: enterprise, policy, item, amount, date (China time)."""
    pids = _check(scope, policy_id)
    query = (
        select(
            Payee.name,
            Offer.uscc,
            PolicyVersion.title,
            PolicyVersion.items,
            Offer.item_id,
            Offer.period,
            Offer.amount,
            Offer.paid_at,
        )
        .join(Payee, Payee.id == Offer.payee_id)
        .join(
            PolicyVersion,
            and_(PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version),
        )
        .where(Offer.state == OfferState.PAID.value)
        .order_by(Offer.policy_id, Offer.item_id, Offer.uscc)
    )
    if pids != [None]:
        query = query.where(Offer.policy_id.in_([p for p in pids if p]))
    out = []
    titles: dict[str, dict[str, str]] = {}
    for n, (name, uscc, title, items, item_id, period, amount, paid_at) in enumerate(
        session.execute(query), start=1
    ):
        item_titles = titles.setdefault(items, {i["id"]: i["title"] for i in json.loads(items)})
        day = formats.day(paid_at) if paid_at else ""
        out.append(
            [n, name, uscc, title, item_titles.get(item_id, item_id), formats.period(period), amount, day]
        )
    return out


@router.get(
    "/funnel",
    response_model=FunnelOut,
    summary="兑现漏斗：比对命中 → 初核发布 → 已发短信 → 已确认 → 已组批 → 已复核 → 已到账",
)
def funnel_report(
    user: ReportReader,
    session: SessionDep,
    store: StoreDep,
    policy_id: Annotated[str | None, Query(max_length=64)] = None,
    run_id: Annotated[str | None, Query(max_length=64)] = None,
) -> FunnelOut:
    return funnel_of(
        session, scoped_policy_ids(session, store, user), policy_id, run_id, user_scope(user).region
    )


@router.get("/money", response_model=list[PolicyMoney], summary="各政策资金：预算、命中、确认、到账")
def money(user: ReportReader, session: SessionDep, store: StoreDep) -> list[PolicyMoney]:
    return money_per_policy(session, scoped_policy_ids(session, store, user))


@router.get("/sla", response_model=list[LightOut], summary="各环节时限红黄绿灯")
def sla(user: ReportReader, session: SessionDep, store: StoreDep, settings: SettingsDep) -> list[LightOut]:
    rows = lights(
        session, settings.sla(), now(), scoped_policy_ids(session, store, user), user_scope(user).region
    )
    return [LightOut(**{k: getattr(r, k) for k in LightOut.model_fields}) for r in rows]


class OverdueOut(BaseModel):
    """One line of the 督办 list: overdue work, who answers for it, since when, what was done."""

    department: str
    policy_id: str
    title: str
    step: str
    offers: int
    amount: Decimal
    overdue_since: dt.datetime
    responsible: list[str]
    done: list[str]


@router.get("/supervision", response_model=list[OverdueOut], summary="督办清单：超过办理时限的事项")
def supervision_list(
    user: ReportReader, session: SessionDep, store: StoreDep, settings: SettingsDep
) -> list[OverdueOut]:
    from reports import supervision

    scope = scoped_policy_ids(session, store, user)
    rows = supervision.supervision_list(session, settings.sla(), now())
    return [
        OverdueOut(**{**r.__dict__, "responsible": list(r.responsible), "done": list(r.done)})
        for r in rows
        if scope is None or r.policy_id in scope
    ]


@router.get(
    "/disclosure",
    summary="公示名单：已拨付的企业和金额（CSV 或 Excel）",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            }
        }
    },
)
def disclosure(
    user: ReportReader,
    session: SessionDep,
    store: StoreDep,
    policy_id: Annotated[str | None, Query(max_length=64, pattern=SLUG)] = None,
    format: Literal["csv", "xlsx"] = "csv",
) -> Response:
    rows = disclosure_rows(session, scoped_policy_ids(session, store, user), policy_id)
    name = f"gongshi-{policy_id or 'all'}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "xlsx":
        return Response(rows_workbook("公示名单", DISCLOSURE_HEADER, rows), media_type=XLSX, headers=headers)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(DISCLOSURE_HEADER)
    writer.writerows(csv_row(row) for row in rows)
    return Response(
        ("\ufeff" + buffer.getvalue()).encode(), media_type="text/csv; charset=utf-8", headers=headers
    )


@pages.get("")
def reports_page(request: Request, user: ReportReader, session: SessionDep, store: StoreDep) -> Response:
    scope = scoped_policy_ids(session, store, user)
    return render(
        request,
        "reports.html",
        {"funnel": funnel_of(session, scope, None, None), "money": money_per_policy(session, scope)},
    )
