"""What the enterprise reads about a near miss."""

from __future__ import annotations

from portal import standings


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
