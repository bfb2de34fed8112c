"""The finance structure: who pays each policy, from which fund, and how levels share the cost.

The finance bureau keeps it (permission `finance_config`, the finance checker's), in the database, not
in the policy YAML: a policy's author decides who qualifies and how much, never which account pays.

- A payer account (付款账户) has a code, a name, an account number, a bank, the file format its bank or
  treasury takes (`FileFormat`) and, for the treasury voucher, its administrative division code.
- A policy's funding names one or more payer accounts, each with its fund source (资金来源), budget
  index number (预算指标文号) and an integer share: city 1 and district 1 split every line 1:1.
- Every change adds a version (the tables are the history) and one audit event; the newest version
  is in force. Batches copy what they use when they are made, so a later change never alters a batch.
- A policy without funding is paid by the settings' default payer (`ZHIDA_PAYER_*`), in one batch.
- A 预算指标 may carry its amount (指标金额). Its balance is the amount less the live lines (pending or
  paid) of every approved, exported or reconciled batch that draws on it, whatever the policy; a batch
  whose approval would overdraw it is refused (`check_index`), naming the 指标 and the shortfall. The
  amount in force is the one recorded last for that 指标 number.

Splitting is fen-exact by largest remainder: each payer gets floor(amount × share ÷ total) fen, and
the fen left over (fewer than the number of payers) go one each to the payers with the largest
remainders, ties to the payer listed first. The parts always sum to the amount. `split` is the rule
in Python; `payouts.batches` applies the same rule in SQL, and a test checks they agree.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlmodel import Session

from payouts import audit
from payouts.bankfiles import ACCOUNT_MAX, name_problem
from payouts.db import PayoutSettings
from payouts.errors import NotFoundError
from payouts.models import (
    Batch,
    BatchLine,
    BatchState,
    FileFormat,
    LineStatus,
    PayerAccount,
    PolicyFunding,
    PolicyVersion,
)
from payouts.sqltypes import FEN
from payouts.users import require
from rules.errors import BudgetError, PayoutError
from rules.formats import money_exact_cn

FORMAT_LABELS = {
    FileFormat.BANK_CSV: "批量代发 CSV",
    FileFormat.PAIN001: "ISO 20022 pain.001",
    FileFormat.TREASURY: "国库集中支付电子凭证",
}
CODE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
ACCOUNT_RE = re.compile(rf"[0-9A-Za-z-]{{1,{ACCOUNT_MAX}}}")
ADM_DIV_RE = re.compile(r"[0-9]{6}|[0-9]{9}|[0-9]{12}")  # GB/T 2260 county code, or a longer local one
DEFAULT_CODE = ""  # the settings' payer, for policies without funding


class FinanceConfigError(PayoutError):
    """A payer account or a policy's funding cannot be saved as given (the message names the field)."""


def split(amount: Decimal, shares: Sequence[int]) -> list[Decimal]:
    """`amount` split by integer `shares`, fen-exact, by largest remainder (ties to the first listed)."""
    if not shares or any(s <= 0 for s in shares):
        raise FinanceConfigError("分担比例应为正整数")
    fen = int((amount / FEN).to_integral_exact())
    if Decimal(fen) * FEN != amount:
        raise FinanceConfigError(f"金额只能精确到分：{amount}")
    total = sum(shares)
    base = [fen * s // total for s in shares]
    remainder = [fen * s % total for s in shares]
    left = fen - sum(base)
    for i in sorted(range(len(shares)), key=lambda i: (-remainder[i], i))[:left]:
        base[i] += 1
    return [Decimal(x) * FEN for x in base]


def _latest_funding(session: Session, policy_id: str) -> int:
    """The newest version of the policy's funding (0: none yet)."""
    found = select(func.coalesce(func.max(PolicyFunding.version), 0)).where(
        PolicyFunding.policy_id == policy_id
    )
    return int(session.scalar(found) or 0)


def payer_account(session: Session, code: str) -> PayerAccount:
    """The payer account `code` as it is now (its newest version)."""
    found = session.scalar(
        select(PayerAccount).where(PayerAccount.code == code).order_by(PayerAccount.version.desc()).limit(1)
    )
    if found is None:
        raise NotFoundError(f"没有付款账户 {code}")
    return found


def payer_accounts(session: Session) -> list[PayerAccount]:
    """Every payer account as it is now, by code."""
    newest = (
        select(PayerAccount.code, func.max(PayerAccount.version).label("version"))
        .group_by(PayerAccount.code)
        .subquery()
    )
    query = (
        select(PayerAccount)
        .join(newest, (newest.c.code == PayerAccount.code) & (newest.c.version == PayerAccount.version))
        .order_by(PayerAccount.code)
    )
    return list(session.scalars(query).all())


def payer_history(session: Session, code: str) -> list[PayerAccount]:
    """Every version of the payer account `code`, newest first."""
    query = select(PayerAccount).where(PayerAccount.code == code).order_by(PayerAccount.version.desc())
    return list(session.scalars(query).all())


def _problems_of_account(
    code: str, name: str, account_no: str, bank_name: str, file_format: str, adm_div_code: str | None
) -> list[str]:
    problems = []
    if not CODE_RE.fullmatch(code):
        problems.append(
            f"账户代码 {code!r} 应为 1 至 32 个小写字母、数字、- 或 _（如 city、furong-district）"
        )
    for what, text in (("户名", name), ("开户行", bank_name)):
        if problem := name_problem(text):
            problems.append(f"{what}{problem}")
    if not ACCOUNT_RE.fullmatch(account_no):
        problems.append(f"账号应为 1 至 {ACCOUNT_MAX} 位数字或字母")
    if file_format not in set(FileFormat):
        choices = "、".join(f"{f.value}（{label}）" for f, label in FORMAT_LABELS.items())
        problems.append(f"文件格式 {file_format!r} 无效，可选：{choices}")
    if adm_div_code is not None and not ADM_DIV_RE.fullmatch(adm_div_code):
        problems.append("行政区划代码应为 6 位数字（GB/T 2260，如 430102），或 9、12 位")
    if file_format == FileFormat.TREASURY and adm_div_code is None:
        problems.append("国库集中支付电子凭证须填写行政区划代码（如 430102）")
    return problems


def set_payer_account(
    session: Session,
    code: str,
    *,
    name: str,
    account_no: str,
    bank_name: str,
    file_format: str,
    adm_div_code: str | None = None,
    active: bool = True,
    by: str,
    now: dt.datetime,
    reason: str | None = None,
) -> PayerAccount:
    """Add or change the payer account `code` (a new version, audited); the finance bureau's act."""
    require(session, by, "finance_config")
    adm_div_code = adm_div_code or None
    problems = _problems_of_account(code, name, account_no, bank_name, file_format, adm_div_code)
    if problems:
        raise FinanceConfigError(f"付款账户 {code} 不能保存：" + "；".join(problems))
    before = session.scalar(
        select(PayerAccount).where(PayerAccount.code == code).order_by(PayerAccount.version.desc()).limit(1)
    )
    row = PayerAccount(
        code=code,
        version=(before.version if before else 0) + 1,
        name=name,
        account_no=account_no,
        bank_name=bank_name,
        file_format=file_format,
        adm_div_code=adm_div_code,
        active=active,
        set_by=by,
        set_at=now,
        reason=reason,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        now,
        by,
        "set_payer_account",
        "payer_account",
        code,
        f"v{before.version}" if before else None,
        f"v{row.version}",
        reason,
        **_account_data(row),
        **({"before": _account_data(before)} if before else {}),
    )
    return row


def _account_data(row: PayerAccount) -> dict[str, object]:
    return {
        "name": row.name,
        "account_no": row.account_no,
        "bank_name": row.bank_name,
        "file_format": row.file_format,
        "adm_div_code": row.adm_div_code,
        "active": row.active,
    }


@dataclass(frozen=True)
class Part:
    """One payer's part in a policy's funding, as the finance bureau gives it."""

    payer_code: str
    share: int
    fund_source: str
    budget_no: str
    budget_amount: Decimal | None = None  # 指标金额; None: not recorded


def funding(session: Session, policy_id: str) -> list[PolicyFunding]:
    """The policy's funding in force (its newest version), in the order given; empty: the default payer."""
    version = _latest_funding(session, policy_id)
    query = (
        select(PolicyFunding)
        .where(PolicyFunding.policy_id == policy_id, PolicyFunding.version == version)
        .order_by(PolicyFunding.id)
    )
    return list(session.scalars(query).all())


def funding_history(session: Session, policy_id: str) -> list[PolicyFunding]:
    """Every version of the policy's funding, newest first."""
    query = (
        select(PolicyFunding)
        .where(PolicyFunding.policy_id == policy_id)
        .order_by(PolicyFunding.version.desc(), PolicyFunding.id)
    )
    return list(session.scalars(query).all())


def set_funding(
    session: Session,
    policy_id: str,
    parts: Sequence[Part],
    *,
    by: str,
    now: dt.datetime,
    reason: str | None = None,
) -> list[PolicyFunding]:
    """Name who pays the policy (a new version of its funding, audited); the finance bureau's act."""
    require(session, by, "finance_config")
    if session.scalar(select(PolicyVersion.id).where(PolicyVersion.policy_id == policy_id).limit(1)) is None:
        raise NotFoundError(f"没有政策 {policy_id}")
    problems: list[str] = []
    if not parts:
        problems.append("至少要有一个付款账户")
    codes = [p.payer_code for p in parts]
    if len(set(codes)) != len(codes):
        problems.append("同一付款账户只能出现一次")
    for n, p in enumerate(parts, start=1):
        where = f"第 {n} 个付款方（{p.payer_code}）"
        if p.share <= 0:
            problems.append(f"{where}的分担份数应为正整数，如 1（市、区 1:1 各填 1）")
        if not p.fund_source.strip():
            problems.append(f"{where}须填写资金来源（如 市级财政专项资金）")
        if not p.budget_no.strip():
            problems.append(f"{where}须填写预算指标文号")
        if p.budget_amount is not None and (
            p.budget_amount <= 0 or p.budget_amount != p.budget_amount.quantize(FEN)
        ):
            problems.append(f"{where}的指标金额应为大于 0 的金额，精确到分（如 5000000.00）")
        try:
            account = payer_account(session, p.payer_code)
        except NotFoundError:
            problems.append(f"{where}：没有这个付款账户，请先设置付款账户")
            continue
        if not account.active:
            problems.append(f"{where}：付款账户已停用")
    if problems:
        raise FinanceConfigError(f"政策 {policy_id} 的资金来源不能保存：" + "；".join(problems))
    version = _latest_funding(session, policy_id) + 1
    rows = [
        PolicyFunding(
            policy_id=policy_id,
            version=version,
            payer_code=p.payer_code,
            share=p.share,
            fund_source=p.fund_source.strip(),
            budget_no=p.budget_no.strip(),
            budget_amount=p.budget_amount,
            set_by=by,
            set_at=now,
            reason=reason,
        )
        for p in parts
    ]
    session.add_all(rows)
    session.flush()
    audit.record(
        session,
        now,
        by,
        "set_funding",
        "policy_funding",
        policy_id,
        f"v{version - 1}" if version > 1 else None,
        f"v{version}",
        reason,
        parts=[
            {
                "payer": p.payer_code,
                "share": p.share,
                "fund_source": p.fund_source,
                "budget_no": p.budget_no,
                "budget_amount": None if p.budget_amount is None else str(p.budget_amount),
            }
            for p in parts
        ],
    )
    return rows


@dataclass(frozen=True)
class Payer:
    """Who pays one part of a policy's lines, as a batch copies it."""

    code: str
    name: str
    account_no: str
    bank_name: str
    file_format: str
    adm_div_code: str | None
    fund_source: str | None
    budget_no: str | None
    share: int
    shares: int  # the sum of the policy's shares

    @property
    def share_text(self) -> str:
        return f"{self.share}/{self.shares}"


def payers(session: Session, policy_id: str, settings: PayoutSettings) -> list[Payer]:
    """Who pays the policy now, in order: its funding's payer accounts, or the settings' default payer."""
    parts = funding(session, policy_id)
    if not parts:
        return [
            Payer(
                DEFAULT_CODE,
                settings.payer_name,
                settings.payer_account,
                settings.payer_bank,
                settings.payer_format,
                settings.payer_adm_div_code,
                None,
                None,
                1,
                1,
            )
        ]
    total = sum(p.share for p in parts)
    out = []
    for p in parts:
        account = payer_account(session, p.payer_code)
        if not account.active:
            raise FinanceConfigError(
                f"政策 {policy_id} 的付款账户 {p.payer_code} 已停用：请财政部门先更新该政策的资金来源"
            )
        out.append(
            Payer(
                account.code,
                account.name,
                account.account_no,
                account.bank_name,
                account.file_format,
                account.adm_div_code,
                p.fund_source,
                p.budget_no,
                p.share,
                total,
            )
        )
    return out


# --- 预算指标 balances -----------------------------------------------------------------------------

SPENDING = (BatchState.APPROVED.value, BatchState.EXPORTED.value, BatchState.RECONCILED.value)


@dataclass(frozen=True)
class IndexBalance:
    """A 预算指标: its amount (指标金额), what approved batches drew on it, and what is left."""

    budget_no: str
    amount: Decimal
    used: Decimal
    left: Decimal


def index_amount(session: Session, budget_no: str, *, lock: bool = False) -> Decimal | None:
    """The amount of the 预算指标 `budget_no` as recorded last (None: never recorded). With `lock`, the
    funding rows naming it are locked, so two approvals drawing on it take turns."""
    query = select(PolicyFunding.budget_amount).where(PolicyFunding.budget_no == budget_no)
    if lock:
        session.execute(
            select(PolicyFunding.id).where(PolicyFunding.budget_no == budget_no).with_for_update()
        )
    return session.scalar(
        query.where(PolicyFunding.budget_amount.is_not(None)).order_by(PolicyFunding.id.desc()).limit(1)
    )


def index_used(session: Session, budget_no: str) -> Decimal:
    """What the approved (exported, reconciled) batches drawing on `budget_no` hold: their live lines,
    pending or paid; a failed or withdrawn line gives its money back."""
    used = session.scalar(
        select(func.coalesce(func.sum(BatchLine.amount), 0))
        .join(Batch, Batch.id == BatchLine.batch_id)
        .where(
            Batch.budget_no == budget_no,
            Batch.state.in_(SPENDING),
            BatchLine.live,
            BatchLine.status.in_((LineStatus.PENDING.value, LineStatus.PAID.value)),
        )
    )
    return Decimal(used or 0).quantize(FEN)


def index_balance(session: Session, budget_no: str) -> IndexBalance | None:
    """The balance of the 预算指标 `budget_no`; None when its amount was never recorded."""
    amount = index_amount(session, budget_no)
    if amount is None:
        return None
    used = index_used(session, budget_no)
    return IndexBalance(budget_no, amount, used, amount - used)


def check_index(session: Session, batch: Batch) -> None:
    """Refuse (BudgetError) to approve `batch` if its lines would overdraw its 预算指标; locks the 指标."""
    if not batch.budget_no:
        return
    amount = index_amount(session, batch.budget_no, lock=True)
    if amount is None:
        return
    used = index_used(session, batch.budget_no)
    wanted = session.scalar(
        select(func.coalesce(func.sum(BatchLine.amount), 0)).where(
            BatchLine.batch_id == batch.id,
            BatchLine.live,
            BatchLine.status.in_((LineStatus.PENDING.value, LineStatus.PAID.value)),
        )
    )
    wanted = Decimal(wanted or 0).quantize(FEN)
    left = amount - used
    if wanted > left:
        raise BudgetError(
            f"预算指标 {batch.budget_no} 余额不足：指标金额 {money_exact_cn(amount)}，"
            f"已复核批次占用 {money_exact_cn(used)}，余额 {money_exact_cn(left)}，"
            f"本批次 {money_exact_cn(wanted)}，缺口 {money_exact_cn(wanted - left)}。"
            "请财政部门追加指标或调整资金来源后再复核"
        )
