"""Match runs started from the console or the API, carried out in the background, with a status record.

An adapter until payouts has a table for them: each job is a folder `<root>/<job id>/` holding
`status.json` (the status row), `policies/` (the published versions it ran, copied, so that the run can
be repeated) and `run/` (Contract 4's outputs). When the match is done its candidates are imported as
offers for review (`payouts.imports.import_run`), and the enterprise pages' cache of the run is built
(`portal.standings.Standings.view`), so that no enterprise's first page view waits for it. Job ids are
random, never sequential.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine, select

from api.policystore import PolicyStore
from matcher import runfolder
from matcher.run import run_match
from matcher.runfolder import Manifest
from payouts import imports
from payouts.db import transaction
from payouts.errors import NotFoundError
from payouts.models import MatchRun
from portal import supplied
from portal.standings import Standings
from rules.errors import MatchError, ZhidaError

log = logging.getLogger("zhida.matchjobs")
State = Literal["running", "done", "failed"]
_ID = re.compile(r"^[0-9a-f]{16}$")
STATE_LABELS = {"running": "运行中", "done": "已完成", "failed": "失败"}


@dataclass(frozen=True)
class MatchJob:
    """The status row of one match run."""

    id: str
    state: State
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

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class MatchJobs:
    """The match runs under one folder, and the threads carrying them out in this process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._live: set[str] = set()
        self._lock = threading.Lock()

    def _save(self, job: MatchJob) -> MatchJob:
        folder = self.root / job.id
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / "status.json.tmp"
        tmp.write_text(json.dumps(asdict(job), ensure_ascii=False, indent=2), encoding="utf-8")
        tmp.replace(folder / "status.json")
        return job

    def start(
        self, snapshot: str, snapshot_path: Path, as_of: dt.date, by: str, store: PolicyStore
    ) -> MatchJob:
        """Record a new job with the latest published policies active on `as_of`; `execute` runs it."""
        job_id = secrets.token_hex(8)
        ruleset = store.copy_latest(self.root / job_id / "policies", as_of)
        if not len(ruleset):
            (self.root / job_id / "policies").rmdir()
            (self.root / job_id).rmdir()
            raise MatchError(f"{as_of} 没有处于有效期内的已发布政策，请先发布政策或调整评估日期")
        job = MatchJob(
            id=job_id,
            state="running",
            snapshot=snapshot,
            snapshot_path=str(snapshot_path),
            as_of=as_of.isoformat(),
            started_by=by,
            started_at=_now(),
            policies=[p.key for p in ruleset],
        )
        with self._lock:
            self._live.add(job_id)
        return self._save(job)

    def execute(self, job_id: str, engine: Engine, standings: Standings | None = None) -> None:
        """Match, then import the candidates as offers; the status row says how it ended. Once it is
        saved as done, build the enterprise pages' cache of an imported run (`standings`): pages asking
        for it meanwhile wait for the same build."""
        job = self.get(job_id)
        folder = self.root / job.id
        try:
            with transaction(engine) as s:  # values enterprises supplied and their departments verified
                overrides = supplied.override_records(s)
            result = run_match(
                Path(job.snapshot_path),
                folder / "policies",
                folder / "run",
                dt.date.fromisoformat(job.as_of),
                overrides=overrides,
            )
            job = replace(job, run_id=result.manifest.run_id)
            try:
                with transaction(engine) as s:
                    imported = imports.import_run(s, folder / "run", job.started_by)
                job = replace(
                    job,
                    imported={
                        "offers": imported.offers,
                        "held": imported.held,
                        "skipped": imported.skipped,
                        "amount": format(imported.amount, "f"),
                    },
                )
            except ZhidaError as e:  # the run stands (its lists can be read); its offers could not be made
                job = replace(job, import_error=str(e))
            job = replace(job, state="done", finished_at=_now())
        except ZhidaError as e:
            job = replace(job, state="failed", error=str(e), finished_at=_now())
        except Exception as e:
            log.exception("match job %s failed", job_id)
            job = replace(job, state="failed", error=f"内部错误：{type(e).__name__}", finished_at=_now())
            raise
        finally:
            # Saved before the job leaves the live set, so that no poll in between reads a running job
            # that nobody runs (which it would report as interrupted).
            self._save(job)
            with self._lock:
                self._live.discard(job_id)
        if standings is not None and job.imported is not None:
            with transaction(engine) as s:
                run = s.scalars(select(MatchRun).where(MatchRun.run_id == job.run_id)).one()
            standings.view(run)

    def get(self, job_id: str) -> MatchJob:
        path = self.root / job_id / "status.json"
        if not _ID.match(job_id) or not path.is_file():
            raise NotFoundError(f"没有匹配运行 {job_id}")
        job = MatchJob(**json.loads(path.read_text(encoding="utf-8")))
        if job.state == "running" and job_id not in self._live:
            return replace(job, state="failed", error="运行被中断（服务已重启），请重新运行")
        return job

    def list(self) -> list[MatchJob]:
        """Every job, newest first."""
        ids = [p.parent.name for p in self.root.glob("*/status.json")] if self.root.is_dir() else []
        return sorted((self.get(i) for i in ids if _ID.match(i)), key=lambda j: j.started_at, reverse=True)

    def run_dir(self, job: MatchJob) -> Path:
        return self.root / job.id / "run"

    def manifest(self, job: MatchJob) -> Manifest | None:
        """The manifest of a finished job's run folder; None while it runs, failed, or has none."""
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
