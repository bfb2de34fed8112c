"""First review (初核): hold, drop, release; and staff correcting a registered account."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from payouts import payees
from payouts.errors import RoleError
from payouts.imports import import_run
from payouts.models import Offer
from payouts.offers import drop, hold, release
from rules.errors import StateError
from tests.staff import fix_account


def _by_n(s) -> dict[tuple[str, int], Offer]:
    return {(o.policy_id, int(o.uscc[8:17])): o for o in s.scalars(select(Offer)).all()}


def test_release_sends_on_reviewed_offers_and_sorts_out_the_exceptions(tx, small_run, t0) -> None:
    with tx() as s:
        import_run(s, small_run, "rev", t0)
        r = release(s, "rev", t0)
    assert (r.released, r.confirmed, r.held_no_phone) == (4, 1, 1)
    with tx() as s:
        o = _by_n(s)
        assert o[("wengang", 1)].state == "released" and o[("wengang", 1)].round == 1
        assert o[("gaoxin", 1)].state == "confirmed"  # confirmation: none
        assert (o[("wengang", 6)].state, o[("wengang", 6)].hold_reason) == ("held", "无联系电话")
        assert (o[("wengang", 5)].state, o[("wengang", 5)].hold_reason) == ("held", "无对公账户")


def test_held_and_dropped_offers_are_not_released_and_need_a_reason(tx, small_run, t0) -> None:
    with tx() as s:
        import_run(s, small_run, "rev", t0)
        o = _by_n(s)
        one, two = o[("wengang", 1)].public_id, o[("wengang", 2)].public_id
        with pytest.raises(StateError, match="原因"):
            hold(s, [one], "  ", "rev", t0)
        hold(s, [one], "与另一笔补贴重复，待核实", "rev", t0)
        drop(s, [two], "企业已注销", "rev", t0)
        release(s, "rev", t0)
    with tx() as s:
        o = _by_n(s)
        assert (o[("wengang", 1)].state, o[("wengang", 1)].hold_reason) == (
            "held",
            "与另一笔补贴重复，待核实",
        )
        assert o[("wengang", 2)].state == "dropped"
        with pytest.raises(StateError, match="已剔除"):
            hold(s, [two], "再看看", "rev", t0)
        release(s, "rev", t0, public_ids=[one])  # lifting the hold
        assert s.get(Offer, o[("wengang", 1)].id).state == "released"


def test_an_offer_without_account_is_released_only_after_staff_correct_it(tx, small_run, t0) -> None:
    with tx() as s:
        import_run(s, small_run, "rev", t0)
        five = _by_n(s)[("wengang", 5)]
        with pytest.raises(StateError, match="无对公账户"):
            release(s, "rev", t0, public_ids=[five.public_id])
        with pytest.raises(StateError, match="企业登记名称"):
            fix_account(
                s,
                five.uscc,
                bank_name="某银行",
                account_no="6222000011112222",
                account_name="别的公司",
                by="rev",
                reason="企业来函",
                now=t0,
            )
        new = fix_account(
            s,
            five.uscc,
            bank_name="中国农业银行某支行",
            account_no="6228 4800 1234 5678",
            account_name="示例企业5有限公司",
            by="rev",
            reason="企业提供开户许可证",
            now=t0,
        )
        assert new.source == "staff" and new.supersedes_id is not None
        release(s, "rev", t0, public_ids=[five.public_id])
        assert s.get(Offer, five.id).state == "released"
        assert payees.mask_account(new.account_no) == "6228 **** **** 5678"


def test_only_reviewers_review(tx, small_run, t0) -> None:
    with tx() as s:
        import_run(s, small_run, "rev", t0)
    with pytest.raises(RoleError), tx() as s:
        release(s, "maker", t0)
