"""The quality of service (服务质效), apply-free (免申即享) and 快申快享 side by side: how fast a decision and
the money came, and what the enterprises said of it (好差评).

- **Working days** by the one SLA (`reports.sla`): apply-free from the match run's import to the review's
  decision (release) and to the payment; 快申快享 from the first submission to the decision (accepted or
  not) and to the payment, the clock stopped during 补正 (`reports.sla.application_days`, as the
  application's own page counts it). The figure is the median of the items decided (paid) in the month.
- **Satisfaction** from the ratings given in the month (`portal.ratings`): their number, the share rated
  满意 or better, and the poor ones (不满意 or worse) with how many were answered within 5 working days;
  a poor rating not answered and past its 5 days at the report's cut counts as late, one still within
  them as neither. A rating of a paid offer takes its offer's mode; of an application, 快申快享.

Counted in the database by day (ratings, apply-free offers) so memory does not grow with the offers;
applications are read one row each with their returns, as few as enterprises apply by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import and_, case, func, literal_column, select
from sqlmodel import Session

from payouts.models import MatchRun, Offer
from reports.calendar import WorkCalendar, as_day, china_day
from reports.sla import application_days, cash_summary
from rules.workdays import china_date

MODES = (("apply_free", "免申即享"), ("apply", "快申快享"))
ZERO = Decimal("0.00")
# Constants written into the SQL, so that PostgreSQL sees the same expression in SELECT and GROUP BY.
_APPLY, _APPLY_FREE = literal_column("'apply'"), literal_column("'apply_free'")
OFFER_MODE = case((Offer.match_run_id.is_(None), _APPLY), else_=_APPLY_FREE)
"""An offer's mode: 快申快享 when it has no match run (it came from an accepted application)."""


@dataclass(frozen=True)
class RatingCount:
    """Ratings of one mode and department given in a period."""

    mode: str
    department: str
    ratings: int
    satisfied: int
    poor: int
    answered_in_time: int  # poor ratings answered within their 5 working days
    late: int  # poor ratings answered late, or unanswered and past their days at the cut


def _between(column: Any, start: dt.datetime, end: dt.datetime) -> Any:
    return and_(column.is_not(None), column >= start, column < end)


def rating_counts(
    session: Session, start: dt.datetime, end: dt.datetime, at: dt.datetime
) -> list[RatingCount]:
    """Ratings given in [start, end), per mode and department; poor ones judged at `at` (what is 满意,
    poor, and the days to answer are `portal.ratings`')."""
    from portal.models import Rating  # the report reads the ratings
    from portal.ratings import ANSWER_DAYS, POOR, SATISFIED

    mode = case((and_(Rating.subject == "offer", Offer.match_run_id.is_not(None)), _APPLY_FREE), else_=_APPLY)
    poor = Rating.score <= POOR
    keys = (mode, Rating.department, china_day(Rating.rated_at), china_day(Rating.answered_at))
    rows = session.execute(
        select(
            *keys,
            func.count(),
            func.count().filter(Rating.score >= SATISFIED),
            func.count().filter(poor),
        )
        .select_from(Rating)
        .outerjoin(Offer, and_(Rating.subject == "offer", Offer.public_id == Rating.subject_id))
        .where(_between(Rating.rated_at, start, end))
        .group_by(*keys)
    ).all()
    if not rows:
        return []
    cut_day = china_date(at)
    days = [d for r in rows for d in (as_day(r[2]), as_day(r[3])) if d is not None]
    cal = WorkCalendar.covering(min([*days, cut_day]), max([*days, cut_day]))
    out: dict[tuple[str, str], list[int]] = {}
    for m, dept, rated, answered, n, good, bad in rows:
        acc = out.setdefault((m, dept or ""), [0, 0, 0, 0, 0])
        acc[0] += n
        acc[1] += good
        acc[2] += bad
        if not bad:
            continue
        rated_day, answered_day = as_day(rated), as_day(answered)
        assert rated_day is not None
        if answered_day is not None and answered_day <= cut_day:
            in_time = cal.between(rated_day, answered_day) <= ANSWER_DAYS
            acc[3 if in_time else 4] += bad
        elif cal.between(rated_day, cut_day) > ANSWER_DAYS:
            acc[4] += bad
    return [RatingCount(m, d, *v) for (m, d), v in sorted(out.items())]


def _weighted_median(days: Iterable[tuple[int, int]]) -> float | None:
    """The median of working days given as (days, how many), as the report's cash figures count it."""
    rows = [(d, n) for d, n in days if n]
    if not rows:
        return None
    return cash_summary(pd.DataFrame(rows, columns=["working_days", "offers"]))["median"]


def _free_days(
    session: Session, end_column: Any, start: dt.datetime, end: dt.datetime, before: dt.datetime
) -> list[tuple[int, int]]:
    """Apply-free offers whose `end_column` falls in [start, end): working days from their run's import,
    with how many took them (runs imported before `before`)."""
    imported, done = china_day(MatchRun.imported_at), china_day(end_column)
    rows = [
        (as_day(a), as_day(b), int(n))
        for a, b, n in session.execute(
            select(imported, done, func.count())
            .select_from(Offer)
            .join(MatchRun, MatchRun.id == Offer.match_run_id)
            .where(_between(end_column, start, end), MatchRun.imported_at < before)
            .group_by(imported, done)
        )
    ]
    if not rows:
        return []
    days = [d for r in rows for d in r[:2] if d is not None]
    cal = WorkCalendar.covering(min(days), max(days))
    return [(cal.between(a, b), n) for a, b, n in rows if a is not None and b is not None]


def _apply_days(session: Session, start: dt.datetime, end: dt.datetime) -> tuple[list[int], list[int]]:
    """快申快享: working days from the first submission to the decision, of the applications decided in
    [start, end), and to the payment, of their offers paid in it; 补正 stops the clock."""
    from portal.models import Application, ApplicationReturn

    decided = session.execute(
        select(Application.id, Application.submitted_at, Application.decided_at).where(
            Application.submitted_at.is_not(None), _between(Application.decided_at, start, end)
        )
    ).all()
    paid = session.execute(
        select(Application.id, Application.submitted_at, Offer.paid_at)
        .join(Offer, Offer.id == Application.offer_id)
        .where(Application.submitted_at.is_not(None), _between(Offer.paid_at, start, end))
    ).all()
    ids = sorted({r[0] for r in (*decided, *paid)})
    pauses: dict[int, list[tuple[dt.datetime, dt.datetime | None]]] = {}
    for app_id, returned, resumed in session.execute(
        select(ApplicationReturn.application_id, ApplicationReturn.returned_at, ApplicationReturn.resumed_at)
        .where(ApplicationReturn.application_id.in_(ids))
        .order_by(ApplicationReturn.id)
    ):
        pauses.setdefault(app_id, []).append((returned, resumed))
    to_decision = [application_days(s, d, pauses.get(i, ())) for i, s, d in decided]
    to_payment = [application_days(s, p, pauses.get(i, ())) for i, s, p in paid]
    return to_decision, to_payment


def _median(values: list[int]) -> float | None:
    return _weighted_median((v, 1) for v in values)


SERVICE_ROWS = (
    ("decided", "本月作出决定（件）"),
    ("decision_days", "至作出决定中位工作日"),
    ("paid", "本月到账（笔）"),
    ("paid_amount", "本月到账金额（元）"),
    ("payment_days", "至资金到账中位工作日"),
    ("ratings", "本月评价（条）"),
    ("satisfied_share", "满意及以上占比"),
    ("poor", "不满意评价（条）"),
    ("answered_in_time", "5个工作日内答复不满意评价"),
)
SERVICE_COLUMNS = ["key", "metric", "apply_free", "apply"]


def service_table(
    session: Session, start: dt.datetime, end: dt.datetime, at: dt.datetime, before: dt.datetime
) -> pd.DataFrame:
    """The month's service figures, one row per figure, apply-free and 快申快享 side by side (`SERVICE_ROWS`;
    apply-free offers of runs imported before `before`, poor ratings judged at `at`)."""
    free_decided = _free_days(session, Offer.released_at, start, end, before)
    free_paid = _free_days(session, Offer.paid_at, start, end, before)
    apply_decided, apply_paid = _apply_days(session, start, end)
    money: dict[str, tuple[int, Decimal]] = {}
    for mode, n, amount in session.execute(
        select(OFFER_MODE, func.count(), func.sum(Offer.amount))
        .select_from(Offer)
        .outerjoin(MatchRun, MatchRun.id == Offer.match_run_id)
        .where(
            _between(Offer.paid_at, start, end),
            (MatchRun.imported_at < before) | Offer.match_run_id.is_(None),
        )
        .group_by(OFFER_MODE)
    ):
        money[mode] = (int(n), Decimal(amount or 0).quantize(ZERO))
    counts = rating_counts(session, start, end, at)
    figures: dict[str, dict[str, Any]] = {}
    for mode, _ in MODES:
        rated = [c for c in counts if c.mode == mode]
        ratings = sum(c.ratings for c in rated)
        poor = sum(c.poor for c in rated)
        in_time = sum(c.answered_in_time for c in rated)
        due = in_time + sum(c.late for c in rated)
        n_paid, amount = money.get(mode, (0, ZERO))
        figures[mode] = {
            "decided": sum(n for _, n in free_decided) if mode == "apply_free" else len(apply_decided),
            "decision_days": _weighted_median(free_decided)
            if mode == "apply_free"
            else _median(apply_decided),
            "paid": n_paid,
            "paid_amount": amount,
            "payment_days": _weighted_median(free_paid) if mode == "apply_free" else _median(apply_paid),
            "ratings": ratings,
            "satisfied_share": sum(c.satisfied for c in rated) / ratings if ratings else None,
            "poor": poor,
            # answered in time of those answered or past their days (those still within them wait)
            "answered_in_time": f"{in_time}/{due}" if due else None,
        }
    return pd.DataFrame(
        [
            {
                "key": key,
                "metric": label,
                "apply_free": figures["apply_free"][key],
                "apply": figures["apply"][key],
            }
            for key, label in SERVICE_ROWS
        ],
        columns=SERVICE_COLUMNS,
    )


def ratings_by_department(counts: list[RatingCount]) -> pd.DataFrame:
    """Ratings per department over both modes, for the 月讲评: number, satisfied share, poor, late answers."""
    columns = ["department", "ratings", "satisfied_share", "poor", "poor_late"]
    by: dict[str, list[int]] = {}
    for c in counts:
        acc = by.setdefault(c.department, [0, 0, 0, 0])
        acc[0] += c.ratings
        acc[1] += c.satisfied
        acc[2] += c.poor
        acc[3] += c.late
    return pd.DataFrame(
        [(d, n, good / n if n else None, poor, late) for d, (n, good, poor, late) in sorted(by.items())],
        columns=columns,
    )
