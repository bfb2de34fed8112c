"""Public notice (公示) of a payout batch's recipients, objections (异议), and the approval gate.

A policy may set `notice_days` (or `notice_working_days`, counted by the official working-day calendar).
A batch of such a policy is put on public notice (enterprise name, item, amount; never account data) for
that many days before a checker may approve it; anyone may object to a
line, with contact details, while the notice runs; staff resolve each objection with a reason:
upheld takes the enterprise's line out of the batch (its offer is held with the reason), dismissed
changes nothing. `check_approvable` refuses approval while the notice runs or an objection is open.

```
notice:     open(starts_at .. ends_at)     objection:  open → upheld (line removed) | dismissed
```
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlmodel import Session

from payouts import audit, offers, tokens
from payouts.audit import Event
from payouts.errors import NotFoundError
from payouts.models import (
    Batch,
    BatchLine,
    BatchState,
    LineStatus,
    Objection,
    ObjectionState,
    Offer,
    OfferState,
    Payee,
    PolicyVersion,
    PublicNotice,
)
from payouts.users import require
from rules.errors import PayoutError, StateError
from rules.formats import public_time
from rules.workdays import working_days_after

OBJECTION_LABELS = {"open": "待处理", "upheld": "异议成立", "dismissed": "异议不成立"}
_PHONE = re.compile(r"^1[3-9]\d{9}$|^0\d{2,3}-?\d{7,8}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")


def _day(at: dt.datetime) -> str:
    return public_time(at)


@dataclass(frozen=True)
class NoticePeriod:
    """How long a notice runs: `days` calendar days, or working days of the official calendar."""

    days: int
    working: bool = False

    def __str__(self) -> str:
        return f"{self.days} 个工作日" if self.working else f"{self.days} 天"

    def end(self, start: dt.datetime) -> dt.datetime:
        """When a notice opened at `start` ends (the same clock time, that many days or working days on)."""
        return working_days_after(start, self.days) if self.working else start + dt.timedelta(days=self.days)


def notice_period(session: Session, policy_id: str, period: str) -> NoticePeriod | None:
    """The notice period a policy requires for a period (its latest version's), or None when it has none."""
    row = session.execute(
        select(PolicyVersion.notice_days, PolicyVersion.notice_working)
        .where(PolicyVersion.policy_id == policy_id, PolicyVersion.period == period)
        .order_by(PolicyVersion.version.desc())
        .limit(1)
    ).first()
    return None if row is None or not row[0] else NoticePeriod(row[0], bool(row[1]))


def of_batch(session: Session, batch_id: int) -> PublicNotice | None:
    return session.scalar(select(PublicNotice).where(PublicNotice.batch_id == batch_id))


def get(session: Session, public_id: str) -> PublicNotice:
    row = session.scalar(select(PublicNotice).where(PublicNotice.public_id == public_id))
    if row is None:
        raise NotFoundError(f"没有公示 {public_id}")
    return row


def open_notice(
    session: Session, reference: str, by: str, now: dt.datetime, *, days: int | None = None
) -> PublicNotice:
    """Put an assembled batch's recipients on public notice from now, for the policy's notice period
    (or `days`, when the policy sets none)."""
    user = require(session, by, "notice_open")
    batch = session.scalar(select(Batch).where(Batch.reference == reference).with_for_update())
    if batch is None:
        raise NotFoundError(f"没有拨付批次 {reference}")
    if batch.state != BatchState.ASSEMBLED.value:
        raise StateError(f"批次 {reference} 处于 {batch.state}，只有待复核的批次可以公示")
    if of_batch(session, batch.id) is not None:
        raise StateError(f"批次 {reference} 已经公示过")
    length = notice_period(session, batch.policy_id, batch.period)
    if length is None:
        if days is None or days < 1:
            raise PayoutError(f"政策 {batch.policy_id} 未设公示期，请写明公示天数（1 至 365）")
        if days > 365:
            raise PayoutError("公示天数最多 365 天")
        length = NoticePeriod(days)
    notice = PublicNotice(
        public_id=tokens.public_id(),
        batch_id=batch.id,
        policy_id=batch.policy_id,
        title=batch.purpose,
        days=length.days,
        working=length.working,
        starts_at=now,
        ends_at=length.end(now),
        opened_by=user.id,
    )
    session.add(notice)
    session.flush()
    audit.record(
        session,
        now,
        by,
        "open",
        "notice",
        notice.public_id,
        None,
        "open",
        None,
        batch=reference,
        days=length.days,
        **({"working_days": True} if length.working else {}),
        ends=audit.timestamp(notice.ends_at),
        lines=batch.line_count,
    )
    return notice


@dataclass(frozen=True)
class NoticeLine:
    """One recipient as the public sees it: no account, no contact."""

    line_no: int
    name: str
    item: str
    amount: Decimal


def _lines_where(notice: PublicNotice, search: str | None, line_no: int | None) -> list[Any]:
    where: list[Any] = [BatchLine.batch_id == notice.batch_id, BatchLine.live]
    if line_no is not None:
        where.append(BatchLine.line_no == line_no)
    text = (search or "").strip()
    if text:
        named = select(Payee.id).where(Payee.name.contains(text, autoescape=True))
        by_name = BatchLine.payee_id.in_(named)
        where.append(
            or_(by_name, BatchLine.line_no == int(text)) if text.isdigit() and len(text) <= 9 else by_name
        )
    return where


def count_lines(session: Session, notice: PublicNotice, search: str | None = None) -> int:
    """How many published lines match `search` (a part of the enterprise's name, or a line number)."""
    where = _lines_where(notice, search, None)
    return session.scalar(select(func.count()).select_from(BatchLine).where(*where)) or 0


def lines(
    session: Session,
    notice: PublicNotice,
    *,
    search: str | None = None,
    line_no: int | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[NoticeLine]:
    """The batch's live lines, as published: enterprise name, item title and amount; those matching
    `search` (a part of the name, or a line number) or the one `line_no`, a page of `limit` from `offset`."""
    rows = session.execute(
        select(
            BatchLine.line_no,
            Payee.name,
            Offer.item_id,
            Offer.policy_id,
            Offer.policy_version,
            BatchLine.amount,
        )
        .join(Payee, Payee.id == BatchLine.payee_id)
        .join(Offer, Offer.id == BatchLine.offer_id)
        .where(*_lines_where(notice, search, line_no))
        .order_by(BatchLine.line_no)
        .limit(limit)
        .offset(offset)
    ).all()
    titles: dict[tuple[str, int], dict[str, str]] = {}
    out = []
    for no, name, item_id, pid, version, amount in rows:
        if (pid, version) not in titles:
            items = session.scalar(
                select(PolicyVersion.items).where(
                    PolicyVersion.policy_id == pid, PolicyVersion.version == version
                )
            )
            titles[(pid, version)] = {i["id"]: i["title"] for i in json.loads(items or "[]")}
        out.append(NoticeLine(no, name, titles[(pid, version)].get(item_id, item_id), amount))
    return out


def running(session: Session, now: dt.datetime) -> list[PublicNotice]:
    """The notices whose period runs now, ending soonest first (the public list); a withdrawn or
    rejected batch is no longer on notice."""
    query = (
        select(PublicNotice)
        .join(Batch, Batch.id == PublicNotice.batch_id)
        .where(
            PublicNotice.starts_at <= now,
            PublicNotice.ends_at > now,
            Batch.state != BatchState.REJECTED.value,
        )
        .order_by(PublicNotice.ends_at, PublicNotice.id)
    )
    return list(session.scalars(query).all())


def notices(session: Session, policy_ids: set[str] | None = None) -> list[PublicNotice]:
    """Every notice, newest first (of these policies, for staff of one department)."""
    query = select(PublicNotice).order_by(PublicNotice.id.desc())
    if policy_ids is not None:
        query = query.where(PublicNotice.policy_id.in_(sorted(policy_ids)))
    return list(session.scalars(query).all())


def objections(session: Session, notice: PublicNotice) -> list[Objection]:
    """A notice's objections, open ones first, then in the order they were filed."""
    rows = session.scalars(
        select(Objection).where(Objection.notice_id == notice.id).order_by(Objection.id)
    ).all()
    return sorted(rows, key=lambda o: o.state != ObjectionState.OPEN.value)


def open_objections(session: Session, notice: PublicNotice) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Objection)
            .where(Objection.notice_id == notice.id, Objection.state == ObjectionState.OPEN.value)
        )
        or 0
    )


def _clean(value: str, what: str, limit: int) -> str:
    text = value.strip()
    if not text:
        raise PayoutError(f"请填写{what}")
    if len(text) > limit:
        raise PayoutError(f"{what}过长（最多 {limit} 个字）")
    return text


def file_objection(
    session: Session,
    notice_public_id: str,
    line_no: int,
    *,
    name: str,
    contact: str,
    text: str,
    now: dt.datetime,
    ip: str | None = None,
) -> Objection:
    """Anyone objects to one line of a running notice, leaving a name and a phone number or e-mail."""
    notice = get(session, notice_public_id)
    state = session.scalar(select(Batch.state).where(Batch.id == notice.batch_id))
    if state == BatchState.REJECTED.value:
        raise StateError("该批次已撤回，名单不再公示")
    if now < notice.starts_at or now >= notice.ends_at:
        raise StateError(f"公示期为 {_day(notice.starts_at)} 至 {_day(notice.ends_at)}，现在不能提出异议")
    line = session.scalar(
        select(BatchLine).where(
            BatchLine.batch_id == notice.batch_id, BatchLine.line_no == line_no, BatchLine.live
        )
    )
    if line is None:
        raise NotFoundError(f"公示名单中没有第 {line_no} 条")
    contact = _clean(contact, "联系方式", 100)
    if not (_PHONE.match(contact.replace(" ", "")) or _EMAIL.match(contact)):
        raise PayoutError("联系方式应为手机号、固定电话或电子邮箱，以便核实后答复")
    row = Objection(
        public_id=tokens.public_id(),
        notice_id=notice.id,
        batch_line_id=line.id,
        name=_clean(name, "姓名或单位", 100),
        contact=contact,
        text=_clean(text, "异议内容", 2000),
        ip=ip,
        filed_at=now,
        state=ObjectionState.OPEN.value,
    )
    session.add(row)
    session.flush()
    audit.record(
        session, now, "public", "object", "objection", row.public_id, None, row.state, None,
        notice=notice.public_id, line=line_no,
    )  # fmt: skip
    return row


def get_objection(session: Session, public_id: str, *, lock: bool = False) -> Objection:
    query = select(Objection).where(Objection.public_id == public_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFoundError(f"没有异议 {public_id}")
    return row


def resolve(
    session: Session, public_id: str, upheld: bool, reason: str, by: str, now: dt.datetime
) -> Objection:
    """Staff decide an open objection with a reason. Upheld: the line leaves the batch (its offer is held
    with the reason, the batch's count and total shrink; a batch left empty is rejected). Dismissed:
    nothing else changes."""
    user = require(session, by, "objection_resolve")
    if not reason.strip():
        raise StateError("处理异议必须写明理由")
    row = get_objection(session, public_id, lock=True)
    if row.state != ObjectionState.OPEN.value:
        raise StateError(f"异议 {public_id} 已处理（{OBJECTION_LABELS[row.state]}）")
    notice = session.get(PublicNotice, row.notice_id)
    assert notice is not None
    batch = session.scalar(select(Batch).where(Batch.id == notice.batch_id).with_for_update())
    assert batch is not None
    outcome = ObjectionState.UPHELD if upheld else ObjectionState.DISMISSED
    row.state, row.resolved_by, row.resolved_at, row.resolution = outcome.value, user.id, now, reason.strip()
    events = [Event(by, "resolve", "objection", public_id, "open", outcome.value, row.resolution, {})]
    line = session.get(BatchLine, row.batch_line_id)
    if upheld and line is not None and line.live:
        if batch.state != BatchState.ASSEMBLED.value:
            raise StateError(f"批次 {batch.reference} 处于 {batch.state}，不能再移出明细")
        events += _remove_line(session, batch, line, f"公示异议成立：{row.resolution}", by, now)
    audit.append(session, events, now)
    return row


def _remove_line(
    session: Session, batch: Batch, line: BatchLine, reason: str, by: str, now: dt.datetime
) -> list[Event]:
    (offer,) = offers.lock_offers(
        session, [session.scalar(select(Offer.public_id).where(Offer.id == line.offer_id)) or ""]
    )
    # A cost-shared offer leaves every payer's batch (payouts.finance): its other parts go with it.
    others = list(
        session.scalars(
            select(BatchLine).where(
                BatchLine.offer_id == line.offer_id,
                BatchLine.live,
                BatchLine.id != line.id,
                BatchLine.status == LineStatus.PENDING.value,
            )
        ).all()
    )
    holding = {}
    for other in others:
        b = session.scalar(select(Batch).where(Batch.id == other.batch_id).with_for_update())
        assert b is not None
        if b.state != BatchState.ASSEMBLED.value:
            raise StateError(f"该要约的另一部分在批次 {b.reference} 中，该批次已复核，不能再移出：请先核查")
        holding[other.id] = b
    events = [
        offers.move(offer, OfferState.CONFIRMED, actor=by, action="unbatch", now=now, reason=reason),
        offers.move(offer, OfferState.HELD, actor=by, action="hold", now=now, reason=reason),
    ]
    for removed, b in [(line, batch), *((x, holding[x.id]) for x in others)]:
        removed.status, removed.live = LineStatus.WITHDRAWN.value, False
        session.flush()
        events += _shrink(session, b, removed, offer.public_id, reason, by, now)
    return events


def _shrink(
    session: Session, batch: Batch, line: BatchLine, offer: str, reason: str, by: str, now: dt.datetime
) -> list[Event]:
    """The batch's count and total after `line` left it (rejected when it is left empty)."""
    events = []
    live = session.execute(
        select(func.count(), func.coalesce(func.sum(BatchLine.amount), 0)).where(
            BatchLine.batch_id == batch.id, BatchLine.live
        )
    ).one()
    batch.line_count, batch.total = int(live[0]), Decimal(live[1]).quantize(Decimal("0.01"))
    data = {
        "line": line.line_no,
        "offer": offer,
        "lines": batch.line_count,
        "total": str(batch.total),
    }
    events.append(Event(by, "remove_line", "batch", batch.reference, batch.state, batch.state, reason, data))
    if batch.line_count == 0:
        batch.state, batch.rejected_at, batch.reason = BatchState.REJECTED.value, now, "公示后已无明细"
        events.append(
            Event(
                by,
                "reject",
                "batch",
                batch.reference,
                BatchState.ASSEMBLED.value,
                batch.state,
                batch.reason,
                {},
            )
        )
    return events


def check_approvable(session: Session, batch: Batch, now: dt.datetime) -> None:
    """StateError unless the batch's public notice (if its policy needs one) has run its full period and
    every objection to it is resolved."""
    notice = of_batch(session, batch.id)
    required = notice_period(session, batch.policy_id, batch.period)
    if notice is None:
        if required:
            raise StateError(f"政策要求公示 {required}：批次 {batch.reference} 尚未公示，不能复核通过")
        return
    if now < notice.ends_at:
        raise StateError(
            f"批次 {batch.reference} 公示期至 {_day(notice.ends_at)} 结束，公示期满前不能复核通过"
        )
    if n := open_objections(session, notice):
        raise StateError(f"批次 {batch.reference} 有 {n} 条异议尚未处理，处理完毕前不能复核通过")
