"""What the enterprise does with its SMS link: look, confirm with one click, decline, or report a wrong account.

The link's token names one SMS and so one offer. Confirming is idempotent: double clicks, retries and
two phones at once give one confirmation (the offer row is locked, and one answer per offer and round
is a unique key). Nothing here can change where the money goes: the page shows the registered account,
masked, and "my account is wrong" only holds the offer for staff.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlmodel import Session

from payouts import audit, offers, tokens
from payouts.errors import LinkError
from payouts.models import Confirmation, Offer, OfferState, Payee, PolicyVersion, SmsMessage
from payouts.payees import mask_account
from rules.errors import StateError

ACCOUNT_WRONG = "企业反映对公账户有误"
_UA_MAX = 400


@dataclass(frozen=True)
class OfferView:
    """What the public confirm page shows for a link."""

    public_id: str
    state: str
    state_label: str
    enterprise: str
    policy_title: str
    item_title: str
    department: str
    amount: Decimal
    bank_name: str
    account_masked: str
    deadline: dt.datetime | None
    conditions: list[dict[str, str | None]]
    can_respond: bool
    service_phone: str | None = None  # the policy's 咨询电话; None: the deployment's


@dataclass(frozen=True)
class Answer:
    """The enterprise's recorded answer; `repeated` when this request found it already recorded."""

    public_id: str
    kind: str
    at: dt.datetime
    repeated: bool


def _message(session: Session, token: str) -> SmsMessage:
    message = session.scalar(select(SmsMessage).where(SmsMessage.token_hash == tokens.token_hash(token)))
    # Only an offer's notice or reminder confirms: a rating link (or any other outbox message) does not.
    if message is None or message.status != "sent" or message.offer_id is None:
        raise LinkError("链接无效，请以短信中的链接为准")
    return message


def view(session: Session, token: str, now: dt.datetime) -> OfferView:
    """The offer behind a link, with the registered account masked."""
    message = _message(session, token)
    offer = session.get(Offer, message.offer_id)
    assert offer is not None
    if now >= message.expires_at and offer.state == OfferState.NOTIFIED.value:
        raise LinkError("链接已过期")
    payee = session.get(Payee, offer.payee_id)
    policy = session.scalar(
        select(PolicyVersion).where(
            PolicyVersion.policy_id == offer.policy_id, PolicyVersion.version == offer.policy_version
        )
    )
    assert payee is not None and policy is not None
    item = next(i for i in json.loads(policy.items) if i["id"] == offer.item_id)
    conditions = [
        {"text": c["text"], "clause": c.get("clause")}
        for c in [*json.loads(policy.conditions), *item.get("conditions", [])]
    ]
    return OfferView(
        public_id=offer.public_id,
        state=offer.state,
        state_label=offers.label(offer.state),
        enterprise=payee.name,
        policy_title=policy.title,
        item_title=item["title"],
        department=policy.department,
        amount=offer.amount,
        bank_name=payee.bank_name or "",
        account_masked=mask_account(payee.account_no),
        deadline=offer.deadline,
        conditions=conditions,
        can_respond=offer.state == OfferState.NOTIFIED.value
        and now < message.expires_at
        and message.round == offer.round,
        service_phone=policy.service_phone,
    )


def _answer(
    session: Session,
    token: str,
    kind: str,
    to: OfferState,
    *,
    ip: str | None,
    user_agent: str | None,
    now: dt.datetime,
    note: str | None = None,
) -> Answer:
    message = _message(session, token)
    offer = session.scalar(select(Offer).where(Offer.id == message.offer_id).with_for_update())
    assert offer is not None
    if message.round != offer.round:  # a link of an earlier round never answers a later one
        raise LinkError("此链接已失效：该笔资金已重新通知，请以最新短信中的链接为准")
    earlier = session.scalar(
        select(Confirmation).where(Confirmation.offer_id == offer.id, Confirmation.round == offer.round)
    )
    if earlier is not None:
        if earlier.kind == kind:
            return Answer(offer.public_id, kind, earlier.at, repeated=True)
        said = {"confirm": "已确认领取", "decline": "已放弃", "account_wrong": "已反映账户有误"}[earlier.kind]
        raise StateError(f"您{said}，不能再更改；如有疑问请联系{_department(session, offer)}")
    if now >= message.expires_at:
        raise LinkError("链接已过期")
    if offer.state != OfferState.NOTIFIED.value:
        raise StateError(f"该笔资金目前为“{offers.label(offer.state)}”，不能操作")
    session.add(
        Confirmation(
            offer_id=offer.id,
            round=offer.round,
            kind=kind,
            sms_message_id=message.id,
            at=now,
            ip=ip,
            user_agent=(user_agent or "")[:_UA_MAX] or None,
            note=note,
        )
    )
    reason = ACCOUNT_WRONG if to is OfferState.HELD else note
    event = offers.move(
        offer,
        to,
        actor=f"enterprise:{offer.uscc}",
        action=kind,
        now=now,
        reason=reason,
        ip=ip,
        sms=message.id,
    )
    audit.append(session, [event], now)
    return Answer(offer.public_id, kind, now, repeated=False)


def _department(session: Session, offer: Offer) -> str:
    return (
        session.scalar(
            select(PolicyVersion.department).where(
                PolicyVersion.policy_id == offer.policy_id, PolicyVersion.version == offer.policy_version
            )
        )
        or "政策主管部门"
    )


def confirm(
    session: Session, token: str, *, ip: str | None, user_agent: str | None, now: dt.datetime
) -> Answer:
    """Confirm the offer (意愿确认); repeating it returns the first confirmation unchanged."""
    return _answer(session, token, "confirm", OfferState.CONFIRMED, ip=ip, user_agent=user_agent, now=now)


def decline(
    session: Session,
    token: str,
    *,
    ip: str | None,
    user_agent: str | None,
    now: dt.datetime,
    reason: str | None = None,
) -> Answer:
    """Decline the offer; the enterprise will not be paid for this item and period."""
    return _answer(
        session, token, "decline", OfferState.DECLINED, ip=ip, user_agent=user_agent, now=now, note=reason
    )


def report_wrong_account(
    session: Session,
    token: str,
    *,
    ip: str | None,
    user_agent: str | None,
    now: dt.datetime,
    note: str | None = None,
) -> Answer:
    """Report that the shown account is wrong: the offer is held for staff to check and correct."""
    return _answer(
        session, token, "account_wrong", OfferState.HELD, ip=ip, user_agent=user_agent, now=now, note=note
    )
