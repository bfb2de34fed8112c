"""Payout batches, maker-checker: what is ready to batch, assemble (maker), approve or reject (a different
checker, who sees the totals and every line first), export the bank files, upload the bank's return file.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, BinaryIO, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlmodel import Session

from api.deps import (
    BankFiles,
    BatchDep,
    BatchReader,
    Checker,
    Maker,
    SessionDep,
    SettingsDep,
    StoreDep,
    in_scope,
    may,
    policy_department,
    scoped_offers,
    user_scope,
)
from api.routes import now, redirect, render
from payouts import batches, finance, notice
from payouts.errors import BankFileError, NotFoundError
from payouts.models import Batch, BatchLine, BatchState, FileFormat, Offer, PolicyVersion, StaffUser
from payouts.payees import mask_account
from payouts.scope import Scope
from payouts.selection import Tally
from rules.errors import StateError

router = APIRouter(prefix="/api/batches", tags=["batches"])
pages = APIRouter(prefix="/console/batches", include_in_schema=False)
MAX_RETURN_FILE = 50 << 20
STATE_LABELS = {
    "assembled": "待复核",
    "approved": "已复核",
    "exported": "已导出",
    "reconciled": "已对账",
    "rejected": "已退回",
}
LINE_LABELS = {"pending": "待回单", "paid": "已到账", "failed": "失败", "withdrawn": "已撤回"}


class Batchable(BaseModel):
    """Confirmed offers of one policy and period waiting for a batch, and the money left in its budget."""

    policy_id: str
    period: str
    offers: int
    amount: Decimal
    budget: Decimal | None
    committed: Decimal
    remaining: Decimal | None


class BatchCreate(BaseModel):
    """Assemble a batch of one policy (and period): all its confirmed offers, or these; refused, with
    nothing assembled, unless it comes to the count and total the maker saw (`/api/batches/ready`)."""

    policy_id: str = Field(min_length=1, max_length=64)
    period: str | None = Field(default=None, max_length=32)
    offers: list[Annotated[str, Field(max_length=32)]] | None = Field(default=None, max_length=100_000)
    expected_count: int = Field(ge=0)
    expected_total: Decimal = Field(ge=0, max_digits=18, decimal_places=2)


class Reason(BaseModel):
    """Why (required)."""

    reason: str = Field(min_length=1, max_length=500)


class BatchOut(BaseModel):
    """A payout batch."""

    reference: str
    policy_id: str
    period: str
    state: str
    state_label: str
    maker: str
    checker: str | None
    line_count: int
    total: Decimal
    purpose: str
    created_at: dt.datetime
    approved_at: dt.datetime | None
    exported_at: dt.datetime | None
    reconciled_at: dt.datetime | None
    rejected_at: dt.datetime | None
    reason: str | None
    csv_sha256: str | None
    xml_sha256: str | None
    voucher_sha256: str | None
    payer_name: str
    file_format: str  # bank_csv, pain001 or treasury: what the payer account asks for
    file_format_label: str
    fund_source: str | None
    budget_no: str | None
    share: str | None  # "1/2": this payer's part of each line when the policy's cost is shared
    group_ref: str | None


class LineOut(BaseModel):
    """One transfer of a batch, the account masked."""

    line_no: int
    reference: str
    offer: str
    uscc: str
    account_name: str
    account_masked: str
    bank_name: str
    amount: Decimal
    status: str
    bank_reason: str | None


class BatchDetail(BatchOut):
    """A batch with every line."""

    lines: list[LineOut]


class ReconcileOut(BaseModel):
    """What the bank's return file did."""

    batch: str
    paid: int
    failed: int
    paid_amount: Decimal
    failed_amount: Decimal
    pending: int
    failures: list[tuple[str, str]]


def _username(session: Session, user_id: int | None) -> str | None:
    return (
        None if user_id is None else session.scalar(select(StaffUser.username).where(StaffUser.id == user_id))
    )


def batch_out(session: Session, b: Batch) -> BatchOut:
    return BatchOut(
        **{k: getattr(b, k) for k in BatchOut.model_fields if hasattr(b, k)},
        state_label=STATE_LABELS.get(b.state, b.state),
        file_format_label=finance.FORMAT_LABELS.get(FileFormat(b.file_format), b.file_format),
        maker=_username(session, b.maker_id) or "",
        checker=_username(session, b.checker_id),
    )


def batch_detail(session: Session, b: Batch) -> BatchDetail:
    rows = session.execute(
        select(BatchLine, Offer.public_id, Offer.uscc)
        .join(Offer, Offer.id == BatchLine.offer_id)
        .where(BatchLine.batch_id == b.id)
        .order_by(BatchLine.line_no)
    ).all()
    lines = [_line_out(ln, pid, uscc) for ln, pid, uscc in rows]
    return BatchDetail(**batch_out(session, b).model_dump(), lines=lines)


def _line_out(ln: BatchLine, offer: str, uscc: str) -> LineOut:
    return LineOut(
        line_no=ln.line_no,
        reference=ln.reference,
        offer=offer,
        uscc=uscc,
        account_name=ln.account_name,
        account_masked=mask_account(ln.account_no),
        bank_name=ln.bank_name,
        amount=ln.amount,
        status=ln.status,
        bank_reason=ln.bank_reason,
    )


def batchable(session: Session, within: Scope) -> list[Batchable]:
    """Per policy and period: confirmed (or failed and corrected) offers not yet in a batch, of the
    user's policies and region (the very offers `batches.create_batches` would take for them)."""
    query = (
        select(Offer.policy_id, Offer.period, func.count(), func.coalesce(func.sum(Offer.amount), 0))
        .where(Offer.state.in_(batches.BATCHABLE), within.offers())
        .group_by(Offer.policy_id, Offer.period)
        .order_by(Offer.policy_id, Offer.period)
    )
    out = []
    for pid, period, n, amount in session.execute(query):
        money = batches.budget(session, pid, period)
        out.append(
            Batchable(
                policy_id=pid,
                period=period,
                offers=n,
                amount=Decimal(amount).quantize(Decimal("0.01")),
                budget=money.budget,
                committed=money.committed,
                remaining=money.remaining,
            )
        )
    return out


def _check_policy(session: Session, user: StaffUser, policy_id: str) -> None:
    if not in_scope(user, policy_department(session, policy_id)):
        raise NotFoundError(f"没有政策 {policy_id}")


def bank_dir(settings: SettingsDep) -> Path:
    return settings.data_dir / "bank"


def create(session: Session, user: StaffUser, body: BatchCreate, settings: SettingsDep) -> list[Batch]:
    """The batches made (one per payer of the policy), after the maker's count and total are checked
    against what they hold: the offers batched, and the money of every payer's part."""
    _check_policy(session, user, body.policy_id)
    ids = scoped_offers(session, user, body.offers) if body.offers is not None else None
    made = batches.create_batches(
        session,
        body.policy_id,
        user.username,
        now(),
        public_ids=ids,
        period=body.period,
        settings=settings.payouts(),
    )
    offers_batched = session.scalar(
        select(func.count(func.distinct(BatchLine.offer_id))).where(
            BatchLine.batch_id.in_([b.id for b in made])
        )
    )
    total = sum((b.total for b in made), Decimal("0.00"))
    Tally(int(offers_batched or 0), total).check(Tally(body.expected_count, body.expected_total))
    return made


def read_return(file: UploadFile) -> BinaryIO:
    """The uploaded return file, as the spooled stream it already is (reconcile reads it streamed; routes
    are sync: the database work must not block the event loop). Larger files go through the command
    line (`zhida batch reconcile`), which has no size limit."""
    size = file.file.seek(0, io.SEEK_END)
    if size > MAX_RETURN_FILE:
        raise BankFileError("回单文件过大（超过 50 MiB），请交系统管理员在服务器上导入")
    file.file.seek(0)
    return file.file


@router.get("", response_model=list[BatchOut], summary="拨付批次（新的在前）")
def list_batches(
    user: BatchReader,
    session: SessionDep,
    store: StoreDep,
    policy_id: Annotated[str | None, Query(max_length=64)] = None,
    state: BatchState | None = None,
) -> list[BatchOut]:
    rows = batches.batches(
        session, policy_id=policy_id, state=state.value if state else None, within=user_scope(user)
    )
    return [batch_out(session, b) for b in rows]


@router.get("/ready", response_model=list[Batchable], summary="可以组批的已确认要约（按政策和期间）")
def ready(user: BatchReader, session: SessionDep, store: StoreDep) -> list[Batchable]:
    return batchable(session, user_scope(user))


@router.post("", response_model=BatchDetail, status_code=201, summary="制单：组成拨付批次")
def create_batch(body: BatchCreate, user: Maker, session: SessionDep, settings: SettingsDep) -> BatchDetail:
    return batch_detail(session, create(session, user, body, settings)[0])  # the first payer's; see group_ref


@router.get("/{reference}", response_model=BatchDetail, summary="一个批次：合计和每一笔")
def get_batch(batch: BatchDep, session: SessionDep) -> BatchDetail:
    return batch_detail(session, batch)


@router.post("/{reference}/approve", response_model=BatchOut, summary="复核通过（复核人不能是制单人）")
def approve(batch: BatchDep, user: Checker, session: SessionDep) -> BatchOut:
    return batch_out(session, batches.approve(session, batch.reference, user.username, now()))


@router.post("/{reference}/reject", response_model=BatchOut, summary="退回批次（复核人，或本批次制单人撤回）")
def reject(body: Reason, batch: BatchDep, user: BankFiles, session: SessionDep) -> BatchOut:
    return batch_out(session, batches.reject(session, batch.reference, user.username, body.reason, now()))


FormatName = Literal["bank_csv", "pain001", "treasury"]


@router.post(
    "/{reference}/export",
    response_model=BatchOut,
    summary="导出拨付文件：银行文件（CSV 和 pain.001）或国库集中支付电子凭证；默认按付款账户的格式",
)
def export(
    batch: BatchDep,
    user: BankFiles,
    session: SessionDep,
    settings: SettingsDep,
    file_format: Annotated[FormatName | None, Query(alias="format")] = None,
) -> BatchOut:
    batches.export(
        session, batch.reference, user.username, bank_dir(settings), now(), file_format=file_format
    )
    return batch_out(session, batch)


@router.get(
    "/{reference}/files/{kind}",
    summary="下载银行文件",
    response_class=FileResponse,
    responses={
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/xml": {"schema": {"type": "string"}},
            }
        }
    },
)
def bank_file(
    kind: Literal["csv", "xml", "voucher"], batch: BatchDep, user: BankFiles, settings: SettingsDep
) -> Response:
    if kind == "voucher":
        path = bank_dir(settings) / f"{batch.reference}.voucher.xml"
        if batch.voucher_sha256 is None or not path.is_file():
            raise StateError(f"批次 {batch.reference} 尚未导出国库支付凭证")
        return FileResponse(path, media_type="application/xml", filename=path.name)
    path = bank_dir(settings) / f"{batch.reference}.{kind}"
    if batch.csv_sha256 is None or not path.is_file():
        raise StateError(f"批次 {batch.reference} 尚未导出银行文件")
    media = "text/csv" if kind == "csv" else "application/xml"
    return FileResponse(path, media_type=media, filename=path.name)


@router.post("/{reference}/return", response_model=ReconcileOut, summary="导入银行回单，逐笔标记到账或失败")
def upload_return(
    batch: BatchDep, user: BankFiles, session: SessionDep, file: Annotated[UploadFile, File()]
) -> ReconcileOut:
    data = read_return(file)
    r = batches.reconcile(
        session, batch.reference, data, user.username, now(), filename=file.filename or "回单.csv"
    )
    return ReconcileOut(**vars(r))


# Console


@pages.get("")
def batches_page(request: Request, user: BatchReader, session: SessionDep, store: StoreDep) -> Response:
    rows = batches.batches(session, within=user_scope(user))
    titles = dict(
        session.execute(select(PolicyVersion.policy_id, PolicyVersion.title).order_by(PolicyVersion.version))
        .tuples()
        .all()
    )  # the latest version's title wins
    return render(
        request,
        "batches.html",
        {
            "titles": titles,
            "ready": batchable(session, user_scope(user)),
            "batches": [batch_out(session, b) for b in rows],
            "can_make": may(user, "batch_make"),
        },
    )


@pages.post("")
def create_page(
    request: Request,
    user: Maker,
    session: SessionDep,
    settings: SettingsDep,
    policy_id: Annotated[str, Form(max_length=64)],
    expected_count: Annotated[int, Form(ge=0)],
    expected_total: Annotated[Decimal, Form(ge=0, max_digits=18, decimal_places=2)],
    period: Annotated[str | None, Form(max_length=32)] = None,
) -> Response:
    body = BatchCreate(
        policy_id=policy_id,
        period=period or None,
        expected_count=expected_count,
        expected_total=expected_total,
    )
    made = create(session, user, body, settings)
    listed = "；".join(
        f"批次 {b.reference}（{b.payer_name}），{b.line_count} 笔，{b.total:,.2f} 元" for b in made
    )
    return redirect(f"/console/batches/{made[0].reference}", f"已制单：{listed}，待另一位复核人员复核")


LINE_PAGE_SIZES = (20, 50, 100, 200, 500)
LINE_PAGE = 100
# Before the bank has the file a pending line waits for the checker or the export, not for a receipt.
PENDING_LABELS = {"assembled": "待复核", "approved": "待导出", "rejected": "已退回"}


@dataclass(frozen=True)
class StatusTotal:
    """The lines of a batch in one status: how many and how much."""

    status: str
    label: str
    count: int
    amount: Decimal


def line_totals(session: Session, batch: Batch, pending: str) -> list[StatusTotal]:
    """Count and amount of a batch's lines per status (one aggregate query, whatever the batch's size)."""
    rows = session.execute(
        select(BatchLine.status, func.count(), func.coalesce(func.sum(BatchLine.amount), 0))
        .where(BatchLine.batch_id == batch.id)
        .group_by(BatchLine.status)
    ).all()
    found = {status: (n, Decimal(amount)) for status, n, amount in rows}
    return [
        StatusTotal(status, pending if status == "pending" else label, *found[status])
        for status, label in LINE_LABELS.items()
        if status in found
    ]


def line_page(session: Session, batch: Batch, status: str | None, limit: int, offset: int) -> list[LineOut]:
    """One page of a batch's lines in line order, of one status or all: the page's lines are found
    first (the (batch_id, line_no) index), then joined to their offers, so that a planner without fresh
    statistics after a big batch cannot join all 50,000 lines before it sorts."""
    chosen = select(BatchLine.id).where(BatchLine.batch_id == batch.id)
    if status:
        chosen = chosen.where(BatchLine.status == status)
    ids = chosen.order_by(BatchLine.line_no).limit(limit).offset(offset).subquery()
    rows = session.execute(
        select(BatchLine, Offer.public_id, Offer.uscc)
        .join(ids, ids.c.id == BatchLine.id)
        .join(Offer, Offer.id == BatchLine.offer_id)
        .order_by(BatchLine.line_no)
    ).all()
    return [_line_out(ln, pid, uscc) for ln, pid, uscc in rows]


@pages.get("/{reference}")
def batch_page(
    request: Request,
    batch: BatchDep,
    user: BatchReader,
    session: SessionDep,
    status: Annotated[str, Query(max_length=16)] = "",
    size: Annotated[int, Query(ge=1, le=500)] = LINE_PAGE,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> Response:
    """The batch with its totals on top and one page of its lines (a batch may have 50,000)."""
    status = status if status in LINE_LABELS else ""
    size = size if size in LINE_PAGE_SIZES else LINE_PAGE
    head = batch_out(session, batch)
    names = dict(
        session.execute(
            select(StaffUser.id, StaffUser.display_name).where(
                StaffUser.id.in_([batch.maker_id, batch.checker_id or batch.maker_id])
            )
        )
        .tuples()
        .all()
    )
    pending = PENDING_LABELS.get(batch.state, LINE_LABELS["pending"])
    totals = line_totals(session, batch, pending)
    shown = next((t.count for t in totals if t.status == status), 0) if status else batch.line_count
    view = {**({"status": status} if status else {}), **({"size": size} if size != LINE_PAGE else {})}
    return render(
        request,
        "batch.html",
        {
            "batch": head,
            "maker_name": names.get(batch.maker_id) or head.maker,
            "checker_name": names.get(batch.checker_id or 0) or head.checker,
            "totals": totals,
            "lines": line_page(session, batch, status or None, size, offset),
            "status": status,
            "shown": shown,
            "offset": offset,
            "page": size,
            "sizes": LINE_PAGE_SIZES,
            "query": urlencode(view),
            "line_labels": {**LINE_LABELS, "pending": pending},
            "can_check": may(user, "batch_check") and head.maker != user.username,
            "is_maker": head.maker == user.username,
            "can_files": may(user, "bank_files"),
            "demo_bank": request.app.state.phone is not None,
            "notice": notice.of_batch(session, batch.id),
            "notice_period": notice.notice_period(session, batch.policy_id, batch.period),
            "can_notice": may(user, "notice_open"),
            "group": [b for b in batches.group(session, batch) if b.id != batch.id],
            "formats": finance.FORMAT_LABELS,
        },
    )


@pages.post("/{reference}/approve")
def approve_page(batch: BatchDep, user: Checker, session: SessionDep) -> Response:
    batches.approve(session, batch.reference, user.username, now())
    return redirect(f"/console/batches/{batch.reference}", "复核通过，可以导出银行文件")


@pages.post("/{reference}/reject")
def reject_page(
    batch: BatchDep, user: BankFiles, session: SessionDep, reason: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    batches.reject(session, batch.reference, user.username, reason, now())
    return redirect(f"/console/batches/{batch.reference}", "批次已退回，要约回到“已确认”")


@pages.post("/{reference}/export")
def export_page(
    batch: BatchDep,
    user: BankFiles,
    session: SessionDep,
    settings: SettingsDep,
    file_format: Annotated[FormatName | None, Form(alias="format")] = None,
) -> Response:
    done = batches.export(
        session, batch.reference, user.username, bank_dir(settings), now(), file_format=file_format
    )
    what = "国库集中支付电子凭证" if done.voucher_path else "银行文件（CSV 和 pain.001 XML）"
    return redirect(f"/console/batches/{batch.reference}", f"已导出{what}")


@pages.post("/{reference}/return")
def return_page(
    batch: BatchDep, user: BankFiles, session: SessionDep, file: Annotated[UploadFile, File()]
) -> Response:
    data = read_return(file)
    r = batches.reconcile(
        session, batch.reference, data, user.username, now(), filename=file.filename or "回单.csv"
    )
    text = f"回单已导入：到账 {r.paid} 笔 {r.paid_amount:,.2f} 元，失败 {r.failed} 笔，待回单 {r.pending} 笔"
    return redirect(f"/console/batches/{batch.reference}", text)
