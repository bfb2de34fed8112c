"""The bundled policy library (`data/policies/`): every file loads, is traceable, and the demo has work to do."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rules.expressions import parse
from rules.policy import Policy
from rules.reference import evaluate_item
from rules.ruleset import library_dir, load_ruleset, policy_files
from rules.validate import load_policy

FILES = policy_files(library_dir())
DEMO_AS_OF = dt.date(2025, 9, 30)

# Each required theme: the policy that covers it and the catalog field that makes it that theme.
THEMES = {
    "失业保险稳岗返还": ("wengang-2025", "ui_premium_paid"),
    "一次性扩岗补助": ("kuogang-2025", "new_graduate_hires"),
    "高新技术企业认定奖励": ("gaoxin-changsha", "high_tech_first_date"),
    "首次升规奖励": ("shenggui-heilongjiang", "listed_above_scale_prev"),
    "研发费用补助": ("yanfa-shandong-2025", "rd_expense"),
    "专精特新小巨人奖励": ("xiaojuren-fujian", "srdi_little_giant_first_date"),
    "科技型中小企业": ("yanfa-henan-2018", "is_tech_sme"),
}


def _library() -> dict[str, Policy]:
    return {p.id: p for p in load_ruleset(library_dir())}


def _fields_read(policy: Policy) -> set[str]:
    texts = [c.rule for c in policy.conditions]
    for item in policy.items:
        texts += [c.rule for c in item.conditions] + [item.amount]
    return {f for text in texts for f in parse(text).fields}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_library_file_validates_and_is_traceable(path: Path) -> None:
    policy = load_policy(path)
    assert path.stem == policy.id
    assert policy.source.document.strip()
    assert policy.category is not None and policy.summary and policy.audience and policy.tags
    conditions = [*policy.conditions, *(c for i in policy.items for c in i.conditions)]
    assert conditions, "a policy with no condition would pay everyone"
    for condition in conditions:
        assert condition.text.strip()
        assert condition.clause is None or condition.clause.strip()


def test_library_covers_the_required_themes() -> None:
    library = _library()
    assert len(library) >= 8
    for theme, (policy_id, field) in THEMES.items():
        assert policy_id in library, theme
        assert field in _fields_read(library[policy_id]), theme


def test_demo_date_has_enough_active_policies_and_the_contract_features() -> None:
    ruleset = load_ruleset(library_dir())
    assert len(ruleset.active(DEMO_AS_OF)) >= 6
    assert sum(p.budget is not None and p.allocation != "none" for p in ruleset) >= 2
    assert any(p.confirmation == "none" for p in ruleset)
    assert any(p.group_of(i) for p in ruleset for i in p.items)


def test_fingerprint_is_stable_across_loads() -> None:
    assert load_ruleset(library_dir()).fingerprint == load_ruleset(library_dir()).fingerprint


def _profile(**fields: Any) -> dict[str, Any]:
    return {"uscc": "91430100MA4L000000", **fields}


def test_wengang_pays_small_firms_60_percent_under_the_30_insured_rule() -> None:
    policy = _library()["wengang-2025"]
    firm = _profile(
        ui_premium_paid=Decimal("12000"),
        ui_arrears=False,
        serious_dishonest=False,
        size_class="small",
        insured_start=25,
        layoff_rate=Decimal("0.16"),  # 4 of 25 left: above 5.5%, within the 20% allowed at <= 30 insured
    )
    result = evaluate_item(policy, policy.item("sme"), firm)
    assert (result.status, result.amount) == ("eligible", Decimal("7200.00"))
    bigger = {**firm, "insured_start": 31}
    assert evaluate_item(policy, policy.item("sme"), bigger).failed == ("sme_layoff",)


def test_henan_rd_subsidy_tiers_and_caps() -> None:
    policy = _library()["yanfa-henan-2018"]
    firm = _profile(region_code="410105", serious_dishonest=False, is_tech_sme=True)
    general, tech = policy.item("general"), policy.item("tech_sme")
    # 10% of the first 500万, 5% above: 8,000,000 -> 500,000 + 150,000
    assert evaluate_item(policy, general, {**firm, "rd_expense": Decimal("8000000")}).amount == Decimal(
        "650000.00"
    )
    # 30,000,000 -> 1,750,000: an ordinary firm is capped at 100万, a 科技型中小企业 at 200万
    big = {**firm, "rd_expense": Decimal("30000000")}
    assert evaluate_item(policy, general, big).amount == Decimal("1000000.00")
    assert evaluate_item(policy, tech, big).amount == Decimal("1750000.00")


def test_changsha_pays_first_recognition_in_2024_not_an_old_certificate() -> None:
    """Recognised in 2018 and re-recognised in 2024: 10万 for re-recognition, never the 20万 first award."""
    policy = _library()["gaoxin-changsha"]
    first, renewed = policy.item("first"), policy.item("renewed")
    new = _profile(
        region_code="430102",
        is_high_tech=True,
        high_tech_first_date=dt.date(2024, 12, 6),
        high_tech_cert_date=dt.date(2024, 12, 6),
    )
    assert (evaluate_item(policy, first, new).status, evaluate_item(policy, first, new).amount) == (
        "eligible",
        Decimal("200000.00"),
    )
    assert evaluate_item(policy, renewed, new).status == "near_miss"
    again = {**new, "high_tech_first_date": dt.date(2018, 11, 30)}
    assert evaluate_item(policy, first, again).status == "near_miss"
    assert evaluate_item(policy, renewed, again).amount == Decimal("100000.00")
    old = {**again, "high_tech_cert_date": dt.date(2021, 12, 15)}
    assert (
        evaluate_item(policy, first, old).status == evaluate_item(policy, renewed, old).status == "near_miss"
    )


def test_heilongjiang_pays_firms_newly_on_the_statistics_list() -> None:
    policy = _library()["shenggui-heilongjiang"]
    firm = _profile(
        region_code="230102",
        industry_section="C",
        serious_dishonest=False,
        abnormal_operation=False,
        listed_above_scale=True,
        listed_above_scale_prev=False,
    )
    assert evaluate_item(policy, policy.item("award"), firm).status == "eligible"
    long_listed = {**firm, "listed_above_scale_prev": True}
    assert evaluate_item(policy, policy.item("award"), long_listed).failed == ("newly_listed",)
    unknown = {**firm, "listed_above_scale_prev": None}
    assert evaluate_item(policy, policy.item("award"), unknown).status == "missing_data"


def test_shandong_pays_big_firms_ten_percent_of_their_rd_increase() -> None:
    policy = _library()["yanfa-shandong-2025"]
    firm = _profile(
        region_code="370102",
        revenue=Decimal("300000000.00"),
        rd_expense=Decimal("12000000.00"),
        rd_expense_prev=Decimal("10000000.01"),
    )
    result = evaluate_item(policy, policy.item("increase"), firm)
    # 10% of 1,999,999.99 is 199,999.999: 200,000.00 to the fen
    assert (result.status, result.amount) == ("eligible", Decimal("200000.00"))
    assert evaluate_item(policy, policy.item("increase"), {**firm, "rd_expense_prev": None}).status == (
        "missing_data"
    )
