"""The whole payout flow at scale, stage by stage: `zhida bench flow --enterprises N`.

Match → import → release → SMS (to the outbox) → simulated confirmations (not timed) → one batch per
policy (maker) → approvals (checker) → exports (bank files) → the bank's return files (simulated, one
line in 200 failed; not timed) → reconciliation, on a synthetic snapshot of N enterprises
and the bundled policy library (`data/policies`). Each stage runs in a process of its own, so that its
peak memory (getrusage) is its own; it prints the rows it handled, its seconds and its peak RSS, and
last `total: N s, peak RSS: M GiB` over the timed stages.

The database is `ZHIDA_DATABASE_URL` (or `--url`). The benchmark recreates it, so on PostgreSQL its
name must start with `zhida_bench` (e.g. `postgresql://postgres@127.0.0.1:5432/zhida_bench_flow`);
without a URL it uses an SQLite file in the work folder. The snapshot is generated once per size and
seed and kept in the work folder (not timed).
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib
import json
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, make_url, select

AS_OF = dt.date(2025, 9, 30)
T0 = dt.datetime(2025, 10, 8, 1, 0, tzinfo=dt.UTC)
REVIEWER, MAKER, CHECKER = "bench-reviewer", "bench-maker", "bench-checker"
AUDITOR = "bench-auditor"  # reads the audit log (bench console)
POLICIES = Path("data/policies")
BENCH_PREFIX = "zhida_bench"
TIMED = ("match", "import", "release", "sms", "batch", "approve", "export", "reconcile")
STAGES = (*TIMED[:4], "confirm", *TIMED[4:7], "bank", TIMED[7])
STAGE_LABELS = {
    "match": "数据比对",
    "import": "导入要约",
    "release": "初核发布",
    "sms": "发送短信（发件箱）",
    "confirm": "模拟企业确认（不计时）",
    "batch": "组批（每项政策一批）",
    "approve": "复核",
    "export": "导出银行文件",
    "bank": "模拟银行回单（不计时）",
    "reconcile": "导入回单对账",
}


@dataclass(frozen=True)
class Stage:
    """What one stage did: rows handled, seconds, peak RSS of its process."""

    name: str
    rows: int
    seconds: float
    peak_bytes: int

    @property
    def timed(self) -> bool:
        return self.name in TIMED


def _peak_bytes() -> int:
    """This process's peak resident memory. VmHWM, not getrusage: Linux carries ru_maxrss over exec, so
    a child would report its parent's peak when that was higher."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB where /proc is missing


def _paths(work: Path, enterprises: int, seed: int) -> tuple[Path, Path, Path]:
    return work / f"snapshot-{enterprises}-{seed}", work / "run", work / "bank"


@functools.cache
def _engine(url: str) -> Any:
    """The stage's engine: one per process (each stage runs in its own)."""
    from payouts.db import make_engine

    return make_engine(url)


def _stage_match(work: Path, enterprises: int, seed: int, url: str) -> int:
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from matcher import runfolder
    from matcher.run import run_match

    snapshot, run, _ = _paths(work, enterprises, seed)
    shutil.rmtree(run, ignore_errors=True)
    run_match(snapshot, POLICIES, run, AS_OF)
    # The candidates the import turns into offers: those with an amount to pay (reliefs and loans pay 0).
    amounts = pq.read_table(run / runfolder.CANDIDATES, columns=["amount"])["amount"]
    return int(pc.sum(pc.greater(amounts, pa.scalar(Decimal(0), amounts.type))).as_py() or 0)


def _stage_import(work: Path, enterprises: int, seed: int, url: str) -> int:
    from payouts import imports
    from payouts.db import transaction

    _, run, _ = _paths(work, enterprises, seed)
    with transaction(_engine(url)) as s:
        return imports.import_run(s, run, REVIEWER, T0).offers


def _stage_release(work: Path, enterprises: int, seed: int, url: str) -> int:
    from payouts import offers
    from payouts.db import transaction
    from payouts.selection import OfferFilter, Selection

    with transaction(_engine(url)) as s:
        everything = Selection(filter=OfferFilter())
        return offers.release(s, REVIEWER, T0 + dt.timedelta(hours=1), selection=everything).tally.count


def _stage_sms(work: Path, enterprises: int, seed: int, url: str) -> int:
    from payouts import sms
    from payouts.db import PayoutSettings

    sent = sms.send_notices_in_chunks(
        _engine(url), sms.OutboxGateway(), T0 + dt.timedelta(hours=2), PayoutSettings(database_url=url)
    )
    return sent.sent


def _stage_confirm(work: Path, enterprises: int, seed: int, url: str) -> int:
    """Every notified enterprise confirms: one set-based move standing in for their clicks."""
    from payouts import offers
    from payouts.db import transaction
    from payouts.models import Offer, OfferState

    with transaction(_engine(url)) as s:
        moved = offers.move_selected(
            s,
            select(Offer.id).where(Offer.state == OfferState.NOTIFIED.value),
            OfferState.NOTIFIED,
            OfferState.CONFIRMED,
            actor="bench",
            action="confirm",
            subject="bench-flow",
            now=T0 + dt.timedelta(days=1),
        )
    return moved


def _confirmed_policies(url: str) -> list[str]:
    from payouts.db import transaction
    from payouts.models import Offer, OfferState

    with transaction(_engine(url), read_only=True) as s:
        return sorted(
            s.scalars(select(Offer.policy_id).where(Offer.state == OfferState.CONFIRMED.value).distinct())
        )


def _references(url: str) -> list[str]:
    from payouts.db import transaction
    from payouts.models import Batch

    with transaction(_engine(url), read_only=True) as s:
        return sorted(s.scalars(select(Batch.reference)))


def _stage_batch(work: Path, enterprises: int, seed: int, url: str) -> int:
    from payouts import batches
    from payouts.db import PayoutSettings, transaction

    lines = 0
    for policy_id in _confirmed_policies(url):
        with transaction(_engine(url)) as s:
            batch = batches.create_batch(
                s, policy_id, MAKER, T0 + dt.timedelta(days=2), settings=PayoutSettings(database_url=url)
            )
            lines += batch.line_count
    return lines


def _stage_approve(work: Path, enterprises: int, seed: int, url: str) -> int:
    from devtools.demo import notice_if_required
    from payouts import batches
    from payouts.db import transaction

    lines = 0
    for reference in _references(url):
        with transaction(_engine(url)) as s:
            # A policy that requires a public notice (公示) is approved once its notice has run.
            when = max(
                T0 + dt.timedelta(days=2, hours=2), notice_if_required(s, reference, MAKER, T0 + 2 * DAY)
            )
            lines += batches.approve(s, reference, CHECKER, when).line_count
    return lines


DAY = dt.timedelta(days=1)


def _after_approval(batch: Any, later: dt.timedelta) -> dt.datetime:
    """`later` after the batch's approval (a batch on public notice is approved when its notice ends)."""
    return batch.approved_at + later


def _stage_export(work: Path, enterprises: int, seed: int, url: str) -> int:
    from payouts import batches
    from payouts.db import transaction

    _, _, bank = _paths(work, enterprises, seed)
    shutil.rmtree(bank, ignore_errors=True)
    bank.mkdir(parents=True)
    lines = 0
    for reference in _references(url):
        with transaction(_engine(url)) as s:
            batch = batches.get_batch(s, reference)
            batches.export(s, reference, MAKER, bank, _after_approval(batch, dt.timedelta(hours=1)))
            lines += batch.line_count
    return lines


def _stage_bank(work: Path, enterprises: int, seed: int, url: str) -> int:
    """Not timed: the bank's return file of each exported batch, streamed; one line in 200 failed."""
    from payouts import bankfiles, batches
    from payouts.db import transaction

    _, _, bank = _paths(work, enterprises, seed)
    lines = 0
    for reference in _references(url):
        with transaction(_engine(url)) as s, (bank / f"{reference}.return.csv").open("wb") as out:
            batch = batches.get_batch(s, reference)
            failed = lambda ln: "账户已销户" if ln.line_no % 200 == 0 else None  # noqa: E731
            bankfiles.write_return(reference, batches.file_lines(s, batch), failed, out)
            lines += batch.line_count
    return lines


def _stage_reconcile(work: Path, enterprises: int, seed: int, url: str) -> int:
    from payouts import batches
    from payouts.db import transaction

    _, _, bank = _paths(work, enterprises, seed)
    lines = 0
    for reference in _references(url):
        path = bank / f"{reference}.return.csv"
        with transaction(_engine(url)) as s, path.open("rb") as data:
            when = _after_approval(batches.get_batch(s, reference), 2 * DAY)
            r = batches.reconcile(s, reference, data, MAKER, when, filename=path.name)
            lines += r.paid + r.failed
    return lines


_RUNNERS: dict[str, Callable[[Path, int, int, str], int]] = {
    "match": _stage_match,
    "import": _stage_import,
    "release": _stage_release,
    "sms": _stage_sms,
    "confirm": _stage_confirm,
    "batch": _stage_batch,
    "approve": _stage_approve,
    "export": _stage_export,
    "bank": _stage_bank,
    "reconcile": _stage_reconcile,
}


def prepare(work: Path, enterprises: int, seed: int, url: str) -> None:
    """Not timed: the snapshot (once per size and seed), a fresh database, the three staff users."""
    from devtools.generate import generate_snapshot
    from payouts import users
    from payouts.db import migrate, transaction

    snapshot, _, _ = _paths(work, enterprises, seed)
    done = snapshot / ".complete"
    if not done.exists():
        shutil.rmtree(snapshot, ignore_errors=True)
        generate_snapshot(snapshot, enterprises, seed, taken_at=AS_OF)
        done.touch()
    _recreate(url, work)
    engine = _engine(url)
    migrate(engine)
    with transaction(engine) as s:
        for name, role in (
            (REVIEWER, "reviewer"),
            (MAKER, "finance_maker"),
            (CHECKER, "finance_checker"),
            (AUDITOR, "auditor"),
        ):
            users.create_user(s, name, role, now=T0)
    engine.dispose()


def _check_url(url: str) -> None:
    """Refuse a PostgreSQL database not named for the benchmark: it is dropped and created again."""
    parsed = make_url(url)
    name = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" and not name.startswith(BENCH_PREFIX):
        raise SystemExit(
            f"the flow benchmark recreates its database: name it {BENCH_PREFIX}…, not {name!r} "
            f"(e.g. ZHIDA_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/{BENCH_PREFIX}_flow)"
        )


def _recreate(url: str, work: Path) -> None:
    """Drop and create the benchmark's database (PostgreSQL: only one named zhida_bench…)."""
    _engine(url).dispose()  # no pooled connection outlives the database it was opened on
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).unlink(missing_ok=True)
        return
    import psycopg

    name = parsed.database or ""
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def count_offers(url: str) -> int:
    from payouts.db import transaction
    from payouts.models import Offer

    with transaction(_engine(url), read_only=True) as s:
        return int(s.scalar(select(func.count()).select_from(Offer)) or 0)


def _run_stage(name: str, work: Path, enterprises: int, seed: int, url: str) -> Stage:
    """One stage in a process of its own (so the peak memory is the stage's own)."""
    command = [sys.executable, "-m", "devtools.flow", name, str(work), str(enterprises), str(seed), url]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"stage {name} failed:\n{done.stdout}{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Stage(name, figures["rows"], figures["seconds"], figures["peak_bytes"])


def run_flow(
    enterprises: int, work: Path, url: str | None, *, seed: int = 0, report: Callable[[Stage], None]
) -> list[Stage]:
    """Prepare, then run every stage in turn, reporting each as it ends; returns them all."""
    work.mkdir(parents=True, exist_ok=True)
    url = url or f"sqlite:///{(work / 'flow.db').resolve()}"
    _check_url(url)
    prepare(work, enterprises, seed, url)
    stages = []
    for name in STAGES:
        stage = _run_stage(name, work, enterprises, seed, url)
        report(stage)
        stages.append(stage)
    return stages


def totals(stages: list[Stage]) -> tuple[float, int]:
    """The timed stages' seconds added up, and the largest peak RSS among them."""
    timed = [s for s in stages if s.timed]
    return sum(s.seconds for s in timed), max((s.peak_bytes for s in timed), default=0)


def _child(argv: list[str]) -> None:
    name, work, enterprises, seed, url = argv
    for module in ("matcher.run", "payouts.batches", "payouts.imports", "payouts.sms"):
        importlib.import_module(module)  # before the clock starts: the stage is timed, not Python's imports

    started = time.perf_counter()
    rows = _RUNNERS[name](Path(work), int(enterprises), int(seed), url)
    seconds = time.perf_counter() - started
    print(
        json.dumps({"stage": name, "rows": rows, "seconds": round(seconds, 2), "peak_bytes": _peak_bytes()})
    )


if __name__ == "__main__":
    _child(sys.argv[1:])
