"""Which offers a bulk action acts on, and the check that it acted on exactly the set its user saw.

A bulk action (release, hold, drop, send the confirmation SMS) never acts on "everything" by default.
Its user chooses either the offers they ticked, or every offer matching a filter they set, and sees a
preview of what the action will do: how many offers, how much money, which policies. The request
that carries the action out repeats that count and total (`Tally`); the action compares them with
what it actually changed and, when they differ (somebody changed the set meanwhile), raises
`SelectionChanged` so the whole transaction rolls back and nothing is changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlmodel import Session

from payouts.models import MatchRun, Offer, Payee, PolicyVersion
from payouts.scope import Scope
from rules.errors import PayoutError, StateError
from rules.formats import SIZE_LABELS

CENT = Decimal("0.01")


class NothingChosen(PayoutError):
    """A bulk action named no offers: neither ticked ones nor "all matching this filter"."""


class SelectionChanged(StateError):
    """The offers an action would change are not the count and total its user confirmed."""


REGION_PREFIX = re.compile(r"\d{2}(?:\d{2}(?:\d{2})?)?")
INDUSTRY_SECTION = re.compile(r"[A-Z]")


@dataclass(frozen=True)
class OfferFilter:
    """The filters of an offer list; a bulk action may act on every offer matching them.

    `region` is a GB/T 2260 prefix (43 a province, 4301 a prefecture, 430102 a county) matched against the
    enterprise's region code from the profile (`offer.region_code`, what region-scoped staff see,
    payouts/scope.py; an offer whose region is not known matches no region). `enterprise`
    matches a USCC prefix or a part of the enterprise's name. Amounts are yuan, both bounds included.
    """

    policy_id: str | None = None
    run_id: str | None = None
    states: tuple[str, ...] = ()
    uscc: str | None = None
    name: str | None = None
    item_id: str | None = None
    region: str | None = None
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    enterprise: str | None = None
    industry: str | None = None  # GB/T 4754 section letter (门类), as the run's profile had it
    size_class: str | None = None  # large, medium, small or micro

    def __post_init__(self) -> None:
        if self.region and not REGION_PREFIX.fullmatch(self.region):
            raise ValueError(f"地区代码应为2、4或6位数字：{self.region}")
        if self.industry and not INDUSTRY_SECTION.fullmatch(self.industry):
            raise ValueError(f"行业门类应为一个大写字母（GB/T 4754），例如 C：{self.industry}")
        if self.size_class and self.size_class not in SIZE_LABELS:
            raise ValueError(f"企业规模应为大型、中型、小型或微型：{self.size_class}")

    def condition(self) -> ColumnElement[bool]:
        c = Offer.__table__.c
        where: list[ColumnElement[bool]] = []
        if self.policy_id:
            where.append(c.policy_id == self.policy_id)
        if self.item_id:
            where.append(c.item_id == self.item_id)
        if self.region:
            where.append(c.region_code.startswith(self.region, autoescape=True))
        if self.industry:
            where.append(c.industry_section == self.industry)
        if self.size_class:
            where.append(c.size_class == self.size_class)
        if self.amount_min is not None:
            where.append(c.amount >= self.amount_min)
        if self.amount_max is not None:
            where.append(c.amount <= self.amount_max)
        if self.enterprise:
            named = select(Payee.id).where(Payee.name.contains(self.enterprise, autoescape=True))
            where.append(
                or_(c.uscc.startswith(self.enterprise.upper(), autoescape=True), c.payee_id.in_(named))
            )
        if self.run_id:
            run = select(MatchRun.id).where(MatchRun.run_id == self.run_id).scalar_subquery()
            where.append(c.match_run_id == run)
        if self.states:
            where.append(c.state.in_(self.states))
        if self.uscc:
            where.append(c.uscc.startswith(self.uscc.upper(), autoescape=True))
        if self.name:
            named = select(Payee.id).where(Payee.name.contains(self.name, autoescape=True))
            where.append(c.payee_id.in_(named))
        return and_(true(), *where)


@dataclass(frozen=True)
class Selection:
    """The offers a user chose: the ones they ticked, or all matching a filter (never both, never none).

    `scope` keeps the choice inside what the user sees (`payouts/scope.py`; None: everything), and with
    `deciding` inside what they decide on (the lead's offers of a jointly reviewed policy): a bulk action's
    preview and the action itself then count the same offers.
    """

    offers: tuple[str, ...] | None = None
    filter: OfferFilter | None = None
    scope: Scope | None = None
    deciding: bool = False

    def __post_init__(self) -> None:
        if (self.offers is None) == (self.filter is None) or (self.offers is not None and not self.offers):
            raise NothingChosen("没有选择要约：请勾选要约，或选择“全部符合筛选条件的要约”")

    @property
    def ticked(self) -> bool:
        return self.offers is not None

    def condition(self) -> ColumnElement[bool]:
        """The offers chosen, as a condition on the offer table."""
        c = Offer.__table__.c
        if self.filter is not None:
            chosen = self.filter.condition()
        else:
            chosen = c.public_id.in_(sorted(set(self.offers or ())))
        if self.scope is None or self.scope.everything:
            return chosen
        return and_(chosen, self.scope.offers(deciding=self.deciding))


@dataclass(frozen=True)
class Tally:
    """How many offers and how much money (yuan, fen-exact)."""

    count: int
    total: Decimal

    @classmethod
    def of(cls, amounts: list[Decimal]) -> Tally:
        return cls(len(amounts), sum(amounts, Decimal("0")).quantize(CENT))

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.count + other.count, (self.total + other.total).quantize(CENT))

    def check(self, expected: Tally | None) -> None:
        """Refuse when this is not the count and total the user confirmed (no check without one)."""
        if expected is None:
            return
        if self.count != expected.count or self.total != expected.total.quantize(CENT):
            raise SelectionChanged(
                f"所选要约已有变化：确认时为 {expected.count:,} 条、{expected.total:,.2f} 元，"
                f"现为 {self.count:,} 条、{self.total:,.2f} 元。未做任何改动，请重新查看后再确认"
            )


@dataclass(frozen=True)
class PolicyShare:
    """One policy's part of a preview; `direct` when its offers need no confirmation by the enterprise."""

    policy_id: str
    title: str
    direct: bool
    count: int
    total: Decimal


@dataclass(frozen=True)
class Preview:
    """What a bulk action will act on: the tally and its policies."""

    tally: Tally
    policies: list[PolicyShare]

    @property
    def direct(self) -> Tally:
        """The part that goes straight to confirmed (policies with `confirmation: none`)."""
        shares = [p for p in self.policies if p.direct]
        return Tally(sum(p.count for p in shares), sum((p.total for p in shares), Decimal("0.00")))


def preview(session: Session, where: ColumnElement[bool]) -> Preview:
    """Count and total of the offers matching `where`, per policy (title from its latest version)."""
    c = Offer.__table__.c
    rows = session.execute(
        select(
            c.policy_id,
            PolicyVersion.title,
            PolicyVersion.confirmation,
            func.count(),
            func.coalesce(func.sum(c.amount), 0),
        )
        .join(
            PolicyVersion,
            and_(PolicyVersion.policy_id == c.policy_id, PolicyVersion.version == c.policy_version),
        )
        .where(where)
        .group_by(c.policy_id, PolicyVersion.title, PolicyVersion.confirmation)
        .order_by(c.policy_id)
    ).all()
    merged: dict[str, PolicyShare] = {}
    for pid, title, confirmation, n, amount in rows:
        total = Decimal(amount).quantize(CENT)
        if pid in merged:  # offers of several versions of one policy
            old = merged[pid]
            n, total = old.count + n, old.total + total
        merged[pid] = PolicyShare(pid, title, confirmation == "none", n, total)
    shares = list(merged.values())
    tally = Tally(sum(p.count for p in shares), sum((p.total for p in shares), Decimal("0.00")))
    return Preview(tally, shares)
