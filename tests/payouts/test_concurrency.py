"""Concurrency: many phones confirming the same offers, two makers batching the same offers.

Meant for PostgreSQL (row locks, SKIP LOCKED); they run on SQLite too, where writers take turns.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import Counter
from collections.abc import Callable

from sqlalchemy import Engine, select

from payouts import audit, batches, confirm
from payouts.db import transaction
from payouts.models import AuditEvent, BatchLine, Confirmation, Offer
from rules.errors import StateError

H = dt.timedelta(hours=1)


def run_together(n: int, work: Callable[[int], object]) -> tuple[list[object], list[BaseException]]:
    """Run `work(0..n-1)` in n threads that start at the same moment; results and errors."""
    start = threading.Barrier(n)
    results: list[object] = []
    errors: list[BaseException] = []

    def one(k: int) -> None:
        start.wait()
        try:
            results.append(work(k))
        except BaseException as e:  # collected and asserted on by the caller
            errors.append(e)

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


def test_fifty_phones_confirming_the_same_offers_give_one_confirmation_each(
    engine: Engine, notified, t0
) -> None:
    tokens = list(notified.links.values())

    def phone(k: int) -> list[bool]:
        order = random.Random(k).sample(tokens, len(tokens))
        seen = []
        for token in order:
            with transaction(engine) as s:
                seen.append(
                    confirm.confirm(s, token, ip=f"10.0.0.{k}", user_agent=f"phone {k}", now=t0 + H).repeated
                )
        return seen

    results, errors = run_together(50, phone)
    assert errors == []
    assert sum(not repeated for seen in results for repeated in seen) == len(tokens)
    with transaction(engine) as s:
        rows = s.scalars(select(Confirmation)).all()
        assert len(rows) == len(tokens) and len({r.offer_id for r in rows}) == len(tokens)
        events = s.scalars(select(AuditEvent).where(AuditEvent.action == "confirm")).all()
        assert sorted(e.entity_id for e in events) == sorted(notified.ids[n] for n in notified.links)
        assert audit.verify(s).ok


def _confirm_all(engine: Engine, notified, t0) -> list[str]:
    with transaction(engine) as s:
        for token in notified.links.values():
            confirm.confirm(s, token, ip=None, user_agent=None, now=t0 + H)
    return [notified.ids[n] for n in notified.links]


def test_two_makers_batching_the_same_offers_never_both_get_them(engine: Engine, notified, t0) -> None:
    ids = _confirm_all(engine, notified, t0)

    def maker(k: int) -> str:
        with transaction(engine) as s:
            return batches.create_batch(
                s, "wengang", ("maker", "maker2")[k], t0 + 2 * H, public_ids=ids
            ).reference

    made, errors = run_together(2, maker)
    assert len(made) == 1 and len(errors) == 1 and isinstance(errors[0], StateError)
    with transaction(engine) as s:
        lines = Counter(s.scalars(select(BatchLine.offer_id).where(BatchLine.live)).all())
        assert len(lines) == len(ids) and set(lines.values()) == {1}
        assert audit.verify(s).ok


def test_two_makers_batching_everything_split_the_offers_without_overlap(
    engine: Engine, notified, t0
) -> None:
    ids = _confirm_all(engine, notified, t0)

    def maker(k: int) -> int:
        with transaction(engine) as s:
            return batches.create_batch(s, "wengang", ("maker", "maker2")[k], t0 + 2 * H).line_count

    made, errors = run_together(2, maker)
    # Either both got a share (PostgreSQL skips rows the other is taking) or one got all and the other none.
    assert all(isinstance(e, StateError) for e in errors)
    assert sum(made) == len(ids)  # type: ignore[arg-type]
    with transaction(engine) as s:
        lines = Counter(s.scalars(select(BatchLine.offer_id).where(BatchLine.live)).all())
        assert set(lines.values()) == {1}
        assert {o.state for o in s.scalars(select(Offer).where(Offer.public_id.in_(ids)))} == {"in_batch"}
        assert audit.verify(s).ok
