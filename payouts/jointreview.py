"""Joint review (会签) of apply-free offers of a policy that names several `reviewers` (Contract 1): every
co-reviewing department (the reviewers after the first) records its opinion on each offer, agreeing or
not, with a note; the lead (the first reviewer) decides, releasing or dropping an offer only once every
co-reviewer has given its opinion for the offer's current review round. Holding needs none.

Staff give an opinion in the name of the department the policy names (their own or a superior of theirs,
`payouts/scope.py`), for the enterprises of their region. Every opinion is an audit event of the offer
(`review_opinion`), so it is in the offer's timeline with who, when and why.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlmodel import Session

from payouts import audit, scope
from payouts.audit import Event
from payouts.errors import NotFoundError, RoleError
from payouts.models import Offer, OfferOpinion, OfferState, PolicyVersion
from payouts.users import require
from rules.errors import StateError

# The states in which an offer waits for the lead's decision, and so for opinions.
OPEN = (OfferState.DRAFTED.value, OfferState.HELD.value)


def co_reviewers(session: Session) -> dict[int, list[str]]:
    """Policy version id → its co-reviewing departments (the reviewers after the lead), jointly reviewed
    versions only."""
    out: dict[int, list[str]] = {}
    for vid, reviewers in session.execute(
        select(PolicyVersion.id, PolicyVersion.reviewers).where(PolicyVersion.reviewers.is_not(None))
    ):
        others = scope.reviewer_list(reviewers)[1:]
        if others:
            out[vid] = others
    return out


def awaiting(session: Session) -> ColumnElement[bool]:
    """The offers (a condition on the offer table) still missing a co-reviewer's opinion for their round."""
    c = Offer.__table__.c
    o = OfferOpinion.__table__.c
    versions = {
        vid: (pid, v)
        for vid, pid, v in session.execute(
            select(PolicyVersion.id, PolicyVersion.policy_id, PolicyVersion.version)
        )
    }
    branches = []
    for vid, others in co_reviewers(session).items():
        pid, version = versions[vid]
        lacking = [
            ~exists()
            .where(o.offer_id == c.id, o.department == dept, o.round == c.round)
            .correlate_except(OfferOpinion.__table__)
            for dept in others
        ]
        branches.append(and_(c.policy_id == pid, c.policy_version == version, or_(*lacking)))
    return or_(false(), *branches)


def check_decidable(session: Session, public_ids: Sequence[str]) -> None:
    """StateError naming the offers whose co-reviewers have not all given their opinion yet."""
    waiting = session.scalars(
        select(Offer.public_id).where(Offer.public_id.in_(sorted(set(public_ids))), awaiting(session))
    ).all()
    if waiting:
        raise StateError(f"这些要约尚待会签部门出具意见，牵头部门暂不能决定：{', '.join(sorted(waiting))}")


@dataclass(frozen=True)
class Opinion:
    """An opinion as the offer page shows it."""

    department: str
    agree: bool
    note: str | None
    given_by: str
    given_at: dt.datetime
    round: int


def give(
    session: Session, public_ids: Sequence[str], *, agree: bool, note: str, by: str, now: dt.datetime
) -> int:
    """Record the opinion of `by`'s department (as the policy names it) on these offers; returns how many.

    Refused (nothing recorded) for an offer outside the user's scope (not found), of a policy the user's
    department does not co-review, not waiting for a decision, or already given an opinion this round."""
    user = require(session, by, "review")
    mine = scope.of(session, user)
    wanted = mine.check_offers(session, public_ids)
    note = note.strip()
    if not agree and not note:
        raise StateError("不同意须写明理由")
    if len(note) > 500:
        raise StateError("意见至多 500 字")
    names = mine.departments or frozenset()
    others = co_reviewers(session)
    version_ids = {
        (pid, v): vid
        for vid, pid, v in session.execute(
            select(PolicyVersion.id, PolicyVersion.policy_id, PolicyVersion.version)
        )
    }
    rows = session.scalars(select(Offer).where(Offer.public_id.in_(wanted)).order_by(Offer.id)).all()
    problems, events = [], []
    for offer in rows:
        named = [
            d for d in others.get(version_ids[(offer.policy_id, offer.policy_version)], []) if d in names
        ]
        if not named:
            problems.append(f"{offer.public_id}（本部门不是该政策的会签部门）")
            continue
        if offer.state not in OPEN:
            problems.append(f"{offer.public_id}（已不在初核中）")
            continue
        given = session.scalar(
            select(OfferOpinion.id).where(
                OfferOpinion.offer_id == offer.id,
                OfferOpinion.department == named[0],
                OfferOpinion.round == offer.round,
            )
        )
        if given is not None:
            problems.append(f"{offer.public_id}（{named[0]}已出具意见）")
            continue
        session.add(
            OfferOpinion(
                offer_id=offer.id,
                department=named[0],
                round=offer.round,
                agree=agree,
                note=note or None,
                given_by=by,
                given_at=now,
            )
        )
        word = "同意" if agree else "不同意"
        events.append(
            Event(
                by,
                "review_opinion",
                "offer",
                offer.public_id,
                offer.state,
                offer.state,
                note or None,
                {"department": named[0], "opinion": word, "round": offer.round},
            )
        )
    if problems:
        raise RoleError("不能出具会签意见：" + "；".join(problems))
    if not rows:
        raise NotFoundError("没有要约")
    audit.append(session, events, now)
    return len(events)


def opinions(session: Session, offer: Offer) -> tuple[list[str], list[Opinion]]:
    """The offer's co-reviewing departments (in the policy's order) and the opinions given, newest round
    first; ([], []) for a policy reviewed by its department alone."""
    reviewers = session.scalar(
        select(PolicyVersion.reviewers).where(
            PolicyVersion.policy_id == offer.policy_id, PolicyVersion.version == offer.policy_version
        )
    )
    others = scope.reviewer_list(reviewers)[1:]
    rows = session.scalars(
        select(OfferOpinion)
        .where(OfferOpinion.offer_id == offer.id)
        .order_by(OfferOpinion.round.desc(), OfferOpinion.id)
    ).all()
    return others, [Opinion(r.department, r.agree, r.note, r.given_by, r.given_at, r.round) for r in rows]
