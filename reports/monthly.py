"""The monthly report for leaders: headline figures against the previous month, money paid per department
and policy, the funnel at month end, working days to cash, SLA lights per department, and the conditions
that block most near-misses; written as one self-contained HTML page (templates/monthly.html, charts as
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
from sqlalchemy import select
from sqlmodel import Session

from matcher import runfolder
from matcher.analysis import blockers, open_run
from payouts.models import MatchRun
from reports import funnel as funnels
from reports.charts import draw_charts
from reports.display import PERCENT_COLUMNS
from reports.errors import ReportError
from reports.sla import (
    DEFAULT,
    TARGET_WORKING_DAYS,
    Sla,
    SlaStage,
    cash_summary,
    days_to_cash,
    sla_outcomes,
    sla_table,
)
from reports.timeline import offer_timeline
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
    charts: dict[str, str] = field(default_factory=dict)


def _in(series: pd.Series, start: dt.datetime, end: dt.datetime) -> pd.Series:
    return series.notna() & (series >= pd.Timestamp(start)) & (series < pd.Timestamp(end))


def _month_figures(timeline: pd.DataFrame, month: str) -> dict[str, Any]:
    """The headline figures of one month."""
    start, end = month_bounds(month)
    paid = timeline[_in(timeline["paid_at"], start, end)]
    cash = cash_summary(days_to_cash(paid)) if not paid.empty else cash_summary(paid)
    notified = timeline[_in(timeline["notified_at"], start, end)]
    confirmed_of_notified = notified["confirmed_at"].notna().mean() if len(notified) else None
    return {
        "paid_amount": sum(paid["amount"], ZERO),
        "paid_offers": len(paid),
        "paid_enterprises": paid["uscc"].nunique(),
        "confirmed": int(_in(timeline["confirmed_at"], start, end).sum()),
        "confirm_rate": confirmed_of_notified,
        "median_days": cash["median"],
        "on_target": cash["on_target"],
    }


HEADLINE = (
    ("paid_amount", "到账金额（元）"),
    ("paid_enterprises", "到账企业（户）"),
    ("paid_offers", "到账笔数"),
    ("confirmed", "企业确认（笔）"),
    ("confirm_rate", "本月通知的确认率"),
    ("median_days", "导入至到账中位工作日"),
    ("on_target", f"{TARGET_WORKING_DAYS}个工作日内到账占比"),
)


def _headline(timeline: pd.DataFrame, month: str) -> pd.DataFrame:
    this, prev = _month_figures(timeline, month), _month_figures(timeline, previous_month(month))
    rows = []
    for key, label in HEADLINE:
        a, b = this[key], prev[key]
        change = None if a is None or b is None else a - b
        rows.append({"key": key, "metric": label, "this_month": a, "previous_month": b, "change": change})
    return pd.DataFrame(rows)


def _paid_by_policy(timeline: pd.DataFrame, month: str) -> pd.DataFrame:
    start, end = month_bounds(month)
    paid = timeline[_in(timeline["paid_at"], start, end)]
    if paid.empty:
        return pd.DataFrame(columns=["department", "policy_id", "title", "offers", "enterprises", "amount"])
    g = paid.groupby(["department", "policy_id", "title"], as_index=False).agg(
        offers=("offer_id", "size"),
        enterprises=("uscc", "nunique"),
        amount=("amount", lambda s: sum(s, ZERO)),
    )
    return g.sort_values(["amount", "policy_id"], ascending=[False, True], ignore_index=True)


def monthly_report(
    session: Session, month: str, run_dir: Path | None = None, sla: Sla = DEFAULT
) -> MonthlyReport:
    """The monthly report's tables: headline against the previous month, money paid per department and
    policy, the funnel at month end, working days to cash, SLA lights per department, and the conditions
    that block most near-misses in the latest run imported by month end (or `run_dir`).
    """
    start, end = month_bounds(month)
    timeline = offer_timeline(session)
    timeline = timeline[timeline["imported_at"] < pd.Timestamp(end)].reset_index(drop=True)
    cut = end - dt.timedelta(microseconds=1)
    paid = days_to_cash(timeline[_in(timeline["paid_at"], start, end)])
    lights = sla_table(sla_outcomes(timeline, at=cut, since=start, sla=sla), by_department=True)
    run_id = None
    if run_dir is None:
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
        headline=_headline(timeline, month),
        paid_by_policy=_paid_by_policy(timeline, month),
        funnel=funnels.table(funnels.stages(session, at=cut)),
        cash=cash_summary(paid),
        cash_days=paid,
        sla=lights,
        stages=sla.stages,
        near_misses=near,
        run_id=run_id,
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
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    return env.get_template("monthly.html").render(
        r=report,
        headline=headline,
        paid=paid,
        funnel=funnel_rows,
        cash=cash,
        stages=report.stages,
        sla_rows=sla_rows,
        near=near,
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
