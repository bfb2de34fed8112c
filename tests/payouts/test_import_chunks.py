"""Importing a run folder larger than one chunk: every offer, the import event's member digest, and
nothing at all written when a row of a late chunk is bad."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from payouts import audit
from payouts.errors import RunImportError
from payouts.imports import import_run
from payouts.models import AuditEvent, MatchRun, Offer, Payee

CHUNK = 4  # rows read at a time: the runs below span several chunks of each file
ENTERPRISES = 23


def _candidates() -> list[tuple[str, str, int, str]]:
    """Two policies over 23 enterprises; #7 has no account; #9's amount was cut to nothing."""
    rows = [("wengang", "sme", n, f"{n}00.{n:02d}") for n in range(1, ENTERPRISES + 1)]
    rows += [("gaoxin", "main", n, f"{n}0.10") for n in range(2, ENTERPRISES + 1, 3)]
    return [(p, i, n, "0.00" if (p, n) == ("wengang", 9) else a) for p, i, n, a in rows]


def _run(ex, path: Path, candidates: list[tuple[str, str, int, str]], *, parts: int = 1) -> Path:
    payees = [ex.payee(n, account=n != 7) for n in range(1, ENTERPRISES + 1)]
    policies = [
        ex.policy("wengang", budget=None, items=("sme",)),
        ex.policy("gaoxin", budget=None, confirmation="none"),
    ]
    return ex.write_run(path, policies, candidates, payees, parts=parts)


@pytest.mark.parametrize("parts", [1, 3])
def test_a_run_larger_than_one_chunk_is_imported_whole_with_the_digest_of_all_its_offers(
    tx, ex, tmp_path: Path, t0, parts: int
) -> None:
    candidates = _candidates()
    run = _run(ex, tmp_path / "r", candidates, parts=parts)
    with tx() as s:
        r = import_run(s, run, "rev", t0, chunk=CHUNK)
    paid = [c for c in candidates if c[3] != "0.00"]
    assert (r.offers, r.zero, r.skipped) == (len(paid), 1, 0)
    assert r.amount == sum(Decimal(c[3]) for c in paid)
    with tx() as s:
        offers = s.scalars(select(Offer).order_by(Offer.id)).all()
        # Every candidate with an amount is one offer, in the file's order, with its own payee.
        assert [(o.policy_id, o.item_id, o.uscc, o.amount) for o in offers] == [
            (p, i, ex.uscc(n), Decimal(a)) for p, i, n, a in paid
        ]
        payees = {p.id: p for p in s.scalars(select(Payee))}
        assert len(payees) == ENTERPRISES
        assert all(payees[o.payee_id].uscc == o.uscc for o in offers)
        held = [o for o in offers if o.state == "held"]
        assert {o.uscc for o in held} == {ex.uscc(7)}
        for o in held:  # created, then held at once, each change in the log
            history = audit.history(s, "offer", o.public_id)
            assert [(e.from_state, e.to_state, e.reason) for e in history] == [
                (None, "drafted", None),
                ("drafted", "held", "无对公账户"),
            ]
        assert {o.state for o in offers if o.uscc != ex.uscc(7)} == {"drafted"}

        # The import event's digest is the digest of every offer's public id, as it was before the
        # ids were streamed: SHA-256 of the sorted ids, one per line.
        event = s.scalars(
            select(AuditEvent).where(AuditEvent.entity == "offers", AuditEvent.action == "import")
        ).first()
        data = json.loads(event.data)
        assert data["count"] == len(paid)
        assert data["members"] == audit.members_digest([o.public_id for o in offers])
        assert data["members_of"] == "run"
        assert audit.verify(s).ok


def test_a_duplicate_in_a_late_chunk_refuses_the_whole_run_and_leaves_nothing(
    tx, ex, tmp_path: Path, t0
) -> None:
    candidates = _candidates()
    late = [*candidates, candidates[0]]  # the first chunk's first row again, in the last chunk
    run = _run(ex, tmp_path / "r", late)
    with tx() as s:
        before = s.scalar(select(func.count()).select_from(AuditEvent))
    with pytest.raises(RunImportError, match="1 组重复的（政策、事项、企业）"), tx() as s:
        import_run(s, run, "rev", t0, chunk=CHUNK)
    with tx() as s:
        assert s.scalar(select(func.count()).select_from(Offer)) == 0
        assert s.scalar(select(func.count()).select_from(Payee)) == 0
        assert s.scalar(select(func.count()).select_from(MatchRun)) == 0
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == before
    # The same folder without the bad row imports in full, in the same database.
    run = _run(ex, tmp_path / "good", candidates)
    with tx() as s:
        assert import_run(s, run, "rev", t0, chunk=CHUNK).offers == len(candidates) - 1


def test_a_failure_after_the_offers_are_written_leaves_nothing(
    tx, ex, tmp_path: Path, t0, monkeypatch
) -> None:
    run = _run(ex, tmp_path / "r", _candidates())

    written = []

    def crash(session, *args: object, **kwargs: object) -> int:
        written.append(session.scalar(select(func.count()).select_from(Offer)))
        raise RuntimeError("the process died before the run's event")

    monkeypatch.setattr(audit, "record", crash)
    with pytest.raises(RuntimeError), tx() as s:
        import_run(s, run, "rev", t0, chunk=CHUNK)
    monkeypatch.undo()
    assert written == [len(_candidates()) - 1]  # every offer was written when it failed
    with tx() as s:
        assert s.scalar(select(func.count()).select_from(Offer)) == 0
        assert s.scalar(select(func.count()).select_from(Payee)) == 0
        assert audit.verify(s).ok
