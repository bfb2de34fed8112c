"""The field catalog (企业画像): every field a rule may read, as data.

Rules never see raw registry tables; they read these profile fields, built by the matcher for one
assessment year and one as-of date. Each field is one record, so the validator, the matcher, the docs
and the console all read the same definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import rule_engine

FieldType = Literal["string", "integer", "money", "ratio", "date", "boolean"]

# How each catalog type is seen by rule-engine. Numbers are FLOAT there (decimal.Decimal inside).
RULE_ENGINE_TYPES: dict[str, rule_engine.DataType] = {
    "string": rule_engine.DataType.STRING,
    "integer": rule_engine.DataType.FLOAT,
    "money": rule_engine.DataType.FLOAT,
    "ratio": rule_engine.DataType.FLOAT,
    "date": rule_engine.DataType.DATETIME,
    "boolean": rule_engine.DataType.BOOLEAN,
}

# The departments that hold the data, so missing values can be chased at their source.
DEPARTMENTS = {
    "enterprises": "市场监督管理局",
    "annual_reports": "市场监督管理局（企业年报）",
    "tax": "税务局",
    "social_insurance": "人力资源和社会保障局",
    "credit": "发展和改革委员会（信用办）",
    "certifications": "科学技术局 / 工业和信息化局",
    "stats_listing": "统计局",
    "bank_accounts": "人民银行 / 开户银行",
}


@dataclass(frozen=True)
class Field:
    """One profile field: what it is, where it comes from, how it is derived."""

    name: str
    type: FieldType
    label: str
    table: str
    unit: str = ""
    definition: str = ""  # for derived fields: how it is computed, in words
    derived: bool = False
    values: tuple[str, ...] = ()  # the allowed values of a coded string field
    # For a derived field: the stored fields it is computed from, which is what an enterprise supplies
    # when the derived one is missing (empty for flags that only a registry can set, e.g. certificates).
    inputs: tuple[str, ...] = ()
    # For a field of an earlier year (revenue_prev): how many years before the assessment year its inputs
    # are stored, so that an enterprise supplies last year's 营业收入 for it, not this year's.
    years_back: int = 0

    @property
    def department(self) -> str:
        return DEPARTMENTS[self.table]


def _f(name: str, type_: FieldType, label: str, table: str, unit: str = "", **kw: object) -> Field:
    return Field(name, type_, label, table, unit, **kw)  # type: ignore[arg-type]


SIZE_CLASSES = ("large", "medium", "small", "micro", "not_applicable")
"""not_applicable: no size standard classifies the enterprise (a central bank or a regulator)."""
CERT_TYPES = ("high_tech", "srdi", "srdi_little_giant", "tech_sme")
CERT_LABELS = {
    "high_tech": "高新技术企业",
    "tech_sme": "科技型中小企业",
    "srdi": "专精特新中小企业",
    "srdi_little_giant": "专精特新“小巨人”企业",
}
"""The certificate types of the certifications table, with the name of the recognition each stands for."""


def _previous(name: str, label: str, table: str, unit: str, type_: FieldType) -> Field:
    """A yearly field of the year before the assessment year (growth and increase conditions)."""
    return _f(
        f"{name}_prev",
        type_,
        label,
        table,
        unit,
        definition=f"{table} 中评估年度前一年的 {name}；无该年度记录或值为空时为空",
        derived=True,
        inputs=(name,),
        years_back=1,
    )


def _certificate_dates(cert: str) -> tuple[Field, Field]:
    """The first recognition and the current certificate's date of one certificate type."""
    label = CERT_LABELS[cert]
    return (
        _f(
            f"{cert}_first_date",
            "date",
            f"首次认定为{label}的日期",
            "certifications",
            definition=f"cert_date 不晚于 as_of 的 {cert} 证书中最早的发证日期；没有时为空",
            derived=True,
        ),
        _f(
            f"{cert}_cert_date",
            "date",
            f"现有{label}证书的发证日期",
            "certifications",
            definition=f"as_of 当日有效的 {cert} 证书的发证日期（有多张时取最晚的）；没有时为空",
            derived=True,
        ),
    )


STATUSES = ("存续", "在业", "迁出", "吊销", "注销")
CREDIT_RATINGS = ("A", "B", "M", "C", "D")

FIELDS: tuple[Field, ...] = (
    _f("uscc", "string", "统一社会信用代码", "enterprises"),
    _f("name", "string", "企业名称", "enterprises"),
    _f("region_code", "string", "行政区划代码", "enterprises", "GB/T 2260"),
    _f("industry_code", "string", "国民经济行业代码", "enterprises", "GB/T 4754-2017"),
    _f(
        "industry_section",
        "string",
        "行业门类",
        "enterprises",
        "GB/T 4754-2017 门类字母",
        definition="industry_code 的首字母（门类）",
        derived=True,
        inputs=("industry_code",),
    ),
    _f("status", "string", "登记状态", "enterprises", values=STATUSES),
    _f("reg_date", "date", "成立日期", "enterprises"),
    _f(
        "age_years",
        "integer",
        "成立年限",
        "enterprises",
        "年",
        definition="截至 as_of 已满的整年数",
        derived=True,
        inputs=("reg_date",),
    ),
    _f("reg_capital", "money", "注册资本", "enterprises", "元"),
    _f("employees", "integer", "从业人员", "annual_reports", "人"),
    _f("revenue", "money", "营业收入", "annual_reports", "元"),
    _f("total_assets", "money", "资产总额", "annual_reports", "元"),
    _f("tax_paid", "money", "纳税额", "tax", "元"),
    _f("rd_expense", "money", "研发费用", "tax", "元"),
    _previous("employees", "上年度从业人员", "annual_reports", "人", "integer"),
    _previous("revenue", "上年度营业收入", "annual_reports", "元", "money"),
    _previous("tax_paid", "上年度纳税额", "tax", "元", "money"),
    _previous("rd_expense", "上年度研发费用", "tax", "元", "money"),
    _f(
        "rd_ratio",
        "ratio",
        "研发费用占营业收入比例",
        "tax",
        definition="rd_expense / revenue；营业收入为0时为空",
        derived=True,
        inputs=("rd_expense", "revenue"),
    ),
    _f("credit_rating", "string", "纳税信用等级", "tax", values=CREDIT_RATINGS),
    _f("insured_start", "integer", "年初参保人数", "social_insurance", "人"),
    _f("insured_end", "integer", "年末参保人数", "social_insurance", "人"),
    _f(
        "layoff_rate",
        "ratio",
        "裁员率",
        "social_insurance",
        definition="max(0, insured_start - insured_end) / insured_start；年初参保人数为0时为0",
        derived=True,
        inputs=("insured_start", "insured_end"),
    ),
    _f("ui_premium_paid", "money", "上年度实缴失业保险费", "social_insurance", "元"),
    _f("ui_arrears", "boolean", "失业保险欠费", "social_insurance"),
    _f("new_graduate_hires", "integer", "新招用高校毕业生人数", "social_insurance", "人"),
    _f("serious_dishonest", "boolean", "严重失信主体", "credit"),
    _f("abnormal_operation", "boolean", "列入经营异常名录", "credit"),
    _f(
        "is_high_tech",
        "boolean",
        "高新技术企业",
        "certifications",
        definition="as_of 当日持有有效的 high_tech 证书",
        derived=True,
    ),
    _f(
        "is_srdi",
        "boolean",
        "专精特新中小企业",
        "certifications",
        definition="as_of 当日持有有效的 srdi 证书",
        derived=True,
    ),
    _f(
        "is_little_giant",
        "boolean",
        "专精特新“小巨人”企业",
        "certifications",
        definition="as_of 当日持有有效的 srdi_little_giant 证书",
        derived=True,
    ),
    _f(
        "is_tech_sme",
        "boolean",
        "科技型中小企业",
        "certifications",
        definition="as_of 当日持有有效的 tech_sme 证书",
        derived=True,
    ),
    *(f for cert in CERT_LABELS for f in _certificate_dates(cert)),
    _f(
        "listed_above_scale",
        "boolean",
        "纳入规模以上统计（评估年度）",
        "stats_listing",
        definition="stats_listing 中评估年度的 above_scale；无该表或无该年度记录时为空",
        derived=True,
    ),
    _f(
        "listed_above_scale_prev",
        "boolean",
        "纳入规模以上统计（上一年度）",
        "stats_listing",
        definition="stats_listing 中评估年度前一年的 above_scale；无该表或无该年度记录时为空",
        derived=True,
    ),
    _f(
        "size_class",
        "string",
        "企业规模",
        "annual_reports",
        definition=(
            "统计上大中小微型企业划分办法(2017)，按行业的从业人员、营业收入、资产总额划分；"
            "中央银行和金融监管服务不适用划型（not_applicable）"
        ),
        derived=True,
        inputs=("employees", "revenue", "total_assets"),
        values=SIZE_CLASSES,
    ),
    _f(
        "above_scale",
        "boolean",
        "规模以上/限额以上",
        "annual_reports",
        definition="营业收入达到所属行业的规上/限上标准；行业不以营业收入划定时为空",
        derived=True,
        inputs=("revenue",),
    ),
    _f(
        "has_bank_account",
        "boolean",
        "已登记对公账户",
        "bank_accounts",
        definition="bank_accounts 中有该企业的账户",
        derived=True,
    ),
)

CATALOG: dict[str, Field] = {f.name: f for f in FIELDS}


def field(name: str) -> Field:
    """The catalog record of a field; KeyError names the field."""
    return CATALOG[name]
