"""快申快享 in policy files: apply items, kinds, the guide, joint review, and what the matcher skips."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from rules.errors import PolicyError
from rules.validate import parse_policy_text

HEAD = """\
id: yanfa-apply
version: 1
title: 研发投入后补助
department: 市科学技术局
source: {document: 某科发〔2025〕3号}
valid_from: 2025-01-01
valid_to: 2025-12-31
assessment_year: 2024
period: "2025"
budget: 1000000.00
kind: 奖补
"""

GUIDE = """\
guide:
  phone: "0731-88888888"
  department_address: 市政务服务中心二楼科技窗口
  time_limit_days: 20
  flow: [网上申请, 部门审核, 资金拨付]
reviewers: [市科学技术局, 市财政局]
"""

ITEMS = """\
items:
  - id: data
    title: 数据可判定部分
    amount: 10000
  - id: apply
    title: 研发投入后补助
    mode: apply
    conditions:
      - id: rd
        text: 上年度研发费用不少于100万元
        rule: rd_expense >= 1000000
    cap: 500000.00
    application:
      fields: [rd_expense]
      questions:
        - {id: projects, text: 在研项目数, type: integer}
        - {id: field, text: 所属技术领域, type: choice, choices: [电子信息, 生物医药]}
      materials:
        - {id: audit, name: 研发费用专项审计报告, note: 会计师事务所出具}
        - {id: other, name: 其他证明材料, required: false}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as e:
        parse_policy_text(text, "p.yaml")
    return [f"{p.line}|{p.where}|{p.message}|{p.hint}" for p in e.value.problems]


def test_apply_item_reads_with_its_application_guide_and_reviewers() -> None:
    policy = parse_policy_text(HEAD + GUIDE + ITEMS, "p.yaml")
    item = policy.item("apply")
    assert item.mode == "apply" and item.amount is None and item.cap == 500000
    assert item.application is not None
    assert [q.type for q in item.application.questions] == ["integer", "choice"]
    assert [m.required for m in item.application.materials] == [True, False]
    assert policy.guide is not None and policy.guide.time_limit_days == 20
    assert policy.lead_reviewer == "市科学技术局"


def test_the_matcher_sees_only_apply_free_items() -> None:
    policy = parse_policy_text(HEAD + GUIDE + ITEMS, "p.yaml")
    matched = policy.matchable()
    assert matched is not None and [i.id for i in matched.items] == ["data"]
    only_apply = parse_policy_text(
        HEAD + GUIDE + ITEMS.replace("  - id: data\n    title: 数据可判定部分\n    amount: 10000\n", ""),
        "p.yaml",
    )
    assert only_apply.matchable() is None


def test_entitlement_has_no_items_and_is_never_matched() -> None:
    text = HEAD.replace("kind: 奖补", "kind: 资质").replace("budget: 1000000.00\n", "") + GUIDE
    policy = parse_policy_text(text, "p.yaml")
    assert policy.items == [] and not policy.gives_money and policy.matchable() is None


def test_entitlement_with_money_items_is_refused_in_plain_words() -> None:
    text = HEAD.replace("kind: 奖补", "kind: 权益") + GUIDE + ITEMS
    assert any("权益类政策不发放资金，不能有兑现事项" in p for p in _problems(text))


def test_award_without_items_is_refused() -> None:
    assert any("缺少必填项 `items`" in p for p in _problems(HEAD + GUIDE))
    assert any("至少要有一项" in p and "kind: 权益" in p for p in _problems(HEAD + GUIDE + "items: []\n"))


def test_apply_item_needs_a_guide_with_the_time_limit() -> None:
    problems = _problems(HEAD + ITEMS)
    assert any(
        "有申请事项（mode: apply）必须有申兑指南 guide" in p and "time_limit_days" in p for p in problems
    )


def test_apply_item_set_by_the_department_needs_a_cap() -> None:
    text = HEAD + GUIDE + ITEMS.replace("    cap: 500000.00\n", "")
    line = (HEAD + GUIDE).count("\n") + 5  # the `- id: apply` line
    assert any(p.startswith(f"{line}|yanfa-apply/apply|") and "必须写上限 cap" in p for p in _problems(text))


def test_apply_free_item_still_needs_an_amount() -> None:
    text = HEAD + GUIDE + ITEMS.replace("    amount: 10000\n", "")
    assert any("yanfa-apply/data|缺少必填项 `amount`" in p for p in _problems(text))


def test_unknown_application_field_suggests_the_closest_name() -> None:
    text = HEAD + GUIDE + ITEMS.replace("fields: [rd_expense]", "fields: [rd_expens]")
    line = (HEAD + GUIDE + ITEMS).splitlines().index("      fields: [rd_expense]") + 1
    assert any(
        p.startswith(f"{line}|") and "未知字段 `rd_expens`" in p and "`rd_expense`" in p
        for p in _problems(text)
    )


def test_choice_question_needs_its_choices_and_bad_types_list_the_allowed_ones() -> None:
    text = (
        HEAD
        + GUIDE
        + ITEMS.replace(", choices: [电子信息, 生物医药]", "").replace("type: integer", "type: number")
    )
    problems = _problems(text)
    assert any("选择题必须列出选项 choices" in p for p in problems)
    assert any(
        "取值不在允许范围内" in p and "text、integer、money、date、boolean、choice" in p for p in problems
    )


def test_typo_in_guide_suggests_the_key() -> None:
    text = HEAD + GUIDE.replace("time_limit_days", "time_limit_day") + ITEMS
    assert any("不认识的键 `guide.time_limit_day`" in p and "`time_limit_days`" in p for p in _problems(text))


def test_an_apply_item_needs_the_guides_time_limit_and_a_qualification_may_have_none() -> None:
    no_limit = GUIDE.replace("  time_limit_days: 20\n", "")
    assert any("必须写承诺时限 time_limit_days" in p for p in _problems(HEAD + no_limit + ITEMS))
    qualification = (HEAD + no_limit).replace("kind: 奖补\n", "kind: 资质\n")
    guide = parse_policy_text(qualification, "zizhi.yaml").guide
    assert guide is not None and guide.time_limit_days is None


def test_application_only_on_apply_items() -> None:
    text = HEAD + GUIDE + ITEMS.replace("    mode: apply\n", "    amount: 1000\n")
    assert any("只有申请事项才有 application" in p for p in _problems(text))


def test_a_match_run_skips_apply_items_and_keeps_the_conformance_result(tmp_path: Path) -> None:
    case = Path(__file__).resolve().parent.parent / "conformance"
    policies = tmp_path / "policies"
    shutil.copytree(case / "policies", policies)
    (policies / "ks-apply.yaml").write_text(
        textwrap.dedent(
            HEAD + GUIDE + ITEMS.replace("  - id: data\n    title: 数据可判定部分\n    amount: 10000\n", "")
        ).replace("id: yanfa-apply", "id: ks-apply"),
        encoding="utf-8",
    )
    (policies / "ks-zizhi.yaml").write_text(
        (HEAD.replace("kind: 奖补", "kind: 资质").replace("id: yanfa-apply", "id: ks-zizhi") + GUIDE),
        encoding="utf-8",
    )
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "api",
        "match",
        "--snapshot",
        str(case / "snapshot"),
        "--policies",
        str(policies),
    ]
    done = subprocess.run(
        [*cmd, "--as-of", "2025-09-30", "--out", str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr + done.stdout
    got = duckdb.sql(f"SELECT policy_id FROM read_parquet('{out / 'candidates.parquet'}')").fetchall()
    assert "ks-apply" not in {r[0] for r in got} and "ks-zizhi" not in {r[0] for r in got}
    expected = (case / "expected" / "candidates.csv").read_text(encoding="utf-8").strip().count("\n")
    assert len(got) == expected
