"""The audit log: verify the whole hash chain (auditors), the events of one batch, and the console's
audit page: events searched by actor, action, enterprise or offer and a date range, page by page, and
exported as a CSV that opens in Chinese Excel.

The events of one offer are at `/api/offers/{public_id}/audit`, beside the offer.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator, Sequence
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import Session

from api.deps import BatchDep, SessionDep, Verifier
from api.routes import now, render
from api.routes.batches import STATE_LABELS as BATCH_STATES
from api.routes.offers import EventOut
from payouts import audit, offers
from payouts.db import transaction
from payouts.models import AuditEvent, OfferState, Payee, StaffUser
from reports.spreadsheet import csv_row, text_cell
from rules import formats

router = APIRouter(prefix="/api", tags=["audit"])
pages = APIRouter(prefix="/console/audit", include_in_schema=False)

PAGE_SIZES = (50, 100, 200, 500)
PAGE = 50
COUNT_CAP = 100_000  # the page counts up to this many, then says 以上
EXPORT_LIMIT = 200_000
EXPORT_PAGE = 5_000  # events read, shown and written at a time
# States of things other than offers and batches, as staff read them.
OTHER_STATES = {
    "imported": "已导入",
    "registered": "已登记",
    "pending": "待审批",
    "approved": "已批准",
    "rejected": "已驳回",
    "active": "启用",
    "inactive": "停用",
    "locked": "已锁定",
    "open": "公示中",
    "upheld": "异议成立",
    "dismissed": "异议不成立",
    "submitted": "已提交",
    "verified": "已核实",
    "retired": "已停用",
    "published": "已发布",
    "draft": "草稿",
}


class VerifyOut(BaseModel):
    """What recomputing the chain found: every event checked, the head, and any break."""

    ok: bool
    events: int
    head_seq: int
    head_hash: str
    problems: list[str]


@router.get("/audit/verify", response_model=VerifyOut, summary="校验审计日志的哈希链")
def verify(user: Verifier, session: SessionDep) -> VerifyOut:
    r = audit.verify(session)
    return VerifyOut(
        ok=r.ok, events=r.events, head_seq=r.head_seq, head_hash=r.head_hash, problems=r.problems
    )


@router.get("/batches/{reference}/audit", response_model=list[EventOut], summary="一个批次的审计轨迹")
def batch_audit(batch: BatchDep, session: SessionDep) -> list[EventOut]:
    return [
        EventOut.model_validate(e, from_attributes=True)
        for e in audit.history(session, "batch", batch.reference)
    ]


class AuditQuery(BaseModel):
    """The audit page's search as its form sends it; a blank field looks for anything.

    `actor`: a member of staff's name or username, 系统, or a USCC; `enterprise`: a USCC; `offer`: an
    offer's number; `date_from`/`date_to`: days in China time, both included.
    """

    actor: str = Field(default="", max_length=64)
    action: str = Field(default="", max_length=32)
    enterprise: str = Field(default="", max_length=18)
    offer: str = Field(default="", max_length=32)
    date_from: str = Field(default="", max_length=10)
    date_to: str = Field(default="", max_length=10)

    def values(self) -> dict[str, str]:
        return {k: v.strip() for k, v in self.model_dump().items()}

    def search(self, session: Session) -> audit.EventSearch:
        """The search these fields name; a malformed day or range is refused (ValueError, in Chinese)."""
        v = self.values()
        days: dict[str, dt.date | None] = {}
        for key, word in (("date_from", "起始日期"), ("date_to", "截止日期")):
            try:
                days[key] = dt.date.fromisoformat(v[key]) if v[key] else None
            except ValueError:
                raise ValueError(f"{word}应为日期，例如 2025-09-30") from None
        start, end = days["date_from"], days["date_to"]
        if start and end and start > end:
            raise ValueError(f"起始日期 {formats.day(start)} 晚于截止日期 {formats.day(end)}，请调换")
        return audit.EventSearch(
            actors=audit.actors_named(session, v["actor"]) if v["actor"] else None,
            action=v["action"] or None,
            enterprise=v["enterprise"].upper() or None,
            offer=v["offer"] or None,
            since=_china_midnight(start) if start else None,
            until=_china_midnight(end + dt.timedelta(days=1)) if end else None,
        )


def _china_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), formats.CHINA).astimezone(dt.UTC)


def state_label(entity: str, state: str | None) -> str:
    """A state of the thing an event is about, as staff read it."""
    if state is None:
        return ""
    if entity in ("offer", "offers") and state in {s.value for s in OfferState}:
        return offers.label(state)
    if entity == "batch" and state in BATCH_STATES:
        return BATCH_STATES[state]
    return OTHER_STATES.get(state, state)


class EventRow(BaseModel):
    """One event as the audit page and its export show it, in Chinese."""

    seq: int
    at: str
    actor: str
    action: str
    entity: str
    entity_id: str
    link: str | None
    from_state: str
    to_state: str
    reason: str
    hash: str


def event_rows(session: Session, events: Sequence[AuditEvent]) -> list[EventRow]:
    staff = {e.actor for e in events}
    names = dict(
        session.execute(
            select(StaffUser.username, StaffUser.display_name).where(StaffUser.username.in_(staff))
        ).all()
    )
    usccs = {e.actor.removeprefix("enterprise:") for e in events if e.actor.startswith("enterprise:")}
    enterprises = dict(session.execute(select(Payee.uscc, Payee.name).where(Payee.uscc.in_(usccs))).all())
    links = {"offer": "/console/offers/", "batch": "/console/batches/"}
    return [
        EventRow(
            seq=e.seq,
            at=formats.staff_time(e.at),
            actor=audit.actor_label(e.actor, names, enterprises),
            action=audit.action_label(e.action),
            entity=audit.entity_label(e.entity),
            entity_id=e.entity_id,
            link=links[e.entity] + e.entity_id if e.entity in links else None,
            from_state=state_label(e.entity, e.from_state),
            to_state=state_label(e.entity, e.to_state),
            reason=e.reason or "",
            hash=e.hash,
        )
        for e in events
    ]


def action_choices() -> list[tuple[str, str]]:
    return sorted(audit.ACTION_LABELS.items(), key=lambda kv: kv[1])


@pages.get("")
def audit_page(
    request: Request,
    user: Verifier,
    session: SessionDep,
    query: Annotated[AuditQuery, Query()],
    size: Annotated[int, Query(ge=1, le=500)] = PAGE,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
) -> Response:
    size = size if size in PAGE_SIZES else PAGE
    filters = query.values()
    kept = {k: v for k, v in filters.items() if v}
    error, total, events = None, 0, []
    try:
        total, events = audit.search(session, query.search(session), limit=size, offset=offset, cap=COUNT_CAP)
    except ValueError as e:
        error = str(e)
    # Recomputing the whole chain reads every event: done on the log's front page, not for each search.
    report = audit.verify(session) if not kept and offset == 0 else None
    return render(
        request,
        "audit.html",
        {
            "report": report,
            "events": event_rows(session, events),
            "total": min(total, COUNT_CAP),
            "more": total > COUNT_CAP,
            "offset": offset,
            "page": size,
            "sizes": PAGE_SIZES,
            "filters": filters,
            "filtered": bool(kept),
            "filter_error": error,
            "actions": action_choices(),
            "query": urlencode({**kept, **({"size": size} if size != PAGE else {})}),
            "filter_query": urlencode(kept),
        },
    )


EXPORT_HEADER = ["序号", "时间", "操作人", "操作", "对象", "对象编号", "原状态", "新状态", "原因", "哈希"]


@pages.get("/export.csv")
def audit_export(
    request: Request, user: Verifier, session: SessionDep, query: Annotated[AuditQuery, Query()]
) -> Response:
    """The events found, newest first, as a CSV that opens in Chinese Excel as it is: UTF-8 with a BOM,
    ids as text, nothing in it run as a formula."""
    try:
        wanted = query.search(session)
    except ValueError as e:
        return Response(str(e), status_code=422, media_type="text/plain; charset=utf-8")
    total, _ = audit.search(session, wanted, limit=0, cap=EXPORT_LIMIT)
    if total > EXPORT_LIMIT:
        return Response(
            f"导出至多 {EXPORT_LIMIT:,} 条，当前符合条件的超过此数：请缩小日期范围或增加条件",
            status_code=422,
            media_type="text/plain; charset=utf-8",
        )
    engine = request.app.state.engine

    def lines() -> Iterator[bytes]:
        # The request's transaction ends when the route returns: the rows are read in one of their own.
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        buffer.write("\ufeff")  # the BOM: Excel reads UTF-8, not the ANSI code page
        writer.writerow(EXPORT_HEADER)
        with transaction(engine, read_only=True) as reading:
            for events in audit.found_pages(reading, wanted, size=EXPORT_PAGE):
                for r in event_rows(reading, events):
                    writer.writerow(
                        csv_row(
                            [
                                r.seq,
                                r.at,
                                r.actor,
                                r.action,
                                r.entity,
                                text_cell(r.entity_id),
                                r.from_state,
                                r.to_state,
                                r.reason,
                                r.hash,
                            ]
                        )
                    )
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue().encode()

    stamp = now().astimezone(formats.CHINA).strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )
