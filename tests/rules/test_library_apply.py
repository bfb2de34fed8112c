"""The library's 快申快享 policies (`ks-*.yaml`) and its 权益/资质 entries: what an enterprise applies for,
what it is told, and that none of it ever reaches the matcher."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rules.policy import Policy
from rules.reference import evaluate_condition
from rules.ruleset import library_dir, load_ruleset, policy_files
from rules.validate import load_policy

FILES = policy_files(library_dir())
KS = [p for p in FILES if p.name.startswith("ks-")]


def _header(path: Path) -> str:
    """The leading comment block: what the console shows as the file's provenance."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# "))
    return "".join(lines)


def _profile(**fields: object) -> dict[str, object]:
    return {"uscc": "91511600MA6A000000", **fields}


def test_the_library_has_at_least_eight_apply_policies_each_with_its_guide() -> None:
    assert len(KS) >= 8
    for path in KS:
        policy = load_policy(path)
        applied = [i for i in policy.items if i.mode == "apply"]
        assert applied, f"{path.name}: a ks- file is a 快申快享 policy"
        assert policy.guide is not None and policy.guide.flow
        # The amount is the department's to set only within a cap the document states.
        assert all(i.amount is not None or i.cap is not None for i in applied)


def test_only_ks_files_carry_apply_items() -> None:
    for path in FILES:
        has_apply = any(i.mode == "apply" for i in load_policy(path).items)
        assert has_apply == path.name.startswith("ks-"), path.name


@pytest.mark.parametrize("path", KS + [p for p in FILES if p.name.startswith(("quanyi-", "zizhi-"))])
def test_every_new_entry_says_where_its_guide_comes_from_and_what_is_unconfirmed(path: Path) -> None:
    header = _header(path)
    assert "申兑指南" in header and "未确认" in header, path.name
    policy = load_policy(path)
    assert policy.guide is not None
    # A phone someone can dial: digits, optionally an area code.
    assert re.fullmatch(r"(0\d{2,3}-)?\d{5,8}", policy.guide.phone), policy.guide.phone
    if any(i.mode == "apply" for i in policy.items):
        assert policy.guide.time_limit_days is not None and 1 <= policy.guide.time_limit_days <= 365


def test_at_least_four_entitlements_and_qualifications_are_listed_and_never_matched() -> None:
    ruleset = load_ruleset(library_dir())
    entries = [p for p in ruleset if p.kind in ("权益", "资质")]
    assert len(entries) >= 4
    assert {p.kind for p in entries} == {"权益", "资质"}
    for policy in entries:
        assert policy.items == [] and policy.guide is not None
        assert policy.matchable() is None


def test_the_matcher_never_sees_an_apply_item_of_the_library() -> None:
    matched = [p.matchable() for p in load_ruleset(library_dir())]
    seen = {p.id for p in matched if p is not None}
    assert not any(pid.startswith(("ks-", "quanyi-", "zizhi-")) for pid in seen)
    assert all(i.mode == "free" for p in matched if p is not None for i in p.items)


def _library() -> dict[str, Policy]:
    return {p.id: p for p in load_ruleset(library_dir())}


def test_a_sichuan_manufacturer_passes_the_pre_screen_and_a_changsha_one_does_not() -> None:
    policy = _library()["ks-shoutao-sichuan-2025"]
    (where,) = policy.conditions
    assert evaluate_condition(where, _profile(region_code="511602")).value is True
    assert evaluate_condition(where, _profile(region_code="430102")).value is False


def test_guangan_growth_award_is_for_industrial_firms_of_guangan_and_pays_the_highest_tier_once() -> None:
    policy = _library()["ks-shengchan-guangan-2024"]
    verdicts = {
        c.id: evaluate_condition(c, _profile(region_code="511602", industry_section="F")).value
        for c in policy.conditions
    }
    assert verdicts == {"guangan": True, "industrial": False}
    assert {policy.group_of(i) for i in policy.items} == {"guangan-growth-2024"}
    assert sorted(int(i.amount or 0) for i in policy.items) == [200000, 300000, 500000]


def test_sichuan_fair_award_caps_follow_the_provincial_reading() -> None:
    policy = _library()["ks-zhanhui-sichuan-2025"]
    assert {i.id: i.cap for i in policy.items} == {"overseas": 100000, "domestic": 30000}
    assert all(i.amount is None for i in policy.items)  # 60%/50% of the booth fee, set on review
