"""Ratings (好差评): after an item ends, the enterprise rates the service (非常满意 … 非常不满意, with a
comment); a poor rating must be answered by the department within 5 working days, and the answer is
shown to the enterprise.

An item ends when its offer is paid (免申即享 or 快申快享) or its application is not accepted. One rating
per enterprise and item; only the enterprise itself rates its own (anything else is not found); only
staff of the rated department answer. Every step is an audit event (entity "rating"); the 5 working
days are counted by `rules.workdays` where they are shown.

The closing SMS (`send_links`): when an item ends, the enterprise's registered phone gets one message
saying so, with a link to rate it (`/r/{token}`) without signing in. The link token is built like the
confirmation link's (`payouts.tokens.derived_link_token` under `ZHIDA_LINK_KEY`, 128 bits, stored only
as its SHA-256, cut out of the stored text and of logs), but under its own identity
(`rating|<subject>|<public id>`) and its own message kind (`rating`): it opens the rating of that one item
only, expires after `LINK_DAYS`, and is useless once the item is rated; a confirmation link is not a
rating link, nor the reverse. The messages go out in chunks through the outbox (`payouts.outbox`), each
at most once (key `rating|<subject>|<public id>`), never to a number that opted out.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from sqlalchemy import Engine, literal, select
from sqlmodel import Session

from payouts import audit, outbox, tokens
from payouts.db import PayoutSettings, transaction
from payouts.errors import LinkError, NotFoundError, RoleError
from payouts.models import Offer, OfferState, Payee, PolicyVersion, SmsMessage
from payouts.sms import OutgoingSms, SmsGateway, cut_token, fit_text
from payouts.users import require
from portal.models import Application, ApplicationState, Rating
from portal.supplied import enterprise_actor
from rules.errors import PayoutError, StateError
from rules.formats import money_exact_cn
from rules.workdays import china_date, working_day_after

SCORES = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
POOR = 2  # at or below: the department must answer
SATISFIED = 4  # at or above: 满意 or better
ANSWER_DAYS = 5  # working days
KIND = "rating"  # the closing SMS's kind, and its link's
LINK_DAYS = 30  # a rating link works this long after it was sent
RECENT_DAYS = 7  # items that ended this long ago or less get the closing SMS (not the whole history)
TEMPLATE = "【{sign}】{department}：{name}的“{title}”{outcome}。请评价本次服务：{link}"


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
    *,
    via: str = "signed_in",
) -> Rating:
    """The enterprise's rating of its own ended item; once only (`via`: signed in, or the SMS link)."""
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
        via=via,
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


# --- the closing SMS and its rating link ------------------------------------------------------------


def dedupe_key(subject: str, subject_id: str) -> str:
    """The closing SMS's outbox key, and its link token's identity."""
    return f"{KIND}|{subject}|{subject_id}"


def link_token(settings: PayoutSettings, subject: str, subject_id: str) -> str:
    return tokens.derived_link_token(settings.link_key, dedupe_key(subject, subject_id))


@dataclass
class Closed:
    """What `send_links` did."""

    sent: int = 0
    failed: int = 0
    opted_out: int = 0
    no_phone: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Ended:
    subject: str
    subject_id: str
    uscc: str
    policy_id: str
    policy_version: int
    item_id: str
    name: str
    phone: str | None
    outcome: str


# A closing SMS in these states is not composed again: sent, in hand (`outbox.resume`), or to a number
# that opted out. A refused one, or one a crash kept from being tried, is tried again by the next call.
DONE = ("sent", "sending", "skipped")


def _ended(session: Session, now: dt.datetime) -> list[_Ended]:
    """Items that ended in the last `RECENT_DAYS`, not rated, whose closing SMS has not gone out."""
    since = now - dt.timedelta(days=RECENT_DAYS)
    out = []
    no_sms = (
        ~select(SmsMessage.id)
        .where(
            SmsMessage.dedupe_key == literal(f"{KIND}|offer|") + Offer.public_id, SmsMessage.status.in_(DONE)
        )
        .exists()
    )
    unrated = (
        ~select(Rating.id)
        .where(Rating.uscc == Offer.uscc, Rating.subject == "offer", Rating.subject_id == Offer.public_id)
        .exists()
    )
    for offer, payee in session.execute(
        select(Offer, Payee)
        .join(Payee, Payee.id == Offer.payee_id)
        .where(Offer.state == OfferState.PAID.value, Offer.paid_at >= since, no_sms, unrated)
        .order_by(Offer.id)
    ):
        out.append(
            _Ended(
                "offer",
                offer.public_id,
                offer.uscc,
                offer.policy_id,
                offer.policy_version,
                offer.item_id,
                payee.name,
                payee.contact_phone,
                f"资金{money_exact_cn(offer.amount)}已到账",
            )
        )
    no_sms = (
        ~select(SmsMessage.id)
        .where(
            SmsMessage.dedupe_key == literal(f"{KIND}|application|") + Application.public_id,
            SmsMessage.status.in_(DONE),
        )
        .exists()
    )
    unrated = (
        ~select(Rating.id)
        .where(Rating.subject == "application", Rating.subject_id == Application.public_id)
        .exists()
    )
    apps = session.scalars(
        select(Application)
        .where(
            Application.state == ApplicationState.REJECTED.value,
            Application.decided_at >= since,
            no_sms,
            unrated,
        )
        .order_by(Application.id)
    ).all()
    for app in apps:
        payee = session.scalar(  # the registered contact the latest run (or a staff correction) gave
            select(Payee).where(Payee.uscc == app.uscc).order_by(Payee.id.desc()).limit(1)
        )
        out.append(
            _Ended(
                "application",
                app.public_id,
                app.uscc,
                app.policy_id,
                app.policy_version,
                app.item_id,
                payee.name if payee else "贵单位",
                payee.contact_phone if payee else None,
                "申请已办结（未通过）",
            )
        )
    return out


def _title(session: Session, policy_id: str, version: int, item_id: str) -> tuple[str, str]:
    """(title as the SMS names the item, the department)."""
    policy = session.scalar(
        select(PolicyVersion).where(PolicyVersion.policy_id == policy_id, PolicyVersion.version == version)
    )
    if policy is None:
        return policy_id, "政策主管部门"
    items = json.loads(policy.items)
    item = next((i for i in items if i["id"] == item_id), None)
    title = (
        policy.title
        if item is None or len(items) == 1 or item["title"] in policy.title
        else f"{policy.title}·{item['title']}"
    )
    return title, policy.department


def render_closing(sign: str, department: str, name: str, title: str, outcome: str, link: str) -> str:
    """The closing SMS, shortened (title, then name, then department) to fit two segments; the outcome
    and the link are never shortened."""
    values = {
        "sign": sign,
        "department": department,
        "name": name,
        "title": title,
        "outcome": outcome,
        "link": link,
    }
    return fit_text(
        TEMPLATE, values, (("title", 8), ("name", 6), ("department", 6), ("title", 4), ("name", 2))
    )


def _message(
    session: Session, e: _Ended, settings: PayoutSettings, link_base: str, now: dt.datetime
) -> outbox.Message:
    token = link_token(settings, e.subject, e.subject_id)
    link = link_base + token
    title, department = _title(session, e.policy_id, e.policy_version, e.item_id)
    text = render_closing(settings.sms_sign, department, e.name, title, e.outcome, link)
    return outbox.Message(
        dedupe_key(e.subject, e.subject_id),
        KIND,
        e.phone or "",
        text,
        uscc=e.uscc,
        policy_id=e.policy_id,
        params={"text": text, "link": link},
        stored=cut_token(text, token),
        token_hash=tokens.token_hash(token),
        expires_at=now + dt.timedelta(days=LINK_DAYS),
    )


def send_links(
    engine: Engine,
    gateway: SmsGateway,
    now: dt.datetime,
    settings: PayoutSettings,
    link_base: str,
    *,
    chunk: int = 1000,
) -> Closed:
    """Send the closing SMS, with its rating link (`link_base` + token), of every item that ended
    recently and has none yet; in chunks, each message once (see the module's docstring)."""
    result = Closed()

    def again(row: SmsMessage) -> OutgoingSms:  # a message cut short: the same text, token and key
        assert row.dedupe_key is not None
        _, subject, subject_id = row.dedupe_key.split("|", 2)
        token = link_token(settings, subject, subject_id)
        text = row.text.replace(token[:4] + "…", token)
        return outbox.Message(
            row.dedupe_key, KIND, row.phone, text, params={"text": text, "link": link_base + token}
        ).outgoing()

    result.sent += outbox.resume(engine, gateway, KIND, now, again)
    with transaction(engine, read_only=True) as session:
        ended = _ended(session, now)
        messages = []
        for e in ended:
            if not e.phone:
                result.no_phone += 1
                continue
            messages.append(_message(session, e, settings, link_base, now))
    for start in range(0, len(messages), chunk):
        done = outbox.send_chunk(engine, gateway, messages[start : start + chunk], now)
        outcomes = list(done.outcome.values())
        result.sent += outcomes.count("sent")
        result.failed += outcomes.count("failed")
        result.opted_out += outcomes.count("opted_out")
        result.errors += done.errors
    return result


@dataclass(frozen=True)
class LinkSubject:
    """What a rating link opens: one ended item of one enterprise."""

    uscc: str
    subject: str
    subject_id: str


def by_link(session: Session, token: str, now: dt.datetime) -> LinkSubject:
    """The item a rating link opens; LinkError for any other token (a confirmation link included), an
    expired one, or one whose message was not sent."""
    message = session.scalar(select(SmsMessage).where(SmsMessage.token_hash == tokens.token_hash(token)))
    if (
        message is None
        or message.kind != KIND
        or message.status != "sent"
        or message.dedupe_key is None
        or message.uscc is None
        or now >= message.expires_at
    ):
        raise LinkError("链接无效或已过期")
    _, subject, subject_id = message.dedupe_key.split("|", 2)
    return LinkSubject(message.uscc, subject, subject_id)


def rate_by_link(
    session: Session, token: str, subject_id: str, score: int, comment: str | None, now: dt.datetime
) -> Rating:
    """Rate the item the link opens; any other item named with it is not found."""
    linked = by_link(session, token, now)
    if subject_id != linked.subject_id:
        raise NotFoundError(f"没有 {subject_id}")
    return rate(session, linked.uscc, linked.subject, linked.subject_id, score, comment, now, via="sms_link")
