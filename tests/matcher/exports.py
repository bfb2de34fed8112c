"""Department exports as departments really send them, for the import tests: a 市场监管 workbook with a
title row, a two-row merged header, date cells and text dates, registered capital in 万元, a footer line and
a second sheet of annual reports; a 税务 CSV in GBK with money in 万元 (thousands separators) and ratings
as "A级"; a 人社 CSV in GB18030 (a name with a character outside GBK) under a title line; a 科技局 CSV in
GB18030 with dates as 2025年9月30日; a 信用 CSV in UTF-8 with BOM with 是/否; an account list in UTF-8.

`write_exports` writes them and returns their paths; `MAPPING` is the mapping file that reads them all.
Three enterprises; `EXPECTED` holds what their profile must say.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from tests.matcher.snapshots import uscc

TAKEN_AT = dt.date(2025, 9, 30)
E1, E2, E3 = uscc(1, "320812"), uscc(2, "320803"), uscc(3, "320812")
NAMES = {E1: "淮安恒达精密机械有限公司", E2: "淮安云帆软件科技有限公司", E3: "淮安市刘䶮农业发展有限公司"}

SAMR = "市场主体登记信息导出_20250930.xlsx"
TAX = "纳税信息_2024.csv"
HRSS = "失业保险参保缴费_2024.csv"
TECH = "科技企业资质.csv"
CREDIT = "信用信息.csv"
BANK = "对公账户.csv"

# The 市场监管 source as the README shows it (tests/matcher/test_ingest.py checks the README holds it).
SAMR_SOURCE = """\
  - file: 市场主体登记信息导出_*.xlsx
    department: 市场监督管理局
    table: enterprises
    sheet: 登记信息
    header_rows: [2, 3]            # row 1 is the title; 住所 spans 行政区划代码 and 详细地址
    footer_rows: 1                 # the 制表单位 line under the data
    date_formats: [2025/9/30, 2025年9月30日]
    columns:
      统一社会信用代码: uscc
      企业名称: name
      成立日期: reg_date
      住所/行政区划代码: region_code
      国民经济行业代码: industry_code
      登记状态:
        field: status
        codes: {存续（在营、开业、在册）: 存续, 在业: 在业, 迁出: 迁出, 吊销: 吊销, 注销: 注销}
      注册资本（万元）: {field: reg_capital, unit: 万元}
      联系电话: contact_phone
    ignore: [序号, 住所/详细地址]
"""

MAPPING = f"""\
taken_at: 2025-09-30
sources:
{SAMR_SOURCE}
  - file: 市场主体登记信息导出_*.xlsx
    department: 市场监督管理局
    table: annual_reports
    sheet: 年报
    columns:
      统一社会信用代码: uscc
      年度: year
      从业人数: employees
      营业收入（万元）: {{field: revenue, unit: 万元}}
      资产总额（万元）: {{field: total_assets, unit: 万元}}
    ignore: [企业名称]
  - file: 纳税信息_*.csv
    department: 税务局
    table: tax
    encoding: gbk
    columns:
      纳税人识别号: uscc
      所属年度: year
      实缴税额（万元）: {{field: tax_paid, unit: 万元}}
      研发费用（万元）: {{field: rd_expense, unit: 万元}}
      纳税信用等级: {{field: credit_rating, codes: {{A级: A, B级: B, M级: M, C级: C, D级: D}}}}
    ignore: [序号, 纳税人名称]
  - file: 失业保险参保缴费_*.csv
    department: 人力资源和社会保障局
    table: social_insurance
    encoding: gb18030
    header_rows: 2
    columns:
      单位统一社会信用代码: uscc
      年度: year
      年初参保人数: insured_start
      年末参保人数: insured_end
      失业保险费实缴金额（元）: ui_premium_paid
      是否欠缴: {{field: ui_arrears, codes: {{是: true, 否: false}}}}
      招用高校毕业生人数: new_graduate_hires
    ignore: [单位名称]
  - file: 科技企业资质.csv
    department: 科学技术局
    table: certifications
    encoding: gb18030
    date_formats: [2025年9月30日]
    null_values: ["—"]
    columns:
      统一社会信用代码: uscc
      资质名称: {{field: cert_type, codes: {{高新技术企业: high_tech, 科技型中小企业: tech_sme, 专精特新中小企业: srdi}}}}
      认定日期: cert_date
      有效期至: expiry_date
    ignore: [企业名称]
  - file: 信用信息.csv
    department: 发展和改革委员会
    table: credit
    columns:
      统一社会信用代码: uscc
      严重失信主体: {{field: serious_dishonest, codes: {{是: true, 否: false}}}}
      经营异常名录: {{field: abnormal_operation, codes: {{是: true, 否: false}}}}
  - file: 对公账户.csv
    department: 人民银行
    table: bank_accounts
    columns:
      统一社会信用代码: uscc
      开户银行: bank_name
      银行账号: account_no
      账户名称: account_name
"""

EXPECTED: dict[str, dict[str, Any]] = {
    E1: {
        "name": NAMES[E1],
        "reg_date": dt.date(2015, 6, 1),
        "region_code": "320812",
        "status": "存续",
        "reg_capital": Decimal("5000000.00"),
        "employees": 120,
        "revenue": Decimal("86502500.00"),
        "total_assets": Decimal("54000000.00"),
        "tax_paid": Decimal("12563000.00"),
        "rd_expense": Decimal("4205000.00"),
        "credit_rating": "A",
        "insured_start": 118,
        "ui_premium_paid": Decimal("45678.90"),
        "ui_arrears": False,
        "is_high_tech": True,
        "is_tech_sme": False,
        "abnormal_operation": False,
    },
    E2: {
        "name": NAMES[E2],
        "reg_date": dt.date(2021, 3, 15),
        "region_code": "320803",
        "status": "在业",
        "reg_capital": Decimal("1234567.00"),
        "employees": 35,
        "revenue": Decimal("7431508.00"),
        "tax_paid": Decimal("32000.00"),
        "rd_expense": Decimal("371575.40"),
        "credit_rating": "B",
        "ui_premium_paid": Decimal("12345.60"),
        "is_high_tech": False,
        "is_tech_sme": True,
    },
    E3: {
        "name": NAMES[E3],
        "reg_date": dt.date(2019, 11, 8),
        "reg_capital": Decimal("10000000.00"),
        "revenue": Decimal("955000.00"),
        "credit_rating": "M",
        "ui_arrears": True,
        "abnormal_operation": True,
        "is_high_tech": False,
    },
}


def samr_rows() -> list[list[Any]]:
    """The data rows of sheet 登记信息 (row 4 on): 序号 … 联系电话."""
    return [
        [1, E1, NAMES[E1], dt.datetime(2015, 6, 1), "320812", "淮安市清江浦区健康东路8号", "C3911",
         "存续（在营、开业、在册）", 500, 13912345678],
        [2, E2, NAMES[E2], "2021/3/15", "320803", "淮安市淮安区翔宇大道99号", "I6513", "在业", "123.4567",
         "13800000002"],
        [3, E3, NAMES[E3], "2019年11月8日", "320812", "淮安市清江浦区城南乡", "A0111",
         "存续（在营、开业、在册）", 1000, None],
    ]  # fmt: skip


def samr_workbook(path: Path, rows: list[list[Any]] | None = None) -> None:
    """The 市场监管 export: sheet 登记信息 (title row, merged two-row header, data, footer) and sheet 年报."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "登记信息"
    sheet["A1"] = "淮安市市场主体登记信息（截至2025年9月30日）"
    sheet.merge_cells("A1:J1")
    tall = ["序号", "统一社会信用代码", "企业名称", "成立日期"]
    for n, text in enumerate(tall, start=1):
        sheet.cell(2, n, text)
        sheet.merge_cells(start_row=2, start_column=n, end_row=3, end_column=n)
    sheet["E2"] = "住所"
    sheet.merge_cells("E2:F2")
    sheet["E3"], sheet["F3"] = "行政区划代码", "详细地址"
    for n, text in enumerate(["国民经济行业代码", "登记状态", "注册资本（万元）", "联系电话"], start=7):
        sheet.cell(2, n, text)
        sheet.merge_cells(start_row=2, start_column=n, end_row=3, end_column=n)
    data = rows or samr_rows()
    for r, row in enumerate(data, start=4):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(r, c, value)
            if isinstance(value, dt.datetime):
                cell.number_format = "yyyy/m/d"
    sheet.cell(4 + len(data), 1, "制表单位：淮安市市场监督管理局　制表日期：2025年9月30日")
    reports = book.create_sheet("年报")
    reports.append(
        ["统一社会信用代码", "企业名称", "年度", "从业人数", "营业收入（万元）", "资产总额（万元）"]
    )
    reports.append([E1, NAMES[E1], 2024, 120, 8650.25, 5400])
    reports.append([E2, NAMES[E2], 2024, 35, 743.1508, 900])
    reports.append([E3, NAMES[E3], 2024, 8, 95.5, 120])
    book.save(path)


def csv_bytes(rows: list[list[Any]], encoding: str) -> bytes:
    """Rows as a CSV file in `encoding`, CRLF line ends as Excel writes them ('utf-8-sig': with BOM)."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerows(rows)
    return text.getvalue().encode(encoding)


def tax_rows() -> list[list[Any]]:
    return [
        [
            "序号",
            "纳税人识别号",
            "纳税人名称",
            "所属年度",
            "实缴税额（万元）",
            "研发费用（万元）",
            "纳税信用等级",
        ],
        [1, E1, NAMES[E1], 2024, "1,256.30", "420.5", "A级"],
        [2, E2, NAMES[E2], 2024, "3.2", "37.15754", "B级"],
        # GBK has no 䶮: the tax system wrote "?" (the name is not imported)
        [3, E3, NAMES[E3].replace("䶮", "?"), 2024, "0.85", "0", "M级"],
    ]


def hrss_rows() -> list[list[Any]]:
    return [
        ["2024年度失业保险参保缴费情况"],
        ["单位统一社会信用代码", "单位名称", "年度", "年初参保人数", "年末参保人数", "失业保险费实缴金额（元）",
         "是否欠缴", "招用高校毕业生人数"],
        [E1, NAMES[E1], 2024, 118, 115, "45,678.90", "否", 6],
        [E2, NAMES[E2], 2024, 30, 36, "12345.6", "否", 2],
        [E3, NAMES[E3], 2024, 8, 8, "1520", "是", 0],
    ]  # fmt: skip


def tech_rows() -> list[list[Any]]:
    return [
        ["统一社会信用代码", "企业名称", "资质名称", "认定日期", "有效期至"],
        [E1, NAMES[E1], "高新技术企业", "2023年11月6日", "2026年11月5日"],
        [E2, NAMES[E2], "科技型中小企业", "2025年4月30日", "—"],
    ]


def write_exports(directory: Path, **replace: bytes) -> list[Path]:
    """Write the six exports into `directory` (a file's bytes can be replaced by name) and return them."""
    directory.mkdir(parents=True, exist_ok=True)
    samr_workbook(directory / SAMR)
    files = {
        TAX: csv_bytes(tax_rows(), "gbk"),
        HRSS: csv_bytes(hrss_rows(), "gb18030"),
        TECH: csv_bytes(tech_rows(), "gb18030"),
        CREDIT: csv_bytes(
            [
                ["统一社会信用代码", "严重失信主体", "经营异常名录"],
                [E1, "否", "否"],
                [E2, "否", "否"],
                [E3, "否", "是"],
            ],
            "utf-8-sig",
        ),
        BANK: csv_bytes(
            [
                ["统一社会信用代码", "开户银行", "银行账号", "账户名称"],
                [E1, "中国工商银行淮安分行", "1110020009000123456", NAMES[E1]],
                [E2, "江苏银行淮安分行", "0160190000012345", NAMES[E2]],
                [E3, "淮安农村商业银行", "3208120001234567890", NAMES[E3]],
            ],
            "utf-8",
        ),
    }
    files |= replace
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return [directory / SAMR, *(directory / name for name in files)]
