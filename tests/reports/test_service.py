"""快申快享 in the reports: offers of accepted applications (no match run) are counted in their own arm of
the funnel, in the month's money and lights, and beside apply-free in the service figures (working days
to decision and to payment with 补正 stopping the clock, satisfaction), without changing one apply-free
figure; the 月讲评 ranks departments on their ratings too."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from payouts import imports, offers, users
from payouts.models import Offer, OfferState
from portal import applications as apps
from portal import ratings
from reports import funnel, monthly
from reports import service as services
from tests.payouts.conftest import t0  # noqa: F401  (fixture)
from tests.portal.test_applications import KNOWN, PDF, A, B, policy, staff  # noqa: F401  (fixture)

CHINA = dt.timezone(dt.timedelta(hours=8))
C = "91430100MA4L00000X"  # an enterprise of `staff` with a registered account


def beijing(*when: int) -> dt.datetime:
    return dt.datetime(*when, tzinfo=CHINA).astimezone(dt.UTC)


def _submit(tx, tmp_path: Path, uscc: str, when: dt.datetime) -> str:
    p = policy()
    with tx() as s:
        app = apps.open_application(s, p, "subsidy", uscc, KNOWN, when)
        actor = f"enterprise:{uscc}"
        apps.save(
            s,
            p,
            app,
            given_answers={"projects": "2"},
            given_fields={"rd_expense": "2000000"},
            actor=actor,
            now=when,
        )
        apps.upload(s, p, app, "audit", PDF, "审计报告.pdf", tmp_path / "evidence", actor=actor, now=when)
        apps.submit(s, p, app, actor=actor, now=when)
        return app.public_id


def _accept(tx, public_id: str, when: dt.datetime) -> Offer:
    with tx() as s:
        apps.give_opinion(s, public_id, agree=True, note=None, by="cz", now=when)
        offer = apps.accept(s, policy(), public_id, amount=None, by="kj", now=when)
        s.expunge(offer)
        return offer


def _pay(tx, public_id: str, when: dt.datetime) -> None:
    # The batch, notice and bank file are the payouts' own tests: here only when the money arrived.
    with tx() as s:
        offer = s.scalar(select(Offer).where(Offer.public_id == public_id))
        offer.state, offer.paid_at = OfferState.PAID.value, when


def _apply_free(tx, small_run: Path) -> str:
    """The run imported and released on Tuesday 3 June 2025 (`gaoxin` is confirmed at release); one
    `gaoxin` offer paid on Tuesday 10 June: 5 working days."""
    with tx() as s:
        imports.import_run(s, small_run, "rev", beijing(2025, 6, 3, 10))
        offers.release(s, "rev", beijing(2025, 6, 3, 10))
    with tx() as s:
        paid = s.scalar(
            select(Offer.public_id).where(Offer.policy_id == "gaoxin").order_by(Offer.id).limit(1)
        )
    _pay(tx, paid, beijing(2025, 6, 10, 15))
    return paid


def _figures(tx) -> dict[str, object]:
    """The apply-free figures the report showed before applications were counted."""
    with tx() as s:
        report = monthly.monthly_report(s, "2025-06", near_misses=False, now=beijing(2025, 7, 1, 9))
        return {
            "funnel": [(st.stage, st.count, st.amount) for st in funnel.stages(s)],
            "states": [(st.stage, st.count, st.amount) for st in funnel.by_state(s)],
            "headline": report.headline.set_index("key")["this_month"].drop(
                ["apply_paid_amount", "apply_paid_offers"]
            ),
            "service": report.service.set_index("key")["apply_free"].to_dict(),
            "sla": report.sla[report.sla["department"] == "市工业和信息化局"].to_dict("records"),
        }


@pytest.fixture
def june(tx, tmp_path: Path, small_run: Path, staff) -> SimpleNamespace:  # noqa: F811
    """June 2025: the apply-free run above, and three applications for 市科学技术局's 研发投入后补助.

    A: submitted Tuesday 3 June, returned for correction on the 4th, submitted again Monday 9 June,
    accepted Thursday 12 June (working days 4, 10, 11, 12: 4; the clock stood still from the 5th to the
    9th), paid Monday 16 June (13 and 16 more: 6), rated 非常满意.
    B: submitted 3 June, rejected Thursday 5 June (2 working days), rated 非常不满意 on the 6th and never
    answered: past its 5 working days at the end of June.
    C: submitted 3 June, accepted 12 June and still waiting for its batch at the end of June.
    """
    paid_free = _apply_free(tx, small_run)
    before = _figures(tx)
    a = _submit(tx, tmp_path, A, beijing(2025, 6, 3, 10))
    with tx() as s:
        apps.return_for_correction(s, a, ["请补充审计报告盖章页"], by="kj", now=beijing(2025, 6, 4, 10))
    with tx() as s:
        apps.submit(s, policy(), apps.get(s, a), actor=f"enterprise:{A}", now=beijing(2025, 6, 9, 10))
    offer_a = _accept(tx, a, beijing(2025, 6, 12, 10))
    _pay(tx, offer_a.public_id, beijing(2025, 6, 16, 15))
    b = _submit(tx, tmp_path, B, beijing(2025, 6, 3, 11))
    with tx() as s:
        apps.reject(s, b, "研发费用归集不符合规定", by="kj", now=beijing(2025, 6, 5, 10))
    c = _submit(tx, tmp_path, C, beijing(2025, 6, 3, 12))
    _accept(tx, c, beijing(2025, 6, 12, 11))
    with tx() as s:
        ratings.rate(s, A, "offer", offer_a.public_id, 5, "很快", beijing(2025, 6, 17, 9))
        ratings.rate(s, B, "application", b, 1, "退回理由不清楚", beijing(2025, 6, 6, 9))
        users.create_user(
            s, "gx", "reviewer", department="市工业和信息化局", carry_over=True, now=beijing(2025, 6, 1, 9)
        )
        free = s.scalar(select(Offer).where(Offer.public_id == paid_free))
        poor = ratings.rate(s, free.uscc, "offer", paid_free, 2, "到账前没有通知", beijing(2025, 6, 11, 9))
        # Answered on Tuesday 17 June: 4 working days (12, 13, 16, 17), within the 5.
        ratings.answer(s, poor.public_id, "已改进短信通知", by="gx", now=beijing(2025, 6, 17, 9))
    with tx() as s:
        report = monthly.monthly_report(s, "2025-06", near_misses=False, now=beijing(2025, 7, 1, 9))
    return SimpleNamespace(before=before, after=_figures(tx), report=report, offer_a=offer_a)


def test_applications_change_no_apply_free_figure(june: SimpleNamespace) -> None:
    before, after = june.before, june.after
    assert after["funnel"] == before["funnel"] and after["states"] == before["states"]
    assert after["headline"].to_dict() == before["headline"].to_dict()
    assert after["sla"] == before["sla"]
    service = dict(after["service"])
    # The ratings are new; everything else the apply-free column shows is what it showed before.
    for key in ("ratings", "satisfied_share", "poor", "answered_in_time"):
        service.pop(key), before["service"].pop(key)
    assert service == before["service"]


def test_the_applications_funnel_counts_submitted_accepted_and_paid(tx, june: SimpleNamespace) -> None:
    with tx() as s:
        arm = {st.stage: (st.count, st.amount) for st in funnel.applications(s)}
        later = {st.stage: st.count for st in funnel.applications(s, at=beijing(2025, 6, 10, 0))}
    accepted = Decimal("200000.00")  # a tenth of 2,000,000 each
    assert arm["submitted"][0] == 3
    assert arm["accepted"] == (2, 2 * accepted)
    assert arm["paid"] == (1, accepted)
    assert later == {"submitted": 3, "accepted": 0, "batched": 0, "approved": 0, "paid": 0}
    table = june.report.funnel_apply.set_index("stage")
    assert table.loc["paid", "offers"] == 1 and table.loc["submitted", "label"] == "提交申请"


def test_the_month_counts_the_money_of_accepted_applications(june: SimpleNamespace) -> None:
    headline = june.report.headline.set_index("key")["this_month"]
    assert headline["apply_paid_amount"] == Decimal("200000.00") and headline["apply_paid_offers"] == 1
    paid = june.report.paid_by_policy
    row = paid[paid["policy_id"] == "ks-yanfa"].iloc[0]
    assert (row["mode"], row["offers"], row["amount"]) == ("快申快享", 1, Decimal("200000.00"))
    assert set(paid["mode"]) == {"免申即享", "快申快享"}


def test_an_accepted_application_waiting_for_its_batch_is_late_in_the_month_lights(
    june: SimpleNamespace,
) -> None:
    lights = june.report.sla.set_index(["stage", "department"])
    batch = lights.loc[("batch", "市科学技术局")]
    # C was accepted (confirmed) on 12 June and is not in a batch by 30 June: over the 2 working days.
    assert batch["open_late"] == 1 and batch["light"] == "red"
    assert ("review", "市科学技术局") not in lights.index  # its review is the application's own clock


def test_service_figures_side_by_side_stop_the_clock_during_correction(june: SimpleNamespace) -> None:
    service = june.report.service.set_index("key")
    free, applied = service["apply_free"], service["apply"]
    # 快申快享: decisions after 4 (A, its correction not counted), 2 (B) and 7 (C) working days: median 4,
    # where counting A's correction would give 8 and the median 7. A paid after 6.
    assert applied["decided"] == 3 and applied["decision_days"] == 4.0
    assert applied["paid"] == 1 and applied["payment_days"] == 6.0
    assert applied["paid_amount"] == Decimal("200000.00")
    # Apply-free: released the day the run was imported; the one payment 5 working days after it.
    assert free["decision_days"] == 0.0 and free["payment_days"] == 5.0 and free["paid"] == 1
    # Ratings: A 非常满意 and B 非常不满意 (never answered: late); apply-free 不满意 answered in 4 days.
    assert (applied["ratings"], applied["satisfied_share"], applied["poor"]) == (2, 0.5, 1)
    assert applied["answered_in_time"] == "0/1" and free["answered_in_time"] == "1/1"
    page = monthly.render_html(june.report)
    assert "服务质效：免申即享与快申快享" in page and "0/1" in page and "50.0%" in page


def test_the_monthly_ranking_counts_ratings(june: SimpleNamespace) -> None:
    ranking = june.report.ranking.set_index("department")
    science = ranking.loc["市科学技术局"]
    assert (science["ratings"], science["poor"], science["poor_late"]) == (2, 1, 1)
    assert science["satisfied_share"] == 0.5
    industry = ranking.loc["市工业和信息化局"]
    assert (industry["ratings"], industry["poor_late"]) == (1, 0)


def test_a_poor_rating_answered_late_sinks_a_department_below_one_answered_in_time() -> None:
    import pandas as pd

    from reports.sla import ranking

    lights = pd.DataFrame(
        [
            {
                "stage": "batch",
                "department": d,
                "on_time": 5,
                "late": 0,
                "open": 0,
                "open_late": 0,
                "breaches": 0,
                "light": "green",
            }
            for d in ("甲局", "乙局")
        ]
    )
    rated = services.ratings_by_department(
        [
            services.RatingCount("apply", "乙局", 4, 3, 1, 0, 1),  # its poor rating answered late
            services.RatingCount("apply", "甲局", 4, 1, 1, 1, 0),
        ]
    )
    order = ranking(lights, rated)["department"].tolist()
    assert order == ["甲局", "乙局"]
    # Without ratings the two are level, and the name decides the other way.
    assert ranking(lights)["department"].tolist() == ["乙局", "甲局"]


def test_the_review_of_applications_is_timed_against_each_committed_limit_in_the_month_lights(
    tx,
    tmp_path: Path,
    june: SimpleNamespace,  # A, B and C: decided in 4, 2 and 7 working days, within their 20
) -> None:
    # D: submitted Tuesday 3 June and still undecided at the end of June: 19 working days (the 端午
    # holiday fell on 2 June), then 21 by Wednesday 2 July: over the 20 the guide commits to.
    _submit(tx, tmp_path, "91430100MA4L00010X", beijing(2025, 6, 3, 12))
    with tx() as s:
        june_end = monthly.month_lights(s, "2025-06", now=beijing(2025, 7, 1, 9))
        july = monthly.month_lights(s, "2025-07", now=beijing(2025, 7, 2, 9))
    row = june_end.set_index(["stage", "department"]).loc[("apply", "市科学技术局")]
    assert (row["on_time"], row["late"], row["open"], row["open_late"]) == (3, 0, 1, 0)
    assert row["label"] == "申请审核" and row["days"] == 20
    late = july.set_index(["stage", "department"]).loc[("apply", "市科学技术局")]
    assert (late["on_time"], late["open_late"], late["light"]) == (0, 1, "red")
    with tx() as s:
        report = monthly.monthly_report(s, "2025-07", near_misses=False, now=beijing(2025, 7, 2, 9))
    assert report.ranking.set_index("department").loc["市科学技术局", "red"] >= 1
    assert "申请审核 按各政策承诺时限（牵头审核部门）" in monthly.render_html(report)
