"""A rule set: its fingerprint follows the content, not the files; `active` keeps what is valid on a day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest

from rules.ruleset import RuleSet, load_ruleset

FolderOf = Callable[[dict[str, str]], Path]

# GAOXIN of conftest.py, written differently: other key order, flow style, comments, quoting,
# `budget` without decimals, `period` unquoted, a folded multi-line rule, another file name.
GAOXIN_REWRITTEN = """\
# 高新技术企业认定奖励（重新排版，内容不变）
items:
  - {id: award, title: 高新技术企业奖励, amount: "200000"}
conditions:
  - rule: >-
      is_high_tech
    text: "持有有效的高新技术企业证书"
    id: high_tech
allocation: "none"
budget: 5000000
period: 2025        # compared as text
assessment_year: 2024
valid_to: 2025-11-30
valid_from: 2025-03-01
source: {document: "某科发〔2025〕3号"}
department: 市科学技术局
title: '2025年高新技术企业认定奖励'
version: 1
id: gaoxin-2025
"""


def fingerprint(folder_of: FolderOf, files: dict[str, str]) -> str:
    return load_ruleset(folder_of(files)).fingerprint


def test_fingerprint_ignores_formatting_comments_key_order_and_file_names(
    policy_dir: FolderOf, gaoxin_yaml: str, wengang_yaml: str
) -> None:
    original = fingerprint(policy_dir, {"gaoxin.yaml": gaoxin_yaml, "wengang.yaml": wengang_yaml})
    rewritten = fingerprint(policy_dir, {"a.yml": GAOXIN_REWRITTEN, "z-wengang.yaml": wengang_yaml})
    assert rewritten == original
    assert original.startswith("sha256:") and len(original) == len("sha256:") + 64


def test_fingerprint_is_the_same_on_every_load(policy_dir: FolderOf, wengang_yaml: str) -> None:
    folder = policy_dir({"wengang.yaml": wengang_yaml})
    assert load_ruleset(folder).fingerprint == load_ruleset(folder).fingerprint


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("title: 2025年高新技术企业认定奖励", "title: 2025年高新技术企业奖励"),
        ("version: 1", "version: 2"),
        ("amount: 200000", "amount: 200000.01"),
        ("budget: 5000000.00", "budget: 5000000.01"),
        ("allocation: none", "allocation: pro_rata"),
        ("rule: is_high_tech", "rule: is_high_tech and not serious_dishonest"),
        ("text: 持有有效的高新技术企业证书", "text: 持有有效的高新技术企业证书。"),
        ("valid_to: 2025-11-30", "valid_to: 2025-12-01"),
        ('period: "2025"', 'period: "2025-H1"'),
        ("    title: 高新技术企业奖励\n", "    title: 高新技术企业奖励\n    cap: 100000\n"),
    ],
)
def test_fingerprint_changes_when_the_content_changes(
    policy_dir: FolderOf, gaoxin_yaml: str, before: str, after: str
) -> None:
    assert gaoxin_yaml.count(before) == 1
    changed = gaoxin_yaml.replace(before, after)
    assert fingerprint(policy_dir, {"g.yaml": changed}) != fingerprint(policy_dir, {"g.yaml": gaoxin_yaml})


def test_fingerprint_changes_when_a_policy_is_added(
    policy_dir: FolderOf, gaoxin_yaml: str, wengang_yaml: str
) -> None:
    one = fingerprint(policy_dir, {"g.yaml": gaoxin_yaml})
    two = fingerprint(policy_dir, {"g.yaml": gaoxin_yaml, "w.yaml": wengang_yaml})
    assert one != two


def test_policies_are_kept_in_id_and_version_order(
    policy_dir: FolderOf, gaoxin_yaml: str, wengang_yaml: str
) -> None:
    v2 = gaoxin_yaml.replace("version: 1", "version: 2")
    ruleset = load_ruleset(policy_dir({"1.yaml": wengang_yaml, "2.yaml": v2, "3.yaml": gaoxin_yaml}))
    assert [p.key for p in ruleset] == ["gaoxin-2025@1", "gaoxin-2025@2", "wengang-2025@1"]


@pytest.mark.parametrize(
    ("as_of", "active"),
    [
        (dt.date(2025, 2, 28), ["wengang-2025"]),
        (dt.date(2025, 3, 1), ["gaoxin-2025", "wengang-2025"]),  # gaoxin's first day
        (dt.date(2025, 11, 30), ["gaoxin-2025", "wengang-2025"]),  # gaoxin's last day
        (dt.date(2025, 12, 1), ["wengang-2025"]),
        (dt.date(2025, 12, 31), ["wengang-2025"]),  # wengang's last day
        (dt.date(2026, 1, 1), []),
        (dt.date(2024, 12, 31), []),
        (dt.date(2025, 1, 1), ["wengang-2025"]),  # wengang's first day
    ],
)
def test_active_keeps_policies_valid_on_the_day_bounds_included(
    policy_dir: FolderOf, gaoxin_yaml: str, wengang_yaml: str, as_of: dt.date, active: list[str]
) -> None:
    ruleset = load_ruleset(policy_dir({"g.yaml": gaoxin_yaml, "w.yaml": wengang_yaml}))
    assert [p.id for p in ruleset.active(as_of)] == active
    assert isinstance(ruleset.active(as_of), RuleSet)


def test_a_one_day_policy_is_active_on_that_day_only(policy_dir: FolderOf, gaoxin_yaml: str) -> None:
    one_day = gaoxin_yaml.replace("valid_from: 2025-03-01", "valid_from: 2025-11-30")
    ruleset = load_ruleset(policy_dir({"g.yaml": one_day}))
    assert len(ruleset.active(dt.date(2025, 11, 30))) == 1
    assert len(ruleset.active(dt.date(2025, 11, 29))) == 0
    assert len(ruleset.active(dt.date(2025, 12, 1))) == 0


def test_a_folder_that_does_not_exist_is_a_policy_error(tmp_path: Path) -> None:
    from rules.errors import PolicyError

    with pytest.raises(PolicyError) as caught:
        load_ruleset(tmp_path / "missing")
    assert caught.value.problems[0].message == "不是一个目录"
