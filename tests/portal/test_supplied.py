"""Supplying missing data: the value is typed by the catalog, the evidence recognised from its bytes, the
field's own department decides, and a verified value becomes the one active override of its cell.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from matcher.results import export_lists
from matcher.run import run_match
from payouts import audit, users
from payouts.errors import NotFoundError
from portal import supplied
from portal.supplied import EvidenceError, Missing
from rules.errors import PayoutError, StateError

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
ENTERPRISE = "91321302N37DJHMYJR"
PREMIUM = Missing("c-wenbao", "refund", "ui_premium_paid", 2024, "run-1")
LAYOFF = Missing("c-wenbao", "refund", "layoff_rate", 2024, "run-1")
H = dt.timedelta(hours=1)


@pytest.fixture
def staff(tx, t0) -> None:
    with tx() as s:
        users.create_user(s, "hr", "reviewer", department="市人力资源和社会保障局", carry_over=True, now=t0)
        users.create_user(s, "tax", "policy", department="国家税务总局某市税务局", carry_over=True, now=t0)


def _submit(tx, tmp_path: Path, t0, missing=PREMIUM, field="ui_premium_paid", value="12,345.60", data=PDF):
    with tx() as s:
        return supplied.submit(
            s,
            uscc=ENTERPRISE,
            missing=missing,
            field_name=field,
            value=value,
            evidence=data,
            evidence_name="../../缴费证明.pdf",
            evidence_dir=tmp_path / "evidence",
            now=t0,
        ).public_id


def test_a_submission_maps_the_field_to_its_snapshot_cell_and_stores_the_evidence_privately(
    tx, tmp_path, t0, staff
) -> None:
    pid = _submit(tx, tmp_path, t0)
    with tx() as s:
        row = supplied.get(s, pid)
        assert (row.snapshot_table, row.snapshot_column, row.year, row.value) == (
            "social_insurance",
            "ui_premium_paid",
            2024,
            "12345.60",
        )
        assert (row.department, row.state, row.evidence_type) == (
            "人力资源和社会保障局",
            "submitted",
            "application/pdf",
        )
        assert row.evidence_name == "缴费证明.pdf"  # no path from the browser is kept
        stored = list((tmp_path / "evidence").iterdir())
        assert [p.name for p in stored] == [row.evidence_path] and stored[0].read_bytes() == PDF
        assert len(row.evidence_path) == 32 and "pdf" not in row.evidence_path


def test_the_value_is_checked_against_the_catalog_type(tx, tmp_path, t0) -> None:
    for value, message in (("很多", "数字"), ("-5", "不小于 0"), ("1.005", "精确到分"), ("", "请填写")):
        with pytest.raises(PayoutError, match=message):
            _submit(tx, tmp_path, t0, value=value)
    with pytest.raises(PayoutError, match="整数"):
        _submit(tx, tmp_path, t0, missing=LAYOFF, field="insured_start", value="20.5")
    honest = Missing("c-wenbao", "refund", "serious_dishonest", None)
    with tx() as s:
        row = supplied.submit(
            s,
            uscc=ENTERPRISE,
            missing=honest,
            field_name="serious_dishonest",
            value="否",
            evidence=PNG,
            evidence_name="信用报告.png",
            evidence_dir=tmp_path,
            now=t0,
        )
        assert (row.snapshot_table, row.year, row.value, row.evidence_type) == (
            "credit",
            None,
            "false",
            "image/png",
        )


def test_a_derived_field_names_the_inputs_to_supply(tx, tmp_path, t0) -> None:
    assert [f.name for f in supplied.inputs_for("layoff_rate")] == ["insured_start", "insured_end"]
    with pytest.raises(PayoutError, match="应补充：年初参保人数、年末参保人数"):
        _submit(tx, tmp_path, t0, missing=LAYOFF, field="layoff_rate", value="0.01")
    _submit(tx, tmp_path, t0, missing=LAYOFF, field="insured_end", value="20")
    with pytest.raises(PayoutError, match="不能由企业直接补充"):
        supplied.inputs_for("is_high_tech")


def test_evidence_is_recognised_from_its_bytes_and_limited_to_10_mb(tx, tmp_path, t0) -> None:
    for data, message in (
        (b"MZ\x90\x00" + b"\x00" * 100, "只能是 PDF 或图片"),
        (b"<html><script>alert(1)</script></html>", "无法识别"),
        (b"", "空文件"),
        (PDF + b"\x00" * (10 * 1024 * 1024), "过大"),
    ):
        with pytest.raises(EvidenceError, match=message):
            _submit(tx, tmp_path, t0, data=data)
    assert not (tmp_path / "evidence").exists() or not any((tmp_path / "evidence").iterdir())


def test_only_the_owning_department_verifies_and_the_newest_override_wins(tx, tmp_path, t0, staff) -> None:
    first = _submit(tx, tmp_path, t0)
    with pytest.raises(StateError, match="请勿重复提交"):
        _submit(tx, tmp_path, t0 + H, value="20000")
    with tx() as s:
        supplied.verify(s, first, "hr", t0 + 2 * H)
    second = _submit(tx, tmp_path, t0 + H, value="20000")  # a correction after the first was verified
    with tx() as s:
        with pytest.raises(NotFoundError):
            supplied.verify(
                s, second, "tax", t0 + 2 * H
            )  # another department's field does not exist for them
        with pytest.raises(NotFoundError):
            supplied.verify(s, second, "rev", t0 + 2 * H)  # no department holds nothing
    with tx() as s:
        assert [r["value"] for r in supplied.override_records(s)] == ["12345.60"]
        supplied.verify(s, second, "hr", t0 + 3 * H)
        with pytest.raises(StateError, match="已处理（已核实）"):
            supplied.verify(s, second, "hr", t0 + 3 * H)
    with tx() as s:
        records = supplied.override_records(s)
        assert [(r["uscc"], r["table"], r["column"], r["year"], r["value"]) for r in records] == [
            (ENTERPRISE, "social_insurance", "ui_premium_paid", 2024, "20000.00")
        ]
        assert audit.verify(s).ok
        actions = [e.action for e in audit.history(s, "supplied", first)]
        assert actions == ["supply", "verify"]


def test_a_rejection_needs_a_reason_and_creates_no_override(tx, tmp_path, t0, staff) -> None:
    pid = _submit(tx, tmp_path, t0)
    with tx() as s:
        with pytest.raises(StateError, match="原因"):
            supplied.reject(s, pid, "hr", "  ", t0 + H)
        row = supplied.reject(s, pid, "hr", "缴费凭证与金额不符", t0 + H)
        assert (row.state, row.reason) == ("rejected", "缴费凭证与金额不符")
        assert supplied.override_records(s) == []


def test_evidence_is_handed_only_to_the_owning_department(tx, tmp_path, t0, staff) -> None:
    pid = _submit(tx, tmp_path, t0)
    with tx() as s:
        file = supplied.evidence(s, pid, "hr", tmp_path / "evidence", t0 + H)
        assert (file.media_type, file.filename) == ("application/pdf", f"{ENTERPRISE}-ui_premium_paid.pdf")
        with pytest.raises(NotFoundError):
            supplied.evidence(s, pid, "tax", tmp_path / "evidence", t0 + H)


def test_department_ownership_reads_the_catalogs_names() -> None:
    assert supplied.owns("市人力资源和社会保障局", "人力资源和社会保障局")
    assert supplied.owns("市科学技术局", "科学技术局 / 工业和信息化局")
    assert supplied.owns("某市市场监督管理局", "市场监督管理局（企业年报）")
    assert not supplied.owns("市科学技术局", "人力资源和社会保障局")
    assert not supplied.owns(None, "税务局")


def _line(policy: str, item: str, field: str, year: int | None = 2024) -> supplied.MissingLine:
    inputs, refusal = [], None
    try:
        inputs = supplied.inputs_for(field)
    except PayoutError as e:
        refusal = str(e)
    label = supplied.CATALOG[field].label
    return supplied.MissingLine(
        Missing(policy, item, field, year), f"政策{policy}", f"事项{item}", label, "部门", inputs, refusal
    )


def test_each_missing_field_is_asked_once_per_enterprise_grouped_by_department() -> None:
    # Three items miss 失业保险欠费, two miss 裁员率 (asked as 年初/年末参保人数), one misses 年初参保人数
    # itself, one misses 高新技术企业 (a registry flag): each stored field is asked once.
    lines = [
        _line("wengang", "sme", "ui_arrears"),
        _line("wengang", "large", "ui_arrears"),
        _line("kuogang", "hire", "ui_arrears"),
        _line("wengang", "sme", "layoff_rate"),
        _line("wengang", "large", "layoff_rate"),
        _line("kuogang", "hire", "insured_start"),
        _line("gaoxin", "award", "is_high_tech"),
        _line("gaoxin", "bonus", "is_high_tech"),
        _line("old", "x", "ui_arrears", year=2023),  # another assessment year: another value
    ]
    groups, refusals = supplied.asks(lines)
    asked = [(a.key, a.items) for g in groups for a in g.asks]
    assert sorted(k for k, _ in asked) == [
        "insured_end@2024",
        "insured_start@2024",
        "ui_arrears@2023",
        "ui_arrears@2024",
    ]
    assert len(groups) == 1 and groups[0].department == supplied.CATALOG["ui_arrears"].department
    by_key = {a.key: a for a in groups[0].asks}
    assert by_key["ui_arrears@2024"].items == (
        "政策wengang·事项sme",
        "政策wengang·事项large",
        "政策kuogang·事项hire",
    )
    assert by_key["insured_start@2024"].computes == ("裁员率",)
    assert [(r.label, r.items) for r in refusals] == [
        ("高新技术企业", ("政策gaoxin·事项award", "政策gaoxin·事项bonus"))
    ]


def test_one_evidence_file_backs_several_fields_and_one_bad_value_writes_nothing(tx, tmp_path, t0) -> None:
    values = [
        (LAYOFF, "insured_start", "30"),
        (LAYOFF, "insured_end", "二十"),
        (PREMIUM, "ui_premium_paid", "10"),
    ]
    with tx() as s, pytest.raises(PayoutError, match="年末参保人数”应为不小于 0 的整数"):
        supplied.submit_several(
            s, uscc=ENTERPRISE, values=values, evidence=PDF, evidence_name="社保证明.pdf",
            evidence_dir=tmp_path / "evidence", now=t0,
        )  # fmt: skip
    assert not (tmp_path / "evidence").exists()
    values[1] = (LAYOFF, "insured_end", "20")
    with tx() as s:
        rows = supplied.submit_several(
            s, uscc=ENTERPRISE, values=values, evidence=PDF, evidence_name="社保证明.pdf",
            evidence_dir=tmp_path / "evidence", now=t0,
        )  # fmt: skip
        assert [(r.field, r.value) for r in rows] == [
            ("insured_start", "30"),
            ("insured_end", "20"),
            ("ui_premium_paid", "10.00"),
        ]
        assert len({r.evidence_path for r in rows}) == 1 and len(list((tmp_path / "evidence").iterdir())) == 1


def test_last_years_figure_is_asked_and_overridden_for_the_year_before_the_assessment_year(
    tx, tmp_path, t0, staff
) -> None:
    # An R&D increase award (assessment year 2024) misses 上年度研发费用: the enterprise supplies 研发费用 of
    # 2023, once, next to this year's figure, and the override fills the 2023 row of the tax table.
    groups, refusals = supplied.asks(
        [_line("yanfa", "increase", "rd_expense_prev"), _line("yanfa", "increase", "rd_expense")]
    )
    assert refusals == []
    by_key = {a.key: a for g in groups for a in g.asks}
    assert sorted(by_key) == ["rd_expense@2023", "rd_expense@2024"]
    assert (by_key["rd_expense@2023"].year, by_key["rd_expense@2023"].computes) == (2023, ())
    prev = Missing("yanfa", "increase", "rd_expense_prev", 2024, "run-1")
    pid = _submit(tx, tmp_path, t0, missing=prev, field="rd_expense", value="1,000,000.00")
    with pytest.raises(StateError, match="请勿重复提交"):
        _submit(tx, tmp_path, t0 + H, missing=prev, field="rd_expense", value="2000000")
    this_year = Missing("yanfa", "increase", "rd_expense", 2024, "run-1")
    _submit(tx, tmp_path, t0 + H, missing=this_year, field="rd_expense", value="1200000")  # another cell
    with tx() as s:
        row = supplied.get(s, pid)
        assert (row.field, row.missing_field, row.snapshot_table, row.year) == (
            "rd_expense",
            "rd_expense_prev",
            "tax",
            2023,
        )
        supplied.verify(s, pid, "tax", t0 + 2 * H)
    with tx() as s:
        assert [(r["table"], r["column"], r["year"], r["value"]) for r in supplied.override_records(s)] == [
            ("tax", "rd_expense", 2023, "1000000.00")
        ]


GROWTH_POLICY = """\
id: t-growth
version: 1
title: 营业收入增长奖励（测试）
department: 测试部门
source: {document: 测试文件}
valid_from: 2025-01-01
valid_to: 2025-12-31
assessment_year: 2025
period: "2025"
conditions:
  - {id: grew, text: 上年度营业收入大于0, rule: revenue_prev > 0}
items:
  - {id: award, title: 奖励, amount: 100}
"""


def test_a_verified_last_year_figure_fills_the_row_the_next_run_reads(tmp_path: Path) -> None:
    """The cell the supplied value names is the one the matcher reads for revenue_prev: with assessment
    year 2025, 营业收入 of 2024 (NULL in the conformance snapshot for this enterprise)."""
    case = Path(__file__).resolve().parent.parent / "conformance"
    uscc = "91320803LT922YN0DP"  # annual report 2024 without 营业收入
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "t-growth.yaml").write_text(GROWTH_POLICY, encoding="utf-8")
    missing = Missing("t-growth", "award", "revenue_prev", 2025, "run-1")
    (f,) = supplied.inputs_for("revenue_prev")
    override = {
        "id": "ov-prev",
        "uscc": uscc,
        "table": f.table,
        "column": f.name,
        "year": supplied.supply_year(missing, f),
        "value": "5000000.00",
    }
    as_of = dt.date(2025, 9, 30)
    before = run_match(case / "snapshot", policies, tmp_path / "before", as_of).out
    after = run_match(case / "snapshot", policies, tmp_path / "after", as_of, overrides=[override]).out
    for out in (before, after):
        export_lists(out)  # the runs keep their lists compact: written out as Contract 4's files

    def found(out: Path, name: str) -> bool:
        rows = duckdb.sql(f"SELECT uscc FROM '{out / name}.parquet' WHERE uscc = '{uscc}'").fetchall()
        return bool(rows)

    assert found(before, "missing_data") and not found(before, "candidates")
    assert found(after, "candidates") and not found(after, "missing_data")
