"""The bundled policy library (`data/policies/`): every file loads, is traceable, and the demo has work to do."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from rules.expressions import parse
from rules.policy import CATEGORIES, Policy
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
    "首次升规奖励（第二个省份：陕西西安）": ("shenggui-xian", "listed_above_scale_prev"),
    "研发费用补助": ("yanfa-shandong-2025", "rd_expense"),
    "专精特新小巨人奖励": ("xiaojuren-fujian", "srdi_little_giant_first_date"),
    "科技型中小企业": ("yanfa-henan-2018", "is_tech_sme"),
    "科技型中小企业（在施行的税收优惠）": ("kuisun-jiezhuan", "tech_sme_cert_date"),
    "科技型中小企业认定奖励（杭州西湖）": ("kexiao-xihu", "tech_sme_first_date"),
    "省级稳岗返还实施细则（山东）": ("wengang-shandong-2025", "ui_premium_paid"),
    "省级稳岗返还实施细则（甘肃）": ("wengang-gansu-2025", "ui_premium_paid"),
    "省级稳岗返还实施细则（山西）": ("wengang-shanxi-2025", "ui_premium_paid"),
    "省级一次性扩岗补助（山东）": ("kuogang-shandong-2025", "new_graduate_hires"),
    "省级专精特新认定奖励（陕西）": ("zhuanjingtexin-shaanxi", "srdi_first_date"),
    "小巨人配套奖励（福州）": ("xiaojuren-fuzhou", "srdi_little_giant_first_date"),
    "科技型中小企业研发费用加计扣除": ("jiajikouchu-kxzx-2022", "is_tech_sme"),
    "残保金减免": ("canbaojin-2025", "employees"),
    "要素保障（水电气欠费不停供）": ("yaosu-guangyuan-2023", "size_class"),
    "金融支持（稳岗扩岗专项贷款）": ("wengang-daikuan-2025", "layoff_rate"),
}


def _library() -> dict[str, Policy]:
    return {p.id: p for p in load_ruleset(library_dir())}


def _fields_read(policy: Policy) -> set[str]:
    texts = [c.rule for c in policy.conditions]
    for item in policy.items:
        texts += [c.rule for c in item.conditions] + ([item.amount] if item.amount is not None else [])
    return {f for text in texts for f in parse(text).fields}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_library_file_validates_and_is_traceable(path: Path) -> None:
    policy = load_policy(path)
    assert path.stem == policy.id
    assert policy.source.document.strip()
    # 资质 (a recognition) fits none of the five money categories; everything else is filed under one.
    assert policy.category is not None or policy.kind == "资质"
    assert policy.summary and policy.audience and policy.tags
    conditions = [*policy.conditions, *(c for i in policy.items for c in i.conditions)]
    assert conditions, "a policy with no condition would pay everyone"
    for condition in conditions:
        assert condition.text.strip()
        assert condition.clause is None or condition.clause.strip()


def test_library_covers_the_required_themes() -> None:
    library = _library()
    assert len(library) >= 30
    for theme, (policy_id, field) in THEMES.items():
        assert policy_id in library, theme
        assert field in _fields_read(library[policy_id]), theme
    assert {p.category for p in library.values()} - {None} == set(CATEGORIES)


def test_the_technology_sme_measures_are_in_force_on_the_demo_date() -> None:
    active = {p.id for p in load_ruleset(library_dir()).active(DEMO_AS_OF)}
    assert {"kuisun-jiezhuan", "kexiao-xihu", "shenggui-xian"} <= active


def test_library_reaches_at_least_six_provinces_besides_the_national_rules() -> None:
    provinces = set()
    for policy in _library().values():
        for condition in [*policy.conditions, *(c for i in policy.items for c in i.conditions)]:
            if condition.rule.startswith('region_code =~ "^'):
                provinces.add(condition.rule.split('"^')[1][:2])
    assert len(provinces) >= 6, provinces


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
        region_code="430102",  # 湖南: no provincial rules in the library, so the national file applies
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


def _refundable(**extra: Any) -> dict[str, Any]:
    return _profile(
        ui_premium_paid=Decimal("10000"),
        ui_arrears=False,
        serious_dishonest=False,
        abnormal_operation=False,
        status="存续",
        size_class="small",
        insured_start=40,
        layoff_rate=Decimal("0"),
        **extra,
    )


@pytest.mark.parametrize(
    ("region", "local"),
    [
        ("370102", "wengang-shandong-2025"),
        ("620102", "wengang-gansu-2025"),
        ("140105", "wengang-shanxi-2025"),
        ("220402", "wengang-liaoyuan-2025"),
        ("640104", "wengang-ningxia-2025"),
    ],
)
def test_a_province_with_its_own_refund_rules_is_refunded_once_under_them(region: str, local: str) -> None:
    library = _library()
    firm = _refundable(region_code=region)
    national, own = library["wengang-2025"], library[local]
    assert evaluate_item(national, national.item("sme"), firm).failed == ("no_local_rules",)
    assert (
        evaluate_item(own, own.item("sme"), firm).status,
        evaluate_item(own, own.item("sme"), firm).amount,
    ) == (
        "eligible",
        Decimal("6000.00"),
    )
    # Elsewhere (Jilin outside Liaoyuan) the national file applies and no local one does.
    elsewhere = _refundable(region_code="220102")
    assert evaluate_item(national, national.item("sme"), elsewhere).status == "eligible"
    assert evaluate_item(own, own.item("sme"), elsewhere).status != "eligible"


def test_shanxi_refuses_firms_that_are_struck_off_or_listed_as_abnormal() -> None:
    policy = _library()["wengang-shanxi-2025"]
    firm = _refundable(region_code="140105")
    assert evaluate_item(policy, policy.item("sme"), firm).status == "eligible"
    assert evaluate_item(policy, policy.item("sme"), {**firm, "status": "吊销"}).failed == ("operating",)
    assert evaluate_item(policy, policy.item("sme"), {**firm, "abnormal_operation": True}).failed == (
        "operating",
    )


def test_longgang_rd_tiers_need_the_ratio_of_their_band_and_multiply_for_srdi_and_little_giants() -> None:
    policy = _library()["yanfa-longgang"]
    firm = _profile(
        region_code="440307",
        is_high_tech=True,
        above_scale=True,
        revenue=Decimal("250000000"),
        rd_expense=Decimal("20000000"),  # 1000万-3000万 band; 8% of revenue >= 7%
        rd_ratio=Decimal("0.08"),
        is_srdi=True,
        is_little_giant=True,
    )
    amounts = {i.id: evaluate_item(policy, i, firm).amount for i in policy.items}
    assert amounts == {
        "high_tech": Decimal("300000.00"),
        "srdi": Decimal("450000.00"),
        "little_giant": Decimal("600000.00"),
    }
    assert {policy.group_of(i) for i in policy.items} == {"longgang-rd"}  # only the highest is paid
    # 6% is below the 7% the 1000万-3000万 band needs, though above the general 3%.
    low = {**firm, "rd_ratio": Decimal("0.06"), "revenue": Decimal("333333333.33")}
    assert evaluate_item(policy, policy.item("high_tech"), low).failed == ("tier",)
    # The top band: 2亿 of R&D pays 200万, and a 小巨人 200% is capped at 400万.
    top = {
        **firm,
        "rd_expense": Decimal("200000000"),
        "revenue": Decimal("2000000000"),
        "rd_ratio": Decimal("0.1"),
    }
    assert evaluate_item(policy, policy.item("little_giant"), top).amount == Decimal("4000000.00")


@pytest.mark.parametrize(
    ("policy_id", "item_id", "firm"),
    [
        ("canbaojin-2025", "exempt", {"employees": 30}),
        ("liushui-liangfei-2025", "halved", {"employees": 300, "total_assets": Decimal("50000000")}),
        (
            "wengang-daikuan-2025",
            "loan",
            {
                "size_class": "micro",
                "age_years": 1,
                "insured_end": 10,
                "layoff_rate": Decimal("0.05"),
                "ui_arrears": False,
            },
        ),
    ],
)
def test_reliefs_and_loans_match_with_nothing_to_pay(
    policy_id: str, item_id: str, firm: dict[str, Any]
) -> None:
    policy = _library()[policy_id]
    result = evaluate_item(policy, policy.item(item_id), _profile(**firm))
    assert (result.status, result.amount) == ("eligible", Decimal("0.00"))


def test_the_job_retention_loan_needs_a_layoff_rate_below_the_target() -> None:
    policy = _library()["wengang-daikuan-2025"]
    firm = _profile(
        size_class="small", age_years=3, insured_end=12, layoff_rate=Decimal("0.055"), ui_arrears=False
    )
    assert evaluate_item(policy, policy.item("loan"), firm).failed == (
        "stable",
    )  # "低于": 5.5% is not below 5.5%


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


def test_xian_pays_firms_first_on_the_statistics_list_not_those_above_the_revenue_line() -> None:
    policy = _library()["shenggui-xian"]
    award = policy.item("award")
    firm = _profile(
        region_code="610113",
        industry_section="C",
        listed_above_scale=True,
        listed_above_scale_prev=False,
        above_scale=False,  # the revenue test says no; the statistics bureau's list is what counts
    )
    result = evaluate_item(policy, award, firm)
    assert (result.status, result.amount) == ("eligible", Decimal("300000.00"))
    assert evaluate_item(policy, award, {**firm, "listed_above_scale_prev": True}).failed == ("first_listed",)
    assert evaluate_item(policy, award, {**firm, "listed_above_scale_prev": None}).status == "missing_data"
    assert evaluate_item(policy, award, {**firm, "industry_section": "G"}).failed == ("industrial",)
    assert evaluate_item(policy, award, {**firm, "region_code": "610302"}).failed == ("xian",)  # 宝鸡


def test_loss_carry_forward_tells_high_tech_firms_and_2025_technology_smes_once() -> None:
    policy = _library()["kuisun-jiezhuan"]
    high_tech, tech_sme = policy.item("high_tech"), policy.item("tech_sme")
    # A 高新技术企业 that never registered as a 科技型中小企业 has no registration date: eligible, not missing.
    certified = _profile(is_high_tech=True, is_tech_sme=False, tech_sme_cert_date=None)
    assert (
        evaluate_item(policy, high_tech, certified).status,
        evaluate_item(policy, high_tech, certified).amount,
    ) == (
        "eligible",
        Decimal("0.00"),
    )
    assert evaluate_item(policy, tech_sme, certified).status == "ineligible"
    registered = _profile(is_high_tech=False, is_tech_sme=True, tech_sme_cert_date=dt.date(2025, 6, 30))
    assert evaluate_item(policy, tech_sme, registered).status == "eligible"
    assert evaluate_item(policy, high_tech, registered).failed == ("high_tech",)
    last_year = {**registered, "tech_sme_cert_date": dt.date(2024, 10, 31)}
    assert evaluate_item(policy, tech_sme, last_year).failed == ("tech_sme_2025",)
    assert {policy.group_of(i) for i in policy.items} == {"kuisun-jiezhuan"}  # both: told once
    # Neither qualification: not a near miss (that would be nearly every enterprise in the country).
    neither = _profile(is_high_tech=False, is_tech_sme=False, tech_sme_cert_date=None)
    assert evaluate_item(policy, high_tech, neither).status == "ineligible"
    assert evaluate_item(policy, tech_sme, neither).status == "ineligible"


def test_xihu_rewards_technology_smes_first_registered_in_2024_only() -> None:
    policy = _library()["kexiao-xihu"]
    award = policy.item("award")
    firm = _profile(region_code="330106", is_tech_sme=True, tech_sme_first_date=dt.date(2024, 8, 15))
    result = evaluate_item(policy, award, firm)
    assert (result.status, result.amount) == ("eligible", Decimal("10000.00"))
    assert evaluate_item(policy, award, {**firm, "tech_sme_first_date": dt.date(2021, 5, 1)}).failed == (
        "new_2024",
    )
    never = _profile(region_code="330106", is_tech_sme=False, tech_sme_first_date=None)
    assert evaluate_item(policy, award, never).status != "missing_data"
    assert evaluate_item(policy, award, {**firm, "region_code": "330102"}).failed == ("xihu",)  # 上城区


@pytest.mark.parametrize(
    ("policy_id", "flag", "first", "amount"),
    [
        ("xiaojuren-fuzhou", "is_little_giant", "srdi_little_giant_first_date", "250000.00"),
        ("zhuanjingtexin-shaanxi", "is_srdi", "srdi_first_date", "200000.00"),
    ],
)
def test_first_recognition_awards_skip_firms_recognised_years_ago(
    policy_id: str, flag: str, first: str, amount: str
) -> None:
    """A certificate renewed in 2024 after a first recognition in 2021 is not 新认定 / 初次认定."""
    policy = _library()[policy_id]
    award = policy.item("award")
    region = "350102" if policy_id == "xiaojuren-fuzhou" else "610113"
    new = _profile(region_code=region, **{flag: True, first: dt.date(2024, 7, 1)})
    result = evaluate_item(policy, award, new)
    assert (result.status, result.amount) == ("eligible", Decimal(amount))
    renewed = {**new, first: dt.date(2021, 7, 1)}
    assert evaluate_item(policy, award, renewed).status == "near_miss"
    never = _profile(region_code=region, **{flag: False, first: None})
    assert evaluate_item(policy, award, never).status not in ("eligible", "missing_data")


def test_changde_tells_first_recognition_from_recognition_again_by_the_certificate_dates() -> None:
    policy = _library()["gaoxin-changde"]
    first, again = policy.item("first"), policy.item("again")
    new = _profile(
        region_code="430702",
        is_high_tech=True,
        high_tech_first_date=dt.date(2024, 11, 20),
        high_tech_cert_date=dt.date(2024, 11, 20),
    )
    assert evaluate_item(policy, first, new).amount == Decimal("100000.00")
    assert evaluate_item(policy, again, new).failed == ("again_2024",)
    renewed = {**new, "high_tech_first_date": dt.date(2021, 12, 1)}
    assert evaluate_item(policy, first, renewed).failed == ("first_2024",)
    assert evaluate_item(policy, again, renewed).amount == Decimal("50000.00")
    never = _profile(
        region_code="430702", is_high_tech=False, high_tech_first_date=None, high_tech_cert_date=None
    )
    assert (
        evaluate_item(policy, first, never).status
        == evaluate_item(policy, again, never).status
        == "ineligible"
    )
