"""The funnel: how many offers, and how much money, reached each stage (matched → offered → confirmed → paid).

Also counts and money per current state. Used by `zhida offers status` and the demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlmodel import Session

from payouts.models import MatchRun, Offer, OfferState
from payouts.offers import LABELS

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Stage:
    """One step of the funnel."""

    stage: str
    label: str
    count: int
    amount: Decimal


def _filters(session: Session, run_id: str | None, policy_id: str | None) -> ColumnElement[bool]:
    where: ColumnElement[bool] = true()
    if run_id is not None:
        where = where & (
            Offer.match_run_id == select(MatchRun.id).where(MatchRun.run_id == run_id).scalar_subquery()
        )
    if policy_id is not None:
        where = where & (Offer.policy_id == policy_id)
    return where


def stages(session: Session, *, run_id: str | None = None, policy_id: str | None = None) -> list[Stage]:
    """Offers and money that reached each stage (an offer counts at every stage it got to)."""
    where = _filters(session, run_id, policy_id)
    steps = [
        ("matched", "比对命中", true()),
        ("offered", "已发布", Offer.released_at.is_not(None)),
        ("confirmed", "已确认", Offer.confirmed_at.is_not(None)),
        ("paid", "已到账", Offer.state == OfferState.PAID.value),
    ]
    out = []
    for name, label, cond in steps:
        count, amount = session.execute(
            select(func.count(), func.coalesce(func.sum(Offer.amount), 0)).where(where, cond)
        ).one()
        out.append(Stage(name, label, count, Decimal(amount).quantize(Decimal("0.01"))))
    return out


def by_state(session: Session, *, run_id: str | None = None, policy_id: str | None = None) -> list[Stage]:
    """Offers and money per current state, in the order of the state machine."""
    rows = session.execute(
        select(Offer.state, func.count(), func.coalesce(func.sum(Offer.amount), 0))
        .where(_filters(session, run_id, policy_id))
        .group_by(Offer.state)
    ).all()
    found = {s: (n, Decimal(a).quantize(Decimal("0.01"))) for s, n, a in rows}
    return [Stage(s.value, LABELS[s], *found[s.value]) for s in OfferState if s.value in found]


def funnel(session: Session, *, run_id: str | None = None, policy_id: str | None = None) -> dict[str, Any]:
    """The funnel and the per-state counts as plain values (money as text)."""

    def plain(s: Stage) -> dict[str, Any]:
        return {"stage": s.stage, "label": s.label, "count": s.count, "amount": format(s.amount, "f")}

    return {
        "stages": [plain(s) for s in stages(session, run_id=run_id, policy_id=policy_id)],
        "states": [plain(s) for s in by_state(session, run_id=run_id, policy_id=policy_id)],
    }
