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
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Integer,
    Join,
    Numeric,
    Select,
    String,
    Table,
    Text,
    and_,
    case,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    type_coerce,
    update,
)
from sqlmodel import Session

from payouts import audit, bankfiles, bulkload, finance, notice, offers, scope, tokens, vouchers
from payouts.audit import Event
from payouts.db import PayoutSettings
from payouts.errors import BankFileError, NotFoundError, RoleError
from payouts.models import (
    BankReturn,
    Batch,
    BatchLine,
    BatchState,
    FileFormat,
    LineStatus,
    Offer,
    OfferState,
    Payee,
    PolicyVersion,
    StaffUser,
)
from payouts.sqltypes import FEN, Money
from payouts.users import require
from rules import formats
from rules.errors import BudgetError, PayoutError, StateError
from rules.formats import CHINA

ZERO = Decimal("0.00")
BATCHABLE = (OfferState.CONFIRMED.value, OfferState.PAYMENT_FAILED.value)


def get_batch(
    session: Session, reference: str, *, lock: bool = False, user: StaffUser | None = None
) -> Batch:
    """The batch with this reference (locked for update when `lock`); for `user`, only within their
    scope (`payouts/scope.py`): another department's or region's batch is not found."""
    query = select(Batch).where(Batch.reference == reference)
    batch = session.scalar(query.with_for_update() if lock else query)
    if batch is None or (user is not None and not scope.of(session, user).sees_batch(session, batch)):
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


def _failed_on_same_account(o: Table) -> ColumnElement[bool]:
    """Offers (rows of `o`) whose payment failed and whose account was not corrected since."""
    last_failed_payee = (
        select(BatchLine.payee_id)
        .where(BatchLine.offer_id == o.c.id, BatchLine.status == LineStatus.FAILED.value)
        .order_by(BatchLine.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    return and_(
        o.c.state == OfferState.PAYMENT_FAILED.value, func.coalesce(last_failed_payee, -1) == o.c.payee_id
    )


def _pick_table(session: Session) -> Table:
    """The offers a batch being assembled takes (their id, public id and state before), locked."""
    return bulkload.scratch_table(
        session,
        "batch_pick",
        Column("offer_id", BigInteger, primary_key=True),
        Column("public_id", String(32), nullable=False),
        Column("state", String(16), nullable=False),
    )


def _payer_table(session: Session) -> Table:
    """The payers of a batch being assembled, in the funding's order, with their shares."""
    return bulkload.scratch_table(
        session,
        "batch_payer",
        Column("ord", Integer, primary_key=True),
        Column("code", String(32), nullable=False),
        Column("share", BigInteger, nullable=False),
    )


def _part_table(session: Session) -> Table:
    """Each picked offer's part for each payer, in fen: the split less what the payer has live already."""
    return bulkload.scratch_table(
        session,
        "batch_part",
        Column("offer_id", BigInteger, primary_key=True),
        Column("ord", Integer, primary_key=True),
        Column("fen", BigInteger, nullable=False),
    )


def _fen(session: Session, amount: ColumnElement[Any]) -> ColumnElement[int]:
    """A `Money` column as an integer count of fen (SQLite keeps fen already)."""
    if session.connection().dialect.name == "sqlite":
        return type_coerce(amount, BigInteger)
    return cast(amount * 100, BigInteger)


def _money_of_fen(session: Session, fen: ColumnElement[Any]) -> ColumnElement[Any]:
    """An integer count of fen as the stored form of a `Money` column."""
    if session.connection().dialect.name == "sqlite":
        return fen
    return cast(fen, Numeric(18, 2)) / 100


def _split_parts(session: Session, pick: Table, payers: Table, total_shares: int) -> Table:
    """Split every picked offer between the payers, fen-exact, by largest remainder (the rule of
    `finance.split`, in SQL): floor(fen × share ÷ total) each, and the fen left over one each to the
    largest remainders, ties to the payer listed first. Less what each payer already has live for the
    offer (a part in flight or paid), so a failed part is batched again alone."""
    o, t = Offer.__table__, BatchLine.__table__
    fen = _fen(session, o.c.amount)
    raw = (
        select(
            pick.c.offer_id,
            payers.c.ord,
            payers.c.code,
            fen.label("fen"),
            ((fen * payers.c.share) // total_shares).label("base"),
            ((fen * payers.c.share) % total_shares).label("rem"),
        )
        .select_from(pick.join(o, o.c.id == pick.c.offer_id).join(payers, literal(True)))
        .subquery()
    )
    rank = func.row_number().over(partition_by=raw.c.offer_id, order_by=(raw.c.rem.desc(), raw.c.ord))
    left = raw.c.fen - func.sum(raw.c.base).over(partition_by=raw.c.offer_id)
    split = select(
        raw.c.offer_id,
        raw.c.ord,
        raw.c.code,
        (raw.c.base + case((rank <= left, 1), else_=0)).label("part"),
    ).subquery()
    live = (
        select(t.c.offer_id, t.c.payer_code, func.sum(_fen(session, t.c.amount)).label("fen"))
        .where(t.c.live, t.c.offer_id.in_(select(pick.c.offer_id)))
        .group_by(t.c.offer_id, t.c.payer_code)
        .subquery()
    )
    parts = _part_table(session)
    session.execute(
        insert(parts).from_select(
            ["offer_id", "ord", "fen"],
            select(split.c.offer_id, split.c.ord, split.c.part - func.coalesce(live.c.fen, 0)).select_from(
                split.outerjoin(
                    live, and_(live.c.offer_id == split.c.offer_id, live.c.payer_code == split.c.code)
                )
            ),
        )
    )
    bulkload.analyze(session, parts)
    return parts


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
    """`create_batches`, for callers that make one batch: the first of the batches made (the only one
    unless the finance bureau shares the policy's cost between payers)."""
    return create_batches(
        session, policy_id, by, now, public_ids=public_ids, period=period, settings=settings
    )[0]


def create_batches(
    session: Session,
    policy_id: str,
    by: str,
    now: dt.datetime,
    *,
    public_ids: list[str] | None = None,
    period: str | None = None,
    settings: PayoutSettings | None = None,
) -> list[Batch]:
    """Assemble batches (maker): the named offers, or every batchable offer of the policy and period,
    one batch per payer of the policy (`payouts.finance.payers`), each line split between the payers.

    Named offers must all be confirmed (or failed with a corrected account) and of this policy and
    period. Without names, offers other makers are assembling right now are skipped. Refuses with
    BudgetError if the batches would take the policy past its budget.

    Set-based whatever the size: the chosen offers are locked into a temporary table
    (INSERT ... SELECT ... FOR UPDATE), split between the payers and summed in SQL, the lines are made
    by one INSERT ... SELECT per payer and the offers moved by one UPDATE per former state, each one
    audit event.
    """
    maker = require(session, by, "batch_make")
    mine = scope.of(session, maker)  # the maker's policies and region: the batch holds nothing else
    settings = settings or PayoutSettings.from_env()
    period = _period(session, policy_id, period)
    who = finance.payers(session, policy_id, settings)
    o, p = Offer.__table__, Payee.__table__
    pick = _pick_table(session)
    columns = select(o.c.id, o.c.public_id, o.c.state).order_by(o.c.id)
    if public_ids is not None:
        wanted = mine.check_offers(session, public_ids)
        chosen = columns.where(bulkload.among(session, o.c.public_id, wanted)).with_for_update()
    else:
        chosen = columns.where(
            mine.offers(),
            o.c.policy_id == policy_id,
            o.c.period == period,
            o.c.state.in_(BATCHABLE),
            ~_failed_on_same_account(o),
        ).with_for_update(skip_locked=True)
    session.flush()
    session.execute(insert(pick).from_select(["offer_id", "public_id", "state"], chosen))
    bulkload.analyze(session, pick)
    picked = pick.join(o, o.c.id == pick.c.offer_id)
    if public_ids is not None:
        _check_named(session, pick, picked, wanted, policy_id, period)
    count = session.scalar(select(func.count()).select_from(picked))
    if not count:
        raise StateError(f"政策 {policy_id}（{period}）没有可以组批的已确认要约")
    no_account = session.scalars(
        select(pick.c.public_id)
        .select_from(picked.join(p, p.c.id == o.c.payee_id))
        .where(p.c.account_no.is_(None))
        .order_by(pick.c.offer_id)
    ).all()
    if no_account:
        raise StateError(f"无对公账户，不能组批：{', '.join(no_account)}")
    payer_rows = _payer_table(session)
    session.execute(
        insert(payer_rows), [{"ord": n, "code": x.code, "share": x.share} for n, x in enumerate(who)]
    )
    # Its statistics too: unanalysed, the one or few payers count as hundreds of rows, the split below
    # is planned for hundreds of times the offers it splits, and PostgreSQL compiles it (JIT) for that.
    bulkload.analyze(session, payer_rows)
    parts = _split_parts(session, pick, payer_rows, who[0].shares)
    negative = session.scalars(
        select(pick.c.public_id)
        .select_from(parts.join(pick, pick.c.offer_id == parts.c.offer_id))
        .where(parts.c.fen < 0)
        .distinct()
        .order_by(pick.c.public_id)
    ).all()
    if negative:
        raise StateError(
            "这些要约已有部分款项到账或在途，而该政策的分担比例此后被改动，不能按新比例补拨："
            f"{', '.join(negative)}；请财政部门核对资金来源"
        )
    sums = {
        int(ord_): (int(n), int(fen))
        for ord_, n, fen in session.execute(
            select(parts.c.ord, func.count(), func.sum(parts.c.fen))
            .where(parts.c.fen > 0)
            .group_by(parts.c.ord)
        )
    }
    total = sum((Decimal(fen) * FEN for _, fen in sums.values()), ZERO)
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
    made: list[Batch] = []
    for n, payer in enumerate(who):
        if n not in sums:
            continue
        lines_count, fen_total = sums[n]
        batch = Batch(
            reference=tokens.reference("ZD"),
            policy_id=policy_id,
            period=period,
            state=BatchState.ASSEMBLED.value,
            maker_id=maker.id,
            line_count=lines_count,
            total=Decimal(fen_total) * FEN,
            payer_name=payer.name,
            payer_account=payer.account_no,
            payer_bank=payer.bank_name,
            payer_code=payer.code,
            file_format=payer.file_format,
            adm_div_code=payer.adm_div_code,
            fund_source=payer.fund_source,
            budget_no=payer.budget_no,
            share=payer.share_text if len(who) > 1 else None,
            group_ref=made[0].reference if made else None,
            region=mine.region,
            purpose=f"{title}（{formats.period(period)}）",
            created_at=now,
        )
        session.add(batch)
        session.flush()
        if len(who) > 1 and not made:
            batch.group_ref = batch.reference
        lines = {
            "batch_id": literal(batch.id),
            "line_no": func.row_number().over(order_by=o.c.id),
            "reference": tokens.reference_sql(session.connection().dialect.name, "ZL"),
            "offer_id": o.c.id,
            "payee_id": p.c.id,
            "payer_code": literal(payer.code),
            "amount": _money_of_fen(session, parts.c.fen),
            "account_name": func.coalesce(p.c.account_name, p.c.name),
            "account_no": p.c.account_no,
            "bank_name": func.coalesce(p.c.bank_name, ""),
            "status": literal(LineStatus.PENDING.value),
            "live": literal(True),
        }
        source = (
            select(*lines.values())
            .select_from(parts.join(o, o.c.id == parts.c.offer_id).join(p, p.c.id == o.c.payee_id))
            .where(parts.c.ord == n, parts.c.fen > 0)
        )
        session.execute(insert(BatchLine.__table__).from_select(list(lines), source))
        data: dict[str, Any] = {"lines": lines_count, "total": str(batch.total)}
        if payer.code:
            data |= {"payer": payer.code, "share": payer.share_text, "budget_no": payer.budget_no}
        audit.append(session, [_event(batch, None, by, "assemble", **data)], now)
        made.append(batch)
    if not made:
        raise StateError(
            f"政策 {policy_id}（{period}）所选要约的各方款项均已在途或已到账，没有需要组批的部分"
        )
    group = made[0].reference if len(made) > 1 else None
    for source_state in (OfferState.CONFIRMED, OfferState.PAYMENT_FAILED):
        offers.move_selected(
            session,
            select(pick.c.offer_id).where(
                pick.c.state == source_state.value,
                pick.c.offer_id.in_(select(parts.c.offer_id).where(parts.c.fen > 0)),
            ),
            source_state,
            OfferState.IN_BATCH,
            actor=by,
            action="batch",
            subject=made[0].reference,
            now=now,
            batch=made[0].reference,
            **({"group": group, "batches": [b.reference for b in made]} if group else {}),
        )
    return made


def _check_named(
    session: Session, pick: Table, picked: Join, wanted: list[str], policy_id: str, period: str
) -> None:
    """StateError (NotFoundError) unless every named offer exists, is batchable and of this policy and period."""
    o = Offer.__table__
    if session.scalar(select(func.count()).select_from(pick)) != len(wanted):
        found = set(session.scalars(select(pick.c.public_id)).all())
        raise NotFoundError(f"没有要约：{', '.join(x for x in wanted if x not in found)}")
    wrong = session.execute(
        select(pick.c.public_id, pick.c.state)
        .select_from(picked)
        .where(or_(pick.c.state.not_in(BATCHABLE), o.c.policy_id != policy_id, o.c.period != period))
        .order_by(pick.c.offer_id)
    ).all()
    if wrong:
        listed = ", ".join(f"{public_id}（{offers.label(state)}）" for public_id, state in wrong)
        raise StateError(f"只能组批本政策、本期间已确认（或拨付失败）的要约：{listed}")
    same_account = session.scalars(
        select(pick.c.public_id)
        .select_from(picked)
        .where(_failed_on_same_account(o))
        .order_by(pick.c.offer_id)
    ).all()
    if same_account:
        raise StateError(f"拨付失败的要约须先更正账户才能重新组批：{', '.join(same_account)}")


def approve(session: Session, reference: str, by: str, now: dt.datetime) -> Batch:
    """Approve a batch (checker); the checker cannot be the maker."""
    checker = require(session, by, "batch_check")
    batch = get_batch(session, reference, lock=True, user=checker)
    if batch.state != BatchState.ASSEMBLED.value:
        raise StateError(f"批次 {reference} 处于 {batch.state}，只有待复核的批次可以复核")
    if checker.id == batch.maker_id:
        raise RoleError("制单人不能复核自己的批次：需要另一位复核人员")
    notice.check_approvable(session, batch, now)  # the public notice (公示) ran its period, no open objection
    finance.check_index(session, batch)  # its 预算指标 is not overdrawn
    batch.state, batch.checker_id, batch.approved_at = BatchState.APPROVED.value, checker.id, now
    audit.append(session, [_event(batch, BatchState.ASSEMBLED.value, by, "approve")], now)
    audit.checkpoint_on_commit(session)  # money is about to move: the log up to here leaves the database
    return batch


def group(session: Session, batch: Batch) -> list[Batch]:
    """The batches made together with `batch` for a cost-shared policy (one per payer), itself included,
    in the order they were made; just `batch` when the policy has one payer."""
    if batch.group_ref is None:
        return [batch]
    return list(session.scalars(select(Batch).where(Batch.group_ref == batch.group_ref).order_by(Batch.id)))


def reject(session: Session, reference: str, by: str, reason: str, now: dt.datetime) -> Batch:
    """Reject an assembled batch (checker) or withdraw it (its maker); its offers go back to confirmed.

    The batches made with it for the other payers of a cost-shared policy go back with it (an offer is
    batched again whole), so none of them may have been approved yet.
    One UPDATE for the offers of their live lines (one audit event listing them), one for their lines.
    """
    user = require(session, by, "bank_files")
    batch = get_batch(session, reference, lock=True, user=user)
    if batch.state != BatchState.ASSEMBLED.value:
        raise StateError(f"批次 {reference} 处于 {batch.state}，只有待复核的批次可以退回")
    if user.role == "finance_maker" and user.id != batch.maker_id:
        raise RoleError("只有复核人员或本批次的制单人可以退回批次")
    if not reason.strip():
        raise StateError("退回批次必须写明原因")
    together = [b for b in group(session, batch) if b.state != BatchState.REJECTED.value]
    if moved_on := [b.reference for b in together if b.state != BatchState.ASSEMBLED.value]:
        raise StateError(
            f"批次 {reference} 与批次 {', '.join(moved_on)} 按比例分担同一批要约，后者已复核，不能单独退回"
        )
    ids = [b.id for b in together]
    in_batch = select(BatchLine.offer_id).where(BatchLine.batch_id.in_(ids), BatchLine.live).distinct()
    _check_in_batch(session, in_batch, reference)
    offers.move_selected(
        session,
        in_batch,
        OfferState.IN_BATCH,
        OfferState.CONFIRMED,
        actor=by,
        action="unbatch",
        subject=reference,
        now=now,
        reason=reason,
        batch=reference,
    )
    session.execute(
        update(BatchLine.__table__)
        .where(BatchLine.batch_id.in_(ids))
        .values(status=LineStatus.WITHDRAWN.value, live=False)
    )
    events = []
    for b in together:
        b.state, b.rejected_at, b.reason = BatchState.REJECTED.value, now, reason
        if user.role == "finance_checker":
            b.checker_id = user.id if user.id != b.maker_id else None
        events.append(_event(b, BatchState.ASSEMBLED.value, by, "reject", reason))
    audit.append(session, events, now)
    return batch


def _check_in_batch(session: Session, offer_ids: Select[tuple[int]], reference: str) -> None:
    """Lock the offers of these lines of batch `reference`; StateError unless all of them are in it
    (拨付中): a guard against lines and offers that disagree, checked before anything changes."""
    locked = offers.lock_where(session, Offer.id.in_(offer_ids))
    ids = offer_ids.subquery()
    lines = session.scalar(select(func.count()).select_from(ids)) or 0
    in_batch = (
        session.scalar(
            select(func.count()).where(
                Offer.id.in_(select(ids.c[0])), Offer.state == OfferState.IN_BATCH.value
            )
        )
        or 0
    )
    if not locked == lines == in_batch:
        raise StateError(f"批次 {reference} 有 {lines - in_batch} 条明细的要约不在“拨付中”，请核查")


def _file_header(session: Session, batch: Batch) -> bankfiles.FileHeader:
    """The header of the batch's bank files: its count and exact total from its paid lines."""
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(BatchLine.amount), 0)).where(
            BatchLine.batch_id == batch.id, BatchLine.status != LineStatus.WITHDRAWN.value
        )
    ).one()
    assert batch.approved_at is not None
    return bankfiles.FileHeader(
        reference=batch.reference,
        created=batch.approved_at,
        execution_date=batch.approved_at.astimezone(CHINA).date(),
        payer_name=batch.payer_name,
        payer_account=batch.payer_account,
        payer_bank=batch.payer_bank,
        purpose=batch.purpose,
        count=int(count),
        total=Decimal(total).quantize(FEN),
        adm_div_code=batch.adm_div_code,
        fund_source=batch.fund_source,
        budget_no=batch.budget_no,
    )


def file_lines(session: Session, batch: Batch, chunk: int = 20_000) -> Iterator[bankfiles.FileLine]:
    """The batch's lines as the bank files see them, in line order, streamed (server-side cursor).

    A line withdrawn before approval (an objection upheld during the public notice) is not paid.
    Lines that failed at the bank after an export stay, so that exporting again gives the same files.
    """
    t = BatchLine.__table__
    query = (
        select(t.c.line_no, t.c.reference, t.c.account_name, t.c.account_no, t.c.bank_name, t.c.amount)
        .where(t.c.batch_id == batch.id, t.c.status != LineStatus.WITHDRAWN.value)
        .order_by(t.c.line_no)
        .execution_options(yield_per=chunk)
    )
    for row in session.execute(query):
        yield bankfiles.FileLine(*row)


def bank_file_of(session: Session, batch: Batch) -> bankfiles.BatchFile:
    """The batch as the bank files see it: header and lines, all from what the batch recorded.

    Holds every line: for the simulated bank and the tests; `export` streams them instead.
    """
    h = _file_header(session, batch)
    return bankfiles.BatchFile(
        reference=h.reference,
        created=h.created,
        execution_date=h.execution_date,
        payer_name=h.payer_name,
        payer_account=h.payer_account,
        payer_bank=h.payer_bank,
        purpose=h.purpose,
        lines=list(file_lines(session, batch)),
    )


@dataclass(frozen=True)
class Export:
    """The files of a batch written by one export, their paths and SHA-256 digests: the bank's CSV and
    pain.001 together, or the treasury's vouchers."""

    csv_path: Path | None
    xml_path: Path | None
    csv_sha256: str | None
    xml_sha256: str | None
    voucher_path: Path | None = None
    voucher_sha256: str | None = None


class _Digesting:
    """A binary file that also hashes what is written to it."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.sha256 = file, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        return self.file.write(data)


def _write_part(path: Path, write: Callable[[_Digesting], None]) -> tuple[Path, str]:
    """Write a file next to `path` (renamed into place by the caller); its temporary path and SHA-256."""
    part = path.with_name(f".{path.name}.part")
    try:
        with part.open("wb") as f:
            out = _Digesting(f)
            write(out)
    except BaseException:
        part.unlink(missing_ok=True)  # a refused file leaves nothing half-written behind
        raise
    return part, out.sha256.hexdigest()


FORMATS = tuple(f.value for f in FileFormat)


def export(
    session: Session,
    reference: str,
    by: str,
    out_dir: Path,
    now: dt.datetime,
    *,
    file_format: str | None = None,
    encoding: str | None = None,
) -> Export:
    """Write the batch's payment files in `file_format` (default: the one its payer account asks for):
    the CSV (批量代发) and pain.001.001.09 files together for `bank_csv` or `pain001`, the treasury's
    vouchers (国库集中支付电子凭证) for `treasury`. Repeating it gives the same bytes.

    The CSV is in `encoding` (default: the deployment's `ZHIDA_BANK_CSV_ENCODING`, UTF-8 with a BOM).

    The lines are streamed from the database into the files, so memory stays bounded whatever the
    batch size; the files appear under their names only once all are complete and checked.
    """
    user = require(session, by, "bank_files")
    file_format = file_format or None
    if file_format is not None and file_format not in FORMATS:
        choices = "、".join(f"{f.value}（{label}）" for f, label in finance.FORMAT_LABELS.items())
        raise PayoutError(f"未知的文件格式 {file_format!r}，可选：{choices}")
    batch = get_batch(session, reference, lock=True, user=user)
    if batch.state not in (BatchState.APPROVED.value, BatchState.EXPORTED.value, BatchState.RECONCILED.value):
        raise StateError(f"批次 {reference} 处于 {batch.state}，复核通过后才能导出银行文件")
    file_format = file_format or batch.file_format
    header = _file_header(session, batch)
    encoding = encoding or PayoutSettings.from_env().bank_csv_encoding
    out_dir.mkdir(parents=True, exist_ok=True)
    if file_format == FileFormat.TREASURY.value:
        result = _export_vouchers(session, batch, header, out_dir)
        digests = {"voucher": result.voucher_sha256}
    else:
        result = _export_bank(session, batch, header, out_dir, encoding)
        digests = {"csv": result.csv_sha256, "xml": result.xml_sha256}
    if batch.state == BatchState.APPROVED.value:
        batch.state, batch.exported_at = BatchState.EXPORTED.value, now
        event = _event(batch, BatchState.APPROVED.value, by, "export", format=file_format, **digests)
        audit.append(session, [event], now)
    return result


def _export_bank(
    session: Session, batch: Batch, header: bankfiles.FileHeader, out_dir: Path, encoding: str
) -> Export:
    reference = batch.reference
    csv_path, xml_path = out_dir / f"{reference}.csv", out_dir / f"{reference}.xml"
    parts: list[Path] = []
    try:
        csv_part, csv_sha256 = _write_part(
            csv_path,
            lambda out: bankfiles.write_csv(header, file_lines(session, batch), out, encoding=encoding),
        )
        parts.append(csv_part)
        xml_part, xml_sha256 = _write_part(
            xml_path, lambda out: bankfiles.write_pain001(header, file_lines(session, batch), out)
        )
        parts.append(xml_part)
        digests = csv_sha256, xml_sha256
        if batch.csv_sha256 is not None and (batch.csv_sha256, batch.xml_sha256) != digests:
            raise PayoutError(f"批次 {reference} 的内容与首次导出时不同：数据被改动，请核查")
        csv_part.replace(csv_path)
        xml_part.replace(xml_path)
    finally:
        for part in parts:
            part.unlink(missing_ok=True)
    batch.csv_sha256, batch.xml_sha256 = digests
    return Export(csv_path, xml_path, *digests)


def _export_vouchers(session: Session, batch: Batch, header: bankfiles.FileHeader, out_dir: Path) -> Export:
    reference = batch.reference
    path = out_dir / f"{reference}.voucher.xml"
    part, sha256 = _write_part(
        path, lambda out: vouchers.write_vouchers(header, file_lines(session, batch), out)
    )
    try:
        if batch.voucher_sha256 is not None and batch.voucher_sha256 != sha256:
            raise PayoutError(f"批次 {reference} 的内容与首次导出时不同：数据被改动，请核查")
        part.replace(path)
    finally:
        part.unlink(missing_ok=True)
    batch.voucher_sha256 = sha256
    return Export(None, None, None, None, path, sha256)


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


def _returned_table(session: Session) -> Table:
    """The lines of a bank return file being applied."""
    return bulkload.scratch_table(
        session,
        "bank_return_pick",
        Column("row_no", Integer, primary_key=True),
        Column("reference", Text, nullable=False),
        Column("account_no", Text, nullable=False),
        Column("amount", Money, nullable=False),
        Column("paid", Boolean, nullable=False),
        Column("reason", Text, nullable=False),
    )


def _settled_table(session: Session) -> Table:
    """The offers a return file pays in full (every live part of them paid)."""
    return bulkload.scratch_table(
        session, "bank_return_paid", Column("offer_id", BigInteger, primary_key=True)
    )


def reconcile(
    session: Session,
    reference: str,
    data: bytes | BinaryIO,
    by: str,
    now: dt.datetime,
    *,
    filename: str = "回单.csv",
) -> Reconciliation:
    """Apply the bank's return file (CSV, or pain.002) or the treasury's answer (payouts.vouchers) to an exported batch: each line paid, or failed with the bank's reason.

    The whole file is checked before anything is applied; a file for another batch, a file already
    imported, an unknown or already settled line, or a different amount or account is refused.
    The file (bytes, or a binary stream such as an open file) is read twice, streamed: once for its
    digest and encoding, once in chunks into a temporary table, where it is checked and applied in
    SQL: one UPDATE for the paid offers, one per failure reason, each one audit event. Memory stays
    bounded whatever the file's size.
    """
    user = require(session, by, "bank_files")
    batch = get_batch(session, reference, lock=True, user=user)
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    digest, encoding = bankfiles.return_digest(source)
    problems = bankfiles.ReturnProblems()
    try:
        kind = bankfiles.return_kind(source)
        if kind == "treasury":
            returned_batch, chunks = vouchers.read_return(source, problems)
        elif kind == "pain002":
            returned_batch, chunks = bankfiles.read_pain002(source, problems)
        else:
            returned_batch, chunks = bankfiles.read_return(source, encoding, problems)
    except UnicodeDecodeError:
        raise BankFileError("回单编码无法识别（应为 UTF-8 或 GB18030）") from None
    if returned_batch != batch.reference:
        raise BankFileError(f"回单属于批次 {returned_batch}，不是批次 {batch.reference}")
    if batch.state != BatchState.EXPORTED.value:
        raise StateError(f"批次 {reference} 处于 {batch.state}，只有已导出的批次可以对账")
    if session.scalar(select(BankReturn.id).where(BankReturn.file_sha256 == digest)) is not None:
        raise BankFileError("这份回单已经导入过（重复文件）")
    batch_id = batch.id
    t = BatchLine.__table__
    bulkload.lock_rows(
        session, select(t.c.id).where(t.c.batch_id == batch_id).order_by(t.c.id).with_for_update()
    )
    r = _returned_table(session)
    lines = 0
    try:
        for chunk in chunks:
            lines += len(chunk)
            bulkload.insert_columns(
                session,
                r,
                {
                    "row_no": [x.row for x in chunk],
                    "reference": [x.reference for x in chunk],
                    "account_no": [x.account_no for x in chunk],
                    "amount": [x.amount for x in chunk],
                    "paid": [x.paid for x in chunk],
                    "reason": [x.reason for x in chunk],
                },
            )
    except UnicodeDecodeError:
        raise BankFileError("回单编码无法识别（应为 UTF-8 或 GB18030）") from None
    if problems.count:
        raise BankFileError("回单格式错误：\n" + problems.text())
    bulkload.analyze(session, r)
    _check_return(session, r, batch_id)
    matched = r.join(t, and_(t.c.reference == r.c.reference, t.c.batch_id == batch_id))
    _check_settleable(session, select(t.c.offer_id).select_from(matched), batch_id, reference)
    record = BankReturn(
        batch_id=batch_id,
        file_sha256=digest,
        filename=filename,
        imported_at=now,
        imported_by=user.id,
        lines=lines,
        paid=0,
        failed=0,
        paid_amount=ZERO,
        failed_amount=ZERO,
    )
    session.add(record)
    session.flush()
    record_id = record.id
    result = Reconciliation(reference)
    common: dict[str, Any] = {"actor": by, "action": "reconcile", "subject": reference, "now": now}
    # An offer is paid when every live part of it is: a cost-shared offer waits for the other payers.
    other = t.alias("other_line")
    other_open = (
        select(other.c.id)
        .where(
            other.c.offer_id == t.c.offer_id,
            other.c.batch_id != batch_id,
            other.c.live,
            other.c.status != LineStatus.PAID.value,
        )
        .exists()
    )
    # Noted once in a scratch table: the move reads its offers three times (the UPDATE, the audit
    # members' digest and their rows), and the join with the other payers' lines is the costly part.
    paid = _settled_table(session)
    session.execute(
        insert(paid).from_select(
            ["offer_id"], select(t.c.offer_id).select_from(matched).where(r.c.paid, ~other_open).distinct()
        )
    )
    bulkload.index_scratch(session, paid)
    offers.move_selected(
        session,
        select(paid.c.offer_id),
        OfferState.IN_BATCH,
        OfferState.PAID,
        batch=reference,
        file=digest,
        **common,
    )
    reasons = session.scalars(select(r.c.reason).where(~r.c.paid).distinct().order_by(r.c.reason)).all()
    for reason in reasons:
        offers.move_selected(
            session,
            select(t.c.offer_id).select_from(matched).where(~r.c.paid, r.c.reason == reason),
            OfferState.IN_BATCH,
            OfferState.PAYMENT_FAILED,
            reason=reason,
            batch=reference,
            file=digest,
            **common,
        )
    settled = {"bank_return_id": record_id, "settled_at": now}
    # UPDATE … FROM the returned lines (a join: the scratch table has no index, and a subquery per line
    # would scan it once per line).
    returned = and_(t.c.batch_id == batch_id, t.c.reference == r.c.reference)
    session.execute(update(t).where(returned, r.c.paid).values(status=LineStatus.PAID.value, **settled))
    session.execute(
        update(t)
        .where(returned, ~r.c.paid)
        .values(status=LineStatus.FAILED.value, live=False, bank_reason=r.c.reason, **settled)
    )
    for paid, n, amount in session.execute(
        select(r.c.paid, func.count(), func.coalesce(func.sum(r.c.amount), 0)).group_by(r.c.paid)
    ):
        if paid:
            result.paid, result.paid_amount = int(n), Decimal(amount).quantize(FEN)
        else:
            result.failed, result.failed_amount = int(n), Decimal(amount).quantize(FEN)
    o = Offer.__table__
    result.failures = [
        (public_id, reason)
        for public_id, reason in session.execute(
            select(o.c.public_id, r.c.reason)
            .select_from(matched.join(o, o.c.id == t.c.offer_id))
            .where(~r.c.paid)
            .order_by(r.c.row_no)
        )
    ]
    record.paid, record.failed = result.paid, result.failed
    record.paid_amount, record.failed_amount = result.paid_amount, result.failed_amount
    result.pending = int(
        session.scalar(
            select(func.count()).where(t.c.batch_id == batch_id, t.c.status == LineStatus.PENDING.value)
        )
        or 0
    )
    if result.pending == 0:
        batch.state, batch.reconciled_at = BatchState.RECONCILED.value, now
        event = _event(
            batch,
            BatchState.EXPORTED.value,
            by,
            "reconcile",
            None,
            paid=result.paid,
            failed=result.failed,
            file=digest,
        )
        audit.append(session, [event], now)
    return result


def _check_settleable(session: Session, offer_ids: Select[tuple[int]], batch_id: int, reference: str) -> None:
    """Lock the offers of these lines of batch `reference`; StateError unless each is in it (拨付中), or
    failed already by another payer's part of it (cost sharing): checked before anything changes."""
    locked = offers.lock_where(session, Offer.id.in_(offer_ids))
    ids = offer_ids.subquery()
    failed_elsewhere = (
        select(BatchLine.id)
        .where(
            BatchLine.offer_id == Offer.id,
            BatchLine.batch_id != batch_id,
            BatchLine.status == LineStatus.FAILED.value,
        )
        .exists()
    )
    lines = session.scalar(select(func.count()).select_from(ids)) or 0
    settleable = (
        session.scalar(
            select(func.count()).where(
                Offer.id.in_(select(ids.c[0])),
                or_(
                    Offer.state == OfferState.IN_BATCH.value,
                    and_(Offer.state == OfferState.PAYMENT_FAILED.value, failed_elsewhere),
                ),
            )
        )
        or 0
    )
    if not locked == lines == settleable:
        raise StateError(f"批次 {reference} 有 {lines - settleable} 条明细的要约不在“拨付中”，请核查")


def _check_return(session: Session, r: Table, batch_id: int) -> None:
    """BankFileError listing every line of the return file that does not fit a pending line of the batch
    (the first `bankfiles.PROBLEMS_SHOWN`, the others counted)."""
    problems = bankfiles.ReturnProblems()
    first = select(r.c.reference, func.min(r.c.row_no).label("row_no")).group_by(r.c.reference).subquery()
    repeated = (
        select(r.c.row_no, r.c.reference)
        .select_from(r.join(first, first.c.reference == r.c.reference))
        .where(r.c.row_no != first.c.row_no)
        .order_by(r.c.row_no)
    )
    for row, ref in session.execute(repeated):
        problems.add(f"第 {row} 行：明细 {ref} 在回单中重复")
    t = BatchLine.__table__
    rows = session.execute(
        select(
            r.c.row_no,
            r.c.reference,
            r.c.amount,
            r.c.account_no,
            t.c.id,
            t.c.status,
            t.c.amount,
            t.c.account_no,
        )
        .select_from(r.outerjoin(t, and_(t.c.reference == r.c.reference, t.c.batch_id == batch_id)))
        .where(
            or_(
                t.c.id.is_(None),
                t.c.status != LineStatus.PENDING.value,
                r.c.amount != t.c.amount,
                r.c.account_no != t.c.account_no,
            )
        )
        .order_by(r.c.row_no)
    )
    for row, ref, amount, account_no, line_id, status, line_amount, line_account_no in rows:
        if line_id is None:
            problems.add(f"第 {row} 行：明细 {ref} 不属于本批次")
            continue
        if status != LineStatus.PENDING.value:
            problems.add(f"第 {row} 行：明细 {ref} 已对账（{status}），重复回单")
        if amount != line_amount:
            problems.add(f"第 {row} 行：金额 {amount} 与批次明细 {line_amount} 不符")
        if account_no != line_account_no:
            problems.add(f"第 {row} 行：收款账号与批次明细不符")
    if problems.count:
        raise BankFileError("回单被拒绝：\n" + problems.text())


def batches(
    session: Session,
    *,
    policy_id: str | None = None,
    state: str | None = None,
    within: scope.Scope | None = None,
) -> list[Batch]:
    """Batches, newest first, optionally of one policy or in one state, and `within` a user's scope."""
    query = select(Batch).order_by(Batch.id.desc())
    if within is not None:
        query = query.where(within.batches())
    if policy_id is not None:
        query = query.where(Batch.policy_id == policy_id)
    if state is not None:
        query = query.where(Batch.state == state)
    return list(session.scalars(query).all())
