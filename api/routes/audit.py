"""The audit log: verify the whole hash chain (auditors), and the events of one batch.

The events of one offer are at `/api/offers/{public_id}/audit`, beside the offer.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from api.deps import BatchDep, SessionDep, Verifier
from api.routes import render
from api.routes.offers import EventOut
from payouts import audit

router = APIRouter(prefix="/api", tags=["audit"])
pages = APIRouter(prefix="/console/audit", include_in_schema=False)


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


@pages.get("")
def audit_page(request: Request, user: Verifier, session: SessionDep) -> Response:
    return render(request, "audit.html", {"report": audit.verify(session)})
