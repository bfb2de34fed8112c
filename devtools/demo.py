"""The whole payout flow on one match run, with simulated enterprises and a simulated bank (`make demo`).

Import → release → SMS (kept in memory and in the outbox table) → a share of enterprises confirm →
one enterprise applies for a 快申快享 item (values the registry snapshot holds filled in, answers and
materials supplied, one return for correction, joint review, accepted) → one batch per policy (maker)
→ approval (checker) → bank files → a return file with a few failures → reconciliation. Returns the
funnel with money and the time each step took.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import select
from sqlmodel import Session

from payouts import batches, confirm, imports, notice, offers, sms, users
from payouts.bankfiles import write_return
from payouts.db import PayoutSettings
from payouts.errors import NotFoundError
from payouts.models import MatchRun, Offer, OfferState, Payee
from portal import applications as apps
from reports import funnel
from rules.formats import CHINA
from rules.policy import Policy
from rules.workdays import working_day_after

DEMO_USERS = {
    "demo-reviewer": ("reviewer", "初核演示员"),
    "demo-maker": ("finance_maker", "制单演示员"),
    "demo-checker": ("finance_checker", "复核演示员"),
}
BANK_FAILURES = ("账户已销户", "户名与账号不符", "账户冻结，暂停非柜面业务")
# The demo's 快申快享 item: Sichuan's sales award for first-of-a-kind products, reviewed jointly by the
# provincial economy and finance departments (data/policies/ks-shoutao-sichuan-2025.yaml).
DEMO_APPLY_POLICY, DEMO_APPLY_ITEM, DEMO_APPLY_REGION = "ks-shoutao-sichuan-2025", "award", "51"
DEMO_APPLY_DAY = dt.date(2025, 9, 15)  # a Monday inside the policy's window, before the demo's match date
# What the demo enterprise answers: a 2,000,000 yuan first-year contract with a user in the province; the
# department awards 5% of it, of which the maker (the applicant) gets 30%: 30,000.00 yuan.
DEMO_ANSWERS = {
    "product": "高速精密数控机床（演示）",
    "level": "省内首台套首批次首版次",
    "contract_amount": "2,000,000.00",
    "user_in_province": "是",
}
DEMO_AWARD = Decimal("30000.00")
_PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@dataclass(frozen=True)
class DemoApplication:
    """The 快申快享 item the demo applies for, the snapshot its pre-filled values come from, and where the
    uploaded materials go."""

    policy: Policy
    item_id: str
    snapshot: Path
    as_of: dt.date
    evidence_dir: Path
    region_prefix: str = DEMO_APPLY_REGION
    answers: Mapping[str, str] = field(default_factory=lambda: dict(DEMO_ANSWERS))
    award: Decimal = DEMO_AWARD


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
    application: DemoApplication | None = None,
) -> dict[str, Any]:
    """Run the flow on `run_dir`, writing the bank files to `out_dir`; returns funnel, batches and timings.
    With `application`, one enterprise that the run imported also applies for that 快申快享 item, and its
    accepted application is paid in the same round as the confirmed offers."""
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
    applied: dict[str, Any] | None = None
    if application is not None:
        with step("apply"):
            applied = apply_and_review(session, application)
    to_batch = _policies_with_confirmed(session, imported.run_id)
    if applied is not None and applied["accepted"]:
        to_batch.append(application.policy.id)  # type: ignore[union-attr]
    made: list[dict[str, Any]] = []
    with step("batch"):
        for policy_id in to_batch:
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
            # The simulated bank answers, streamed; it pays the application's batch in full, so that the
            # demo shows the application through to the money.
            share = 0.0 if applied is not None and b["policy_id"] == applied["policy_id"] else fail_share
            with returned.open("wb") as out:
                write_return(
                    batch.reference,
                    batches.file_lines(session, batch),
                    lambda _, share=share: rng.choice(BANK_FAILURES) if rng.random() < share else None,
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
    if applied is not None and applied["offer"] is not None:
        offer = session.scalar(select(Offer).where(Offer.public_id == applied["offer"]))
        applied["offer_state"] = offer.state if offer is not None else None
        applied["batch"] = next(
            (b["reference"] for b in made if b["policy_id"] == applied["policy_id"]), None
        )
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
        "application": applied,
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


# --- 快申快享: one application from the form to the money ------------------------------------------------------


def _china(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), CHINA).astimezone(dt.UTC)


def pick_applicant(session: Session, snapshot: Path, region_prefix: str) -> str | None:
    """The first enterprise (by code) registered in the region that has a registered account (its payee was
    imported with the run): one the demo can pay."""
    table = snapshot / "enterprises.parquet"
    source = (
        f"read_parquet('{table}')"
        if table.exists()
        else f"read_csv('{snapshot / 'enterprises.csv'}', all_varchar = true, header = true)"
    )
    con = duckdb.connect()
    try:
        codes = [
            r[0]
            for r in con.execute(
                f"SELECT uscc FROM {source} WHERE starts_with(region_code, ?) ORDER BY uscc",
                [region_prefix],
            ).fetchall()
        ]
    finally:
        con.close()
    if not codes:
        return None
    paid = set(
        session.scalars(select(Payee.uscc).where(Payee.uscc.in_(codes), Payee.account_no.is_not(None))).all()
    )
    return next((c for c in codes if c in paid), None)


def ensure_reviewers(session: Session, policy: Policy, now: dt.datetime) -> list[str]:
    """One demo reviewer per department that reviews the policy's applications, the lead first."""
    names = []
    for n, department in enumerate(policy.reviewers or [policy.department], start=1):
        name = f"demo-apply-{n}"
        try:
            users.get_user(session, name)
        except NotFoundError:
            users.create_user(
                session,
                name,
                "reviewer",
                display_name=f"{department}审核演示员",
                department=department,
                carry_over=True,  # the department is made as the demo's other users' are
                now=now,
            )
        names.append(name)
    return names


def apply_and_review(session: Session, demo: DemoApplication) -> dict[str, Any]:
    """An enterprise applies for the demo item with what the snapshot holds filled in, answers the
    questions and uploads the required materials; the lead department returns it once for an optional
    material (一次性告知), the enterprise supplies it and submits again; every co-reviewer agrees and the lead
    accepts, which makes a confirmed offer. Working days of September 2025, inside the policy's window."""
    policy, item = demo.policy, demo.policy.item(demo.item_id)
    day = DEMO_APPLY_DAY
    reviewers = ensure_reviewers(session, policy, _china(day, 8))
    uscc = pick_applicant(session, demo.snapshot, demo.region_prefix)
    base: dict[str, Any] = {
        "policy_id": policy.id,
        "title": policy.title,
        "item": item.title,
        "reviewers": list(policy.reviewers or [policy.department]),
        "accepted": False,
        "offer": None,
    }
    if uscc is None:
        return base | {"uscc": None}
    known = apps.known_from_snapshot(
        demo.snapshot, demo.as_of, policy.assessment_year, uscc, apps.form_fields(policy, item)
    )
    actor = f"enterprise:{uscc}"
    app = apps.open_application(session, policy, item.id, uscc, known, _china(day, 9))
    apps.save(
        session, policy, app, given_answers=demo.answers, given_fields={}, actor=actor, now=_china(day, 9)
    )
    asked = item.application.materials if item.application else []

    def upload(m: Any, at: dt.datetime) -> None:
        apps.upload(session, policy, app, m.id, _PDF, f"{m.name}.pdf", demo.evidence_dir, actor=actor, now=at)

    for m in asked:
        if m.required:
            upload(m, _china(day, 10))
    apps.submit(session, policy, app, actor=actor, now=_china(day, 10))
    optional = [m for m in asked if not m.required]
    lead, others = reviewers[0], reviewers[1:]
    returned = 0
    if optional:  # the lead asks for everything still wanted at once; the clock stops meanwhile
        apps.return_for_correction(
            session, app.public_id, [f"请补充上传：{m.name}" for m in optional], by=lead, now=_china(day, 15)
        )
        corrected = working_day_after(day, 1)
        for m in optional:
            upload(m, _china(corrected, 9))
        apps.submit(session, policy, app, actor=actor, now=_china(corrected, 10))
        returned = len(optional)
        day = corrected
    opinion_day = working_day_after(day, 1)
    for name in others:
        apps.give_opinion(
            session, app.public_id, agree=True, note="同意", by=name, now=_china(opinion_day, 10)
        )
    decided = working_day_after(day, 2)
    amount = None if item.amount is not None else demo.award
    offer = apps.accept(session, policy, app.public_id, amount=amount, by=lead, now=_china(decided, 10))
    return base | {
        "uscc": uscc,
        "application": app.public_id,
        "prefilled": sorted(known),
        "answers": len(demo.answers),
        "materials": len(asked),
        "returned_for": returned,
        "accepted": True,
        "decided_on": decided.isoformat(),
        "amount": str(offer.amount),
        "offer": offer.public_id,
    }
