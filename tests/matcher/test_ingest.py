"""`zhida snapshot import`: department exports as they come (Excel with a title row and a merged header,
GBK and GB18030 CSV, dates as 2025/9/30 and 2025年9月30日, money in 万元) become a snapshot that validates
and profiles to the exact values; every problem is reported at its file, sheet, row and column with the
field and a fix, and then nothing is written."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from api.cli import app
from matcher.ingest import MAX_PROBLEMS, import_snapshot, load_mapping
from matcher.ingest.exports import _decode
from matcher.profile import build_profile, profile_row
from matcher.snapshot import load_snapshot
from rules.errors import IngestError, SourceProblem
from tests.matcher import exports
from tests.matcher.exports import (
    BANK,
    E1,
    E2,
    E3,
    EXPECTED,
    HRSS,
    MAPPING,
    SAMR,
    SAMR_SOURCE,
    TAKEN_AT,
    TAX,
    TECH,
    csv_bytes,
    samr_rows,
    samr_workbook,
    write_exports,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages show paths relative to the working directory: work where the exports are."""
    monkeypatch.chdir(tmp_path)


POLICY = """\
id: yanfa-import-test
version: 1
title: 研发投入奖励（测试）
department: 市科学技术局
source:
  document: 测试用例，非真实文件
valid_from: 2025-01-01
valid_to: 2025-12-31
assessment_year: 2024
period: "2025"
conditions:
  - id: not_dishonest
    text: 未被列入严重失信主体名单
    rule: not serious_dishonest
  - id: rating
    text: 纳税信用等级为A级或B级
    rule: credit_rating in ["A", "B"]
items:
  - id: reward
    title: 按上年度研发费用的5%奖励
    conditions:
      - id: rd
        text: 上年度研发费用不低于10万元
        rule: rd_expense >= 100000
    amount: rd_expense * 0.05
"""


def run_import(tmp_path: Path, mapping: str = MAPPING, **replace: bytes) -> Path:
    """Write the exports and the mapping under tmp_path, import them into tmp_path/snapshot."""
    files = write_exports(tmp_path / "exports", **replace)
    (tmp_path / "mapping.yaml").write_text(mapping, encoding="utf-8")
    out = tmp_path / "snapshot"
    import_snapshot(load_mapping(tmp_path / "mapping.yaml"), files, out)
    return out


def problems_of(tmp_path: Path, mapping: str = MAPPING, **replace: bytes) -> list[SourceProblem]:
    with pytest.raises(IngestError) as caught:
        run_import(tmp_path, mapping, **replace)
    assert not (tmp_path / "snapshot").exists()
    assert not [p for p in tmp_path.iterdir() if ".importing-" in p.name]  # the temporary folder is gone
    return caught.value.problems


def one(problems: list[SourceProblem], **where: object) -> SourceProblem:
    """The one problem at the given place."""
    found = [p for p in problems if all(getattr(p, k) == v for k, v in where.items())]
    assert len(found) == 1, (where, [str(p) for p in problems])
    return found[0]


# --- the exports as they come -----------------------------------------------------------------------------


def test_department_exports_become_a_snapshot_that_validates_and_profiles_exactly(tmp_path: Path) -> None:
    out = run_import(tmp_path)
    con = duckdb.connect()
    report = load_snapshot(out, con)
    assert report.rejected_total == 0, report.to_text()
    assert report.taken_at == TAKEN_AT
    assert {name: t.rows_accepted for name, t in report.tables.items()} == {
        "enterprises": 3,
        "annual_reports": 3,
        "tax": 3,
        "social_insurance": 3,
        "credit": 3,
        "certifications": 2,
        "bank_accounts": 3,
        "payments": 0,
        "stats_listing": 0,  # optional, and no export feeds it here
    }
    table = build_profile(con, 2024, TAKEN_AT)
    for code, expected in EXPECTED.items():
        row = profile_row(con, table, code)
        assert row is not None
        assert {k: row[k] for k in expected} == expected, code


def test_money_in_wanyuan_becomes_exact_yuan(tmp_path: Path) -> None:
    out = run_import(tmp_path)
    tax = (out / "tax.csv").read_text(encoding="utf-8").splitlines()
    # 1,256.30 万元, 420.5 万元; 3.2 万元, 37.15754 万元 (to the fen, no float on the way)
    assert tax[1].endswith(",2024,12563000.00,4205000.00,A")
    assert tax[2].endswith(",2024,32000.00,371575.40,B")
    annual = (out / "annual_reports.csv").read_text(encoding="utf-8")
    assert f"{E2},2024,35,7431508.00,9000000.00" in annual  # 743.1508 万元 from an Excel number cell


def test_snapshot_yaml_records_each_source_with_its_sha256_and_rows(tmp_path: Path) -> None:
    out = run_import(tmp_path)
    meta = yaml.safe_load((out / "snapshot.yaml").read_text(encoding="utf-8"))
    assert meta["taken_at"] == TAKEN_AT
    tax = meta["sources"]["tax"]
    assert tax["department"] == "税务局" and tax["file"] == "tax.csv" and tax["rows"] == 3
    data = (tmp_path / "exports" / TAX).read_bytes()
    assert tax["from"] == [{"file": TAX, "sha256": hashlib.sha256(data).hexdigest(), "rows": 3}]
    workbook = hashlib.sha256((tmp_path / "exports" / SAMR).read_bytes()).hexdigest()
    assert meta["sources"]["enterprises"]["from"] == [
        {"file": SAMR, "sheet": "登记信息", "sha256": workbook, "rows": 3}
    ]
    assert meta["sources"]["annual_reports"]["from"][0]["sheet"] == "年报"
    assert meta["imported"]["mapping"] == "mapping.yaml"


def test_match_on_the_imported_snapshot_pays_the_expected_amounts(tmp_path: Path) -> None:
    files = write_exports(tmp_path / "exports")
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    runner = CliRunner()
    snap = tmp_path / "snapshot"
    args = ["snapshot", "import", "--mapping", str(tmp_path / "mapping.yaml"), *map(str, files)]
    result = runner.invoke(app, [*args, "--out", str(snap)])
    assert result.exit_code == 0, result.output
    assert "校验通过" in result.output and SAMR in result.output
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "yanfa.yaml").write_text(POLICY, encoding="utf-8")
    result = runner.invoke(
        app,
        [
            "match",
            "--snapshot",
            str(snap),
            "--policies",
            str(tmp_path / "policies"),
            "--out",
            str(tmp_path / "run"),
            "--as-of",
            "2025-09-30",
        ],
    )
    assert result.exit_code == 0, result.output
    candidates = pq.read_table(tmp_path / "run" / "candidates.parquet").to_pylist()
    # E1: 420.5 万元 × 5%; E2: 37.15754 万元 × 5%, rounded half-up to the fen; E3 is rated M.
    assert {c["uscc"]: c["amount"] for c in candidates} == {
        E1: Decimal("210250.00"),
        E2: Decimal("18578.77"),
    }


def test_readme_shows_the_mapping_of_a_market_regulation_export_that_the_tests_import() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.DOTALL)
    assert any(SAMR_SOURCE in block for block in blocks)
    assert "zhida snapshot import --mapping" in readme


def test_the_mapping_in_the_contract_is_a_valid_mapping(tmp_path: Path) -> None:
    contracts = (ROOT / "docs" / "contracts.md").read_text(encoding="utf-8")
    section = contracts[contracts.index("### The mapping file") :]
    example = re.search(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    assert example is not None
    (tmp_path / "mapping.yaml").write_text(example.group(1), encoding="utf-8")
    (source,) = load_mapping(tmp_path / "mapping.yaml").sources
    assert (source.table, source.header_rows, source.encoding) == ("enterprises", (2, 3), "gbk")
    assert [f.example for f in source.date_formats] == ["2025/9/30", "2025年9月30日"]


# --- problems, each at its place ------------------------------------------------------------------------------


def test_unknown_header_names_its_column_and_the_closest_mapped_header(tmp_path: Path) -> None:
    rows = exports.tax_rows()
    rows[0][5] = "研发费用(万元)"  # half-width brackets: not the header the mapping names
    problems = problems_of(tmp_path, **{TAX: csv_bytes(rows, "gbk")})
    unknown = one(problems, file=f"exports/{TAX}", row=1, column="F")
    assert unknown.header == "研发费用(万元)"
    assert "映射文件中没有这个表头" in unknown.message
    assert "研发费用（万元）" in (unknown.hint or "") and "ignore" in (unknown.hint or "")
    absent = one(problems, file=f"exports/{TAX}", column=None)
    assert "找不到映射要求的表头「研发费用（万元）」，它提供字段 rd_expense" in absent.message
    assert "研发费用(万元)" in (absent.hint or "")


def test_a_file_that_does_not_decode_names_the_encoding_tried_and_the_one_that_fits(tmp_path: Path) -> None:
    mapping = MAPPING.replace(
        "    encoding: gb18030\n    header_rows: 2", "    encoding: gbk\n    header_rows: 2"
    )
    problems = problems_of(tmp_path, mapping)
    (problem,) = problems
    assert problem.file == f"exports/{HRSS}"
    assert "按 gbk 编码无法解码" in problem.message and "第 5 行" in problem.message  # the 䶮 of E3
    assert "gb18030" in (problem.hint or "")


def test_a_utf8_file_mapped_as_gbk_is_refused_rather_than_read_garbled(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path, **{TAX: csv_bytes(exports.tax_rows(), "utf-8")})
    assert problem.file == f"exports/{TAX}" and "按 gbk 编码无法解码" in problem.message
    assert "encoding 改为 utf-8" in (problem.hint or "")
    # UTF-8 bytes that GBK happens to decode (into other characters) are refused as well
    garbled = "企业名称,年度\r\n".encode()  # reads as 浼佷笟鍚嶇О,骞村害 in GBK
    garbled.decode("gbk")
    with pytest.raises(IngestError, match="是 UTF-8 编码"):
        _decode(garbled, TAX, "gbk")


def test_an_ambiguous_date_is_an_error_with_both_readings(tmp_path: Path) -> None:
    mapping = MAPPING.replace(
        "date_formats: [2025年9月30日]", "date_formats: [2025年9月30日, 9/30/2025, 30/9/2025]"
    )
    rows = exports.tech_rows()
    rows[1][3] = "6/11/2023"
    problems = problems_of(tmp_path, mapping, **{TECH: csv_bytes(rows, "gb18030")})
    problem = one(problems, row=2)
    assert (problem.file, problem.column, problem.header, problem.field) == (
        f"exports/{TECH}",
        "D",
        "认定日期",
        "cert_date",
    )
    assert "有歧义" in problem.message
    assert "2023年6月11日" in problem.message and "2023年11月6日" in problem.message


def test_an_unrecognised_date_lists_the_accepted_ways_of_writing_it(tmp_path: Path) -> None:
    files = write_exports(tmp_path / "exports")
    rows = samr_rows()
    rows[1][3] = "2021.3.15"
    samr_workbook(tmp_path / "exports" / SAMR, rows)
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    with pytest.raises(IngestError) as caught:
        import_snapshot(load_mapping(tmp_path / "mapping.yaml"), files, tmp_path / "snapshot")
    (problem,) = caught.value.problems
    assert (problem.sheet, problem.row, problem.column, problem.header, problem.field) == (
        "登记信息",
        5,
        "D",
        "成立日期",
        "reg_date",
    )
    assert "“2021.3.15”" in problem.message
    assert "2025/9/30、2025年9月30日" in (problem.hint or "") and "date_formats" in (problem.hint or "")
    assert str(problem).startswith(f"exports/{SAMR} 工作表「登记信息」第 5 行 D 列「成立日期」 → reg_date：")


def test_a_csv_line_broken_inside_a_value_is_reported_not_read_as_two_rows(tmp_path: Path) -> None:
    name = exports.NAMES[E2].encode("gbk")
    broken = name[:8] + b"\r\n" + name[8:]  # 淮安云帆 | 软件科技有限公司, unquoted
    problems = problems_of(tmp_path, **{TAX: csv_bytes(exports.tax_rows(), "gbk").replace(name, broken)})
    assert [(p.row, p.column) for p in problems] == [(3, None), (4, None)]
    assert "该行只有 3 列，表头有 7 列" in problems[0].message and "双引号" in (problems[0].hint or "")


def test_money_below_a_fen_after_conversion_is_refused(tmp_path: Path) -> None:
    rows = exports.tax_rows()
    rows[2][5] = "37.1575431"  # 371575.431 元
    problem = one(problems_of(tmp_path, **{TAX: csv_bytes(rows, "gbk")}), row=3)
    assert (problem.column, problem.header, problem.field) == ("F", "研发费用（万元）", "rd_expense")
    assert "371575.431 元" in problem.message


def test_a_value_outside_the_code_list_suggests_the_closest_code(tmp_path: Path) -> None:
    rows = exports.tax_rows()
    rows[1][6] = "A"
    problem = one(problems_of(tmp_path, **{TAX: csv_bytes(rows, "gbk")}), row=2)
    assert (problem.column, problem.field) == ("G", "credit_rating")
    assert "“A”" in problem.message and "A级" in problem.message
    assert "codes" in (problem.hint or "")


def test_a_code_stored_as_an_excel_number_is_refused(tmp_path: Path) -> None:
    files = write_exports(tmp_path / "exports")
    rows = samr_rows()
    rows[0][1] = 91320812000000001  # a USCC typed into a number cell: Excel keeps 15 significant digits
    rows[2][9] = 51783456789  # a landline without its 0
    samr_workbook(tmp_path / "exports" / SAMR, rows)
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    with pytest.raises(IngestError) as caught:
        import_snapshot(load_mapping(tmp_path / "mapping.yaml"), files, tmp_path / "snapshot")
    uscc, phone = caught.value.problems
    assert (uscc.row, uscc.column, uscc.field) == (4, "B", "uscc") and "数值格式" in uscc.message
    assert (phone.row, phone.column, phone.field) == (6, "J", "contact_phone") and "前导零" in phone.message
    assert "51783456789" not in str(phone)  # a phone number is personal data: never quoted
    assert "文本格式" in (uscc.hint or "")


def test_a_formula_without_its_result_and_an_excel_error_value_are_refused_not_read_as_empty(
    tmp_path: Path,
) -> None:
    files = write_exports(tmp_path / "exports")
    rows = samr_rows()
    rows[0][8] = "=200+300"  # written by a program: the formula is saved, its result is not
    rows[1][6] = "#N/A"
    samr_workbook(tmp_path / "exports" / SAMR, rows)
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    with pytest.raises(IngestError) as caught:
        import_snapshot(load_mapping(tmp_path / "mapping.yaml"), files, tmp_path / "snapshot")
    formula, error = caught.value.problems
    assert (formula.row, formula.column, formula.field) == (4, "I", "reg_capital")
    assert "=200+300" in formula.message and "没有保存计算结果" in formula.message
    assert (error.row, error.column, error.field) == (5, "G", "industry_code")
    assert "Excel 错误值 #N/A" in error.message


def test_an_empty_output_folder_is_filled(tmp_path: Path) -> None:
    (tmp_path / "snapshot").mkdir()
    out = run_import(tmp_path)
    assert (out / "snapshot.yaml").exists() and (out / "enterprises.csv").exists()


def test_errors_are_all_counted_the_first_ones_listed_and_nothing_is_written(tmp_path: Path) -> None:
    rows = [exports.tax_rows()[0]] + [[n, E1, "某公司", 2024, "未填", "不详", "A级"] for n in range(1, 201)]
    with pytest.raises(IngestError) as caught:
        run_import(tmp_path, **{TAX: csv_bytes(rows, "gbk")})
    assert caught.value.total == 400
    assert len(caught.value.problems) == MAX_PROBLEMS
    assert [p.column for p in caught.value.problems[:2]] == ["E", "F"]
    assert "另有 300 处错误未列出" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "mapping.yaml"]


def test_mapping_problems_are_listed_with_their_lines_and_suggestions(tmp_path: Path) -> None:
    mapping = MAPPING.replace("    sheet: 年报\n", "    sheat: 年报\n").replace(
        "注册资本（万元）: {field: reg_capital, unit: 万元}",
        "注册资本（万元）: {field: reg_capitol, unit: 万元}",
    )
    path = tmp_path / "mapping.yaml"
    path.write_text(mapping, encoding="utf-8")
    with pytest.raises(IngestError) as caught:
        load_mapping(path)
    lines = mapping.splitlines()
    by_hint = {p.hint: p for p in caught.value.problems}
    sheat = by_hint["你是想写 `sheet` 吗？"]
    assert sheat.line is not None and lines[sheat.line - 1].strip() == "sheat: 年报"
    capitol = by_hint["你是想写 `reg_capital` 吗？"]
    assert capitol.line is not None and "reg_capitol" in lines[capitol.line - 1]
    assert any("reg_capital 没有来源" in p.message for p in caught.value.problems)


def test_a_file_the_mapping_does_not_describe_and_a_source_not_given_are_both_named(tmp_path: Path) -> None:
    files = write_exports(tmp_path / "exports")
    stray = tmp_path / "exports" / "纳税信用评价.csv"
    stray.write_bytes(b"x\n")
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    given = [f for f in files if f.name != BANK] + [stray]
    with pytest.raises(IngestError) as caught:
        import_snapshot(load_mapping(tmp_path / "mapping.yaml"), given, tmp_path / "snapshot")
    texts = [str(p) for p in caught.value.problems]
    assert any("纳税信用评价.csv" in t and "没有描述该文件" in t for t in texts)
    assert any("对公账户.csv" in t and "未在命令行给出" in t for t in texts)


def test_a_workbook_with_several_sheets_needs_the_sheet_named(tmp_path: Path) -> None:
    mapping = MAPPING.replace("    sheet: 登记信息\n", "")
    problems = problems_of(tmp_path, mapping)
    twice = one(problems, file=f"exports/{SAMR}")
    assert "多项 file 与之匹配" in twice.message and "sheet" in (twice.hint or "")
    start = mapping.index(
        "  - file: 市场主体登记信息导出_*.xlsx\n    department: 市场监督管理局\n    table: annual_reports"
    )
    alone = mapping[:start] + mapping[mapping.index("  - file: 纳税信息_*.csv") :]  # no 年报 source
    problem = one(problems_of(tmp_path, alone), file=f"exports/{SAMR}")
    assert "工作簿有 2 个工作表（登记信息、年报）" in problem.message and "sheet" in (problem.hint or "")


def test_an_existing_snapshot_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "snapshot").mkdir()
    (tmp_path / "snapshot" / "enterprises.csv").write_text("keep", encoding="utf-8")
    with pytest.raises(IngestError, match="输出目录已存在且不为空"):
        run_import(tmp_path)
    assert (tmp_path / "snapshot" / "enterprises.csv").read_text(encoding="utf-8") == "keep"


def test_cli_lists_every_problem_and_exits_1(tmp_path: Path) -> None:
    rows = exports.tax_rows()
    rows[1][4], rows[3][6] = "1,25.3", "E级"
    files = write_exports(tmp_path / "exports", **{TAX: csv_bytes(rows, "gbk")})
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    args = ["snapshot", "import", "--mapping", str(tmp_path / "mapping.yaml"), *map(str, files)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "snapshot")])
    assert result.exit_code == 1
    message = str(result.exception)
    assert "共 2 处错误，未写入任何文件" in message
    assert f"{TAX} 第 2 行 E 列「实缴税额（万元）」 → tax_paid：“1,25.3”不是数字" in message
    assert f"{TAX} 第 4 行 G 列「纳税信用等级」 → credit_rating：“E级” 不在代码表中" in message
    assert not (tmp_path / "snapshot").exists()


def test_rows_the_snapshot_check_rejects_are_shown_at_their_place_in_the_export(tmp_path: Path) -> None:
    files = write_exports(tmp_path / "exports")
    rows = samr_rows()
    rows[1][1] = E2[:-1] + ("0" if E2[-1] != "0" else "1")  # a wrong check character
    samr_workbook(tmp_path / "exports" / SAMR, rows)
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    args = ["snapshot", "import", "--mapping", str(tmp_path / "mapping.yaml"), *map(str, files)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "snapshot")])
    assert result.exit_code == 0, result.output
    assert "共拒绝" in result.output
    assert (
        f"{SAMR} 工作表「登记信息」第 5 行 B 列「统一社会信用代码」 → uscc：统一社会信用代码校验位错误"
        in result.output
    )


def test_several_exports_feed_one_table_and_a_rejected_row_is_found_in_its_own_file(tmp_path: Path) -> None:
    earlier = [[n, code, "某公司", 2023, "1", "2", "A级"] for n, code in enumerate((E1, E2, E3), start=1)]
    later = exports.tax_rows()
    later[2][3] = 1980  # E2's row in the second file: a year before 1990
    files = write_exports(tmp_path / "exports", **{TAX: csv_bytes(later, "gbk")})
    (tmp_path / "exports" / "纳税信息_2023.csv").write_bytes(csv_bytes([later[0], *earlier], "gbk"))
    files.append(tmp_path / "exports" / "纳税信息_2023.csv")
    (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
    args = ["snapshot", "import", "--mapping", str(tmp_path / "mapping.yaml"), *map(str, files)]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "snapshot")])
    assert result.exit_code == 0, result.output
    assert f"{TAX} 第 3 行 D 列「所属年度」 → year：年度超出范围，值为“1980”" in result.output
    meta = yaml.safe_load((tmp_path / "snapshot" / "snapshot.yaml").read_text(encoding="utf-8"))
    assert meta["sources"]["tax"]["rows"] == 6
    assert [f["file"] for f in meta["sources"]["tax"]["from"]] == ["纳税信息_2023.csv", TAX]


@pytest.mark.parametrize(
    ("example", "text", "day"),
    [
        ("2025/9/30", "2024/1/5", dt.date(2024, 1, 5)),
        ("2025年9月30日", "2024年12月31日", dt.date(2024, 12, 31)),
        ("20250930", "20240105", dt.date(2024, 1, 5)),
        ("30.09.2025", "05.01.2024", dt.date(2024, 1, 5)),
    ],
)
def test_a_date_format_is_written_as_the_file_writes_2025_09_30(
    example: str, text: str, day: dt.date
) -> None:
    from matcher.ingest.mapping import date_format

    fmt = date_format(example)
    assert fmt is not None and fmt.parse(text) == day
    assert fmt.parse(text + "x") is None


def test_gbk_and_bom_files_read_like_the_rest(tmp_path: Path) -> None:
    out = run_import(tmp_path)
    credit = (out / "credit.csv").read_text(encoding="utf-8").splitlines()
    assert credit[0] == "uscc,serious_dishonest,abnormal_operation"  # the BOM did not become part of a header
    assert credit[3] == f"{E3},false,true"
