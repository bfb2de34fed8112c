"""我的政策: what a matched item without an offer tells the enterprise."""

from __future__ import annotations

from portal.standings import candidate_note


def test_a_relief_is_enjoyed_directly_and_not_mistaken_for_a_used_up_budget() -> None:
    assert candidate_note("0.00", "0.00") == "符合条件，按规定直接享受，不涉及资金拨付"


def test_an_amount_cut_to_zero_by_the_budget_says_the_budget_is_used_up() -> None:
    assert candidate_note("0.00", "7200.00") == "符合条件，但本期预算已分配完毕"
    # A cache written before the amount before allocation was kept cannot tell: the budget reading stays.
    assert candidate_note("0.00", None) == "符合条件，但本期预算已分配完毕"


def test_an_amount_to_pay_waits_for_the_review() -> None:
    assert candidate_note("7200.00", "7200.00") == "符合条件，待初核后发放"
