"""The demo flow `make demo` runs: the whole way from a match run to reconciled payments."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from devtools.demo import demo_flow
from payouts import audit


def test_demo_flow_pays_confirmed_offers_and_reports_the_funnel(
    tx, small_run: Path, tmp_path: Path, t0
) -> None:
    with tx() as s:
        report = demo_flow(s, small_run, tmp_path / "bank", confirm_share=1.0, fail_share=0.0, now=t0)
    stages = {st["stage"]: st for st in report["funnel"]["stages"]}
    assert stages["matched"]["count"] == 7
    # #5 has no account and #6 no phone: held; the rest are offered, confirm, and are paid.
    assert stages["released"]["count"] == 5
    assert stages["paid"]["count"] == 5
    assert Decimal(stages["paid"]["amount"]) == Decimal("57500.50")
    assert {b["policy_id"] for b in report["batches"]} == {"wengang", "gaoxin"}
    assert all(Path(f).exists() for b in report["batches"] for f in b["files"])
    assert set(report["timings"]) >= {"import", "release", "sms", "confirm", "batch", "reconcile"}
    with tx() as s:
        assert audit.verify(s).ok
