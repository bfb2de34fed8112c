"""`make demo`'s 快申快享 application: a Sichuan enterprise of the synthetic snapshot applies for the
library's first-of-a-kind sales award with what the registry holds filled in, is returned once for a
material, is reviewed jointly by two departments, accepted, and paid in the same round as the offers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from api.demo import application_line
from devtools.demo import DEMO_APPLY_ITEM, DEMO_APPLY_POLICY, DemoApplication, demo_flow
from devtools.generate import generate_snapshot
from matcher.run import run_match
from payouts import audit
from payouts.models import Offer
from portal import applications as apps
from portal.models import Application, ApplicationOpinion
from rules.ruleset import library_dir
from rules.validate import load_policy

AS_OF = dt.date(2025, 9, 30)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small synthetic snapshot (about 1% of it in Guang'an, Sichuan) matched against the library."""
    root = tmp_path_factory.mktemp("demo")
    generate_snapshot(root / "snapshot", 3000, 42)
    run_match(root / "snapshot", library_dir(), root / "run", AS_OF)
    return root / "snapshot", root / "run"


def _application(snapshot: Path, tmp_path: Path) -> DemoApplication:
    return DemoApplication(
        policy=load_policy(library_dir() / f"{DEMO_APPLY_POLICY}.yaml"),
        item_id=DEMO_APPLY_ITEM,
        snapshot=snapshot,
        as_of=AS_OF,
        evidence_dir=tmp_path / "evidence",
    )


def test_the_demo_application_goes_from_the_form_to_the_money(
    tx, demo_run: tuple[Path, Path], tmp_path: Path, t0
) -> None:
    snapshot, run = demo_run
    with tx() as s:
        report = demo_flow(
            s,
            run,
            tmp_path / "bank",
            confirm_share=1.0,
            fail_share=0.0,
            now=t0,
            application=_application(snapshot, tmp_path),
        )
    applied = report["application"]
    assert applied["accepted"] and applied["uscc"].startswith("9151")  # a Sichuan code
    # The registry's region was filled in for the enterprise, with its source; it typed nothing of it.
    assert applied["prefilled"] == ["region_code"]
    assert (applied["answers"], applied["materials"], applied["returned_for"]) == (4, 3, 1)
    assert Decimal(applied["amount"]) == Decimal("30000.00")
    assert applied["offer_state"] == "paid"
    batch = next(b for b in report["batches"] if b["policy_id"] == DEMO_APPLY_POLICY)
    assert (batch["lines"], batch["paid"], batch["failed"]) == (1, 1, 0)
    assert len(report["batches"]) > 1  # paid in the same round as the apply-free offers
    with tx() as s:
        app = s.scalar(select(Application).where(Application.public_id == applied["application"]))
        assert app is not None and app.state == "accepted"
        known = apps.prefilled(app)["region_code"]
        assert known.value.startswith("51") and known.source == "市场监督管理局"
        opinions = s.scalars(
            select(ApplicationOpinion).where(ApplicationOpinion.application_id == app.id)
        ).all()
        assert [(o.department, o.agree) for o in opinions] == [("四川省财政厅", True)]
        assert len(apps.returns(s, app)) == 1  # one return for correction, listed at once
        offer = s.scalar(select(Offer).where(Offer.public_id == applied["offer"]))
        assert offer is not None and offer.match_run_id is None and offer.state == "paid"
        assert audit.verify(s).ok
    line = application_line(applied)
    assert "经四川省经济和信息化厅、四川省财政厅会签通过" in line and "核定 30,000.00 元" in line
    assert "已拨付到账" in line and applied["uscc"] not in line


def test_without_a_sichuan_enterprise_the_demo_says_so_and_pays_the_rest(
    tx, demo_run: tuple[Path, Path], tmp_path: Path, t0
) -> None:
    snapshot, run = demo_run
    elsewhere = DemoApplication(**{**_application(snapshot, tmp_path).__dict__, "region_prefix": "99"})
    with tx() as s:
        report = demo_flow(
            s, run, tmp_path / "bank", confirm_share=1.0, fail_share=0.0, now=t0, application=elsewhere
        )
    assert report["application"]["accepted"] is False
    assert all(b["policy_id"] != DEMO_APPLY_POLICY for b in report["batches"])
    assert application_line(report["application"]).startswith("快申快享：快照中没有可申请的演示企业")
