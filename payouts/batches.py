"""Payout batches (maker-checker), their bank files, and reconciliation with the bank's return file.

```
batch:   assembled(maker) → approved(checker ≠ maker) → exported → reconciled
                         ↘ rejected (offers go back to confirmed)
```
- A batch holds confirmed offers of one policy and period. It can never take the policy past its
  budget: the exact sum of every live line of the policy and period (in flight or paid) plus the new
  lines must not exceed it. Assembling locks the offers, then the policy's rows, so two makers at
  once cannot both take the same offer or both spend the same money.
- An offer is in at most one live batch (a partial unique index on live lines backs this up).
- A failed payment can be batched again only after staff corrected the account.
- Each line copies the payee's registered account when the batch is made; the bank files are made
  from these lines only, so the same batch always gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel import Session

from payouts import audit, bankfiles, notice, offers, tokens
from payouts.audit import Event
from payouts.db import PayoutSettings
from payouts.errors import BankFileError, NotFoundError, RoleError
from payouts.models import (
    BankReturn,
    Batch,
    BatchLine,
    BatchState,
    LineStatus,
    Offer,
    OfferState,
    Payee,
    PolicyVersion,
)
from payouts.users import require
from rules.errors import BudgetError, PayoutError, StateError

ZERO = Decimal("0.00")
BATCHABLE = (OfferState.CONFIRMED.value, OfferState.PAYMENT_FAILED.value)


def get_batch(session: Session, reference: str, *, lock: bool = False) -> Batch:
    """The batch with this reference (locked for update when `lock`)."""
    query = select(Batch).where(Batch.reference == reference)
    batch = session.scalar(query.with_for_update() if lock else query)
    if batch is None:
        raise NotFoundError(f"没有拨付批次 {reference}")
    return batch


def _event(
    batch: Batch, before: str | None, by: str, action: str, reason: str | None = None, **data: object
) -> Event:
    return Event(by, action, "batch", batch.reference, before, batch.state, reason, data)


@dataclass(frozen=True)
class Budget:
    """A policy's budget for one period and how much of it live batches hold."""

    policy_id: str
    period: str
    budget: Decimal | None
    committed: Decimal

    @property
    def remaining(self) -> Decimal | None:
        return None if self.budget is None else self.budget - self.committed


def budget(session: Session, policy_id: str, period: str, *, lock: bool = False) -> Budget:
    """The budget of a policy and period (its latest version's) and the exact sum of its live lines.

    With `lock`, the policy's version rows are locked first, so budget checks of one policy take turns.
    """
    query = (
        select(PolicyVersion)
        .where(PolicyVersion.policy_id == policy_id, PolicyVersion.period == period)
        .order_by(PolicyVersion.version)
    )
    versions = list(session.scalars(query.with_for_update() if lock else query).all())
    if not versions:
        raise NotFoundError(f"没有政策 {policy_id}（期间 {period}）")
    committed = session.scalar(
        select(func.coalesce(func.sum(BatchLine.amount), 0))
        .join(Batch, Batch.id == BatchLine.batch_id)
        .where(Batch.policy_id == policy_id, Batch.period == period, BatchLine.live)
    )
    return Budget(policy_id, period, versions[-1].budget, Decimal(committed or 0).quantize(Decimal("0.01")))


def _period(session: Session, policy_id: str, period: str | None) -> str:
    if period is not None:
        return period
    periods = session.scalars(
        select(PolicyVersion.period).where(PolicyVersion.policy_id == policy_id).distinct()
    ).all()
    if not periods:
        raise NotFoundError(f"没有政策 {policy_id}")
    if len(periods) > 1:
        raise PayoutError(f"政策 {policy_id} 有多个期间（{', '.join(sorted(periods))}），请指定期间")
    return periods[0]


def _failed_on_same_account(session: Session, offer_list: list[Offer]) -> list[str]:
    """Public ids of failed offers whose account was not corrected since the failure."""
    failed = [o for o in offer_list if o.state == OfferState.PAYMENT_FAILED.value]
    if not failed:
        return []
    last_payee = dict(
        session.execute(
            select(BatchLine.offer_id, BatchLine.payee_id)
            .where(
                BatchLine.offer_id.in_([o.id for o in failed]), BatchLine.status == LineStatus.FAILED.value
            )
            .order_by(BatchLine.id)
        ).all()
    )
    return [o.public_id for o in failed if last_payee.get(o.id) == o.payee_id]


def create_batch(
    session: Session,
    policy_id: str,
    by: str,
    now: dt.datetime,
    *,
    public_ids: list[str] | None = None,
    period: str | None = None,
    settings: PayoutSettings | None = None,
) -> Batch:
    """Assemble a batch (maker): the named offers, or every batchable offer of the policy and period.

    Named offers must all be confirmed (or failed with a corrected account) and of this policy and
    period. Without names, offers other makers are assembling right now are skipped. Refuses with
    BudgetError if the batch would take the policy past its budget.
    """
    maker = require(session, by, "batch_make")
    settings = settings or PayoutSettings.from_env()
    period = _period(session, policy_id, period)
    o = Offer
    if public_ids is not None:
        chosen = offers.lock_offers(session, public_ids)
        wrong = [
            f"{x.public_id}（{offers.label(x.state)}）"
            for x in chosen
            if x.state not in BATCHABLE or x.policy_id != policy_id or x.period != period
        ]
        if wrong:
            raise StateError(f"只能组批本政策、本期间已确认（或拨付失败）的要约：{', '.join(wrong)}")
    else:
        chosen = list(
            session.scalars(
                select(o)
                .where(o.policy_id == policy_id, o.period == period, o.state.in_(BATCHABLE))
                .order_by(o.id)
                .with_for_update(skip_locked=True)
            ).all()
        )
    same_account = _failed_on_same_account(session, chosen)
    if public_ids is not None and same_account:
        raise StateError(f"拨付失败的要约须先更正账户才能重新组批：{', '.join(same_account)}")
    chosen = [x for x in chosen if x.public_id not in set(same_account)]
    if not chosen:
        raise StateError(f"政策 {policy_id}（{period}）没有可以组批的已确认要约")
    payees = {
        p.id: p
        for p in session.scalars(select(Payee).where(Payee.id.in_({x.payee_id for x in chosen}))).all()
    }
    if no_account := [x.public_id for x in chosen if payees[x.payee_id].account_no is None]:
        raise StateError(f"无对公账户，不能组批：{', '.join(no_account)}")
    total = sum((x.amount for x in chosen), ZERO)
    money = budget(session, policy_id, period, lock=True)
    if money.remaining is not None and total > money.remaining:
        raise BudgetError(
            f"超出预算：政策 {policy_id}（{period}）预算 {money.budget:,.2f} 元，已占用 {money.committed:,.2f} 元，"
            f"剩余 {money.remaining:,.2f} 元，本批 {total:,.2f} 元"
        )
    title = session.scalar(
        select(PolicyVersion.title)
        .where(PolicyVersion.policy_id == policy_id, PolicyVersion.period == period)
        .order_by(PolicyVersion.version.desc())
        .limit(1)
    )
    batch = Batch(
        reference=tokens.reference("ZD"),
        policy_id=policy_id,
        period=period,
        state=BatchState.ASSEMBLED.value,
        maker_id=maker.id,
        line_count=len(chosen),
        total=total,
        payer_name=settings.payer_name,
        payer_account=settings.payer_account,
        payer_bank=settings.payer_bank,
        purpose=f"{title}（{period}）",
        created_at=now,
    )
    session.add(batch)
    session.flush()
    events = [_event(batch, None, by, "assemble", lines=len(chosen), total=str(total))]
    for n, x in enumerate(chosen, start=1):
        p = payees[x.payee_id]
        session.add(
            BatchLine(
                batch_id=batch.id,
                line_no=n,
                reference=tokens.reference("ZL"),
                offer_id=x.id,
                payee_id=p.id,
                amount=x.amount,
                account_name=p.account_name or p.name,
                account_no=p.account_no,
                bank_name=p.bank_name or "",
                status=LineStatus.PENDING.value,
            )
        )
        events.append(
            offers.move(x, OfferState.IN_BATCH, actor=by, action="batch", now=now, batch=batch.reference)
        )
    audit.append(session, events, now)
    return batch


def approve(session: Session, reference: str, by: str, now: dt.datetime) -> Batch:
    """Approve a batch (checker); the checker cannot be the maker."""
    checker = require(session, by, "batch_check")
    batch = get_batch(session, reference, lock=True)
    if batch.state != BatchState.ASSEMBLED.value:
        raise StateError(f"批次 {reference} 处于 {batch.state}，只有待复核的批次可以复核")
    if checker.id == batch.maker_id:
        raise RoleError("制单人不能复核自己的批次：需要另一位复核人员")
    notice.check_approvable(session, batch, now)  # the public notice (公示) ran its period, no open objection
    batch.state, batch.checker_id, batch.approved_at = BatchState.APPROVED.value, checker.id, now
    audit.append(session, [_event(batch, BatchState.ASSEMBLED.value, by, "approve")], now)
    return batch


def reject(session: Session, reference: str, by: str, reason: str, now: dt.datetime) -> Batch:
    """Reject an assembled batch (checker) or withdraw it (its maker); its offers go back to confirmed."""
    user = require(session, by, "bank_files")
    batch = get_batch(session, reference, lock=True)
    if batch.state != BatchState.ASSEMBLED.value:
        raise StateError(f"批次 {reference} 处于 {batch.state}，只有待复核的批次可以退回")
    if user.role == "finance_maker" and user.id != batch.maker_id:
        raise RoleError("只有复核人员或本批次的制单人可以退回批次")
    if not reason.strip():
        raise StateError("退回批次必须写明原因")
    lines = list(session.scalars(select(BatchLine).where(BatchLine.batch_id == batch.id)).all())
    locked = offers.lock_offers(session, [o for o in _public_ids(session, [ln.offer_id for ln in lines])])
    events = [
        offers.move(o, OfferState.CONFIRMED, actor=by, action="unbatch", now=now, reason=reason)
        for o in locked
    ]
    for ln in lines:
        ln.status, ln.live = LineStatus.WITHDRAWN.value, False
    batch.state, batch.rejected_at, batch.reason = BatchState.REJECTED.value, now, reason
    if user.role == "finance_checker":
        batch.checker_id = user.id if user.id != batch.maker_id else None
    events.append(_event(batch, BatchState.ASSEMBLED.value, by, "reject", reason))
    audit.append(session, events, now)
    return batch


def _public_ids(session: Session, offer_ids: list[int]) -> list[str]:
    return list(session.scalars(select(Offer.public_id).where(Offer.id.in_(offer_ids))).all())


def bank_file_of(session: Session, batch: Batch) -> bankfiles.BatchFile:
    """The batch as the bank files see it: header and lines, all from what the batch recorded."""
    lines = session.scalars(
        select(BatchLine).where(BatchLine.batch_id == batch.id).order_by(BatchLine.line_no)
    )
    assert batch.approved_at is not None
    return bankfiles.BatchFile(
        reference=batch.reference,
        created=batch.approved_at,
        execution_date=batch.approved_at.astimezone(bankfiles.CHINA).date(),
        payer_name=batch.payer_name,
        payer_account=batch.payer_account,
        payer_bank=batch.payer_bank,
        purpose=batch.purpose,
        lines=[
            bankfiles.FileLine(
                line_no=ln.line_no,
                reference=ln.reference,
                account_name=ln.account_name,
                account_no=ln.account_no,
                bank_name=ln.bank_name,
                amount=ln.amount,
            )
            for ln in lines
        ],
    )


@dataclass(frozen=True)
class Export:
    """The two bank files of a batch, their paths and SHA-256 digests."""

    csv_path: Path
    xml_path: Path
    csv_sha256: str
    xml_sha256: str


def export(session: Session, reference: str, by: str, out_dir: Path, now: dt.datetime) -> Export:
    """Write the batch's CSV (批量代发) and pain.001.001.09 files; repeating it gives the same bytes."""
    require(session, by, "bank_files")
    batch = get_batch(session, reference, lock=True)
    if batch.state not in (BatchState.APPROVED.value, BatchState.EXPORTED.value, BatchState.RECONCILED.value):
        raise StateError(f"批次 {reference} 处于 {batch.state}，复核通过后才能导出银行文件")
    content = bank_file_of(session, batch)
    csv_bytes, xml_bytes = bankfiles.render_csv(content), bankfiles.render_pain001(content)
    digests = hashlib.sha256(csv_bytes).hexdigest(), hashlib.sha256(xml_bytes).hexdigest()
    if batch.csv_sha256 is not None and (batch.csv_sha256, batch.xml_sha256) != digests:
        raise PayoutError(f"批次 {reference} 的内容与首次导出时不同：数据被改动，请核查")
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, xml_path = out_dir / f"{reference}.csv", out_dir / f"{reference}.xml"
    csv_path.write_bytes(csv_bytes)
    xml_path.write_bytes(xml_bytes)
    if batch.state == BatchState.APPROVED.value:
        batch.state, batch.exported_at = BatchState.EXPORTED.value, now
        batch.csv_sha256, batch.xml_sha256 = digests
        event = _event(batch, BatchState.APPROVED.value, by, "export", csv=digests[0], xml=digests[1])
        audit.append(session, [event], now)
    return Export(csv_path, xml_path, *digests)


@dataclass
class Reconciliation:
    """What a return file did to a batch."""

    batch: str
    paid: int = 0
    failed: int = 0
    paid_amount: Decimal = ZERO
    failed_amount: Decimal = ZERO
    pending: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (offer public id, bank's reason)


def reconcile(
    session: Session, reference: str, data: bytes, by: str, now: dt.datetime, *, filename: str = "回单.csv"
) -> Reconciliation:
    """Apply the bank's return file to an exported batch: each line paid, or failed with the bank's reason.

    The whole file is checked before anything is applied; a file for another batch, a file already
    imported, an unknown or already settled line, or a different amount or account is refused.
    """
    user = require(session, by, "bank_files")
    batch = get_batch(session, reference, lock=True)
    parsed = bankfiles.parse_return(data)
    if parsed.batch_reference != batch.reference:
        raise BankFileError(f"回单属于批次 {parsed.batch_reference}，不是批次 {batch.reference}")
    if batch.state != BatchState.EXPORTED.value:
        raise StateError(f"批次 {reference} 处于 {batch.state}，只有已导出的批次可以对账")
    digest = hashlib.sha256(data).hexdigest()
    if session.scalar(select(BankReturn.id).where(BankReturn.file_sha256 == digest)) is not None:
        raise BankFileError("这份回单已经导入过（重复文件）")
    lines = {
        ln.reference: ln
        for ln in session.scalars(
            select(BatchLine).where(BatchLine.batch_id == batch.id).with_for_update()
        ).all()
    }
    _check_return(parsed, lines)
    offer_by_id = {
        o.id: o
        for o in offers.lock_offers(
            session, _public_ids(session, [lines[r.reference].offer_id for r in parsed.lines])
        )
    }
    record = BankReturn(
        batch_id=batch.id,
        file_sha256=digest,
        filename=filename,
        imported_at=now,
        imported_by=user.id,
        lines=len(parsed.lines),
        paid=0,
        failed=0,
        paid_amount=ZERO,
        failed_amount=ZERO,
    )
    session.add(record)
    session.flush()
    result = Reconciliation(batch.reference)
    events: list[Event] = []
    for r in parsed.lines:
        ln = lines[r.reference]
        offer = offer_by_id[ln.offer_id]
        ln.bank_return_id, ln.settled_at = record.id, now
        if r.paid:
            ln.status = LineStatus.PAID.value
            events.append(
                offers.move(
                    offer,
                    OfferState.PAID,
                    actor=by,
                    action="reconcile",
                    now=now,
                    batch=reference,
                    line=ln.reference,
                )
            )
            result.paid += 1
            result.paid_amount += ln.amount
        else:
            ln.status, ln.live, ln.bank_reason = LineStatus.FAILED.value, False, r.reason
            events.append(
                offers.move(
                    offer,
                    OfferState.PAYMENT_FAILED,
                    actor=by,
                    action="reconcile",
                    now=now,
                    reason=r.reason,
                    batch=reference,
                    line=ln.reference,
                )
            )
            result.failed += 1
            result.failed_amount += ln.amount
            result.failures.append((offer.public_id, r.reason))
    record.paid, record.failed = result.paid, result.failed
    record.paid_amount, record.failed_amount = result.paid_amount, result.failed_amount
    result.pending = sum(1 for ln in lines.values() if ln.status == LineStatus.PENDING.value)
    if result.pending == 0:
        batch.state, batch.reconciled_at = BatchState.RECONCILED.value, now
        events.append(
            _event(
                batch,
                BatchState.EXPORTED.value,
                by,
                "reconcile",
                None,
                paid=result.paid,
                failed=result.failed,
                file=digest,
            )
        )
    audit.append(session, events, now)
    return result


def _check_return(parsed: bankfiles.ReturnFile, lines: dict[str, BatchLine]) -> None:
    problems = []
    seen: set[str] = set()
    for r in parsed.lines:
        ln = lines.get(r.reference)
        if r.reference in seen:
            problems.append(f"第 {r.row} 行：明细 {r.reference} 在回单中重复")
        seen.add(r.reference)
        if ln is None:
            problems.append(f"第 {r.row} 行：明细 {r.reference} 不属于本批次")
            continue
        if ln.status != LineStatus.PENDING.value:
            problems.append(f"第 {r.row} 行：明细 {r.reference} 已对账（{ln.status}），重复回单")
        if r.amount != ln.amount:
            problems.append(f"第 {r.row} 行：金额 {r.amount} 与批次明细 {ln.amount} 不符")
        if r.account_no != ln.account_no:
            problems.append(f"第 {r.row} 行：收款账号与批次明细不符")
    if problems:
        raise BankFileError("回单被拒绝：\n" + "\n".join(f"- {p}" for p in problems))


def batches(session: Session, *, policy_id: str | None = None, state: str | None = None) -> list[Batch]:
    """Batches, newest first, optionally of one policy or in one state."""
    query = select(Batch).order_by(Batch.id.desc())
    if policy_id is not None:
        query = query.where(Batch.policy_id == policy_id)
    if state is not None:
        query = query.where(Batch.state == state)
    return list(session.scalars(query).all())
