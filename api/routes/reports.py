"""Reports: the funnel (apply-free, and the 快申快享 arm), money per policy, SLA lights per stage, the 督办
list, the monthly report (its figures as JSON, or the page and the workbook), and the public disclosure
list (公示) of payments made, as CSV or Excel. Users of one department get their department's policies
only; the monthly report, which compares every department, is for users who serve them all.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import json
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import and_, case, func, select
from sqlmodel import Session

from api.deps import (
    ReportReader,
    SessionDep,
    SettingsDep,
    StoreDep,
    department,
    scoped_policy_ids,
    user_scope,
)
from api.routes import now, render
from api.runlists import rows_workbook
from payouts.errors import NotFoundError, RoleError
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
    """The funnel (an offer counts at every stage it reached) and the offers per current state, of match
    runs (免申即享); and the 快申快享 arm: applications submitted, accepted, and their offers batched,
    approved and paid (empty for one match run)."""

    stages: list[StageOut]
    states: list[StageOut]
    applications: list[StageOut] = []


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
        applications=out(funnel.applications(session, policy_ids=policy_ids, region=region))
        if run_id is None
        else [],
    )


def money_per_policy(
    session: Session, scope: set[str] | None, region: str | None = None
) -> list[PolicyMoney]:
    """Per policy (its latest imported version): budget, and the money matched, confirmed and paid (with
    `region`, of that region's enterprises only)."""
    paid = Offer.state == OfferState.PAID.value
    query = select(
        Offer.policy_id,
        func.count(),
        func.coalesce(func.sum(Offer.amount), 0),
        func.coalesce(func.sum(case((Offer.confirmed_at.is_not(None), Offer.amount), else_=0)), 0),
        func.coalesce(func.sum(case((paid, Offer.amount), else_=0)), 0),
        func.coalesce(func.sum(case((paid, 1), else_=0)), 0),
    ).group_by(Offer.policy_id)
    if region is not None:
        query = query.where(Offer.region_code.startswith(region, autoescape=True))
    rows = session.execute(query).all()
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
    return money_per_policy(session, scoped_policy_ids(session, store, user), user_scope(user).region)


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
    rows = supervision.supervision_list(session, settings.sla(), now(), region=user_scope(user).region)
    return [
        OverdueOut(**{**r.__dict__, "responsible": list(r.responsible), "done": list(r.done)})
        for r in rows
        if scope is None or r.policy_id in scope
    ]


Figure = Decimal | int | float | str | None


class FigureOut(BaseModel):
    """One figure of the monthly report: this month and the previous one."""

    key: str
    metric: str
    this_month: Figure
    previous_month: Figure


class ServiceOut(BaseModel):
    """One service figure, apply-free (免申即享) and 快申快享 side by side."""

    key: str
    metric: str
    apply_free: Figure
    apply: Figure


class RankOut(BaseModel):
    """One department in the 月讲评: its time limits, lights and ratings."""

    rank: int
    department: str
    steps: int
    breaches: int
    breach_share: float
    red: int
    amber: int
    green: int
    light_label: str
    ratings: int
    satisfied_share: float | None
    poor: int
    poor_late: int


class MonthlyOut(BaseModel):
    """The monthly report's figures: headline, both arms of the funnel, the service of both modes side by
    side, and the 月讲评."""

    month: str
    headline: list[FigureOut]
    funnel: list[StageOut]
    applications: list[StageOut]
    service: list[ServiceOut]
    ranking: list[RankOut]


def _own_styles(page: str) -> str:
    """The policy of a self-contained page (the monthly report: styles inline, charts as data URIs): its
    own style block by hash, images from data URIs, nothing else; no script at all."""
    css = page.split("<style>", 1)[1].split("</style>", 1)[0] if "<style>" in page else ""
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return (
        f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )


def _plain(value: Any) -> Figure:
    """A table cell as JSON can carry it (NaN as null, numpy numbers as Python's)."""
    if value is None or isinstance(value, str | Decimal):
        return value
    if value != value:  # NaN
        return None
    return value.item() if hasattr(value, "item") else value


def _records(table: Any, columns: list[str]) -> list[dict[str, Any]]:
    return [{c: _plain(r[c]) for c in columns} for r in table.to_dict("records")]


def _stages(table: Any) -> list[StageOut]:
    return [
        StageOut(stage=r["stage"], label=r["label"], count=int(r["offers"]), amount=r["amount"])
        for r in table.to_dict("records")
    ]


@router.get(
    "/monthly",
    summary="月度报告：核心指标、兑现漏斗（免申即享、快申快享）、服务质效对比、月讲评（JSON、网页或 Excel）",
    response_model=MonthlyOut,
    responses={
        200: {
            "content": {
                "text/html": {"schema": {"type": "string"}},
                XLSX: {"schema": {"type": "string", "format": "binary"}},
            }
        },
        400: {"description": "月份不正确（应为 YYYY-MM），或该年没有节假日安排"},
    },
)
def monthly_report(
    user: ReportReader,
    session: SessionDep,
    settings: SettingsDep,
    month: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM")],
    format: Literal["json", "html", "xlsx"] = "json",
) -> Any:
    """The month's report, computed now (open work judged at the earlier of the month's end and now); the
    page and the workbook are those `zhida report` writes, without the near-miss section (it reads a run
    folder)."""
    from reports import monthly

    if department(user) is not None:
        raise RoleError("月度报告汇总比较全市各部门，请由不限部门的用户查看；本部门的情况见报表和督办清单")
    report = monthly.monthly_report(session, month, sla=settings.sla(), now=now(), near_misses=False)
    if format == "html":
        page = monthly.render_html(report)
        return Response(
            page,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": _own_styles(page)},
        )
    if format == "xlsx":
        import tempfile
        from pathlib import Path

        from reports.xlsx import write_xlsx

        with tempfile.TemporaryDirectory(prefix="zhida-report-") as tmp:
            path = Path(tmp) / f"zhida-report-{month}.xlsx"
            write_xlsx(report, path)
            body = path.read_bytes()
        headers = {"Content-Disposition": f'attachment; filename="zhida-report-{month}.xlsx"'}
        return Response(body, media_type=XLSX, headers=headers)
    return MonthlyOut(
        month=month,
        headline=[FigureOut(**r) for r in _records(report.headline, list(FigureOut.model_fields))],
        funnel=_stages(report.funnel),
        applications=_stages(report.funnel_apply),
        service=[ServiceOut(**r) for r in _records(report.service, list(ServiceOut.model_fields))],
        ranking=[RankOut(**r) for r in _records(report.ranking, list(RankOut.model_fields))],
    )


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


@pages.get("/supervision")
def supervision_page(
    request: Request, user: ReportReader, session: SessionDep, settings: SettingsDep
) -> Response:
    """The 督办 list (`reports.supervision`): work past its deadline, who answers for it, since when and
    what was done; a user of one department (its head included) sees that department's only."""
    from reports import supervision

    mine = department(user)
    at = now()
    rows = supervision.supervision_list(
        session, settings.sla(), at, department=mine, region=user_scope(user).region
    )
    return render(
        request,
        "supervision.html",
        {"rows": rows, "department": mine, "at": at, "offers": sum(r.offers for r in rows)},
    )


@pages.get("")
def reports_page(request: Request, user: ReportReader, session: SessionDep, store: StoreDep) -> Response:
    scope, region = scoped_policy_ids(session, store, user), user_scope(user).region
    return render(
        request,
        "reports.html",
        {
            "funnel": funnel_of(session, scope, None, None, region),
            "money": money_per_policy(session, scope, region),
        },
    )
