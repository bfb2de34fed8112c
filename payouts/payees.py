"""Payees: the registered corporate account (对公账户) an offer pays to, and staff corrections of it.

The enterprise can never change where its money goes: the page only shows the account, masked, and
lets it report a wrong one. Staff correct it here, for the same enterprise name, with a reason, in two
steps by two people: one proposes the change (kept pending, audited with the old and new accounts
masked), another approves or rejects it; the proposer never can. An approved change is a new payee
record (the old one is kept) and an audit event.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from payouts import audit
from payouts.audit import Event
from payouts.bankfiles import name_problem
from payouts.errors import NotFoundError, RoleError
from payouts.models import Offer, OfferState, Payee, PayeeChange, PayeeChangeState, StaffUser
from payouts.offers import lock_offers
from payouts.tokens import public_id
from payouts.users import require
from rules.errors import StateError

CHANGE_LABELS = {
    PayeeChangeState.PENDING: "待审核",
    PayeeChangeState.APPROVED: "审核通过",
    PayeeChangeState.REJECTED: "退回",
}
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


def _validate(bank_name: str, account_no: str, account_name: str, reason: str) -> None:
    if not reason.strip():
        raise StateError("更正账户必须写明原因")
    if not (bank_name.strip() and account_no.strip() and account_name.strip()):
        raise StateError("开户行、账号、户名都必须填写")
    for what, text in (("开户行名称", bank_name.strip()), ("户名", account_name.strip())):
        if problem := name_problem(text):  # a bank file carries it exactly: it must be writable as it is
            raise StateError(f"{what}{problem}，不能原样写入银行文件；请核对后重新填写")


def _correctable(session: Session, uscc: str) -> tuple[list[Offer], Payee]:
    """The enterprise's offers whose payee may change (locked) and their current payee."""
    ids = session.scalars(
        select(Offer.public_id).where(Offer.uscc == uscc, Offer.state.in_([s.value for s in CORRECTABLE]))
    ).all()
    if not ids:
        raise StateError(f"企业 {uscc} 没有可以更正账户的要约（只限待初核、暂缓、拨付失败）")
    offers = lock_offers(session, ids)
    current = session.get(Payee, max(o.payee_id for o in offers))
    assert current is not None  # the foreign key guarantees it
    return offers, current


def _same_name(account_name: str, current: Payee) -> None:
    if account_name.strip() != current.name:
        raise StateError(
            f"户名“{account_name}”与企业登记名称“{current.name}”不一致：只能拨付到企业本身的对公账户"
        )


def propose_account_change(
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
) -> PayeeChange:
    """Propose a corrected registered account for an enterprise: stored pending and audited (accounts
    masked); nothing is paid to it until another member of staff approves it (`approve_account_change`).

    The enterprise must have offers that are drafted, held or whose payment failed, and the account name
    must be the enterprise's name.
    """
    proposer = require(session, by, "correct_account")
    _validate(bank_name, account_no, account_name, reason)
    _, current = _correctable(session, uscc)
    _same_name(account_name, current)
    assert current.id is not None and proposer.id is not None
    change = PayeeChange(
        public_id=public_id(),
        uscc=uscc,
        old_payee_id=current.id,
        bank_name=bank_name.strip(),
        account_no=account_no.replace(" ", ""),
        account_name=account_name.strip(),
        contact_phone=contact_phone,
        reason=reason.strip(),
        state=PayeeChangeState.PENDING.value,
        proposed_by=proposer.id,
        proposed_at=now,
    )
    session.add(change)
    session.flush()
    audit.record(
        session,
        now,
        by,
        "propose_account_change",
        "payee_change",
        change.public_id,
        None,
        PayeeChangeState.PENDING.value,
        reason.strip(),
        uscc=uscc,
        old_account=mask_account(current.account_no),
        new_account=mask_account(change.account_no),
    )
    return change


def _pending(session: Session, change_id: str, by: str) -> tuple[PayeeChange, StaffUser]:
    """The pending change `change_id` (locked) and its decider, who must not be its proposer."""
    decider = require(session, by, "approve_account_change")
    change = session.scalar(select(PayeeChange).where(PayeeChange.public_id == change_id).with_for_update())
    if change is None:
        raise NotFoundError(f"没有账户变更申请 {change_id}")
    if change.state != PayeeChangeState.PENDING.value:
        raise StateError(
            f"账户变更申请 {change_id} 已{CHANGE_LABELS[PayeeChangeState(change.state)]}，不能再处理"
        )
    if change.proposed_by == decider.id:
        raise RoleError("账户变更须由另一人审核：申请人不能审核自己提出的变更")
    return change, decider


def approve_account_change(session: Session, change_id: str, *, by: str, now: dt.datetime) -> Payee:
    """Approve a pending payee change (a second person, never its proposer): the corrected account becomes
    a new payee record (the old one is kept) and the enterprise's open offers point at it; audited.

    Applies to the offers that are drafted, held or whose payment failed at the time of approval; a failed
    offer can be batched again only after this.
    """
    change, decider = _pending(session, change_id, by)
    offers, current = _correctable(session, change.uscc)
    if current.id != change.old_payee_id:  # what the approver was shown as "old" is no longer in effect
        raise StateError(
            f"企业 {change.uscc} 的账户在申请 {change_id} 提出后已变更：请退回此申请，按现行账户重新提出"
        )
    _same_name(change.account_name, current)
    payee = Payee(
        uscc=change.uscc,
        name=current.name,
        contact_phone=change.contact_phone or current.contact_phone,
        bank_name=change.bank_name,
        account_no=change.account_no,
        account_name=change.account_name,
        source="staff",
        supersedes_id=current.id,
        reason=change.reason,
        created_at=now,
    )
    session.add(payee)
    session.flush()
    change.state = PayeeChangeState.APPROVED.value
    change.decided_by = decider.id
    change.decided_at = now
    change.new_payee_id = payee.id
    proposer = session.get(StaffUser, change.proposed_by)
    events = [
        Event(
            by,
            "approve_account_change",
            "payee_change",
            change.public_id,
            PayeeChangeState.PENDING.value,
            PayeeChangeState.APPROVED.value,
            change.reason,
            {"uscc": change.uscc, "proposed_by": proposer.username if proposer else None},
        ),
        Event(
            by,
            "correct_account",
            "payee",
            str(payee.id),
            None,
            "registered",
            change.reason,
            {
                "uscc": change.uscc,
                "account": mask_account(payee.account_no),
                "supersedes": current.id,
                "change": change.public_id,
            },
        ),
    ]
    for o in offers:
        o.payee_id = payee.id
        o.updated_at = now
        events.append(
            Event(
                by,
                "correct_account",
                "offer",
                o.public_id,
                o.state,
                o.state,
                change.reason,
                {"payee": payee.id},
            )
        )
    audit.append(session, events, now)
    return payee


def reject_account_change(
    session: Session, change_id: str, *, by: str, reason: str, now: dt.datetime
) -> PayeeChange:
    """Reject a pending payee change (a second person, with a reason); nothing changes for the payee."""
    if not reason.strip():
        raise StateError("退回账户变更必须写明原因")
    change, decider = _pending(session, change_id, by)
    change.state = PayeeChangeState.REJECTED.value
    change.decided_by = decider.id
    change.decided_at = now
    change.decision_reason = reason.strip()
    audit.record(
        session,
        now,
        by,
        "reject_account_change",
        "payee_change",
        change.public_id,
        PayeeChangeState.PENDING.value,
        PayeeChangeState.REJECTED.value,
        reason.strip(),
        uscc=change.uscc,
    )
    return change


@dataclass(frozen=True)
class ChangeView:
    """A payee change as staff see it: accounts masked, who proposed and who decided."""

    public_id: str
    uscc: str
    name: str
    old_bank: str | None
    old_account: str
    new_bank: str
    new_account: str
    reason: str
    state: str
    state_label: str
    proposed_by: str
    proposed_at: dt.datetime
    decided_by: str | None


def account_changes(
    session: Session, *, state: str | None = PayeeChangeState.PENDING.value, limit: int = 200
) -> list[ChangeView]:
    """The payee changes (pending ones by default), newest first, with masked old and new accounts."""
    query = select(PayeeChange).order_by(PayeeChange.id.desc()).limit(limit)
    if state:
        query = query.where(PayeeChange.state == state)
    names = dict(session.execute(select(StaffUser.id, StaffUser.username)).tuples().all())
    out = []
    for c in session.scalars(query).all():
        old = session.get(Payee, c.old_payee_id)
        out.append(
            ChangeView(
                public_id=c.public_id,
                uscc=c.uscc,
                name=old.name if old else "",
                old_bank=old.bank_name if old else None,
                old_account=mask_account(old.account_no if old else None),
                new_bank=c.bank_name,
                new_account=mask_account(c.account_no),
                reason=c.reason,
                state=c.state,
                state_label=CHANGE_LABELS[PayeeChangeState(c.state)],
                proposed_by=names.get(c.proposed_by, "?"),
                proposed_at=c.proposed_at,
                decided_by=names.get(c.decided_by) if c.decided_by else None,
            )
        )
    return out
