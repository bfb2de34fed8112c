"""帮办代办: a staff member with the role `agent` acts for an enterprise (opens its applications, fills
them in, uploads materials, submits; confirms its apply-free offers (意愿确认); supplies its missing data)
on the strength of the enterprise's written authorisation (委托书), uploaded first and kept like other
uploads. Every act is recorded in the audit log under the agent's own name (`agent:<username>`), and the
enterprise sees on its application and its offer's timeline who acted for it and under which
authorisation. Without a live authorisation for that enterprise the agent finds nothing (not found).

A 委托书 can be revoked: by the enterprise itself, signed in, or by the agent on the enterprise's written
request (the request is the reason, required). From then on the agent can do nothing for the enterprise;
what was done before stays done and recorded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from payouts import audit, offers, tokens
from payouts.errors import NotFoundError
from payouts.models import Confirmation, Offer, OfferState, SmsMessage
from payouts.users import require
from portal.models import Mandate
from portal.supplied import enterprise_actor, sniff
from rules.errors import PayoutError, StateError

_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
PREFIX = "agent:"


def actor(username: str) -> str:
    """How an agent's acts appear in the audit log and to the enterprise."""
    return f"{PREFIX}{username}"


def register(
    session: Session, agent: str, uscc: str, data: bytes, file_name: str, evidence_dir: Path, now: dt.datetime
) -> Mandate:
    """Keep an enterprise's 委托书 (a PDF or an image recognised from its bytes) for `agent`."""
    require(session, agent, "act_for")
    code = uscc.strip().upper()
    if not _USCC.fullmatch(code):
        raise PayoutError(f"统一社会信用代码格式不正确：{uscc}（应为 18 位，不含 I、O、S、V、Z）")
    mime = sniff(data)
    evidence_dir.mkdir(parents=True, exist_ok=True)
    stored = secrets.token_hex(16)
    (evidence_dir / stored).write_bytes(data)
    row = Mandate(
        public_id=tokens.public_id(),
        uscc=code,
        agent=agent,
        file_name=Path(file_name or "委托书").name[:200],
        stored_path=stored,
        media_type=mime,
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        now,
        agent,
        "mandate_register",
        "mandate",
        row.public_id,
        None,
        None,
        None,
        uscc=code,
        sha256=row.sha256,
    )
    return row


def mandates(session: Session, agent: str) -> list[Mandate]:
    require(session, agent, "act_for")
    return list(
        session.scalars(
            select(Mandate)
            .where(Mandate.agent == agent, Mandate.revoked_at.is_(None))
            .order_by(Mandate.id.desc())
        ).all()
    )


def mandate_for(session: Session, agent: str, uscc: str) -> Mandate:
    """The agent's live authorisation for this enterprise; NotFoundError without one."""
    require(session, agent, "act_for")
    row = session.scalar(
        select(Mandate)
        .where(Mandate.agent == agent, Mandate.uscc == uscc, Mandate.revoked_at.is_(None))
        .order_by(Mandate.id.desc())
        .limit(1)
    )
    if row is None:
        raise NotFoundError(f"没有企业 {uscc} 的委托书")
    return row


def for_enterprise(session: Session, uscc: str) -> list[Mandate]:
    """The authorisations an enterprise gave, for its own pages."""
    return list(session.scalars(select(Mandate).where(Mandate.uscc == uscc).order_by(Mandate.id)).all())


def mandate_by_id(session: Session, public_id: str, *, lock: bool = False) -> Mandate:
    query = select(Mandate).where(Mandate.public_id == public_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFoundError(f"没有委托书 {public_id}")
    return row


def _revoke(session: Session, row: Mandate, by: str, reason: str | None, now: dt.datetime) -> Mandate:
    if row.revoked_at is not None:
        raise StateError("该委托书已撤销")
    row.revoked_at, row.revoked_by, row.revoke_reason = now, by, reason
    audit.record(
        session,
        now,
        by,
        "mandate_revoke",
        "mandate",
        row.public_id,
        "active",
        "revoked",
        reason,
        uscc=row.uscc,
        agent=row.agent,
    )
    return row


def revoke_by_enterprise(session: Session, uscc: str, public_id: str, now: dt.datetime) -> Mandate:
    """The enterprise, signed in, revokes one of its authorisations; another's is not found."""
    row = mandate_by_id(session, public_id, lock=True)
    if row.uscc != uscc:
        raise NotFoundError(f"没有委托书 {public_id}")
    return _revoke(session, row, enterprise_actor(uscc), "企业撤销委托", now)


def revoke_by_staff(session: Session, agent: str, public_id: str, request: str, now: dt.datetime) -> Mandate:
    """The agent revokes an authorisation it holds on the enterprise's written request (named in
    `request`, required); one another agent holds is not found."""
    require(session, agent, "act_for")
    row = mandate_by_id(session, public_id, lock=True)
    if row.agent != agent:
        raise NotFoundError(f"没有委托书 {public_id}")
    words = request.strip()[:500]
    if not words:
        raise PayoutError("请写明企业撤销委托的书面申请（如 申请日期、文号），撤销后不能再代办")
    return _revoke(session, row, agent, words, now)


# Offers the agent may confirm for the enterprise: notified (the SMS went out), or held only because the
# enterprise registered no phone (帮办 for an enterprise without a phone). Any other hold is staff's.
def confirmable(offer: Offer) -> bool:
    return offer.state == OfferState.NOTIFIED.value or (
        offer.state == OfferState.HELD.value and offer.hold_reason == offers.NO_PHONE
    )


def offers_of(session: Session, agent: str, uscc: str) -> list[Offer]:
    """The enterprise's offers, newest first, for the agent holding its live authorisation."""
    mandate_for(session, agent, uscc)
    return list(session.scalars(select(Offer).where(Offer.uscc == uscc).order_by(Offer.id.desc())).all())


def confirm_offer(session: Session, agent: str, offer_public_id: str, now: dt.datetime) -> Offer:
    """Confirm (意愿确认) the enterprise's apply-free offer on its behalf, under the agent's live
    authorisation; audited as the agent's act. Not found without one; refused in any state but
    `confirmable`."""
    offer = session.scalar(select(Offer).where(Offer.public_id == offer_public_id).with_for_update())
    if offer is None:
        raise NotFoundError(f"没有要约 {offer_public_id}")
    mandate = mandate_for(session, agent, offer.uscc)
    if not confirmable(offer):
        raise StateError(f"该笔资金目前为“{offers.label(offer.state)}”，不能代为确认")
    if offer.state == OfferState.NOTIFIED.value:
        message = session.scalar(
            select(SmsMessage.id).where(
                SmsMessage.offer_id == offer.id, SmsMessage.round == offer.round, SmsMessage.kind == "notice"
            )
        )
        done = session.scalar(
            select(Confirmation.id).where(
                Confirmation.offer_id == offer.id, Confirmation.round == offer.round
            )
        )
        if done is not None:
            raise StateError("该笔资金已答复，不能再代为确认")
        if message is not None:
            session.add(
                Confirmation(
                    offer_id=offer.id,
                    round=offer.round,
                    kind="confirm",
                    sms_message_id=message,
                    at=now,
                    note=f"帮办代办 {agent} 依委托书 {mandate.public_id} 代为确认",
                )
            )
    event = offers.move(
        offer,
        OfferState.CONFIRMED,
        actor=actor(agent),
        action="confirm",
        now=now,
        mandate=mandate.public_id,
    )
    audit.append(session, [event], now)
    return offer
