"""Ratings (好差评): after an item ends, the enterprise rates the service (非常满意 … 非常不满意, with a
comment); a poor rating must be answered by the department within 5 working days, and the answer is
shown to the enterprise.

An item ends when its offer is paid (免申即享 or 快申快享) or its application is not accepted. One rating
per enterprise and item; only the enterprise itself rates its own (anything else is not found); only
staff of the rated department answer. Every step is an audit event (entity "rating"); the 5 working
days are counted by `rules.workdays` where they are shown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from payouts import audit, tokens
from payouts.errors import NotFoundError, RoleError
from payouts.models import Offer, OfferState, PolicyVersion
from payouts.users import require
from portal.models import Application, ApplicationState, Rating
from portal.supplied import enterprise_actor
from rules.errors import PayoutError, StateError
from rules.workdays import china_date, working_day_after

SCORES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
POOR = 2  # at or below: the department must answer
SATISFIED = 4  # at or above: 满意 or better
ANSWER_DAYS = 5  # working days


def _subject(session: Session, uscc: str, subject: str, subject_id: str) -> tuple[str, str, str]:
    """(policy, item, department) of the enterprise's own ended offer or application; NotFoundError for
    anyone else's, StateError while it has not ended."""
    if subject == "offer":
        offer = session.scalar(select(Offer).where(Offer.public_id == subject_id))
        if offer is None or offer.uscc != uscc:
            raise NotFoundError(f"没有要约 {subject_id}")
        if offer.state != OfferState.PAID.value:
            raise StateError("资金到账后才能评价")
        department = session.scalar(
            select(PolicyVersion.department).where(
                PolicyVersion.policy_id == offer.policy_id, PolicyVersion.version == offer.policy_version
            )
        )
        return offer.policy_id, offer.item_id, department or ""
    if subject == "application":
        app = session.scalar(select(Application).where(Application.public_id == subject_id))
        if app is None or app.uscc != uscc:
            raise NotFoundError(f"没有申请 {subject_id}")
        if app.state != ApplicationState.REJECTED.value:
            raise StateError("申请办结后才能评价；审核通过的申请在资金到账后评价")
        return app.policy_id, app.item_id, app.lead_department
    raise NotFoundError(f"没有 {subject}")


def of_subject(session: Session, uscc: str, subject: str, subject_id: str) -> Rating | None:
    return session.scalar(
        select(Rating).where(Rating.uscc == uscc, Rating.subject == subject, Rating.subject_id == subject_id)
    )


def rate(
    session: Session,
    uscc: str,
    subject: str,
    subject_id: str,
    score: int,
    comment: str | None,
    now: dt.datetime,
) -> Rating:
    """The enterprise's rating of its own ended item; once only."""
    policy_id, item_id, department = _subject(session, uscc, subject, subject_id)
    if score not in SCORES:
        raise PayoutError("请选择评价：" + "、".join(SCORES.values()))
    text = (comment or "").strip()[:1000] or None
    if score <= POOR and not text:
        raise PayoutError("请写明不满意的原因，以便有关部门改进并答复")
    if of_subject(session, uscc, subject, subject_id) is not None:
        raise StateError("已评价过本事项")
    row = Rating(
        public_id=tokens.public_id(),
        uscc=uscc,
        subject=subject,
        subject_id=subject_id,
        policy_id=policy_id,
        item_id=item_id,
        department=department,
        score=score,
        comment=text,
        rated_at=now,
    )
    session.add(row)
    session.flush()
    actor = enterprise_actor(uscc)
    audit.record(
        session,
        now,
        actor,
        "rate",
        "rating",
        row.public_id,
        None,
        str(score),
        text,
        subject=subject,
        of=subject_id,
    )
    return row


def listed(session: Session, department: str | None) -> list[Rating]:
    """The ratings of one department (None: every department's), poor unanswered first, then newest first.
    The caller has decided who may read them (the console: report readers, scoped to their department)."""
    query = select(Rating).order_by(Rating.rated_at.desc())
    if department is not None:
        query = query.where(Rating.department == department)
    rows = list(session.scalars(query).all())
    return sorted(rows, key=lambda r: not (r.score <= POOR and r.answer is None))


def for_department(session: Session, username: str) -> list[Rating]:
    """The ratings of the user's department (every department's for staff without one), poor unanswered first."""
    user = require(session, username, "application_review")
    return listed(session, user.department or None)


def answer_due(rating: Rating) -> dt.date | None:
    """The last day to answer a poor rating (5 working days after the day it was given); None when no
    answer is owed (not poor, or answered)."""
    if rating.score > POOR or rating.answer is not None:
        return None
    return working_day_after(china_date(rating.rated_at), ANSWER_DAYS, strict=False)


@dataclass(frozen=True)
class Tally:
    """The ratings of one department and policy: how many, how many 满意 or better, how many poor, and of
    the poor how many still wait for an answer and how many of those are past their day."""

    department: str
    policy_id: str
    ratings: int
    satisfied: int
    poor: int
    waiting: int
    overdue: int

    @property
    def satisfied_share(self) -> float:
        return self.satisfied / self.ratings if self.ratings else 0.0


def tally(rows: list[Rating], today: dt.date) -> list[Tally]:
    """`rows` counted per department and policy, in that order."""
    groups: dict[tuple[str, str], list[Rating]] = {}
    for r in rows:
        groups.setdefault((r.department, r.policy_id), []).append(r)
    out = []
    for (department, policy_id), rs in sorted(groups.items()):
        dues = [d for d in (answer_due(r) for r in rs) if d is not None]
        out.append(
            Tally(
                department,
                policy_id,
                len(rs),
                sum(1 for r in rs if r.score >= SATISFIED),
                sum(1 for r in rs if r.score <= POOR),
                len(dues),
                sum(1 for d in dues if today > d),
            )
        )
    return out


def answer(session: Session, public_id: str, text: str, *, by: str, now: dt.datetime) -> Rating:
    """The department's answer to a rating (required for a poor one), shown to the enterprise."""
    user = require(session, by, "application_review")
    row = session.scalar(select(Rating).where(Rating.public_id == public_id).with_for_update())
    if row is None or (user.department and user.department != row.department):
        raise NotFoundError(f"没有评价 {public_id}")
    if not user.department:
        raise RoleError("只有被评价部门的工作人员可以答复")
    words = text.strip()[:1000]
    if not words:
        raise PayoutError("请填写答复内容")
    if row.answer is not None:
        raise StateError("已答复过该评价")
    row.answer, row.answered_by, row.answered_at = words, by, now
    audit.record(session, now, by, "rating_answer", "rating", row.public_id, None, None, words)
    return row
