"""How values read in Chinese: one formatter for pages, SMS, reports and bank files."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from rules import formats


def test_periods_read_as_years_or_once() -> None:
    assert formats.period("once") == "一次性"
    assert formats.period("2025") == "2025年度"
    assert formats.period("2025H1") == "2025年上半年"
    assert formats.period("2025Q3") == "2025年第三季度"
    assert formats.period("2025-spring") == "2025-spring"


def test_days_read_without_leading_zeros() -> None:
    assert formats.day(dt.date(2025, 9, 3)) == "2025年9月3日"
    assert formats.day(dt.datetime(2025, 9, 30, 17, 0, tzinfo=dt.UTC)) == "2025年10月1日"  # China time


def test_totals_read_in_wan_and_yi() -> None:
    assert formats.money_cn(Decimal("231000000")) == "2.31亿元"
    assert formats.money_cn(Decimal("500000")) == "50万元"
    assert formats.money_cn(Decimal("3000")) == "3,000元"
    assert formats.money(Decimal("1234567.8")) == "1,234,567.80"


def test_moments_are_shown_in_china_time() -> None:
    at = dt.datetime(2025, 9, 30, 6, 5, tzinfo=dt.UTC)
    assert formats.staff_time(at) == "2025年9月30日 14:05"
    assert formats.public_time(at) == "2025年9月30日 14:05"
    assert formats.public_time("2025-09-30T06:05:00") == "2025年9月30日 14:05"  # stored naive = UTC
    assert formats.staff_time(dt.datetime(2025, 9, 30, 17, 5, tzinfo=dt.UTC)) == "2025年10月1日 01:05"


def test_profile_values_read_by_their_field_type() -> None:
    assert formats.field_value("size_class", "medium") == "中型"
    assert formats.field_value("size_class", None) == "（空）"
    assert formats.field_value("size_class", "not_applicable") == "不适用划型"
    assert formats.field_value("high_tech_first_date", "2024-12-06") == "2024年12月6日"
    assert formats.field_value("reg_date", dt.date(2020, 2, 29)) == "2020年2月29日"


def test_a_ratio_a_hair_below_its_bound_never_reads_as_the_bound() -> None:
    assert formats.field_value("rd_ratio", "0.05") == "5%"
    assert formats.field_value("rd_ratio", "0.049999986543") == "4.9%"
    assert formats.field_value("rd_ratio", Decimal("0.638")) == "63.8%"


def test_a_message_for_staff_quotes_names_in_chinese_not_backticks() -> None:
    assert (
        formats.plain("不认识的键 `budgte`（你是想写 `budget` 吗？）")
        == "不认识的键 “budgte”（你是想写 “budget” 吗？）"
    )
    assert formats.plain(None) == "" and formats.plain("金额 1,000 元") == "金额 1,000 元"
