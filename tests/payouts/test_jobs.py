"""The durable job queue (payouts/jobs.py) on SQLite and PostgreSQL: one worker per job, leases that
run out when a worker dies, a visible failure after the last attempt, one scheduled job per period."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter

from sqlalchemy import Engine, func, select

from payouts import jobs
from payouts.db import transaction
from payouts.models import Job

T0 = dt.datetime(2025, 9, 30, 6, 5, tzinfo=dt.UTC)
LEASE = dt.timedelta(seconds=60)


def _state(engine: Engine, public_id: str) -> Job:
    with transaction(engine, read_only=True) as s:
        return jobs.get(s, public_id)


def test_two_workers_never_both_claim_a_job(engine: Engine) -> None:
    with transaction(engine) as s:
        queued = {jobs.enqueue(s, "expire", {"n": i}, "rev", T0).public_id for i in range(40)}
    claimed: list[tuple[str, str]] = []
    start = threading.Barrier(4)

    def work(name: str) -> None:
        start.wait()
        while True:
            with transaction(engine) as s:
                c = jobs.claim(s, name, T0, lease=LEASE)
            if c is None:
                return
            claimed.append((c.job.public_id, name))

    workers = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    held = Counter(job for job, _ in claimed)
    assert set(held) == queued and max(held.values()) == 1  # every job claimed, none twice
    with transaction(engine, read_only=True) as s:
        rows = s.scalars(select(Job)).all()
    assert {(r.public_id, r.worker) for r in rows} == set(claimed)
    assert all(r.state == "running" and r.attempts == 1 for r in rows)


def test_a_job_whose_worker_died_is_retried_by_another_then_failed_visibly(engine: Engine) -> None:
    with transaction(engine) as s:
        job = jobs.enqueue(s, "match", {}, "rev", T0, max_attempts=2)
    with transaction(engine) as s:
        first = jobs.claim(s, "w1", T0, lease=LEASE)
    assert first is not None
    # w1 dies: no heartbeat. Within the lease nobody else may take the job.
    soon = T0 + dt.timedelta(seconds=59)
    with transaction(engine) as s:
        assert jobs.reclaim(s, soon) == (0, 0)
        assert jobs.claim(s, "w2", soon, lease=LEASE) is None
    later = T0 + dt.timedelta(seconds=61)
    with transaction(engine) as s:
        assert jobs.reclaim(s, later) == (1, 0)
        second = jobs.claim(s, "w2", later, lease=LEASE)
    assert second is not None and second.job.public_id == job.public_id and second.attempt == 2
    with transaction(engine) as s:  # w1 was only slow: its lease is gone, it can no longer finish
        assert not jobs.finish(s, first, {"late": True}, later)
        assert not jobs.heartbeat(s, first, later)
    with transaction(engine) as s:
        assert jobs.reclaim(s, later + dt.timedelta(seconds=61)) == (0, 1)  # w2 died too: last attempt
    ended = _state(engine, job.public_id)
    assert ended.state == "failed" and ended.error == jobs.GAVE_UP and "停止重试" in ended.error
    assert ended.result is None and ended.finished_at is not None


def test_a_heartbeat_keeps_a_long_job_with_its_worker(engine: Engine) -> None:
    with transaction(engine) as s:
        job = jobs.enqueue(s, "match", {}, "rev", T0)
    with transaction(engine) as s:
        c = jobs.claim(s, "w1", T0, lease=LEASE)
    assert c is not None
    for beat in (40, 80, 120):
        with transaction(engine) as s:
            assert jobs.heartbeat(s, c, T0 + dt.timedelta(seconds=beat), LEASE)
    with transaction(engine) as s:
        assert jobs.reclaim(s, T0 + dt.timedelta(seconds=170)) == (0, 0)
        assert jobs.finish(s, c, {"ok": 1}, T0 + dt.timedelta(seconds=170))
    assert _state(engine, job.public_id).state == "done"


def test_an_error_is_retried_until_the_last_attempt_then_shown(engine: Engine) -> None:
    with transaction(engine) as s:
        job = jobs.enqueue(s, "reminders", {}, "system", T0, max_attempts=2)
    now = T0
    for attempt in (1, 2):
        with transaction(engine) as s:
            c = jobs.claim(s, "w1", now, lease=LEASE)
            assert c is not None and c.attempt == attempt
            assert jobs.claim(s, "w2", now, lease=LEASE) is None
            assert jobs.fail(s, c, "短信网关暂不可用", now, retry=True)
        now += jobs.RETRY_DELAY * attempt
    ended = _state(engine, job.public_id)
    assert (ended.state, ended.attempts, ended.error) == ("failed", 2, "短信网关暂不可用")


def test_a_released_job_is_queued_again_without_using_an_attempt(engine: Engine) -> None:
    with transaction(engine) as s:
        job = jobs.enqueue(s, "expire", {}, "system", T0)
    with transaction(engine) as s:
        c = jobs.claim(s, "w1", T0, lease=LEASE)
        assert c is not None and jobs.release(s, c, T0)
    again = _state(engine, job.public_id)
    assert (again.state, again.attempts, again.worker) == ("queued", 0, None)


def test_a_scheduled_job_is_queued_once_per_period_by_three_workers(engine: Engine) -> None:
    start = threading.Barrier(3)
    won: list[bool] = []

    def schedule() -> None:
        start.wait()
        with transaction(engine) as s:
            won.append(jobs.schedule(s, "reminders", "2025-09-30", {}, T0))

    workers = [threading.Thread(target=schedule) for _ in range(3)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert sorted(won) == [False, False, True]
    with transaction(engine) as s:
        assert jobs.schedule(s, "reminders", "2025-10-01", {}, T0 + dt.timedelta(days=1))
        keys = s.scalars(select(Job.period_key).order_by(Job.period_key)).all()
        assert keys == ["reminders:2025-09-30", "reminders:2025-10-01"]
        assert s.scalar(select(func.count()).select_from(Job)) == 2
