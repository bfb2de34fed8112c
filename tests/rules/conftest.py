"""Shared fixtures for the rules tests: small valid policies, written where a test needs them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from rules.policy import Policy
from rules.validate import parse_policy_text

# The example of Contract 1 (docs/contracts.md), as a policy department would write it.
WENGANG = """\
id: wengang-2025                 # slug, unique
version: 1
title: 2025年失业保险稳岗返还
department: 市人力资源和社会保障局
source:
  document: 某人社发〔2025〕12号
  url: https://example.gov.cn/rsj/2025/12.html
valid_from: 2025-01-01
valid_to: 2025-12-31
assessment_year: 2024
period: "2025"
budget: 30000000.00
allocation: pro_rata
confirmation: required
conditions:
  - id: insured
    text: 依法参加失业保险并足额缴纳上年度失业保险费
    clause: 第二条第(一)项
    rule: ui_premium_paid > 0 and not ui_arrears
  - id: not_dishonest
    text: 未被列入严重失信主体名单
    clause: 第二条第(三)项
    rule: not serious_dishonest
items:
  - id: sme
    title: 中小微企业返还
    conditions:
      - id: sme_size
        text: 中小微企业
        clause: 第三条
        rule: size_class in ["medium", "small", "micro"]
      - id: layoff
        text: 上年度未裁员或裁员率不高于5.5%，30人及以下企业裁员率不高于20%
        clause: 第二条第(二)项
        rule: layoff_rate <= 0.055 or (insured_start <= 30 and layoff_rate <= 0.20)
    amount: ui_premium_paid * 0.6
    cap: 1000000.00
  - id: large
    title: 大型企业返还
    conditions:
      - id: large_size
        text: 大型企业
        rule: size_class == "large"
      - id: large_layoff
        text: 上年度裁员率不高于5.5%
        rule: layoff_rate <= 0.055
    amount: ui_premium_paid * 0.3
"""

# A second, independent policy: a flat award for certified high-tech enterprises.
GAOXIN = """\
id: gaoxin-2025
version: 1
title: 2025年高新技术企业认定奖励
department: 市科学技术局
source:
  document: 某科发〔2025〕3号
valid_from: 2025-03-01
valid_to: 2025-11-30
assessment_year: 2024
period: "2025"
budget: 5000000.00
allocation: none
conditions:
  - id: high_tech
    text: 持有有效的高新技术企业证书
    rule: is_high_tech
items:
  - id: award
    title: 高新技术企业奖励
    amount: 200000
"""


@pytest.fixture
def wengang_yaml() -> str:
    return WENGANG


@pytest.fixture
def gaoxin_yaml() -> str:
    return GAOXIN


@pytest.fixture
def policy_dir(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Writes policy files into a fresh folder: policy_dir({"a.yaml": text, ...}) -> the folder."""
    count = 0

    def write(files: dict[str, str]) -> Path:
        nonlocal count
        count += 1
        folder = tmp_path / f"policies-{count}"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        return folder

    return write


@pytest.fixture
def make_policy() -> Callable[[str], Policy]:
    """A policy from YAML text written inline in a test (indentation is removed)."""

    def make(text: str) -> Policy:
        return parse_policy_text(textwrap.dedent(text), "test.yaml")

    return make
