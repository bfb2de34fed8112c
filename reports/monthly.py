"""The monthly report for leaders: headline figures against the previous month, money paid per department
and policy, the funnel at month end (apply-free, and 快申快享 beside it), working days to cash, the
quality of service of both modes side by side (`reports.service`: working days to decision and to
payment, satisfaction), SLA lights per department, the 月讲评 on time, lights and ratings, and the
conditions that block most near-misses; written as one self-contained HTML page (templates/monthly.html, charts as
data URIs) and an .xlsx of its tables (`reports.xlsx`). `zhida report` calls `write_report`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlmodel import Session

from matcher import runfolder
from matcher.analysis import blockers, open_run
from payouts.models import MatchRun, Offer, PolicyVersion
from reports import disclosure, service
from reports import funnel as funnels
from reports.calendar import WorkCalendar, as_day, china_day
from reports.charts import draw_charts
from reports.display import PERCENT_COLUMNS
from reports.errors import ReportError
from reports.sla import (
    APPLICATION_STAGE,
    DEFAULT,
    TARGET_WORKING_DAYS,
    Sla,
    SlaStage,
    application_outcomes,
    cash_summary,
    ranking,
    sla_table,
    step_outcomes,
)
from reports.xlsx import write_xlsx
from rules.formats import CHINA, money

ZERO = Decimal("0.00")
TEMPLATES = Path(__file__).parent / "templates"


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """[first instant, first instant of the next month) of a `YYYY-MM` month, in China time."""
    try:
        first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=CHINA)
    except ValueError as e:
        raise ReportError(f"月份应写成 YYYY-MM（如 2025-10），收到 {month!r}") from e
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return first, nxt


def previous_month(month: str) -> str:
    first, _ = month_bounds(month)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


@dataclass
class MonthlyReport:
    """Everything the monthly report shows, as tables (money Decimal) and chart images."""

    month: str
    generated_at: dt.datetime
    headline: pd.DataFrame
    paid_by_policy: pd.DataFrame
    funnel: pd.DataFrame
    cash: dict[str, Any]
    cash_days: pd.DataFrame
    sla: pd.DataFrame
    stages: tuple[SlaStage, ...]
    near_misses: pd.DataFrame
    run_id: str | None
    ranking: pd.DataFrame = field(default_factory=pd.DataFrame)  # 月讲评: by time, lights and ratings
    disclosure: pd.DataFrame = field(default_factory=pd.DataFrame)  # 晾晒: the public figures per policy
    charts: dict[str, str] = field(default_factory=dict)
    funnel_apply: pd.DataFrame = field(default_factory=pd.DataFrame)  # the 快申快享 arm of the funnel
    service: pd.DataFrame = field(default_factory=pd.DataFrame)  # 服务质效, both modes side by side


def _offers(before: dt.datetime, mode: str = "apply_free") -> Select[Any]:
    """Offers with their policy version (the report's population): of the runs imported before `before`
    (`apply_free`, 免申即享), of the applications accepted before it (`apply`, 快申快享: no run), or
    both (`all`)."""
    run = MatchRun.id == Offer.match_run_id
    query = (
        (select().select_from(Offer).join(MatchRun, run))
        if mode == "apply_free"
        else select().select_from(Offer).outerjoin(MatchRun, run)
    ).join(
        PolicyVersion,
        and_(PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version),
    )
    applied = and_(Offer.match_run_id.is_(None), Offer.created_at < before)
    where = {
        "apply_free": MatchRun.imported_at < before,
        "apply": applied,
        "all": or_(MatchRun.imported_at < before, applied),
    }[mode]
    return query.where(where)


MODE = service.OFFER_MODE
MODE_LABELS = dict(service.MODES)


def _between(column: Any, start: dt.datetime, end: dt.datetime) -> ColumnElement[bool]:
    return and_(column.is_not(None), column >= start, column < end)


def _cash_days(session: Session, start: dt.datetime, end: dt.datetime, before: dt.datetime) -> pd.DataFrame:
    """Offers paid in [start, end) by department, policy and the working and calendar days from their
    run's import to the payment: `offers` and `amount` per row, counted in the database."""
    imported, paid = china_day(MatchRun.imported_at), china_day(Offer.paid_at)
    keys = (PolicyVersion.department, Offer.policy_id, PolicyVersion.title, imported, paid)
    rows = session.execute(
        _offers(before)
        .add_columns(*keys, func.count(), func.sum(Offer.amount))
        .where(_between(Offer.paid_at, start, end))
        .group_by(*keys)
    ).all()
    if not rows:
        return pd.DataFrame(columns=CASH_COLUMNS)
    days = [as_day(d) for r in rows for d in (r[3], r[4])]
    cal = WorkCalendar.covering(min(days), max(days))  # type: ignore[type-var]
    df = pd.DataFrame(
        [
            (
                d,
                p,
                t,
                cal.between(as_day(a), as_day(b)),  # type: ignore[arg-type]
                (as_day(b) - as_day(a)).days,  # type: ignore[operator]
                int(n),
                Decimal(amount).quantize(ZERO),
            )
            for d, p, t, a, b, n, amount in rows
        ],
        columns=CASH_COLUMNS,
    )
    df = df.groupby(CASH_COLUMNS[:5], as_index=False).agg(
        offers=("offers", "sum"), amount=("amount", lambda x: sum(x, ZERO))
    )
    df["on_target"] = df["working_days"] <= TARGET_WORKING_DAYS
    return df.sort_values(["working_days", "department", "policy_id"], ignore_index=True)


CASH_COLUMNS = ["department", "policy_id", "title", "working_days", "calendar_days", "offers", "amount"]


def _month_figures(session: Session, month: str, before: dt.datetime) -> dict[str, Any]:
    """The headline figures of one month (offers of runs imported before `before`)."""
    start, end = month_bounds(month)
    paid_amount, paid_offers, paid_enterprises = session.execute(
        _offers(before)
        .add_columns(func.sum(Offer.amount), func.count(), func.count(func.distinct(Offer.uscc)))
        .where(_between(Offer.paid_at, start, end))
    ).one()
    confirmed = session.scalar(
        _offers(before).add_columns(func.count()).where(_between(Offer.confirmed_at, start, end))
    )
    notified, answered = session.execute(
        _offers(before)
        .add_columns(func.count(), func.count(Offer.confirmed_at))
        .where(_between(Offer.notified_at, start, end))
    ).one()
    cash = cash_summary(_cash_days(session, start, end, before))
    apply_amount, apply_offers = session.execute(
        _offers(before, "apply")
        .add_columns(func.sum(Offer.amount), func.count())
        .where(_between(Offer.paid_at, start, end))
    ).one()
    return {
        "paid_amount": (paid_amount or ZERO).quantize(ZERO),
        "paid_offers": int(paid_offers),
        "paid_enterprises": int(paid_enterprises),
        "confirmed": int(confirmed or 0),
        "confirm_rate": answered / notified if notified else None,
        "median_days": cash["median"],
        "on_target": cash["on_target"],
        "apply_paid_amount": (apply_amount or ZERO).quantize(ZERO),
        "apply_paid_offers": int(apply_offers),
    }


HEADLINE = (
    ("paid_amount", "到账金额（元）"),
    ("paid_enterprises", "到账企业（户）"),
    ("paid_offers", "到账笔数"),
    ("confirmed", "企业确认（笔）"),
    ("confirm_rate", "本月通知的确认率"),
    ("median_days", "导入至到账中位工作日"),
    ("on_target", f"{TARGET_WORKING_DAYS}个工作日内到账占比"),
    ("apply_paid_amount", "快申快享到账金额（元）"),
    ("apply_paid_offers", "快申快享到账笔数"),
)


def _headline(session: Session, month: str, before: dt.datetime) -> pd.DataFrame:
    this = _month_figures(session, month, before)
    prev = _month_figures(session, previous_month(month), before)
    rows = []
    for key, label in HEADLINE:
        a, b = this[key], prev[key]
        change = None if a is None or b is None else a - b
        rows.append({"key": key, "metric": label, "this_month": a, "previous_month": b, "change": change})
    return pd.DataFrame(rows)


def _paid_by_policy(session: Session, month: str, before: dt.datetime) -> pd.DataFrame:
    """Money paid in the month per department, policy and mode (免申即享, 快申快享), largest first."""
    start, end = month_bounds(month)
    keys = (PolicyVersion.department, Offer.policy_id, PolicyVersion.title, MODE)
    rows = session.execute(
        _offers(before, "all")
        .add_columns(*keys, func.count(), func.count(func.distinct(Offer.uscc)), func.sum(Offer.amount))
        .where(_between(Offer.paid_at, start, end))
        .group_by(*keys)
    ).all()
    columns = ["department", "policy_id", "title", "mode", "offers", "enterprises", "amount"]
    if not rows:
        return pd.DataFrame(columns=columns)
    g = pd.DataFrame(
        [
            (d, p, t, MODE_LABELS[m], int(n), int(e), Decimal(a).quantize(ZERO))
            for d, p, t, m, n, e, a in rows
        ],
        columns=columns,
    )
    # A policy whose versions differ in title or department is one row per (department, policy, title),
    # as before, and one per mode when it has items of both; sorted by money, largest first.
    return g.sort_values(["amount", "policy_id", "mode"], ascending=[False, True, True], ignore_index=True)


def judged_at(month: str, now: dt.datetime | None = None) -> dt.datetime:
    """The moment a month's open work is judged at: its last instant, or `now` (default: the clock) if
    earlier, so the running month's report does not call work late that still has days left."""
    end = month_bounds(month)[1] - dt.timedelta(microseconds=1)
    return min(end, now or dt.datetime.now(dt.UTC))


def month_lights(
    session: Session, month: str, sla: Sla = DEFAULT, now: dt.datetime | None = None
) -> pd.DataFrame:
    """The month's SLA table per department: steps finished in the month, and those still open when it is
    judged (`judged_at`), each against its policy's limits; with the review of applications (申请审核,
    the lead department's, against each application's committed limit, 补正 not counted)."""
    start, end = month_bounds(month)
    limits = sla.with_policies(session)
    cut = judged_at(month, now)
    outcomes = step_outcomes(session, at=cut, since=start, imported_before=end, sla=limits)
    applied = application_outcomes(session, at=cut, since=start)
    if not applied.empty:
        outcomes = applied if outcomes.empty else pd.concat([outcomes, applied], ignore_index=True)
    return sla_table(outcomes, by_department=True)


def monthly_report(
    session: Session,
    month: str,
    run_dir: Path | None = None,
    sla: Sla = DEFAULT,
    now: dt.datetime | None = None,
    *,
    near_misses: bool = True,
) -> MonthlyReport:
    """The monthly report's tables: headline against the previous month, money paid per department,
    policy and mode, the funnel at month end (both arms), working days to cash, the service figures of
    both modes side by side, SLA lights per department, the 月讲评, and the conditions that block most
    near-misses in the latest run imported by month end (or `run_dir`; none with `near_misses=False`).

    Every figure is counted in the database (memory does not grow with the offers). Open work is judged
    at the earlier of the month's end and `now` (default: the clock), so a report of the current month
    does not call work late that still has days left.
    """
    start, end = month_bounds(month)
    cut = judged_at(month, now)
    paid = _cash_days(session, start, end, end)
    lights = month_lights(session, month, sla, now)
    run_id = None
    if run_dir is None and near_misses:
        latest = session.execute(
            select(MatchRun.run_id, MatchRun.path)
            .where(MatchRun.imported_at < end)
            .order_by(MatchRun.imported_at.desc())
            .limit(1)
        ).first()
        if latest is not None:
            run_id, run_dir = latest[0], Path(latest[1])
    near = pd.DataFrame()
    if run_dir is not None:
        if not runfolder.has_manifest(run_dir):
            raise ReportError(f"找不到匹配结果目录 {run_dir}（差一点符合的统计需要它）：请用 --run 指定")
        run = open_run(run_dir)
        near = blockers(run).head(10)
        run_id = run_id or run.manifest.run_id
    return MonthlyReport(
        month=month,
        generated_at=dt.datetime.now(CHINA),
        headline=_headline(session, month, end),
        paid_by_policy=_paid_by_policy(session, month, end),
        funnel=funnels.table(funnels.stages(session, at=cut)),
        cash=cash_summary(paid),
        cash_days=paid,
        sla=lights,
        stages=(*sla.stages, APPLICATION_STAGE),
        near_misses=near,
        run_id=run_id,
        ranking=ranking(
            lights, service.ratings_by_department(service.rating_counts(session, start, end, cut))
        ),
        disclosure=disclosure.table(disclosure.figures(session, at=cut)),
        funnel_apply=funnels.table(funnels.applications(session, at=cut)),
        service=service.service_table(session, start, end, cut, end),
    )


def _fmt(value: Any, key: str = "") -> str:
    if value is None or (not isinstance(value, str | Decimal) and pd.isna(value)):
        return "—"
    if key in ("confirm_rate", "on_target") or key in PERCENT_COLUMNS:
        return f"{float(value):.1%}"
    if isinstance(value, Decimal):
        return money(value)
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _change(value: Any, key: str) -> str:
    if value is None or (not isinstance(value, Decimal) and pd.isna(value)):
        return "—"
    sign = "+" if value > 0 else ""
    if key in ("confirm_rate", "on_target"):
        return f"{sign}{float(value) * 100:.1f} 个百分点"
    return sign + _fmt(value, key)


def render_html(report: MonthlyReport) -> str:
    """The report as one self-contained HTML page (styles inline, charts as data URIs)."""
    headline = [
        {
            "metric": h["metric"],
            "this": _fmt(h["this_month"], h["key"]),
            "prev": _fmt(h["previous_month"], h["key"]),
            "change": _change(h["change"], h["key"]),
        }
        for h in report.headline.to_dict("records")
    ]
    paid = [{k: _fmt(v, k) for k, v in p.items()} for p in report.paid_by_policy.to_dict("records")]
    funnel_rows = [{k: _fmt(v, k) for k, v in f.items()} for f in report.funnel.to_dict("records")]
    cash = {k: _fmt(v, k) for k, v in report.cash.items()}
    sla_rows = []
    for dept, group in report.sla.groupby("department", sort=True) if not report.sla.empty else []:
        by_stage = {r["stage"]: r for r in group.to_dict("records")}
        cells = []
        for st in report.stages:
            r = by_stage.get(st.id)
            cells.append(
                None
                if r is None
                else {
                    "light": r["light"],
                    "text": f"{r['light_label']} 超时 {r['breaches']}/{r['on_time'] + r['late'] + r['open'] + r['open_late']}",
                }
            )
        sla_rows.append({"department": dept, "cells": cells})
    near = [
        {k: ("" if v is None or (isinstance(v, float) and pd.isna(v)) else _fmt(v, k)) for k, v in n.items()}
        for n in report.near_misses.to_dict("records")
    ]
    ranking_rows = [{k: _fmt(v, k) for k, v in k_.items()} for k_ in report.ranking.to_dict("records")]
    service_rows = [
        {
            "metric": r["metric"],
            "apply_free": _fmt(r["apply_free"], r["key"]),
            "apply": _fmt(r["apply"], r["key"]),
        }
        for r in report.service.to_dict("records")
    ]
    funnel_apply = [{k: _fmt(v, k) for k, v in f.items()} for f in report.funnel_apply.to_dict("records")]
    disclosure_rows = [
        {k: disclosure.rate_text(v) if k == "rate" else _fmt(v, k) for k, v in d.items()}
        for d in report.disclosure.to_dict("records")
    ]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return env.get_template("monthly.html").render(
        r=report,
        headline=headline,
        paid=paid,
        funnel=funnel_rows,
        funnel_apply=funnel_apply,
        service=service_rows,
        cash=cash,
        stages=report.stages,
        sla_rows=sla_rows,
        near=near,
        ranking=ranking_rows,
        disclosure=disclosure_rows,
        charts=report.charts,
    )


@dataclass(frozen=True)
class WrittenReport:
    """Where the monthly report was written."""

    html: Path
    xlsx: Path


def write_report(
    session: Session, month: str, out: Path, run_dir: Path | None = None, sla: Sla = DEFAULT
) -> WrittenReport:
    """Make the monthly report and write `zhida-report-YYYY-MM.html` and `.xlsx` into `out`."""
    report = monthly_report(session, month, run_dir, sla)
    report.charts = draw_charts(report)
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"zhida-report-{month}.html"
    html.write_text(render_html(report), encoding="utf-8")
    xlsx = out / f"zhida-report-{month}.xlsx"
    write_xlsx(report, xlsx)
    return WrittenReport(html, xlsx)
