"""Match runs started from the console or the API: durable jobs of kind "match" (payouts/jobs.py),
carried out by a worker (`zhida worker`, or the one `zhida serve` runs in its process).

The job row holds the status; the files stay files, referenced from it by the job's id: the folder
`<root>/<job id>/` holds `policies/` (the published versions it runs, copied when the job is started, so
that the run can be repeated) and `run/` (Contract 4's outputs). When the match is done its candidates
are imported as offers for review (`payouts.imports.import_run`), and the enterprise pages' cache of the
run is built (`portal.standings.Standings.view`), so that no enterprise's first page view waits for it.

A match job may run again after its worker died (the lease ran out): a run folder with a manifest is
not matched again, and a run already imported (its run id has a `match_run` row) is not imported again,
so a retried job imports its offers once. Job ids are random, never sequential.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from api.policystore import PolicyStore
from matcher import runfolder
from matcher.run import run_match
from matcher.runfolder import Manifest
from payouts import imports, jobs, offers
from payouts.db import transaction
from payouts.errors import NotFoundError
from payouts.models import Job, JobState, MatchRun
from payouts.scope import Scope
from portal import supplied
from portal.standings import Standings
from rules.errors import MatchError, ZhidaError

log = logging.getLogger("zhida.matchjobs")
KIND = "match"
_ID = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class MatchJob:
    """The status of one match run, as its job row holds it."""

    id: str
    state: str  # queued, running, done, failed (payouts.models.JobState)
    snapshot: str
    snapshot_path: str
    as_of: str
    started_by: str
    started_at: str
    policies: list[str] = field(default_factory=list)
    finished_at: str | None = None
    error: str | None = None
    run_id: str | None = None
    imported: dict[str, Any] | None = None
    import_error: str | None = None
    attempts: int = 0

    @property
    def state_label(self) -> str:
        return jobs.STATE_LABELS[JobState(self.state)]


def _iso(at: dt.datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds")


def match_job(row: Job) -> MatchJob:
    """A match job's status from its job row."""
    params = json.loads(row.params)
    result = json.loads(row.result) if row.result else {}
    return MatchJob(
        id=row.public_id,
        state=row.state,
        snapshot=params["snapshot"],
        snapshot_path=params["snapshot_path"],
        as_of=params["as_of"],
        started_by=row.started_by,
        started_at=_iso(row.created_at) or "",
        policies=list(params.get("policies", [])),
        finished_at=_iso(row.finished_at),
        error=row.error if row.state == "failed" else None,
        run_id=result.get("run_id"),
        imported=result.get("imported"),
        import_error=result.get("import_error"),
        attempts=row.attempts,
    )


class MatchJobs:
    """The match jobs: their rows in the database, their folders under `root`."""

    def __init__(self, root: Path, engine: Engine) -> None:
        self.root = root
        self.engine = engine

    def start(
        self,
        session: Session,
        snapshot: str,
        snapshot_path: Path,
        as_of: dt.date,
        by: str,
        store: PolicyStore,
    ) -> MatchJob:
        """Queue a new job (in `session`: it runs once that commits) with the latest published policies
        active on `as_of`, copied into its folder."""
        job_id = secrets.token_hex(8)
        ruleset = store.copy_latest(self.root / job_id / "policies", as_of)
        if not len(ruleset):
            shutil.rmtree(self.root / job_id, ignore_errors=True)
            raise MatchError(f"{as_of} 没有处于有效期内的已发布政策，请先发布政策或调整评估日期")
        params = {
            "snapshot": snapshot,
            "snapshot_path": str(snapshot_path),
            "as_of": as_of.isoformat(),
            "policies": [p.key for p in ruleset],
        }
        return match_job(jobs.enqueue(session, KIND, params, by, dt.datetime.now(dt.UTC), public_id=job_id))

    def execute(self, claim: jobs.Claim) -> dict[str, Any]:
        """Match (unless a previous attempt finished the run folder), then import the candidates as offers
        (unless that run is imported already); the job's result. A ZhidaError from the match fails the job;
        one from the import leaves the run standing (its lists can be read) with the import's error."""
        job = match_job(claim.job)
        folder = self.root / job.id
        run = folder / "run"
        if not runfolder.has_manifest(run):
            shutil.rmtree(run, ignore_errors=True)  # what an interrupted attempt left half-written
            with transaction(self.engine, read_only=True) as s:  # values enterprises supplied, verified
                overrides = supplied.override_records(s)
            run_match(
                Path(job.snapshot_path),
                folder / "policies",
                run,
                dt.date.fromisoformat(job.as_of),
                overrides=overrides,
            )
        run_id = runfolder.read_manifest(run).run_id
        result: dict[str, Any] = {"run_id": run_id}
        try:
            with transaction(self.engine) as s:
                done = s.scalars(select(MatchRun).where(MatchRun.run_id == run_id)).one_or_none()
                if done is None:
                    imported = imports.import_run(s, run, job.started_by)
                    counts = (imported.offers, imported.held, imported.skipped, imported.amount)
                else:  # an earlier attempt imported it before its worker died
                    counts = (done.offers, done.held, done.skipped, done.amount)
            result["imported"] = {
                "offers": counts[0],
                "held": counts[1],
                "skipped": counts[2],
                "amount": format(counts[3], "f"),
            }
        except ZhidaError as e:
            result["import_error"] = str(e)
        return result

    def warm(self, result: dict[str, Any], standings: Standings) -> None:
        """Build the enterprise pages' cache of an imported run (after its job is saved as done)."""
        if result.get("imported") is None:
            return
        with transaction(self.engine, read_only=True) as s:
            run = s.scalars(select(MatchRun).where(MatchRun.run_id == result["run_id"])).one()
        standings.view(run)

    def get(self, job_id: str) -> MatchJob:
        if not _ID.match(job_id):
            raise NotFoundError(f"没有匹配运行 {job_id}")
        with transaction(self.engine, read_only=True) as s:
            try:
                return match_job(jobs.get(s, job_id, KIND))
            except NotFoundError:
                raise NotFoundError(f"没有匹配运行 {job_id}") from None

    def list(self) -> list[MatchJob]:
        """The latest jobs, newest first."""
        with transaction(self.engine, read_only=True) as s:
            return [match_job(r) for r in jobs.recent(s, kind=KIND)]

    def run_dir(self, job: MatchJob) -> Path:
        return self.root / job.id / "run"

    def manifest(self, job: MatchJob) -> Manifest | None:
        """The manifest of a finished job's run folder; None while it waits or runs, failed, or has none."""
        folder = self.run_dir(job)
        return (
            runfolder.read_manifest(folder)
            if job.state == "done" and runfolder.has_manifest(folder)
            else None
        )


def snapshot_dirs(root: Path) -> dict[str, Path]:
    """The registry snapshots under `root`: each sub-folder with an `enterprises` table, by name."""
    if not root.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(root.iterdir())
        if p.is_dir() and any((p / f"enterprises.{ext}").exists() for ext in ("parquet", "csv"))
    }


def imported_within(
    session: Session, mine: Scope, runs: Sequence[tuple[str | None, dict[str, Any] | None]]
) -> list[dict[str, Any] | None]:
    """What each run (run id, the import's counts from its job's result) imported, as a user may see it:
    for a user who sees everything, the import's own counts (offers, held for want of an account, skipped,
    money); for any narrower scope (`payouts/scope.py`), only the run's offers within it and their money
    (`scoped`), never the run-wide figures."""
    if mine.everything:
        return [imported for _, imported in runs]
    totals = offers.run_totals(session, [r for r, imported in runs if r and imported is not None], mine)
    out: list[dict[str, Any] | None] = []
    for run_id, imported in runs:
        if imported is None or not run_id:
            out.append(imported)
            continue
        n, amount = totals.get(run_id, (0, Decimal("0")))
        out.append({"offers": n, "amount": format(amount, "f"), "scoped": True})
    return out
