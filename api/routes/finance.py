"""The finance structure as the API serves it: payer accounts and who pays each policy, read by finance
staff and the auditor, changed only by the finance checker (payouts.finance). Every change is a new
version with an audit event; nothing is ever overwritten.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import FinanceKeeper, FinanceReader, SessionDep
from api.routes import now
from payouts import finance
from payouts.models import FileFormat, PayerAccount, PolicyFunding

router = APIRouter(prefix="/api/finance", tags=["finance"])


class PayerIn(BaseModel):
    """A payer account as the finance checker gives it."""

    name: str = Field(max_length=140, description="户名")
    account_no: str = Field(max_length=34)
    bank_name: str = Field(max_length=140, description="开户行（国库）")
    file_format: FileFormat
    adm_div_code: str | None = Field(default=None, max_length=12, description="行政区划代码（国库凭证必填）")
    active: bool = True
    reason: str | None = Field(default=None, max_length=500)


class PayerOut(BaseModel):
    """One version of a payer account."""

    code: str
    version: int
    name: str
    account_no: str
    bank_name: str
    file_format: str
    file_format_label: str
    adm_div_code: str | None
    active: bool
    set_by: str
    set_at: dt.datetime
    reason: str | None


class PartIn(BaseModel):
    """One payer's part in a policy's funding."""

    payer_code: str = Field(max_length=32)
    share: int = Field(ge=1, le=1_000_000, description="份数：市、区 1:1 各 1 份")
    fund_source: str = Field(max_length=140, description="资金来源")
    budget_no: str = Field(max_length=64, description="预算指标文号")


class FundingIn(BaseModel):
    parts: list[PartIn] = Field(min_length=1, max_length=20)
    reason: str | None = Field(default=None, max_length=500)


class PartOut(PartIn):
    version: int
    set_by: str
    set_at: dt.datetime
    reason: str | None


def _payer(row: PayerAccount) -> PayerOut:
    label = finance.FORMAT_LABELS[FileFormat(row.file_format)]
    return PayerOut(**row.model_dump(exclude={"id"}), file_format_label=label)


def _part(row: PolicyFunding) -> PartOut:
    return PartOut(**row.model_dump(exclude={"id", "policy_id", "payer_code"}), payer_code=row.payer_code)


@router.get("/payers", response_model=list[PayerOut], summary="付款账户（现行版本）")
def payers(user: FinanceReader, session: SessionDep) -> list[PayerOut]:
    return [_payer(a) for a in finance.payer_accounts(session)]


@router.get("/payers/{code}", response_model=list[PayerOut], summary="一个付款账户的全部版本（新的在前）")
def payer_history(code: str, user: FinanceReader, session: SessionDep) -> list[PayerOut]:
    finance.payer_account(session, code)  # 404 for an unknown code
    return [_payer(a) for a in finance.payer_history(session, code)]


@router.put("/payers/{code}", response_model=PayerOut, summary="新增或修改付款账户（财政部门复核人员）")
def set_payer(code: str, body: PayerIn, user: FinanceKeeper, session: SessionDep) -> PayerOut:
    row = finance.set_payer_account(
        session,
        code,
        name=body.name,
        account_no=body.account_no,
        bank_name=body.bank_name,
        file_format=body.file_format.value,
        adm_div_code=body.adm_div_code,
        active=body.active,
        by=user.username,
        now=now(),
        reason=body.reason,
    )
    return _payer(row)


@router.get("/policies/{policy_id}", response_model=list[PartOut], summary="一项政策的资金来源，全部版本")
def funding(policy_id: str, user: FinanceReader, session: SessionDep) -> list[PartOut]:
    return [_part(r) for r in finance.funding_history(session, policy_id)]


@router.put("/policies/{policy_id}", response_model=list[PartOut], summary="设置一项政策由谁拨付及分担比例")
def set_funding(policy_id: str, body: FundingIn, user: FinanceKeeper, session: SessionDep) -> list[PartOut]:
    parts = [finance.Part(p.payer_code, p.share, p.fund_source, p.budget_no) for p in body.parts]
    rows = finance.set_funding(session, policy_id, parts, by=user.username, now=now(), reason=body.reason)
    return [_part(r) for r in rows]
