"""The finance structure as the API serves it: payer accounts and who pays each policy, read by finance
staff and the auditor, changed only by the finance checker (payouts.finance). Every change is a new
version with an audit event; nothing is ever overwritten.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from api.deps import FinanceKeeper, FinanceReader, SessionDep, may
from api.routes import now, redirect, render
from payouts import finance
from payouts.models import FileFormat, PayerAccount, PolicyFunding, PolicyVersion

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
    budget_amount: Decimal | None = Field(
        default=None, gt=0, max_digits=18, decimal_places=2, description="指标金额（元，精确到分）"
    )


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
    parts = [
        finance.Part(p.payer_code, p.share, p.fund_source, p.budget_no, p.budget_amount) for p in body.parts
    ]
    rows = finance.set_funding(session, policy_id, parts, by=user.username, now=now(), reason=body.reason)
    return [_part(r) for r in rows]


# Console: the finance bureau's page (资金配置): payer accounts, who pays each policy, and the forms to
# change them (the finance checker's).

pages = APIRouter(prefix="/console/finance", include_in_schema=False)
PART_ROWS = 3  # payers a policy's form offers (province, city, district); the API takes more


@pages.get("")
def finance_page(request: Request, user: FinanceReader, session: SessionDep) -> Response:
    titles = dict(
        session.execute(
            select(PolicyVersion.policy_id, func.max(PolicyVersion.title)).group_by(PolicyVersion.policy_id)
        )
        .tuples()
        .all()
    )
    funded = {pid: finance.funding(session, pid) for pid in sorted(titles)}
    numbers = sorted({p.budget_no for parts in funded.values() for p in parts})
    balances = {n: b for n in numbers if (b := finance.index_balance(session, n)) is not None}
    accounts = [_payer(a) for a in finance.payer_accounts(session)]
    return render(
        request,
        "finance.html",
        {
            "accounts": accounts,
            "names": {a.code: a.name for a in accounts},
            "policies": [(pid, titles[pid], parts) for pid, parts in funded.items()],
            "formats": finance.FORMAT_LABELS,
            "can_edit": may(user, "finance_config"),
            "rows": range(1, PART_ROWS + 1),
            "balances": balances,
        },
    )


@pages.post("/payers")
def payer_form(
    user: FinanceKeeper,
    session: SessionDep,
    code: Annotated[str, Form(max_length=32)],
    name: Annotated[str, Form(max_length=140)],
    account_no: Annotated[str, Form(max_length=34)],
    bank_name: Annotated[str, Form(max_length=140)],
    file_format: Annotated[FileFormat, Form()],
    adm_div_code: Annotated[str, Form(max_length=12)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
    disable: Annotated[bool, Form()] = False,
) -> Response:
    row = finance.set_payer_account(
        session,
        code.strip(),
        name=name.strip(),
        account_no=account_no.strip(),
        bank_name=bank_name.strip(),
        file_format=file_format.value,
        adm_div_code=adm_div_code.strip() or None,
        active=not disable,
        by=user.username,
        now=now(),
        reason=reason.strip() or None,
    )
    return redirect("/console/finance", f"付款账户 {row.name} 已保存（第 {row.version} 版）")


Text32 = Annotated[str, Form(max_length=32)]
Text140 = Annotated[str, Form(max_length=140)]
Text64 = Annotated[str, Form(max_length=64)]


def _amount(n: int, text: str) -> Decimal | None:
    """The 指标金额 typed in the form (元, separators allowed); None when left empty."""
    cleaned = text.strip().replace(",", "").replace("，", "").removesuffix("元")
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        value = Decimal(0)
    if not value.is_finite() or value <= 0 or value != value.quantize(Decimal("0.01")):
        raise finance.FinanceConfigError(
            f"第 {n} 个付款方的指标金额“{text.strip()}”无效：请填写大于 0 的金额（元），精确到分，如 5000000.00"
        )
    return value


@pages.post("/policies")
def funding_form(
    user: FinanceKeeper,
    session: SessionDep,
    policy_id: Text64,
    payer_1: Text32 = "",
    share_1: Text32 = "",
    fund_source_1: Text140 = "",
    budget_no_1: Text64 = "",
    budget_amount_1: Text32 = "",
    payer_2: Text32 = "",
    share_2: Text32 = "",
    fund_source_2: Text140 = "",
    budget_no_2: Text64 = "",
    budget_amount_2: Text32 = "",
    payer_3: Text32 = "",
    share_3: Text32 = "",
    fund_source_3: Text140 = "",
    budget_no_3: Text64 = "",
    budget_amount_3: Text32 = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    rows_given = (
        (payer_1, share_1, fund_source_1, budget_no_1, budget_amount_1),
        (payer_2, share_2, fund_source_2, budget_no_2, budget_amount_2),
        (payer_3, share_3, fund_source_3, budget_no_3, budget_amount_3),
    )
    parts = []
    for n, (code, share, source, budget_no, amount) in enumerate(rows_given, start=1):
        if not code.strip():
            continue
        if not share.strip().isdigit():
            raise finance.FinanceConfigError(
                f"第 {n} 个付款方的分担份数应为正整数，如 1（市、区 1:1 各填 1）"
            )
        parts.append(
            finance.Part(code.strip(), int(share), source.strip(), budget_no.strip(), _amount(n, amount))
        )
    saved = finance.set_funding(
        session, policy_id.strip(), parts, by=user.username, now=now(), reason=reason.strip() or None
    )
    return redirect("/console/finance", f"政策 {policy_id} 的资金来源已保存（第 {saved[0].version} 版）")
