"""SLA lights per stage (Leiyang's 红黄绿灯): how many offers are in time, near the limit, or overdue.

Stages and their clocks:
- 初核 (review): drafted or held offers, from when they were created; limit `sla_review_days` working days.
- 意愿确认 (confirm): notified offers, against their link's deadline; yellow `sla_confirm_warn_days`
  calendar days before it.
- 拨付 (payment): confirmed, in a batch or failed, from confirmation; limit `sla_payment_days` working days.
Yellow starts `sla_warn_days` working days before the limit. Working days are Monday to Friday in
China time (public holidays are not known here).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, case, func, select
from sqlmodel import Session

from api.settings import Settings
from payouts.models import Offer, OfferState

CHINA = dt.timezone(dt.timedelta(hours=8))
S = OfferState


@dataclass(frozen=True)
class Light:
    """Offers of one stage (and policy) by colour."""

    stage: str
    label: str
    limit: str
    policy_id: str | None
    green: int
    yellow: int
    red: int

    @property
    def total(self) -> int:
        return self.green + self.yellow + self.red


def working_days_before(now: dt.datetime, days: int) -> dt.datetime:
    """The moment `days` working days (Monday to Friday, China time) before `now`."""
    local = now.astimezone(CHINA)
    left = max(days, 0)
    while left:
        local -= dt.timedelta(days=1)
        if local.weekday() < 5:
            left -= 1
    return local.astimezone(dt.UTC)


def _count(
    session: Session,
    states: Iterable[OfferState],
    red: ColumnElement[bool],
    yellow: ColumnElement[bool],
    policy_ids: set[str] | None,
) -> dict[str, tuple[int, int, int]]:
    colour = case((red, 2), (yellow, 1), else_=0)
    query = (
        select(Offer.policy_id, colour.label("c"), func.count())
        .where(Offer.state.in_([s.value for s in states]))
        .group_by(Offer.policy_id, colour)
    )
    if policy_ids is not None:
        query = query.where(Offer.policy_id.in_(sorted(policy_ids)))
    out: dict[str, list[int]] = {}
    for policy_id, c, n in session.execute(query):
        out.setdefault(policy_id, [0, 0, 0])[c] += n
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def lights(
    session: Session, settings: Settings, now: dt.datetime, policy_ids: set[str] | None = None
) -> list[Light]:
    """Per stage: the total over the policies first, then one row per policy."""
    review_red = working_days_before(now, settings.sla_review_days)
    review_yellow = working_days_before(now, settings.sla_review_days - settings.sla_warn_days)
    pay_red = working_days_before(now, settings.sla_payment_days)
    pay_yellow = working_days_before(now, settings.sla_payment_days - settings.sla_warn_days)
    confirm_yellow = now + dt.timedelta(days=settings.sla_confirm_warn_days)
    stages = [
        (
            "review",
            "初核",
            f"{settings.sla_review_days} 个工作日",
            (S.DRAFTED, S.HELD),
            Offer.created_at < review_red,
            Offer.created_at < review_yellow,
        ),
        (
            "confirm",
            "意愿确认",
            "链接有效期内",
            (S.NOTIFIED,),
            Offer.deadline <= now,
            Offer.deadline <= confirm_yellow,
        ),
        (
            "payment",
            "拨付到账",
            f"{settings.sla_payment_days} 个工作日",
            (S.CONFIRMED, S.IN_BATCH, S.PAYMENT_FAILED),
            Offer.confirmed_at < pay_red,
            Offer.confirmed_at < pay_yellow,
        ),
    ]
    out = []
    for stage, label, limit, states, red, yellow in stages:
        counts = _count(session, states, red, yellow, policy_ids)
        g, y, r = (sum(v[i] for v in counts.values()) for i in range(3))
        out.append(Light(stage, label, limit, None, g, y, r))
        out += [Light(stage, label, limit, pid, *counts[pid]) for pid in sorted(counts)]
    return out
