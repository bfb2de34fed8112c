"""The whole payout flow on one match run, with simulated enterprises and a simulated bank (`make demo`).

Import → release → SMS (kept in memory and in the outbox table) → a share of enterprises confirm →
one batch per policy (maker) → approval (checker) → bank files → a return file with a few failures →
reconciliation. Returns the funnel with money and the time each step took.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from payouts import batches, confirm, imports, notice, offers, sms, users
from payouts.bankfiles import write_return
from payouts.db import PayoutSettings
from payouts.errors import NotFoundError
from payouts.models import MatchRun, Offer, OfferState
from reports import funnel

DEMO_USERS = {
    "demo-reviewer": ("reviewer", "初核演示员"),
    "demo-maker": ("finance_maker", "制单演示员"),
    "demo-checker": ("finance_checker", "复核演示员"),
}
BANK_FAILURES = ("账户已销户", "户名与账号不符", "账户冻结，暂停非柜面业务")


def ensure_demo_users(session: Session, now: dt.datetime) -> None:
    """Create the demo reviewer, maker and checker unless they exist."""
    for name, (role, display) in DEMO_USERS.items():
        try:
            users.get_user(session, name)
        except NotFoundError:
            users.create_user(session, name, role, display_name=display, now=now)


HOUR, DAY = dt.timedelta(hours=1), dt.timedelta(days=1)


def notice_if_required(session: Session, reference: str, maker: str, opened: dt.datetime) -> dt.datetime:
    """Open the public notice (公示) a batch's policy requires, at `opened`; when the batch may be approved
    (`opened` when its policy requires none)."""
    batch = batches.get_batch(session, reference)
    if notice.notice_period(session, batch.policy_id, batch.period) is None:
        return opened
    return notice.open_notice(session, reference, maker, opened).ends_at


def demo_flow(
    session: Session,
    run_dir: Path,
    out_dir: Path,
    *,
    confirm_share: float = 0.8,
    fail_share: float = 0.05,
    seed: int = 0,
    now: dt.datetime | None = None,
    settings: PayoutSettings | None = None,
) -> dict[str, Any]:
    """Run the flow on `run_dir`, writing the bank files to `out_dir`; returns funnel, batches and timings."""
    settings = settings or PayoutSettings.from_env()
    rng = random.Random(seed)
    start = now or dt.datetime.now(dt.UTC)
    timings: dict[str, float] = {}

    @contextmanager
    def step(name: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - t, 3)

    def at(hours: float) -> dt.datetime:
        return start + dt.timedelta(hours=hours)

    ensure_demo_users(session, start)
    with step("import"):
        imported = imports.import_run(session, run_dir, "demo-reviewer", at(0))
    with step("release"):
        offers.release(session, "demo-reviewer", at(1), run_id=imported.run_id)
    phone = sms.MemoryGateway()
    with step("sms"):
        sent = sms.send_notices(session, phone, at(2), settings)
    with step("confirm"):
        answered = _enterprises_answer(session, phone, settings, confirm_share, rng, at(26))
    made: list[dict[str, Any]] = []
    with step("batch"):
        for policy_id in _policies_with_confirmed(session, imported.run_id):
            batch = batches.create_batch(session, policy_id, "demo-maker", at(48), settings=settings)
            made.append({"reference": batch.reference, "policy_id": policy_id, "lines": batch.line_count})
    with step("approve"):
        for b in made:
            # A policy that requires a public notice (公示) is approved once its notice has run.
            b["approved_at"] = max(at(50), notice_if_required(session, b["reference"], "demo-maker", at(48)))
            batches.approve(session, b["reference"], "demo-checker", b["approved_at"])
    with step("export"):
        for b in made:
            files = batches.export(session, b["reference"], "demo-maker", out_dir, b["approved_at"] + HOUR)
            b["files"] = [str(files.csv_path), str(files.xml_path)]
    with step("reconcile"):
        for b in made:
            batch = batches.get_batch(session, b["reference"])
            returned = out_dir / f"{b['reference']}.return.csv"
            with returned.open("wb") as out:  # the simulated bank answers, streamed
                write_return(
                    batch.reference,
                    batches.file_lines(session, batch),
                    lambda _: rng.choice(BANK_FAILURES) if rng.random() < fail_share else None,
                    out,
                )
            with returned.open("rb") as data:
                result = batches.reconcile(
                    session,
                    b["reference"],
                    data,
                    "demo-maker",
                    b.pop("approved_at") + DAY,
                    filename=returned.name,
                )
            b.update(paid=result.paid, failed=result.failed, paid_amount=str(result.paid_amount))
    return {
        "run_id": imported.run_id,
        "imported": {
            "offers": imported.offers,
            "held": imported.held,
            "skipped": imported.skipped,
            "zero": imported.zero,
        },
        "sms": {"sent": sent.sent, "failed": sent.failed},
        "answers": answered,
        "batches": made,
        "funnel": {
            "stages": funnel.plain(funnel.stages(session, run_id=imported.run_id)),
            "states": funnel.plain(funnel.by_state(session, run_id=imported.run_id)),
        },
        "timings": timings,
    }


def _enterprises_answer(
    session: Session,
    phone: sms.MemoryGateway,
    settings: PayoutSettings,
    share: float,
    rng: random.Random,
    now: dt.datetime,
) -> dict[str, int]:
    """Each enterprise that got a notice confirms with probability `share`; the others stay silent."""
    answered = {"confirmed": 0, "silent": 0}
    for message in phone.sent:
        token = message.params["link"].removeprefix(settings.link_base)
        if rng.random() < share:
            confirm.confirm(
                session,
                token,
                ip=f"203.0.113.{rng.randrange(1, 255)}",
                user_agent="Mozilla/5.0 (iPhone)",
                now=now,
            )
            answered["confirmed"] += 1
        else:
            answered["silent"] += 1
    return answered


def _policies_with_confirmed(session: Session, run_id: str) -> list[str]:
    run = session.scalar(select(MatchRun.id).where(MatchRun.run_id == run_id))
    return sorted(
        session.scalars(
            select(Offer.policy_id)
            .where(Offer.match_run_id == run, Offer.state == OfferState.CONFIRMED.value)
            .distinct()
        ).all()
    )
