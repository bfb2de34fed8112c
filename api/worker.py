"""The worker: claims durable jobs (payouts/jobs.py) and runs them, one at a time, with a heartbeat.

`zhida worker` runs one in its own process; `zhida serve` (unless `--no-worker`) runs one in a thread of
the web process, so that the demo and a small installation need one command. Any number may run
against one database: a job is held by one worker at a time, and a job whose worker died is taken up
again by another once its lease runs out (or failed, after its last attempt).

What each kind of job does is a handler in `HANDLERS` (kind → function of the worker's `Context` and
the claim, returning the job's result). Handlers are idempotent, because a job may run again after a
crash: a match run is not imported twice (its run id), and an SMS is not sent again once claimed in the
outbox (payouts.sms claims each message before it goes out). Every worker also queues the periodic jobs
(`SCHEDULE`) for the current period; the job's unique period key makes that happen once per period.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session, col

from api.matchjobs import MatchJobs
from api.settings import Settings
from payouts import jobs, outbox, sms
from payouts.db import transaction
from payouts.models import Job, Offer, SmsMessage
from payouts.selection import OfferFilter, Selection, Tally
from portal.standings import Standings
from rules.errors import ZhidaError
from rules.formats import CHINA

log = logging.getLogger("zhida.worker")


@dataclass
class Context:
    """What the handlers work with: the database, settings, the SMS gateway, the match jobs' folders and
    the enterprise pages' cache."""

    engine: Engine
    settings: Settings
    gateway: sms.SmsGateway
    matchjobs: MatchJobs
    standings: Standings
    mail: outbox.MailGateway = field(default_factory=lambda: outbox_mail())


def outbox_gateway() -> sms.SmsGateway:
    """The outbox, logging each message by its masked number (as the API does without the demo phone)."""
    return sms.OutboxGateway(
        echo=lambda line: log.info("sms", extra={"fields": {"to": line.split(" ", 1)[0]}})
    )


def outbox_mail() -> outbox.MailGateway:
    """E-mail kept in the outbox and logged by its masked address (a relay is configured per site)."""
    return outbox.OutboxMail(
        echo=lambda line: log.info("mail", extra={"fields": {"to": line.split(" ", 1)[0]}})
    )


def context(
    engine: Engine,
    settings: Settings,
    gateway: sms.SmsGateway | None = None,
    standings: Standings | None = None,
) -> Context:
    """The handlers' context: the outbox unless a gateway is given (the web process's demo phone), and
    the web process's cache of enterprise pages when it runs the worker itself."""
    return Context(
        engine=engine,
        settings=settings,
        gateway=gateway or outbox_gateway(),
        matchjobs=MatchJobs(settings.data_dir / "runs", engine),
        standings=standings or Standings(settings.data_dir / "enterprise_cache"),
    )


def _sms_result(r: sms.SendResult) -> dict[str, Any]:
    return {"sent": r.sent, "failed": r.failed, "errors": r.errors[:20]}


def run_match(ctx: Context, claim: jobs.Claim) -> dict[str, Any]:
    return ctx.matchjobs.execute(claim)


def send_notices(ctx: Context, claim: jobs.Claim) -> dict[str, Any]:
    """The notices of a chosen set of released offers, whose count and total its user confirmed.

    The first attempt checks the set against the confirmed tally before anything is sent. A later
    attempt (its worker died mid-way) cannot: the offers already notified have left the set. It sends at
    most the confirmed count less the notices that went out (or may have) for the set since the job
    began; a message left `sending` by the dead worker is handed over again with its idempotency key
    (payouts.sms.send_notices_in_chunks) and counts in this attempt.
    """
    p = claim.params
    selection = selection_from(p["selection"])
    expected = Tally(int(p["expected_count"]), Decimal(p["expected_total"]))
    now = dt.datetime.now(dt.UTC)
    limit: int | None = None
    if claim.attempt > 1:
        with transaction(ctx.engine, read_only=True) as s:
            began = claim.job.started_at or claim.job.created_at
            gone = s.scalar(
                select(func.count())
                .select_from(SmsMessage)
                .where(
                    SmsMessage.kind == "notice",
                    SmsMessage.status == "sent",  # `sending` ones go again (same key), failed are retried
                    col(SmsMessage.created_at) >= began,
                    col(SmsMessage.offer_id).in_(select(Offer.id).where(selection.condition())),
                )
            )
        limit = max(0, expected.count - int(gone or 0))
        if limit == 0:
            return {"sent": 0, "failed": 0, "errors": []}
    r = sms.send_notices_in_chunks(
        ctx.engine,
        ctx.gateway,
        now,
        ctx.settings.payouts(),
        actor=claim.job.started_by,
        selection=selection,
        expected=expected if limit is None else None,
        limit=limit,
    )
    return _sms_result(r)


def reminders(ctx: Context, claim: jobs.Claim) -> dict[str, Any]:
    """The reminders due now (each tier once per offer: payouts.sms.send_reminders)."""
    with transaction(ctx.engine) as s:
        r = sms.send_reminders(s, ctx.gateway, dt.datetime.now(dt.UTC), ctx.settings.payouts())
    return _sms_result(r)


def sla_reminders(ctx: Context, claim: jobs.Claim) -> dict[str, Any]:
    """Staff reminded a working day and an hour before their deadlines (each message once)."""
    from reports import supervision

    with transaction(ctx.engine) as s:
        r = supervision.remind(
            s,
            ctx.gateway,
            ctx.mail,
            dt.datetime.now(dt.UTC),
            ctx.settings.sla(),
            sign=ctx.settings.payouts().sms_sign,
        )
    return r.plain()


def escalate(ctx: Context, claim: jobs.Claim) -> dict[str, Any]:
    """Overdue work sent to each department's head as a 督办 list (once per department and day)."""
    from reports import supervision

    with transaction(ctx.engine) as s:
        r = supervision.escalate(
            s,
            ctx.gateway,
            ctx.mail,
            dt.datetime.now(dt.UTC),
            ctx.settings.sla(),
            sign=ctx.settings.payouts().sms_sign,
        )
    return r.plain()


def outreach(ctx: Context, claim: jobs.Claim) -> dict[str, Any]:
    """Near-miss and missing-data enterprises of `outreach: true` policies told what is missing (capped)."""
    from portal import outreach as reach

    r = reach.send(ctx.engine, ctx.gateway, dt.datetime.now(dt.UTC), ctx.settings.outreach())
    return r.plain()


def rating_links(ctx: Context, claim: jobs.Claim) -> dict[str, Any]:
    """The closing SMS, with its rating link, of every item that ended recently (each once)."""
    from portal import ratings

    r = ratings.send_links(
        ctx.engine,
        ctx.gateway,
        dt.datetime.now(dt.UTC),
        ctx.settings.payouts(),
        ctx.settings.rating_link_base,
    )
    return {"sent": r.sent, "failed": r.failed, "opted_out": r.opted_out, "no_phone": r.no_phone}


def expire(ctx: Context, claim: jobs.Claim) -> dict[str, Any]:
    """The expiry sweep: offers past their confirmation deadline become expired."""
    with transaction(ctx.engine) as s:
        return {"expired": sms.expire_overdue(s, dt.datetime.now(dt.UTC))}


Handler = Callable[[Context, jobs.Claim], dict[str, Any]]
HANDLERS: dict[str, Handler] = {
    "match": run_match,
    "send_notices": send_notices,
    "reminders": reminders,
    "expire": expire,
    "sla_reminders": sla_reminders,
    "escalate": escalate,
    "outreach": outreach,
    "rating_links": rating_links,
}
# Periodic jobs: kind → the period key of a moment, in China time (one job per kind and period, whatever
# the number of workers).
SCHEDULE: dict[str, Callable[[dt.datetime], str]] = {
    "reminders": lambda at: at.astimezone(CHINA).strftime("%Y-%m-%d"),  # daily: each tier goes once anyway
    "expire": lambda at: at.astimezone(CHINA).strftime("%Y-%m-%dT%H"),  # hourly
    # Every ten minutes, so the hour-before reminder goes out within ten minutes of its moment.
    "sla_reminders": lambda at: at.astimezone(CHINA).strftime("%Y-%m-%dT%H:") + f"{at.minute // 10}0",
    "escalate": lambda at: at.astimezone(CHINA).strftime("%Y-%m-%dT%H"),  # hourly; each head once a day
    "outreach": lambda at: at.astimezone(CHINA).strftime("%Y-%m-%d"),  # daily
    "rating_links": lambda at: at.astimezone(CHINA).strftime("%Y-%m-%dT%H"),  # hourly
}


def enqueue_notices(
    session: Session, selection: Selection, expected: Tally, by: str, now: dt.datetime
) -> Job:
    """Queue the notices of the chosen released offers, whose count and total `by` confirmed."""
    params = {
        "selection": selection_json(selection),
        "expected_count": expected.count,
        "expected_total": format(expected.total, "f"),
    }
    return jobs.enqueue(session, "send_notices", params, by, now)


def selection_json(selection: Selection) -> dict[str, Any]:
    """A selection as a job's parameters hold it."""
    f = selection.filter
    return {
        "offers": list(selection.offers) if selection.offers is not None else None,
        "filter": None
        if f is None
        else {
            "policy_id": f.policy_id,
            "run_id": f.run_id,
            "states": list(f.states),
            "uscc": f.uscc,
            "name": f.name,
        },
    }  # the scope is the actor's, applied again when the job runs (payouts.sms, payouts/scope.py)


def selection_from(data: dict[str, Any]) -> Selection:
    f = data.get("filter")
    return Selection(
        offers=tuple(data["offers"]) if data.get("offers") is not None else None,
        filter=None if f is None else OfferFilter(**{**f, "states": tuple(f.get("states", ()))}),
    )


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class Stop(Exception):
    """Raised in the worker's thread to give back the job it holds at once (a second SIGTERM)."""


class Worker:
    """Claims and runs jobs until stopped; `run_once` runs one (False when nothing was due)."""

    def __init__(
        self,
        ctx: Context,
        *,
        name: str | None = None,
        lease: dt.timedelta = jobs.DEFAULT_LEASE,
        poll: float = 2.0,
        handlers: dict[str, Handler] | None = None,
        schedule: dict[str, Callable[[dt.datetime], str]] | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.ctx = ctx
        self.name = name or worker_name()
        self.lease = lease
        self.poll = poll
        self.handlers = HANDLERS if handlers is None else handlers
        self.schedule = schedule if schedule is not None else SCHEDULE if ctx.settings.schedule else {}
        self.clock = clock
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._scheduled: dict[str, str] = {}  # kind → the last period this worker queued or saw queued

    def wake(self) -> None:
        """Look for a job now rather than at the next poll (a job was just queued in this process)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop after the job in hand (a graceful stop)."""
        self.stopping.set()
        self._wake.set()

    def enqueue_due(self, now: dt.datetime) -> None:
        """Queue each periodic job for the current period, once per period (whichever worker comes first)."""
        due = {kind: key(now) for kind, key in self.schedule.items()}
        todo = {k: p for k, p in due.items() if self._scheduled.get(k) != p}
        if not todo:
            return
        with transaction(self.ctx.engine) as s:
            for kind, period in todo.items():
                if jobs.schedule(s, kind, period, {}, now):
                    log.info("scheduled", extra={"fields": {"kind": kind, "period": period}})
        self._scheduled.update(todo)

    def run_once(self) -> bool:
        """Reclaim jobs whose lease ran out, queue the periodic ones, then run the next due job, if any."""
        now = self.clock()
        with transaction(self.ctx.engine) as s:
            requeued, failed = jobs.reclaim(s, now)
        if requeued or failed:
            log.warning("reclaimed", extra={"fields": {"requeued": requeued, "failed": failed}})
        self.enqueue_due(now)
        with transaction(self.ctx.engine) as s:
            claim = jobs.claim(s, self.name, now, lease=self.lease, kinds=list(self.handlers))
        if claim is None:
            return False
        self._run(claim)
        return True

    def _run(self, claim: jobs.Claim) -> None:
        fields = {"job": claim.job.public_id, "kind": claim.job.kind, "attempt": claim.attempt}
        log.info("job started", extra={"fields": fields})
        beating = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(claim, beating), daemon=True)
        beat.start()
        result: dict[str, Any] | None = None
        try:
            result = self.handlers[claim.job.kind](self.ctx, claim)
        except Stop:
            with transaction(self.ctx.engine) as s:
                jobs.release(s, claim, self.clock())
            log.warning("job released", extra={"fields": fields})
            raise
        except ZhidaError as e:  # the job's own error (data, rules, a changed selection): no retry helps
            with transaction(self.ctx.engine) as s:
                jobs.fail(s, claim, str(e), self.clock(), retry=False)
            log.info("job failed", extra={"fields": {**fields, "error": str(e)}})
        except Exception as e:
            log.exception("job error", extra={"fields": fields})
            last = claim.attempt >= claim.job.max_attempts
            then = f"已尝试 {claim.attempt} 次，请查看服务日志后重新发起" if last else "将自动重试"
            with transaction(self.ctx.engine) as s:
                jobs.fail(s, claim, f"内部错误（{type(e).__name__}），{then}", self.clock(), retry=True)
        finally:
            beating.set()
            beat.join()
        if result is None:
            return
        with transaction(self.ctx.engine) as s:
            kept = jobs.finish(s, claim, result, self.clock())
        log.info("job done" if kept else "job lost its lease", extra={"fields": fields})
        if kept and claim.job.kind == "match":
            self.ctx.matchjobs.warm(result, self.ctx.standings)

    def _heartbeat(self, claim: jobs.Claim, done: threading.Event) -> None:
        every = self.lease.total_seconds() / 3
        while not done.wait(every):
            try:
                with transaction(self.ctx.engine) as s:
                    if not jobs.heartbeat(s, claim, self.clock(), self.lease):
                        log.warning("job lost its lease", extra={"fields": {"job": claim.job.public_id}})
                        return
            except Exception:  # the database is away for a moment: the next beat tries again
                log.exception("heartbeat failed")

    def drain(self) -> int:
        """Run jobs until none is due; how many ran."""
        n = 0
        while not self.stopping.is_set() and self.run_once():
            n += 1
        return n

    def run(self) -> None:
        """Run jobs until `stop`: each as soon as it is due, looking again every `poll` seconds."""
        while not self.stopping.is_set():
            try:
                ran = self.run_once()
            except Stop:
                return
            except Exception:  # the database is away: wait and try again, never die
                log.exception("worker loop")
                ran = False
            if not ran:
                self._wake.wait(self.poll)
                self._wake.clear()

    def start_thread(self) -> threading.Thread:
        """Run in a daemon thread of this process (the web service's own worker)."""
        thread = threading.Thread(target=self.run, name="zhida-worker", daemon=True)
        thread.start()
        return thread
