"""Durable jobs: a queue in the payouts database that workers claim under leases (the `job` table).

A job is queued (`enqueue`, or `schedule` for a periodic job), claimed by one worker (`claim`) which
holds it under a lease it renews by heartbeat (`heartbeat`), and ends `done` (`finish`) or `failed`
(`fail`). A worker that dies leaves its lease to run out: `reclaim` queues the job again for another
worker, up to its `max_attempts`, then fails it with an error users can read, so a job is never left
"running" with nobody on it. Every call that acts on a claimed job names its worker and attempt (the
fence): a worker whose lease ran out and whose job was reclaimed can no longer heartbeat, finish or
fail it. Handlers (what each kind does) live with the callers; they must be idempotent, because a job
may run again after a crash.

Claiming is `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL (concurrent workers skip each other's
rows) and, on SQLite, a guarded `UPDATE … WHERE state = 'queued'` inside the write transaction SQLite
holds alone; both then check the update's row count, so two workers never hold one job.

We did not take procrastinate, a well-kept PostgreSQL job queue, because it is PostgreSQL-only and
the embedded default is SQLite.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from payouts.errors import NotFoundError
from payouts.models import Job, JobState

DEFAULT_LEASE = dt.timedelta(seconds=60)
DEFAULT_MAX_ATTEMPTS = 3
RETRY_DELAY = dt.timedelta(seconds=30)  # after a handler's unexpected error, times the attempts so far
GAVE_UP = "任务多次中断（处理进程意外停止），已停止重试。请检查服务日志后重新发起"
KIND_LABELS = {
    "match": "数据比对",
    "send_notices": "发送确认短信",
    "reminders": "到期提醒短信",
    "expire": "过期清理",
    "sla_reminders": "办理时限提醒",
    "escalate": "超时督办",
    "outreach": "差一点符合企业告知",
}
STATE_LABELS = {
    JobState.QUEUED: "排队中",
    JobState.RUNNING: "运行中",
    JobState.DONE: "已完成",
    JobState.FAILED: "失败",
}


@dataclass(frozen=True)
class Claim:
    """A job a worker holds: the row as claimed, and the fence (worker, attempt) its later calls name."""

    job: Job
    worker: str

    @property
    def attempt(self) -> int:
        return self.job.attempts

    @property
    def params(self) -> dict[str, Any]:
        return dict(json.loads(self.job.params))


def enqueue(
    session: Session,
    kind: str,
    params: dict[str, Any],
    by: str,
    now: dt.datetime,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    run_after: dt.datetime | None = None,
    public_id: str | None = None,
) -> Job:
    """Queue a job of `kind` with its `params` (JSON), started by `by`; it runs at `run_after` or later."""
    job = Job(
        public_id=public_id or secrets.token_hex(8),
        kind=kind,
        params=json.dumps(params, ensure_ascii=False, sort_keys=True),
        state=JobState.QUEUED,
        max_attempts=max_attempts,
        run_after=run_after or now,
        started_by=by,
        created_at=now,
    )
    session.add(job)
    session.flush()
    return job


def schedule(session: Session, kind: str, period: str, params: dict[str, Any], now: dt.datetime) -> bool:
    """Queue the periodic job `kind` for `period` (e.g. 2025-09-30) unless it exists: True if this call
    queued it. Any number of workers may call it for the same period; the unique key lets one win."""
    values = {
        "public_id": secrets.token_hex(8),
        "kind": kind,
        "params": json.dumps(params, ensure_ascii=False, sort_keys=True),
        "state": JobState.QUEUED.value,
        "attempts": 0,
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
        "run_after": now,
        "period_key": f"{kind}:{period}",
        "started_by": "system",
        "created_at": now,
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(Job)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["period_key"])
        .returning(Job.id)
    )
    return session.execute(statement).first() is not None


def claim(
    session: Session,
    worker: str,
    now: dt.datetime,
    *,
    lease: dt.timedelta = DEFAULT_LEASE,
    kinds: Sequence[str] | None = None,
) -> Claim | None:
    """The next due job, now held by `worker` until `now + lease` (None when nothing is due)."""
    due = and_(Job.state == JobState.QUEUED, Job.run_after <= now)
    if kinds is not None:
        due = and_(due, Job.kind.in_(list(kinds)))
    candidate = session.scalar(
        select(Job.id).where(due).order_by(Job.run_after, Job.id).limit(1).with_for_update(skip_locked=True)
    )
    if candidate is None:
        return None
    taken = session.execute(
        update(Job)
        .where(Job.id == candidate, Job.state == JobState.QUEUED)
        .values(
            state=JobState.RUNNING,
            attempts=Job.attempts + 1,
            worker=worker,
            lease_until=now + lease,
            heartbeat_at=now,
            started_at=func.coalesce(Job.started_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    job = session.get(Job, candidate, populate_existing=True)
    assert job is not None
    return Claim(job, worker)


def _held(c: Claim) -> Any:
    return and_(
        Job.id == c.job.id,
        Job.state == JobState.RUNNING,
        Job.worker == c.worker,
        Job.attempts == c.attempt,
    )


def heartbeat(session: Session, c: Claim, now: dt.datetime, lease: dt.timedelta = DEFAULT_LEASE) -> bool:
    """Renew the lease; False when the job is no longer this worker's (its lease ran out, it was reclaimed)."""
    r = session.execute(
        update(Job)
        .where(_held(c))
        .values(lease_until=now + lease, heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return r.rowcount == 1  # type: ignore[attr-defined]


def finish(session: Session, c: Claim, result: dict[str, Any], now: dt.datetime) -> bool:
    """The job is done with `result` (JSON); False (and nothing changed) if the worker no longer held it."""
    r = session.execute(
        update(Job)
        .where(_held(c))
        .values(
            state=JobState.DONE,
            result=json.dumps(result, ensure_ascii=False, sort_keys=True),
            error=None,
            lease_until=None,
            finished_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return r.rowcount == 1  # type: ignore[attr-defined]


def fail(
    session: Session,
    c: Claim,
    error: str,
    now: dt.datetime,
    *,
    retry: bool,
    result: dict[str, Any] | None = None,
) -> bool:
    """The attempt failed with `error` (Chinese, for users). With `retry` and attempts left the job is
    queued again after a delay; otherwise it is failed for good. False if the worker no longer held it."""
    again = retry and c.attempt < c.job.max_attempts
    values: dict[str, Any] = {"error": error, "lease_until": None, "worker": None if again else c.worker}
    if result is not None:
        values["result"] = json.dumps(result, ensure_ascii=False, sort_keys=True)
    if again:
        values.update(state=JobState.QUEUED, run_after=now + RETRY_DELAY * c.attempt)
    else:
        values.update(state=JobState.FAILED, finished_at=now)
    r = session.execute(
        update(Job).where(_held(c)).values(**values).execution_options(synchronize_session=False)
    )
    return r.rowcount == 1  # type: ignore[attr-defined]


def release(session: Session, c: Claim, now: dt.datetime) -> bool:
    """Give the job back untouched (its worker is stopping before it began or while it can stop): queued
    again at once, and the attempt does not count."""
    r = session.execute(
        update(Job)
        .where(_held(c))
        .values(
            state=JobState.QUEUED,
            attempts=Job.attempts - 1,
            worker=None,
            lease_until=None,
            run_after=now,
        )
        .execution_options(synchronize_session=False)
    )
    return r.rowcount == 1  # type: ignore[attr-defined]


def reclaim(session: Session, now: dt.datetime) -> tuple[int, int]:
    """Jobs whose lease ran out (their worker died or hangs): queued again while they have attempts
    left, failed with `GAVE_UP` otherwise. Returns (requeued, failed)."""
    expired = and_(Job.state == JobState.RUNNING, Job.lease_until < now)
    requeued = session.execute(
        update(Job)
        .where(expired, Job.attempts < Job.max_attempts)
        .values(state=JobState.QUEUED, worker=None, lease_until=None, run_after=now)
        .execution_options(synchronize_session=False)
    )
    failed = session.execute(
        update(Job)
        .where(expired, Job.attempts >= Job.max_attempts)
        .values(state=JobState.FAILED, error=GAVE_UP, lease_until=None, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return requeued.rowcount, failed.rowcount  # type: ignore[attr-defined]


def get(session: Session, public_id: str, kind: str | None = None) -> Job:
    """The job with this public id (of `kind`, if given); NotFoundError otherwise."""
    query = select(Job).where(Job.public_id == public_id)
    if kind is not None:
        query = query.where(Job.kind == kind)
    job = session.scalar(query)
    if job is None:
        raise NotFoundError(f"没有任务 {public_id}")
    return job


def recent(session: Session, *, kind: str | None = None, limit: int = 200) -> list[Job]:
    """The latest jobs, newest first (of `kind`, if given)."""
    query = select(Job).order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return list(session.scalars(query))


def depth(session: Session) -> dict[str, int]:
    """How many jobs are in each state (what to watch: queued growing, failed appearing)."""
    rows = session.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    return {state.value: 0 for state in JobState} | {s: int(n) for s, n in rows}
