"""`zhida bench confirm` counts real confirmations, each in its own transaction, with and without the
audit append; the product's chain is untouched by the measurement."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from devtools.confirm_rate import Rate, run
from payouts import audit
from payouts.db import make_engine, transaction
from payouts.models import AuditEvent, Offer


def test_the_rates_count_offers_confirmed_in_the_database(tmp_path: Path) -> None:
    seen: list[Rate] = []
    rates = run(3000, tmp_path, None, [1, 2], 0.5, seen.append)
    assert [(r.clients, r.chain) for r in rates] == [(1, True), (1, False), (2, True), (2, False)]
    assert all(r.confirmed > 0 for r in rates) and seen == rates
    engine = make_engine(f"sqlite:///{tmp_path / 'confirm.db'}")
    with transaction(engine, read_only=True) as s:
        confirmed_by_clicks = s.scalar(
            select(func.count())
            .select_from(Offer)
            .where(Offer.state == "confirmed", Offer.round == 1)
            .where(Offer.confirmed_at.is_not(None), Offer.deadline.is_not(None))
        )
        chained = s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "confirm"))
        assert confirmed_by_clicks == sum(r.confirmed for r in rates)
        assert chained == sum(r.confirmed for r in rates if r.chain)  # only the "with chain" runs append
        assert audit.verify(s).ok
    assert audit.append.__module__ == "payouts.audit"  # the real append is back
