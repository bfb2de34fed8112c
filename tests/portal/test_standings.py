"""我的政策: what a matched item without an offer, and a near miss, tell the enterprise."""

from __future__ import annotations

from portal import standings


def test_a_relief_is_enjoyed_directly_and_not_mistaken_for_a_used_up_budget() -> None:
    assert standings.candidate_note("0.00", "0.00") == "符合条件，按规定直接享受，不涉及资金拨付"


def test_an_amount_cut_to_zero_by_the_budget_says_the_budget_is_used_up() -> None:
    assert standings.candidate_note("0.00", "7200.00") == "符合条件，但本期预算已分配完毕"
    # A cache written before the amount before allocation was kept cannot tell: the budget reading stays.
    assert standings.candidate_note("0.00", None) == "符合条件，但本期预算已分配完毕"


def test_an_amount_to_pay_waits_for_the_review() -> None:
    assert standings.candidate_note("7200.00", "7200.00") == "符合条件，有关部门审核后将以短信通知确认"


def _item(rule: str, text: str = "条件") -> standings.Item:
    return standings.Item(
        "p", 1, "i", "政策", "事项", "部门", "2025", {"c": {"text": text, "clause": None, "rule": rule}}
    )


def test_a_near_miss_reads_as_a_sentence_from_the_condition_and_the_value_read() -> None:
    cases = [
        ('size_class == "large"', "size_class=medium", "企业规模为中型，本事项要求大型企业"),
        (
            'size_class in ["medium", "small", "micro"]',
            "size_class=large",
            "企业规模为大型，本事项要求中型、小型或微型企业",
        ),
        ("layoff_rate <= 0.055", "layoff_rate=0.072", "裁员率为7.2%，本事项要求裁员率不高于5.5%"),
        ("not ui_arrears", "ui_arrears=true", "失业保险欠费为“是”，本事项要求为“否”"),
    ]
    for rule, value, sentence in cases:
        assert standings._near_miss(_item(rule), "c", value).sentence == sentence, rule
    odd = standings._near_miss(
        _item("revenue > tax_paid * 10", "营业收入高于纳税额十倍"), "c", "revenue=5; tax_paid=1"
    )
    assert odd.sentence is not None and odd.sentence.endswith("本事项要求：营业收入高于纳税额十倍")
