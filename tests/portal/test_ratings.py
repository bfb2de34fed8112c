"""Ratings (好差评): only after an item ends, only by its enterprise, once; a poor one needs a reason and
is answered by the rated department only."""

from __future__ import annotations

import pytest

from payouts.errors import NotFoundError
from payouts.models import Offer
from portal import applications as apps
from portal import ratings
from rules.errors import PayoutError, StateError
from tests.portal.test_applications import A, B, H, _ready, policy, staff  # noqa: F401  (fixture)


def test_a_rejected_application_is_rated_by_its_enterprise_and_a_poor_rating_answered(
    tx,
    tmp_path,
    t0,
    staff,  # noqa: F811
) -> None:
    pid = _ready(tx, tmp_path, t0)
    with tx() as s, pytest.raises(StateError, match="办结后才能评价"):
        ratings.rate(s, A, "application", pid, 5, None, t0 + H)
    with tx() as s:
        apps.reject(s, pid, "研发费用归集不符合规定", by="kj", now=t0 + H)
    with tx() as s:
        with pytest.raises(NotFoundError):
            ratings.rate(s, B, "application", pid, 1, "太慢", t0 + 2 * H)
        with pytest.raises(PayoutError, match="请写明不满意的原因"):
            ratings.rate(s, A, "application", pid, 1, " ", t0 + 2 * H)
        row = ratings.rate(s, A, "application", pid, 1, "退回理由不清楚", t0 + 2 * H)
        assert (row.department, row.score) == ("市科学技术局", 1)
        with pytest.raises(StateError, match="已评价过"):
            ratings.rate(s, A, "application", pid, 5, None, t0 + 2 * H)
    with tx() as s:
        with pytest.raises(NotFoundError):
            ratings.answer(s, row.public_id, "已改进", by="sw", now=t0 + 3 * H)
        assert [r.public_id for r in ratings.for_department(s, "kj")] == [row.public_id]
        answered = ratings.answer(
            s, row.public_id, "已核实，归集口径见通知第三条，欢迎来电咨询", by="kj", now=t0 + 3 * H
        )
        assert answered.answer.startswith("已核实") and answered.answered_by == "kj"


def test_a_paid_offer_is_rated_once_it_is_paid(tx, tmp_path, t0, staff) -> None:  # noqa: F811
    pid = _ready(tx, tmp_path, t0)
    p = policy()
    with tx() as s:
        apps.give_opinion(s, pid, agree=True, note=None, by="cz", now=t0 + H)
        offer = apps.accept(s, p, pid, amount=None, by="kj", now=t0 + H)
        with pytest.raises(StateError, match="资金到账后才能评价"):
            ratings.rate(s, A, "offer", offer.public_id, 5, None, t0 + H)
        s.get(Offer, offer.id).state = "paid"
        assert (
            ratings.rate(s, A, "offer", offer.public_id, 5, "很快", t0 + 2 * H).department == "市科学技术局"
        )
