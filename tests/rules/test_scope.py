"""Who a policy is for, read from its conditions: what the supermarket's region, industry and size filters use."""

from __future__ import annotations

import pytest

from rules.policy import Condition, Item, Policy, Source
from rules.scope import Scope, condition_scope, policy_scope


def scope_of(rule: str) -> Scope:
    return condition_scope(Condition(id="c", text="条件", rule=rule))


def policy(shared: list[str], *items: list[str]) -> Policy:
    return Policy(
        id="p",
        version=1,
        title="政策",
        department="部门",
        source=Source(document="文件"),
        valid_from="2025-01-01",
        valid_to="2025-12-31",
        assessment_year=2024,
        period="2025",
        conditions=[Condition(id=f"s{n}", text="条件", rule=r) for n, r in enumerate(shared)],
        items=[
            Item(
                id=f"i{k}",
                title="事项",
                amount="1000",
                conditions=[Condition(id=f"c{n}", text="条件", rule=r) for n, r in enumerate(rules)],
            )
            for k, rules in enumerate(items or ([],))
        ],
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ('region_code =~ "^43"', Scope(regions=frozenset({"43"}))),
        ('region_code =~ "^(35|36)"', Scope(regions=frozenset({"35", "36"}))),
        ('region_code =~ "^32080[34]"', Scope(regions=frozenset({"320803", "320804"}))),
        ('not region_code =~ "^32080[34]"', Scope(regions_excluded=frozenset({"320803", "320804"}))),
        ('region_code == "430102"', Scope(regions=frozenset({"430102"}))),
        (
            'region_code =~ "^37" and not region_code =~ "^3702"',
            Scope(regions=frozenset({"37"}), regions_excluded=frozenset({"3702"})),
        ),
        ('region_code !~ "^3702"', Scope(regions_excluded=frozenset({"3702"}))),
        ('industry_section in ["B", "C", "D"]', Scope(sections=frozenset("BCD"))),
        ('industry_code =~ "^C39"', Scope(sections=frozenset("C"))),
        ('size_class == "large" or size_class == "medium"', Scope(sizes=frozenset({"large", "medium"}))),
        ('size_class != "large"', Scope(sizes=frozenset({"medium", "small", "micro"}))),
        ('not (size_class in ["small", "micro"])', Scope(sizes=frozenset({"large", "medium"}))),
        # What is not about region, industry or size does not restrict them.
        ("revenue > 0 and is_high_tech", Scope()),
        ('region_code =~ "^43" or is_high_tech', Scope()),
        ('region_code =~ "43"', Scope()),  # not anchored: any place
    ],
)
def test_a_condition_restricts_region_industry_and_size(rule: str, expected: Scope) -> None:
    assert scope_of(rule) == expected


def test_a_policy_is_for_the_union_of_its_items_under_the_shared_conditions() -> None:
    p = policy(
        ['region_code =~ "^43"'],
        ['region_code =~ "^4301"', 'size_class == "small"'],
        ['size_class == "large"'],
    )
    scope = policy_scope(p)
    assert scope.regions == frozenset({"43"})  # item 2 is for all of 湖南
    assert scope.sizes == frozenset({"small", "large"})
    assert scope.admits_region("430102") and scope.admits_region("43") and not scope.admits_region("44")


def test_every_size_is_no_restriction_and_contradictions_are_nowhere() -> None:
    assert (
        policy_scope(
            policy([], ['size_class in ["large", "medium"]'], ['size_class in ["small", "micro"]'])
        ).sizes
        is None
    )
    assert policy_scope(policy(['region_code =~ "^43"', 'region_code =~ "^44"'])).regions == frozenset()
