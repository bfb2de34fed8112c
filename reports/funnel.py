"""The one funnel: how many offers, and how much money, reached each step from match to money.

An offer counts at every stage it reached; a stage is reached when its time is set (and, with `at`, not
after `at`): 比对命中 at the run's import, 初核发布 at release, 已发短信 at the first notice (an offer of a
policy without 意愿确认 is confirmed at release and passes this stage without an SMS), 企业已确认 at
confirmation, 已组批 and 已复核 when its first batch was made and approved, 已到账 when it was paid.
Paid is counted by `paid_at`: it is set exactly when an offer becomes `paid`, a state it never leaves, so
"paid now" and "paid by the end of a month" are the same rule. The console, `zhida offers status`, the
demo and the monthly report all call `stages`.

`by_state` is the other view: offers and money per current state.

Both count the offers of match runs (免申即享). Offers from accepted applications (快申快享) have no match
run; they are the second arm, `applications`: 提交申请 at the first submission, 审核通过 at acceptance
(when the offer is made, already confirmed), then the same 已组批, 已复核 and 已到账 as any offer. The two
arms are counted apart so that neither changes the other's figures; the monthly report and the console
show them side by side.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, and_, case, func, select, true
from sqlmodel import Session

from payouts.models import MatchRun, Offer, OfferState, PolicyVersion, SmsMessage
from payouts.offers import LABELS
from reports.timeline import first_batches

ZERO = Decimal("0.00")
STAGES = (
    ("matched", "比对命中"),
    ("released", "初核发布"),
    ("sms", "已发短信（含免确认）"),
    ("confirmed", "企业已确认"),
    ("batched", "已组批"),
    ("approved", "已复核"),
    ("paid", "已到账"),
)


@dataclass(frozen=True)
class Stage:
    """One step of the funnel (or one current state): offers and their money."""

    stage: str
    label: str
    count: int
    amount: Decimal


def _filters(
    run_id: str | None, policy_ids: set[str] | None, region: str | None = None
) -> ColumnElement[bool]:
    where: ColumnElement[bool] = true()
    if run_id is not None:
        where = where & (MatchRun.run_id == run_id)
    if policy_ids is not None:
        where = where & Offer.policy_id.in_(sorted(policy_ids))
    if region is not None:  # a region-scoped user's enterprises only (payouts/scope.py)
        where = where & Offer.region_code.startswith(region, autoescape=True)
    return where


def stages(
    session: Session,
    *,
    run_id: str | None = None,
    policy_ids: set[str] | None = None,
    at: dt.datetime | None = None,
    region: str | None = None,
) -> list[Stage]:
    """Offers and money that reached each stage (by `at`, when given), in one query.

    `policy_ids`: only these policies (None: all); `run_id`: only that match run's offers; `region`: only
    enterprises whose region code starts with it.
    """
    first_batch = first_batches()

    def reached(column: Any) -> ColumnElement[bool]:
        cond: ColumnElement[bool] = column.is_not(None)
        return cond if at is None else cond & (column <= at)

    condition = {
        "matched": reached(MatchRun.imported_at),
        "released": reached(Offer.released_at),
        "sms": reached(Offer.notified_at)
        | ((PolicyVersion.confirmation == "none") & reached(Offer.released_at)),
        "confirmed": reached(Offer.confirmed_at),
        "batched": reached(first_batch.c.batched_at),
        "approved": reached(first_batch.c.approved_at),
        "paid": reached(Offer.paid_at),
    }
    columns = []
    for stage, _ in STAGES:
        hit = condition[stage]
        columns += [func.count().filter(hit), func.sum(Offer.amount).filter(hit)]
    row = session.execute(
        select(*columns)
        .select_from(Offer)
        .join(MatchRun, MatchRun.id == Offer.match_run_id)
        .join(
            PolicyVersion,
            and_(PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version),
        )
        .outerjoin(first_batch, first_batch.c.offer_id == Offer.id)
        .where(_filters(run_id, policy_ids, region))
    ).one()
    return [
        Stage(stage, label, int(row[2 * n]), (row[2 * n + 1] or ZERO).quantize(ZERO))
        for n, (stage, label) in enumerate(STAGES)
    ]


APPLICATION_STAGES = (
    ("submitted", "提交申请"),
    ("accepted", "审核通过"),
    ("batched", "已组批"),
    ("approved", "已复核"),
    ("paid", "已到账"),
)


def applications(
    session: Session,
    *,
    policy_ids: set[str] | None = None,
    at: dt.datetime | None = None,
    region: str | None = None,
) -> list[Stage]:
    """The 快申快享 arm: applications submitted, accepted (each became an offer), and their offers batched,
    approved and paid (by `at`, when given), with their money, in one query. The money of a submitted
    application is the amount its formula gave (none when the department sets it); from acceptance on,
    the amount accepted."""
    from portal.models import Application, ApplicationState  # the funnel reads the applications

    first_batch = first_batches()

    def reached(column: Any) -> ColumnElement[bool]:
        cond: ColumnElement[bool] = column.is_not(None)
        return cond if at is None else cond & (column <= at)

    accepted = reached(Application.decided_at) & (Application.state == ApplicationState.ACCEPTED.value)
    condition = {
        "submitted": reached(Application.submitted_at),
        "accepted": accepted,
        "batched": accepted & reached(first_batch.c.batched_at),
        "approved": accepted & reached(first_batch.c.approved_at),
        "paid": accepted & reached(Offer.paid_at),
    }
    money = {"submitted": func.coalesce(Application.amount, Application.requested_amount)}
    columns = []
    for stage, _ in APPLICATION_STAGES:
        hit = condition[stage]
        columns += [func.count().filter(hit), func.sum(money.get(stage, Offer.amount)).filter(hit)]
    query = (
        select(*columns)
        .select_from(Application)
        .outerjoin(Offer, Offer.id == Application.offer_id)
        .outerjoin(first_batch, first_batch.c.offer_id == Offer.id)
    )
    if policy_ids is not None:
        query = query.where(Application.policy_id.in_(sorted(policy_ids)))
    if region is not None:  # a region-scoped user's enterprises only (payouts/scope.py)
        query = query.where(Application.region_code.startswith(region, autoescape=True))
    row = session.execute(query).one()
    return [
        Stage(stage, label, int(row[2 * n]), _money(row[2 * n + 1]))
        for n, (stage, label) in enumerate(APPLICATION_STAGES)
    ]


def by_state(
    session: Session,
    *,
    run_id: str | None = None,
    policy_ids: set[str] | None = None,
    region: str | None = None,
) -> list[Stage]:
    """Offers and money per current state, in the order of the state machine."""
    rows = session.execute(
        select(Offer.state, func.count(), func.sum(Offer.amount))
        .join(MatchRun, MatchRun.id == Offer.match_run_id)
        .where(_filters(run_id, policy_ids, region))
        .group_by(Offer.state)
    ).all()
    found = {s: (n, (a or ZERO).quantize(ZERO)) for s, n, a in rows}
    return [Stage(s.value, LABELS[s], *found[s.value]) for s in OfferState if s.value in found]


def plain(rows: list[Stage]) -> list[dict[str, Any]]:
    """Stages as plain values (money as text), for JSON and the demo's printout."""
    return [
        {"stage": s.stage, "label": s.label, "count": s.count, "amount": format(s.amount, "f")} for s in rows
    ]


def table(rows: list[Stage]) -> pd.DataFrame:
    """The funnel as a table for the report and the notebooks: offers, money, and their share of the matched."""
    df = pd.DataFrame(
        [(s.stage, s.label, s.count, s.amount) for s in rows], columns=["stage", "label", "offers", "amount"]
    )
    first_n, first_amount = (df["offers"].iloc[0], df["amount"].iloc[0]) if len(df) else (0, ZERO)
    df["share"] = [n / first_n if first_n else None for n in df["offers"]]
    df["amount_share"] = [a / first_amount if first_amount else None for a in df["amount"]]
    return df


OUTREACH_STAGES = (
    ("told", "已告知（差一点、数据缺失）"),
    ("supplied", "企业补充材料"),
    ("verified", "部门核实通过"),
    ("matched", "比对命中"),
    ("paid", "已到账"),
)


def outreach(session: Session, *, policy_ids: set[str] | None = None) -> list[Stage]:
    """What outreach brought (`portal.outreach`): enterprise × policy pairs told by SMS, and of them those
    that then supplied data for the policy, had it verified, were matched (an offer from a run imported
    after the first message) and were paid. `amount` is the money of the offers matched or paid."""
    from portal.models import SuppliedValue  # the funnel reads what enterprises supplied

    told = (
        select(
            SmsMessage.uscc.label("uscc"),
            SmsMessage.policy_id.label("policy_id"),
            func.min(SmsMessage.sent_at).label("first"),
        )
        .where(SmsMessage.kind == "outreach", SmsMessage.status == "sent")
        .group_by(SmsMessage.uscc, SmsMessage.policy_id)
    )
    if policy_ids is not None:
        told = told.where(SmsMessage.policy_id.in_(sorted(policy_ids)))
    t = told.subquery()

    def supplied(*states: str) -> Any:
        q = select(SuppliedValue.id).where(
            SuppliedValue.uscc == t.c.uscc,
            SuppliedValue.policy_id == t.c.policy_id,
            SuppliedValue.submitted_at >= t.c.first,
        )
        return case((q.where(SuppliedValue.state.in_(states)).exists() if states else q.exists(), 1), else_=0)

    def offers(*where: Any) -> tuple[Any, Any]:
        base = (
            select(Offer.amount)
            .join(MatchRun, MatchRun.id == Offer.match_run_id)
            .where(
                Offer.uscc == t.c.uscc, Offer.policy_id == t.c.policy_id, MatchRun.imported_at >= t.c.first
            )
            .where(*where)
        )
        count = base.with_only_columns(func.count(Offer.id)).scalar_subquery()
        total = base.with_only_columns(func.sum(Offer.amount)).scalar_subquery()
        return count, total

    matched_n, matched_amount = offers(Offer.state != OfferState.DROPPED.value)
    paid_n, paid_amount = offers(Offer.paid_at.is_not(None))
    per_pair = (
        select(
            supplied().label("s"),
            supplied("verified").label("v"),
            matched_n.label("mn"),
            matched_amount.label("ma"),
            paid_n.label("pn"),
            paid_amount.label("pa"),
        )
        .select_from(t)
        .subquery()
    )
    p = per_pair.c
    row = session.execute(
        select(
            func.count(),
            func.count().filter(p.s == 1),
            func.count().filter(p.v == 1),
            func.count().filter(p.mn > 0),
            func.count().filter(p.pn > 0),
            func.sum(p.ma),
            func.sum(p.pa),
        ).select_from(per_pair)
    ).one()
    counts = dict(zip(("told", "supplied", "verified", "matched", "paid"), row[:5], strict=True))
    amounts = {"matched": row[5], "paid": row[6]}
    return [
        Stage(stage, label, int(counts[stage] or 0), _money(amounts.get(stage)))
        for stage, label in OUTREACH_STAGES
    ]


def _money(value: Any) -> Decimal:
    """A sum of money from SQL (None when nothing was summed) as yuan to the fen."""
    return ZERO if value is None else Decimal(value).quantize(ZERO)
