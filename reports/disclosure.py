"""Public 晾晒: where each policy's money went, for the public page, the open-data export and the monthly
report (one owner of these figures).

Per policy and county (the registration authority's division code, characters 3–8 of the USCC) and
month: enterprises matched, reached (told by SMS, or confirmed at release where the policy needs no
意愿确认), paid, and money paid; and per policy and county in total, the 应享尽享 rate (enterprises paid ÷
enterprises eligible: matched and not dropped at review) and the working days from the match's import
to the payment. Only counts and sums leave this module: no USCC, name, phone or account, no amount of
one enterprise beyond what the 公示 published. The figures stay after a policy's notices end.

Every figure is counted in the database (grouped by policy, county, month or day), so memory does not
grow with the offers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, and_, case, func, select, true
from sqlmodel import Session

from matcher.codes import region_name
from payouts.models import MatchRun, Offer, OfferState, PolicyVersion
from reports.calendar import WorkCalendar, as_day, china_day, china_month
from reports.sla import cash_summary

ZERO = Decimal("0.00")
MONTH_COLUMNS = [
    "policy_id",
    "title",
    "department",
    "county_code",
    "county",
    "month",
    "matched",
    "reached",
    "paid",
    "paid_amount",
]
TOTAL_COLUMNS = [
    "policy_id",
    "title",
    "department",
    "county_code",
    "county",
    "eligible",
    "reached",
    "paid",
    "paid_amount",
    "rate",
    "median_days",
]
LABELS = {
    "policy_id": "政策代码",
    "title": "政策名称",
    "department": "主管部门",
    "county_code": "区划代码",
    "county": "区县",
    "month": "月份",
    "matched": "比对命中企业（户）",
    "reached": "已告知企业（户）",
    "paid": "已到账企业（户）",
    "paid_amount": "到账金额（元）",
    "eligible": "应享企业（户）",
    "rate": "应享尽享率",
    "median_days": "比对至到账中位工作日",
}
ALL = "合计"


@dataclass(frozen=True)
class Disclosure:
    """The public figures: per policy, county and month, and per policy and county in total."""

    by_month: pd.DataFrame
    totals: pd.DataFrame
    as_of: dt.datetime


def _county() -> Any:
    return func.substr(Offer.uscc, 3, 6)


def _titles(session: Session) -> dict[str, tuple[str, str]]:
    """policy id → (title, department) of its latest version."""
    out: dict[str, tuple[str, str]] = {}
    for pid, title, dept in session.execute(
        select(PolicyVersion.policy_id, PolicyVersion.title, PolicyVersion.department).order_by(
            PolicyVersion.policy_id, PolicyVersion.version
        )
    ):
        out[pid] = (title, dept)
    return out


def figures(session: Session, *, at: dt.datetime | None = None, policy_id: str | None = None) -> Disclosure:
    """The public figures as of `at` (default: now), for every policy or one."""
    at = at or dt.datetime.now(dt.UTC)

    def by(column: Any) -> ColumnElement[bool]:
        return and_(column.is_not(None), column <= at)

    reached_at = case(
        (Offer.notified_at.is_not(None), Offer.notified_at),
        (PolicyVersion.confirmation == "none", Offer.released_at),
        else_=None,
    )
    scope = and_(
        Offer.state != OfferState.DROPPED.value,
        by(MatchRun.imported_at),
        Offer.policy_id == policy_id if policy_id is not None else true(),
    )

    def base(*columns: Any) -> Any:
        return (
            select(*columns)
            .select_from(Offer)
            .join(MatchRun, MatchRun.id == Offer.match_run_id)
            .join(
                PolicyVersion,
                and_(
                    PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version
                ),
            )
            .where(scope)
        )

    county = _county()
    monthly: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, stamp in (("matched", MatchRun.imported_at), ("reached", reached_at), ("paid", Offer.paid_at)):
        month = china_month(stamp)
        query = (
            base(
                Offer.policy_id, county, month, func.count(func.distinct(Offer.uscc)), func.sum(Offer.amount)
            )
            .where(by(stamp))
            .group_by(Offer.policy_id, county, month)
        )
        for pid, code, m, n, amount in session.execute(query):
            row = monthly.setdefault(
                (pid, code, m), {"matched": 0, "reached": 0, "paid": 0, "paid_amount": ZERO}
            )
            row[name] = int(n)
            if name == "paid":
                row["paid_amount"] = Decimal(amount or 0).quantize(ZERO)

    paid_ok = by(Offer.paid_at)
    total_rows = session.execute(
        base(
            Offer.policy_id,
            county,
            func.count(func.distinct(Offer.uscc)),
            func.count(func.distinct(case((by(reached_at), Offer.uscc), else_=None))),
            func.count(func.distinct(case((paid_ok, Offer.uscc), else_=None))),
            func.sum(case((paid_ok, Offer.amount), else_=None)),
        ).group_by(Offer.policy_id, county)
    ).all()
    imported, paid_day = china_day(MatchRun.imported_at), china_day(Offer.paid_at)
    spans = session.execute(
        base(Offer.policy_id, county, imported, paid_day, func.count())
        .where(paid_ok)
        .group_by(Offer.policy_id, county, imported, paid_day)
    ).all()
    days = [as_day(d) for r in spans for d in (r[2], r[3])]
    cal = WorkCalendar.covering(min(days), max(days)) if days else None  # type: ignore[type-var]
    taken = pd.DataFrame(
        [(p, c, cal.between(as_day(a), as_day(b)), int(n)) for p, c, a, b, n in spans]  # type: ignore[union-attr, arg-type]
        if cal
        else [],
        columns=["policy_id", "county_code", "working_days", "offers"],
    )

    titles = _titles(session)

    def named(pid: str, code: str) -> dict[str, Any]:
        title, dept = titles.get(pid, (pid, ""))
        return {
            "policy_id": pid,
            "title": title,
            "department": dept,
            "county_code": code,
            "county": ALL if code == "" else region_name(code) or code,
        }

    by_month = pd.DataFrame(
        [named(p, c) | {"month": m} | v for (p, c, m), v in sorted(monthly.items())], columns=MONTH_COLUMNS
    )
    totals = []
    per_policy: dict[str, list[Any]] = {}
    for pid, code, eligible, reached, paid, amount in sorted(total_rows, key=lambda r: (r[0], r[1])):
        amount = Decimal(amount or 0).quantize(ZERO)
        # An enterprise has one county (its USCC), so the counties' counts add up to the policy's.
        acc = per_policy.setdefault(pid, [0, 0, 0, ZERO])
        for i, v in enumerate((eligible, reached, paid, amount)):
            acc[i] += v
        median = cash_summary(taken[(taken.policy_id == pid) & (taken.county_code == code)])["median"]
        totals.append(named(pid, code) | _total(eligible, reached, paid, amount, median))
    for pid, (eligible, reached, paid, amount) in per_policy.items():
        median = cash_summary(taken[taken.policy_id == pid])["median"]
        totals.append(named(pid, "") | _total(eligible, reached, paid, amount, median))
    frame = pd.DataFrame(totals, columns=TOTAL_COLUMNS)
    frame["_all"] = frame["county_code"] != ""  # each policy's total first, then its counties
    frame = frame.sort_values(["policy_id", "_all", "county_code"], ignore_index=True).drop(columns="_all")
    return Disclosure(by_month, frame, at)


def _total(eligible: int, reached: int, paid: int, amount: Decimal, median: float | None) -> dict[str, Any]:
    return {
        "eligible": int(eligible),
        "reached": int(reached),
        "paid": int(paid),
        "paid_amount": amount,
        "rate": Decimal(paid) / Decimal(eligible) if eligible else None,
        "median_days": median,
    }


def rate_text(rate: Decimal | None) -> str:
    """The 应享尽享 rate as the public reads it: truncated to 0.1%, never rounded up to a rounder figure."""
    if rate is None:
        return "—"
    return f"{(rate * 100).quantize(Decimal('0.1'), rounding='ROUND_DOWN')}%"


def table(d: Disclosure) -> pd.DataFrame:
    """The policies' totals (county 合计 rows) for the monthly report."""
    return d.totals[d.totals["county_code"] == ""].reset_index(drop=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    return value


def open_data_json(d: Disclosure) -> str:
    """The open-data export as JSON: the totals and the monthly figures, money as text in yuan."""
    doc = {
        "as_of": d.as_of.astimezone(dt.UTC).isoformat(),
        "fields": LABELS,
        "totals": [{k: _plain(v) for k, v in r.items()} for r in d.totals.to_dict("records")],
        "by_month": [{k: _plain(v) for k, v in r.items()} for r in d.by_month.to_dict("records")],
    }
    return json.dumps(doc, ensure_ascii=False, indent=1)


def open_data_csv(d: Disclosure) -> str:
    """The open-data export as CSV (UTF-8 with BOM, for spreadsheet programs): one row per policy, county
    and month, Chinese headers."""
    out = io.StringIO()
    out.write("\ufeff")
    w = csv.writer(out)
    w.writerow([LABELS[c] for c in MONTH_COLUMNS])
    for r in d.by_month.itertuples(index=False):
        w.writerow([_plain(v) if _plain(v) is not None else "" for v in r])
    return out.getvalue()
