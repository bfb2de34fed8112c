"""The expression language: what is supported parses with the right type; what is not is refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from rules.expressions import SUPPORTED, ExpressionProblem, check_kind, closest_fields, parse, walk

# (expression, result type) covering every node type and operator of SUPPORTED.
SUPPORTED_EXAMPLES = [
    ("employees >= 10 and not serious_dishonest", "BOOLEAN"),
    ("is_high_tech or is_srdi", "BOOLEAN"),
    ("-revenue < 0", "BOOLEAN"),
    ('size_class == "small"', "BOOLEAN"),
    ('credit_rating != "D"', "BOOLEAN"),
    ("employees == null", "BOOLEAN"),
    ("is_little_giant == true", "BOOLEAN"),
    ("employees < 300", "BOOLEAN"),
    ("layoff_rate <= 0.055", "BOOLEAN"),
    ("revenue > 1e6", "BOOLEAN"),
    ("tax_paid >= 100000", "BOOLEAN"),
    ('name =~ ".*(科技|信息).*有限公司"', "BOOLEAN"),
    ('name !~ "^湖南"', "BOOLEAN"),
    ('name =~~ "软件"', "BOOLEAN"),
    ('name !~~ "[0-9]{3}"', "BOOLEAN"),
    ("ui_premium_paid * 0.6 + 1000", "FLOAT"),
    ("revenue - total_assets", "FLOAT"),
    ("rd_expense / 10000", "FLOAT"),
    ("employees > 10 ? 1000 : 500", "FLOAT"),
    ('"科技" in name', "BOOLEAN"),
    ('size_class in ["medium", "small", "micro"]', "BOOLEAN"),
    ('region_code[:4] == "4310"', "BOOLEAN"),
    ("name.length <= 20", "BOOLEAN"),
    ("reg_date.year * 10000 + reg_date.month * 100 + reg_date.day", "FLOAT"),
    ("$min([ui_premium_paid * 0.6, 1000000])", "FLOAT"),
    ("$max([new_graduate_hires * 1500, 3000])", "FLOAT"),
    ("$abs(insured_end - insured_start)", "FLOAT"),
    ('reg_date < d"2020-01-01"', "BOOLEAN"),
    ('reg_date - t"P30D" < d"2025-01-01"', "BOOLEAN"),
    ("age_years", "FLOAT"),
]


def operators(text: str) -> set[tuple[str, str | None]]:
    """(node type, operator) pairs of a parsed expression."""
    out: set[tuple[str, str | None]] = set()
    for node in walk(parse(text).root):
        name = type(node).__name__
        op: Any = getattr(node, "type", None)
        if name == "GetAttributeExpression":
            op = node.name
        elif name == "FunctionCallExpression":
            op = node.function.name
        out.add((name, op if SUPPORTED[name] else None))
    return out


@pytest.mark.parametrize(("text", "result_type"), SUPPORTED_EXAMPLES)
def test_supported_construct_parses_with_its_result_type(text: str, result_type: str) -> None:
    assert parse(text).result_type.name == result_type


def test_the_examples_cover_every_supported_construct() -> None:
    seen = set().union(*(operators(text) for text, _ in SUPPORTED_EXAMPLES))
    wanted = {(name, op) for name, ops in SUPPORTED.items() for op in ops} | {
        (name, None) for name, ops in SUPPORTED.items() if not ops
    }
    assert wanted <= seen, wanted - seen


def test_parse_lists_the_catalog_fields_an_expression_reads() -> None:
    expr = parse("revenue > 0 and (employees >= 10 or revenue > 1e7) and not serious_dishonest")
    assert expr.fields == ("employees", "revenue", "serious_dishonest")
    assert parse('"4310" == "4310"').fields == ()


REFUSED = [
    ("ui_premium_paid // 2", "不支持的运算：整除 `//`"),
    ("ui_premium_paid % 2", "不支持的运算：取余 `%`"),
    ("ui_premium_paid ** 2", "不支持的运算：乘方 `**`"),
    ("employees & 1", "不支持的写法：位运算"),
    ("employees << 1", "不支持的写法：移位运算"),
    ("rd_expense / revenue", "除法只能除以 2、5、10 之积这样的数字常量（如 / 10000）"),
    ("ui_premium_paid / 3", "除法只能除以 2、5、10 之积这样的数字常量（如 / 10000）"),
    ("ui_premium_paid / 0", "除法只能除以 2、5、10 之积这样的数字常量（如 / 10000）"),
    ('name[-4:] == "有限公司"', "切片的起止只能是非负整数常量"),
    ('name[:employees] == "湖南"', "切片的起止只能是非负整数常量"),
    ('name[1] == "南"', "不支持的写法：下标取值 `x[i]`"),
    ('uscc =~ "^91\\\\d+"', "正则表达式 `^91\\d+` 使用了各引擎含义不同的写法"),
    ('name =~ "(?i)tech"', "正则表达式 `(?i)tech` 使用了各引擎含义不同的写法"),
    ('name =~ "\\\\w+公司"', "正则表达式 `\\w+公司` 使用了各引擎含义不同的写法"),
    ("name =~ credit_rating", "正则表达式必须是字符串常量"),
    ('name =~ "("', "正则表达式 `(` 写法错误：missing ), unterminated subpattern at position 0"),
    ("reg_date < $now", "不支持的内置符号 `$now`"),
    ("$today > reg_date", "不支持的内置符号 `$today`"),
    ('reg_date - reg_date > t"P1D"', "不支持两个日期相减"),
    ('size_class in ["small", null]', "列表中不能有 null"),
    ("size_class in []", "列表不能为空"),
    ("null > 1", "null 只能用 == 或 != 比较"),
    ("employees + null > 1", "null 只能用 == 或 != 比较"),
    ("null > employees", "null 只能用 == 或 != 比较"),
    ('size_class in {"small", "micro"}', "不支持的写法：集合 `{...}`"),
    ("(employees ?? 0) > 10", "不支持的写法：空值合并 `??`"),
    ("$sum([revenue, 1])", "不支持的函数 `$sum`"),
    ("$min(revenue, 1)", "函数 `$min` 的参数写法不对"),
    ('$abs("x") > 1', "函数 `$abs` 的参数写法不对"),
    ("reg_date.weekday == 1", "不支持的属性 `.weekday`"),
    ("name.as_lower == 'x'", "不支持的属性 `.as_lower`"),
    ("[revenue, 1] == [1, 2]", "列表只能用在 in 的右边或 $min/$max 的参数中"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED)
def test_refused_construct_is_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ExpressionProblem) as caught:
        parse(text)
    assert caught.value.message == message
    assert caught.value.hint


TYPE_ERRORS = [
    ('revenue > "5000000"', '类型不一致：`revenue` 是数字，`"5000000"` 是文本，不能比较'),
    ('revenue == "0"', '类型不一致：`revenue` 是数字，`"0"` 是文本，不能比较'),
    ('serious_dishonest == "否"', '类型不一致：`serious_dishonest` 是真/假值，`"否"` 是文本，不能比较'),
    ("is_high_tech == 1", "类型不一致：`is_high_tech` 是真/假值，`1` 是数字，不能比较"),
    ("reg_date > 2020", "类型不一致：`reg_date` 是日期，`2020` 是数字，不能比较"),
    ('reg_date.year > "2000"', '类型不一致：`reg_date.year` 是数字，`"2000"` 是文本，不能比较'),
    ("employees + name", "类型不一致：`employees` 是数字，`name` 是文本，不能做算术运算"),
    ("1 in name", "类型不一致：`1` 是数字，`name` 是文本，不能用 in 判断是否包含"),
    ('employees in ["10", "20"]', '类型不一致：`employees` 是数字，列表中的 `"10"` 是文本'),
    ("size_class in [1, 2]", "类型不一致：`size_class` 是文本，列表中的 `1` 是数字"),
    ("employees > 10 and revenue", "`and` 两边必须是真/假判断，`revenue` 是数字"),
    ("not employees", "`not` 后面必须是真/假判断，`employees` 是数字"),
    ("revenue ? 1 : 0", "`? :` 的条件必须是真/假判断，`revenue` 是数字"),
    ('-name == "x"', "负号只能用于数字，`name` 是文本"),
    ("is_high_tech > false", "真/假值不能比较大小"),
    ('revenue * 0.5 > "1"', "类型不一致：运算或比较两边的类型不同"),
]


@pytest.mark.parametrize(("text", "message"), TYPE_ERRORS)
def test_type_error_says_which_sides_disagree(text: str, message: str) -> None:
    with pytest.raises(ExpressionProblem) as caught:
        parse(text)
    assert caught.value.message == message
    assert caught.value.hint


SYNTAX_ERRORS = [
    ("(employees > 10", "语法错误：表达式不完整，可能缺少右括号、引号或运算数"),
    ("employees > 10 and", "语法错误：表达式不完整，可能缺少右括号、引号或运算数"),
    ("employees > 10 if true else false", "语法错误：第 16 个字符处的 `if` 无法识别"),
    ('reg_date > d"2025-13-01"', "日期常量 `2025-13-01` 无效"),
]


@pytest.mark.parametrize(("text", "message"), SYNTAX_ERRORS)
def test_syntax_error_is_located(text: str, message: str) -> None:
    with pytest.raises(ExpressionProblem) as caught:
        parse(text)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("typo", "closest"),
    [
        ("layof_rate", "layoff_rate"),
        ("employes", "employees"),
        ("revenu", "revenue"),
        ("is_hightech", "is_high_tech"),
        ("ui_premium", "ui_premium_paid"),
        ("sizeclass", "size_class"),
    ],
)
def test_closest_fields_puts_the_intended_name_first(typo: str, closest: str) -> None:
    assert closest_fields(typo)[0] == closest


def test_closest_fields_gives_at_most_three_and_nothing_for_gibberish() -> None:
    assert len(closest_fields("is_")) <= 3
    assert closest_fields("xyzzy") == []


def test_unknown_field_hint_suggests_the_closest_names() -> None:
    with pytest.raises(ExpressionProblem) as caught:
        parse("layof_rate <= 0.055")
    assert (caught.value.message, caught.value.hint) == (
        "未知字段 `layof_rate`",
        "你是想写 `layoff_rate` 吗？",
    )
    with pytest.raises(ExpressionProblem) as caught:
        parse("xyzzy > 1")
    assert caught.value.hint == "运行 `zhida fields` 查看全部字段"


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("employees + 1", "rule", "条件必须是真/假判断，这里得到的是数字"),
        ("name", "rule", "条件必须是真/假判断，这里得到的是文本"),
        ("employees > 1", "amount", "amount 必须是数值，这里得到的是真/假值"),
        ("size_class", "rank_by", "rank_by 必须是数值，这里得到的是文本"),
    ],
)
def test_check_kind_wants_a_test_for_rules_and_a_number_for_amounts(
    text: str, kind: str, message: str
) -> None:
    with pytest.raises(ExpressionProblem) as caught:
        check_kind(parse(text), kind)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("is_high_tech", "rule"),
        ("ui_premium_paid * 0.6", "amount"),
        ("200000", "amount"),
        ("rd_expense", "rank_by"),
    ],
)
def test_check_kind_accepts_the_right_kind(text: str, kind: str) -> None:
    check_kind(parse(text), kind)
