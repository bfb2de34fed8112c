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
