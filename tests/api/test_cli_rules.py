"""`zhida rules show`: how a policy is paid, in words staff can repeat to an enterprise."""

from __future__ import annotations

from typer.testing import CliRunner

from api.cli import app


def _show(path: str) -> str:
    result = CliRunner().invoke(app, ["rules", "show", path], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_a_relief_is_shown_as_paying_nothing_and_a_refund_as_paid_without_confirmation() -> None:
    assert "兑现方式：不涉及资金拨付" in _show("data/policies/canbaojin-2025.yaml")
    assert "兑现方式：免确认直接拨付" in _show("data/policies/wengang-2025.yaml")
    assert "兑现方式：企业一键确认后拨付" in _show("data/policies/yanfa-longgang.yaml")


def test_an_apply_policy_shows_its_guide_joint_review_and_the_amount_the_department_sets() -> None:
    out = _show("data/policies/ks-shoutao-sichuan-2025.yaml")
    assert "快申快享：企业在线申请，由四川省经济和信息化厅、四川省财政厅审核" in out
    assert "咨询电话 12345" in out and "承诺时限：60 个工作日" in out
    assert "会签部门：四川省经济和信息化厅、四川省财政厅（四川省经济和信息化厅牵头）" in out
    assert "金额：由审核部门核定，每户最高 10,000,000.00 元" in out
    assert "材料：销售发票（选交）" in out


def test_a_qualification_is_shown_as_paying_nothing_and_never_matched() -> None:
    out = _show("data/policies/zizhi-zhuanjingtexin-sichuan-2024.yaml")
    assert "类别：资质（不发放资金，不参与数据比对；按申兑指南办理）" in out
    assert "咨询电话 028-86264044" in out
