"""Durable jobs as staff see them (任务): what ran or waits, its state, who started it, when, how many
attempts, and the error if it failed. Nothing here changes anything: jobs are started where their work
is (a match run on 数据比对, SMS on 初核) and run by a worker (`zhida worker`).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlmodel import Session

from api.deps import JobsReader, SessionDep, user_scope
from api.matchjobs import imported_within
from api.routes import render
from payouts import jobs
from payouts.models import Job, JobState, StaffUser

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
pages = APIRouter(prefix="/console/jobs", include_in_schema=False)


class JobOut(BaseModel):
    """One job: kind and state (with their Chinese labels), who started it, times, attempts, error."""

    id: str
    kind: str
    kind_label: str
    state: str
    state_label: str
    started_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    attempts: int
    max_attempts: int
    error: str | None
    result: dict[str, Any] | None


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.public_id,
        kind=job.kind,
        kind_label=jobs.KIND_LABELS.get(job.kind, job.kind),
        state=job.state,
        state_label=jobs.STATE_LABELS[JobState(job.state)],
        started_by=job.started_by,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        error=job.error,
        result=json.loads(job.result) if job.result else None,
    )


@router.get("", response_model=list[JobOut], summary="后台任务（新的在前，最近 200 个）")
def listing(user: JobsReader, session: SessionDep) -> list[JobOut]:
    shown = [job_out(j) for j in jobs.recent(session)]
    # A match job's import, as the user may see it: a department's or region's staff never the run-wide counts.
    results = [j.result for j in shown if j.result and "imported" in j.result]
    seen = imported_within(session, user_scope(user), [(r.get("run_id"), r["imported"]) for r in results])
    for result, got in zip(results, seen, strict=True):
        result["imported"] = got
    return shown


@pages.get("")
def jobs_page(request: Request, user: JobsReader, session: SessionDep) -> Response:
    depth = jobs.depth(session)
    shown = listing(user, session)
    return render(
        request,
        "jobs.html",
        {
            "jobs": shown,
            "depth": [(jobs.STATE_LABELS[JobState(s)], n) for s, n in depth.items()],
            "names": staff_names(session, {j.started_by for j in shown}),
        },
    )


def staff_names(session: Session, usernames: set[str]) -> dict[str, str]:
    """Display names of these staff usernames (who started a job, shown by name)."""
    query = select(StaffUser.username, StaffUser.display_name).where(StaffUser.username.in_(usernames))
    return {u: n for u, n in session.execute(query).all()}
