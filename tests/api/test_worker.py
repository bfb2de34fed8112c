"""The worker (api/worker.py, `zhida worker`): a match run started in the console is a durable job, run by
`zhida worker --once`; a match job whose worker died is taken up again and imports its offers once; the
任务 page shows the jobs to the roles that may see them."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from api.cli import app as cli
from api.worker import SCHEDULE, Worker, enqueue_notices
from payouts import jobs
from payouts.db import transaction
from payouts.models import Job, MatchRun, Offer, SmsMessage
from payouts.selection import OfferFilter, Selection, Tally
from payouts.sms import MemoryGateway, OutgoingSms
from tests.api.conftest import ROOT, SECRET, World


def _start(w: World) -> str:
    r = w.client.post("/api/runs", json={"snapshot": "conformance"}, headers=w.auth("reviewer"))
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "queued" and r.json()["state_label"] == "排队中"
    return str(r.json()["id"])


def _run(w: World, job_id: str) -> dict:  # type: ignore[type-arg]
    r = w.client.get(f"/api/runs/{job_id}", headers=w.auth("reviewer"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _offers(w: World) -> int:
    with transaction(w.app.state.engine, read_only=True) as s:
        return int(s.scalar(select(func.count()).select_from(Offer)) or 0)


def test_a_match_job_runs_end_to_end_through_zhida_worker_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _offers(world)
    job_id = _start(world)
    assert not (world.root / "web" / "runs" / job_id / "status.json").exists()
    settings = world.app.state.settings
    for key, value in {
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(settings.data_dir),
        "SNAPSHOTS_ROOT": str(settings.snapshots_root),
        "SECRET_KEY": SECRET,
        "SCHEDULE": "false",
    }.items():
        monkeypatch.setenv(f"ZHIDA_{key}", value)
    result = CliRunner().invoke(cli, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "已执行 1 个任务" in result.output
    run = _run(world, job_id)
    assert run["state"] == "done" and run["attempts"] == 1, run
    # The template's run made the offers already: this one's candidates are recognised, not paid twice.
    assert run["items"] and run["import_error"] is None and run["imported"]["skipped"] > 0
    assert _offers(world) == before + run["imported"]["offers"]
    with transaction(world.app.state.engine, read_only=True) as s:
        assert s.scalar(select(MatchRun.id).where(MatchRun.run_id == run["run_id"])) is not None
    assert (world.root / "web" / "runs" / job_id / "run" / "manifest.json").is_file()


def test_a_match_job_whose_worker_died_after_the_import_is_retried_and_imports_once(world: World) -> None:
    before = _offers(world)
    job_id = _start(world)
    engine = world.app.state.engine
    now = dt.datetime.now(dt.UTC)
    with transaction(engine) as s:
        dying = jobs.claim(s, "host:1:dead", now, lease=dt.timedelta(seconds=60))
    assert dying is not None
    first = world.app.state.jobs.execute(dying)  # it matched and imported, then its process was killed
    assert first["imported"]["skipped"] > 0 and _run(world, job_id)["state"] == "running"
    imported = _offers(world) - before

    # Within the lease nobody takes it up; once it ran out, another worker does.
    assert world.run_jobs() == 0
    later = Worker(world.app.state.worker.ctx, clock=lambda: now + dt.timedelta(seconds=61), schedule={})
    assert later.drain() == 1
    run = _run(world, job_id)
    assert run["state"] == "done" and run["attempts"] == 2, run
    # Read from the first import, not made again (a second import of the run would be refused).
    assert run["imported"] == first["imported"] and run["import_error"] is None
    assert run["run_id"] == first["run_id"]
    assert _offers(world) - before == imported
    with transaction(engine, read_only=True) as s:
        assert (
            s.scalar(select(func.count()).select_from(MatchRun).where(MatchRun.run_id == run["run_id"])) == 1
        )


def test_a_match_job_that_keeps_dying_is_failed_with_a_reason_users_can_read(world: World) -> None:
    job_id = _start(world)
    engine = world.app.state.engine
    now = dt.datetime.now(dt.UTC)
    for attempt in range(3):  # three workers die holding it
        at = now + dt.timedelta(seconds=61 * attempt)
        with transaction(engine) as s:
            jobs.reclaim(s, at)
            assert jobs.claim(s, f"host:{attempt}:dead", at) is not None
    with transaction(engine) as s:
        jobs.reclaim(s, now + dt.timedelta(seconds=61 * 3))
    run = _run(world, job_id)
    assert run["state"] == "failed" and run["state_label"] == "失败"
    assert "多次中断" in run["error"] and run["attempts"] == 3
    page = world.browser("reviewer").get("/console/jobs")
    assert "多次中断" in page.text and "3 / 3" in page.text


def test_the_jobs_page_shows_jobs_to_the_roles_that_may_see_them(world: World) -> None:
    job_id = _start(world)
    assert world.run_jobs() == 1
    with transaction(world.app.state.engine) as s:
        assert jobs.schedule(s, "expire", "2025-09-30T14", {}, dt.datetime(2025, 9, 30, 6, 5, tzinfo=dt.UTC))
    for user in ("reviewer", "auditor", "sysadmin"):
        page = world.browser(user).get("/console/jobs")
        assert page.status_code == 200, (user, page.text)
        assert f'href="/console/runs/{job_id}">数据比对</a>' in page.text
        assert "已完成" in page.text and "过期清理" in page.text and "排队中" in page.text
        assert "系统（定时）" in page.text and "1 / 3" in page.text
        assert 'href="/console/jobs">任务</a>' in page.text
    listed = world.client.get("/api/jobs", headers=world.auth("auditor")).json()
    assert {j["kind_label"] for j in listed} >= {"数据比对", "过期清理"}
    for user in ("maker", "checker", "policy_sci", "secadmin"):
        refused = world.browser(user).get("/console/jobs")
        assert refused.status_code == 403, user
        assert 'href="/console/jobs"' not in world.browser(user).get("/console").text
    with transaction(world.app.state.engine, read_only=True) as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 3  # the template's run, this one, the sweep


class DiesMidWave(MemoryGateway):
    """The enterprise's phone, behind a gateway whose process is killed after `alive` messages."""

    def __init__(self, alive: int) -> None:
        super().__init__()
        self.alive = alive

    def send(self, sms: OutgoingSms) -> str:
        if len(self.sent) == self.alive:
            raise KeyboardInterrupt  # the worker's process ends here
        return super().send(sms)


def test_an_sms_job_retried_after_its_worker_died_sends_each_notice_once(world: World) -> None:
    chosen = {"filter": {"policy_id": "c-gaoxin"}}
    assert world.bulk("/api/review/release", "release", chosen).status_code == 200
    seen = world.client.post(
        "/api/review/preview", json={**chosen, "action": "notify"}, headers=world.auth("reviewer")
    ).json()
    assert seen["count"] >= 3
    engine = world.app.state.engine
    now = dt.datetime.now(dt.UTC)
    with transaction(engine) as s:
        selection = Selection(filter=OfferFilter(policy_id="c-gaoxin"))
        job = enqueue_notices(s, selection, Tally(seen["count"], Decimal(seen["total"])), "reviewer", now)
    ctx = world.app.state.worker.ctx
    dying = Worker(replace(ctx, gateway=DiesMidWave(alive=2)), schedule={})
    with pytest.raises(KeyboardInterrupt):
        dying.run_once()
    assert len(dying.ctx.gateway.sent) == 2
    assert world.run_jobs() == 0  # still held under the dead worker's lease

    phone = MemoryGateway()
    later = Worker(replace(ctx, gateway=phone), clock=lambda: now + dt.timedelta(seconds=61), schedule={})
    assert later.drain() == 1
    with transaction(engine, read_only=True) as s:
        row = jobs.get(s, job.public_id)
        notices = s.execute(
            select(SmsMessage.offer_id, SmsMessage.status).where(SmsMessage.kind == "notice")
        ).all()
    assert row.state == "done" and row.attempts == 2 and row.error is None
    sent_to = [m.phone for m in dying.ctx.gateway.sent + phone.sent]
    assert len(sent_to) == len(set(sent_to))  # nobody twice
    # Everyone once: the message in the gateway's hands when the process died went again, with its key.
    assert len(sent_to) == seen["count"]
    assert len({o for o, _ in notices}) == len(notices) == seen["count"]
    assert {status for _, status in notices} == {"sent"}
    assert world.offers("c-gaoxin", "released") == []


def test_three_workers_queue_the_reminders_and_the_sweep_once_per_period(world: World) -> None:
    ctx = world.app.state.worker.ctx
    morning = dt.datetime(2025, 9, 30, 6, 5, tzinfo=dt.UTC)
    workers = [Worker(ctx, name=f"w{i}", schedule=SCHEDULE, clock=lambda: morning) for i in range(3)]
    # One of each periodic job, whichever worker ran them: the enterprises' reminders, the sweep, the
    # staff's SLA reminders, the escalation, the outreach and the closing SMS with their rating links.
    assert sum(w.drain() for w in workers) == 6
    an_hour_later = [
        Worker(ctx, schedule=SCHEDULE, clock=lambda: morning + dt.timedelta(hours=1)) for _ in range(3)
    ]
    # The next hour's sweep, SLA reminders (every ten minutes), escalation and rating links; the day's
    # others ran.
    assert sum(w.drain() for w in an_hour_later) == 4
    with transaction(world.app.state.engine, read_only=True) as s:
        rows = s.scalars(select(Job).where(Job.period_key.is_not(None)).order_by(Job.period_key)).all()
    assert [(r.period_key, r.state, r.started_by) for r in rows] == [
        ("escalate:2025-09-30T14", "done", "system"),  # China time
        ("escalate:2025-09-30T15", "done", "system"),
        ("expire:2025-09-30T14", "done", "system"),
        ("expire:2025-09-30T15", "done", "system"),
        ("outreach:2025-09-30", "done", "system"),
        ("rating_links:2025-09-30T14", "done", "system"),
        ("rating_links:2025-09-30T15", "done", "system"),
        ("reminders:2025-09-30", "done", "system"),
        ("sla_reminders:2025-09-30T14:00", "done", "system"),
        ("sla_reminders:2025-09-30T15:00", "done", "system"),
    ]


def test_zhida_worker_stops_on_sigterm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ZHIDA_DATABASE_URL": f"sqlite:///{tmp_path / 'zhida.db'}",
        "ZHIDA_DATA_DIR": str(tmp_path / "web"),
        "ZHIDA_SCHEDULE": "false",
    }
    log = (tmp_path / "worker.log").open("w")  # its JSON log and warnings, apart from what users read
    worker = subprocess.Popen(
        [sys.executable, "-m", "api", "worker", "--poll", "0.2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert "已启动" in worker.stdout.readline()
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
    assert worker.returncode == 0, out
    assert "完成当前任务后退出" in out and "任务进程已停止" in out
