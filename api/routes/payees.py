"""Payee account changes (对公账户变更) by two people: a reviewer proposes one (`POST /api/account-changes`),
another member of staff approves or rejects it; the proposer never can (`payouts.payees`). Accounts are
shown masked. A change of an enterprise with offers of another department does not exist for the user.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import Session

from api.deps import (
    AccountChangeDecider,
    AccountChanger,
    AccountChangeReader,
    SessionDep,
    department,
    may,
    scoped_offers,
)
from api.routes import now, redirect, render
from payouts import payees
from payouts.errors import NotFoundError
from payouts.models import Offer, PayeeChange, StaffUser

router = APIRouter(prefix="/api/account-changes", tags=["account-changes"])
pages = APIRouter(prefix="/console/account-changes", include_in_schema=False)


class ChangeIn(BaseModel):
    """A proposed corrected registered account: the account name must be the enterprise's name."""

    uscc: str = Field(min_length=18, max_length=18)
    bank_name: str = Field(min_length=1, max_length=200)
    account_no: str = Field(min_length=1, max_length=64)
    account_name: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=500)
    contact_phone: str | None = Field(default=None, max_length=32)


class Reason(BaseModel):
    """Why (required)."""

    reason: str = Field(min_length=1, max_length=500)


class ChangeOut(BaseModel):
    """A payee change, with the old and new accounts masked."""

    id: str
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


def _in_scope(session: Session, user: StaffUser, uscc: str) -> None:
    """404 unless every offer of the enterprise lies in the user's department (or the user sees all)."""
    if department(user) is None:
        return
    ids = session.scalars(select(Offer.public_id).where(Offer.uscc == uscc)).all()
    if not ids:
        raise NotFoundError(f"没有企业 {uscc} 的要约")
    scoped_offers(session, user, ids)


def _view(session: Session, public_id: str) -> ChangeOut:
    view = next(v for v in payees.account_changes(session, state=None) if v.public_id == public_id)
    return ChangeOut(id=view.public_id, **{k: v for k, v in vars(view).items() if k != "public_id"})


def load_change(
    public_id: Annotated[str, Path(max_length=32)], user: AccountChangeDecider, session: SessionDep
) -> PayeeChange:
    change = session.scalar(select(PayeeChange).where(PayeeChange.public_id == public_id))
    if change is None:
        raise NotFoundError(f"没有账户变更申请 {public_id}")
    try:
        _in_scope(session, user, change.uscc)
    except NotFoundError:
        raise NotFoundError(f"没有账户变更申请 {public_id}") from None
    return change


ChangeDep = Annotated[PayeeChange, Depends(load_change)]


@router.post("", response_model=ChangeOut, status_code=201, summary="提出对公账户变更（待另一人审核）")
def propose(body: ChangeIn, user: AccountChanger, session: SessionDep) -> ChangeOut:
    _in_scope(session, user, body.uscc)
    change = payees.propose_account_change(
        session,
        body.uscc,
        bank_name=body.bank_name,
        account_no=body.account_no,
        account_name=body.account_name,
        contact_phone=body.contact_phone,
        by=user.username,
        reason=body.reason,
        now=now(),
    )
    return _view(session, change.public_id)


@router.get("", response_model=list[ChangeOut], summary="对公账户变更申请（默认待审核），账号脱敏")
def listing(
    user: AccountChangeReader,
    session: SessionDep,
    state: Annotated[str | None, Query(pattern="^(pending|approved|rejected)$")] = "pending",
) -> list[ChangeOut]:
    rows = [v for v in payees.account_changes(session, state=state) if _visible(session, user, v.uscc)]
    return [_view(session, v.public_id) for v in rows]


def _visible(session: Session, user: StaffUser, uscc: str) -> bool:
    if department(user) is None:
        return True
    try:
        _in_scope(session, user, uscc)
    except NotFoundError:
        return False
    return True


@router.post("/{public_id}/approve", response_model=ChangeOut, summary="审核通过对公账户变更（不能是申请人）")
def approve(change: ChangeDep, user: AccountChangeDecider, session: SessionDep) -> ChangeOut:
    payees.approve_account_change(session, change.public_id, by=user.username, now=now())
    return _view(session, change.public_id)


@router.post("/{public_id}/reject", response_model=ChangeOut, summary="退回对公账户变更")
def reject(body: Reason, change: ChangeDep, user: AccountChangeDecider, session: SessionDep) -> ChangeOut:
    payees.reject_account_change(session, change.public_id, by=user.username, reason=body.reason, now=now())
    return _view(session, change.public_id)


# The console page: the reviewer proposes, another reviewer or a finance checker decides.


@pages.get("")
def changes_page(request: Request, user: AccountChangeReader, session: SessionDep) -> Response:
    rows = [
        v for v in payees.account_changes(session, state=None, limit=100) if _visible(session, user, v.uscc)
    ]
    return render(
        request,
        "account_changes.html",
        {
            "rows": rows,
            "may_propose": may(user, "account_change"),
            "may_decide": may(user, "account_change_decide"),
            "me": request.state.user_record,
        },
    )


@pages.post("")
def propose_page(
    user: AccountChanger,
    session: SessionDep,
    uscc: Annotated[str, Form(max_length=18)] = "",
    bank_name: Annotated[str, Form(max_length=200)] = "",
    account_no: Annotated[str, Form(max_length=64)] = "",
    account_name: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    _in_scope(session, user, uscc)
    change = payees.propose_account_change(
        session,
        uscc,
        bank_name=bank_name,
        account_no=account_no,
        account_name=account_name,
        by=user.username,
        reason=reason,
        now=now(),
    )
    return redirect("/console/account-changes", f"已提出账户变更 {change.public_id}，待另一位工作人员审核")


@pages.post("/{public_id}/approve")
def approve_page(change: ChangeDep, user: AccountChangeDecider, session: SessionDep) -> Response:
    payees.approve_account_change(session, change.public_id, by=user.username, now=now())
    return redirect("/console/account-changes", f"账户变更 {change.public_id} 已审核通过并生效")


@pages.post("/{public_id}/reject")
def reject_page(
    change: ChangeDep,
    user: AccountChangeDecider,
    session: SessionDep,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    payees.reject_account_change(session, change.public_id, by=user.username, reason=reason, now=now())
    return redirect("/console/account-changes", f"账户变更 {change.public_id} 已退回")
