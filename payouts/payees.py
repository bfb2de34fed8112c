"""Payees: the registered corporate account (对公账户) an offer pays to, and staff corrections of it.

The enterprise can never change where its money goes: the page only shows the account, masked, and
lets it report a wrong one. Staff correct it here, for the same enterprise name, with a reason; the
correction is a new payee record (the old one is kept) and an audit event.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlmodel import Session

from payouts import audit
from payouts.audit import Event
from payouts.bankfiles import name_problem
from payouts.models import Offer, OfferState, Payee
from payouts.offers import lock_offers
from payouts.users import require
from rules.errors import StateError

# Offers whose payee may still change: not yet promised to the bank, and not confirmed on a shown account.
CORRECTABLE = (OfferState.DRAFTED, OfferState.HELD, OfferState.PAYMENT_FAILED)


def mask_phone(phone: str | None) -> str:
    """A phone number as logs and terminals show it: 139****8988."""
    if not phone:
        return "（无）"
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "*" * len(phone)


def mask_account(account_no: str | None) -> str:
    """An account number as shown to enterprises and in lists: first 4 and last 4 digits."""
    if not account_no:
        return "（无）"
    digits = account_no.replace(" ", "")
    if len(digits) <= 8:
        return "*" * (len(digits) - 4) + digits[-4:]
    return f"{digits[:4]} **** **** {digits[-4:]}"


def correct_account(
    session: Session,
    uscc: str,
    *,
    bank_name: str,
    account_no: str,
    account_name: str,
    by: str,
    reason: str,
    now: dt.datetime,
    contact_phone: str | None = None,
) -> Payee:
    """Record a corrected registered account for an enterprise and point its open offers at it.

    Applies to the enterprise's offers that are drafted, held or whose payment failed; a failed
    offer can be batched again only after this. The account name must be the enterprise's name.
    """
    require(session, by, "correct_account")
    if not reason.strip():
        raise StateError("更正账户必须写明原因")
    if not (bank_name.strip() and account_no.strip() and account_name.strip()):
        raise StateError("开户行、账号、户名都必须填写")
    for what, text in (("开户行名称", bank_name.strip()), ("户名", account_name.strip())):
        if problem := name_problem(text):  # a bank file carries it exactly: it must be writable as it is
            raise StateError(f"{what}{problem}，不能原样写入银行文件；请核对后重新填写")
    ids = session.scalars(
        select(Offer.public_id).where(Offer.uscc == uscc, Offer.state.in_([s.value for s in CORRECTABLE]))
    ).all()
    if not ids:
        raise StateError(f"企业 {uscc} 没有可以更正账户的要约（只限待初核、暂缓、拨付失败）")
    offers = lock_offers(session, ids)
    current = session.get(Payee, max(o.payee_id for o in offers))
    assert current is not None  # the foreign key guarantees it
    if account_name.strip() != current.name:
        raise StateError(
            f"户名“{account_name}”与企业登记名称“{current.name}”不一致：只能拨付到企业本身的对公账户"
        )
    payee = Payee(
        uscc=uscc,
        name=current.name,
        contact_phone=contact_phone or current.contact_phone,
        bank_name=bank_name.strip(),
        account_no=account_no.replace(" ", ""),
        account_name=account_name.strip(),
        source="staff",
        supersedes_id=current.id,
        reason=reason.strip(),
        created_at=now,
    )
    session.add(payee)
    session.flush()
    events = [
        Event(
            by,
            "correct_account",
            "payee",
            str(payee.id),
            None,
            "registered",
            reason,
            {"uscc": uscc, "account": mask_account(payee.account_no), "supersedes": current.id},
        )
    ]
    for o in offers:
        o.payee_id = payee.id
        o.updated_at = now
        events.append(
            Event(by, "correct_account", "offer", o.public_id, o.state, o.state, reason, {"payee": payee.id})
        )
    audit.append(session, events, now)
    return payee
