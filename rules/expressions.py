"""Rule expressions: parsing with rule-engine, type-checking against the catalog, and the language subset.

Every `rule`, `amount` and `rank_by` is parsed by the rule-engine package with a type resolver built
from the field catalog. Only the constructs listed in `SUPPORTED` may appear: they are the ones every
engine (the per-enterprise reference and the compiled SQL) gives the same answer for. Anything else is
refused here, by name, before a policy can be loaded. Each node type has its own small check, found in
`_NODE_CHECKS` by the node's class name.
"""

from __future__ import annotations

import decimal
import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import rule_engine
import rule_engine.ast as ast
import rule_engine.errors as re_errors

from rules.catalog import CATALOG, RULE_ENGINE_TYPES

# Significant digits of the numbers rule-engine computes with (Python's default is 28). The engines'
# decimals are exact, and so is every ratio there (matcher/ratios.py); the reference divides ratios and
# multiplies them at 80 digits, enough to order them as exactly (docs/matching.md#ratios).
PRECISION = 80

CONTEXT = rule_engine.Context(
    type_resolver=rule_engine.type_resolver_from_dict(
        {name: RULE_ENGINE_TYPES[f.type] for name, f in CATALOG.items()}
    ),
    default_timezone="utc",
    decimal_context=decimal.Context(prec=PRECISION),
)

# Without field types: used only to locate the cause of a type error that rule-engine reports without one.
_UNTYPED_CONTEXT = rule_engine.Context(default_timezone="utc")

# Operator names of rule-engine's expression nodes that the language subset allows, per node class.
SUPPORTED: dict[str, frozenset[str]] = {
    "LogicExpression": frozenset({"and", "or"}),
    "UnaryExpression": frozenset({"not", "uminus"}),
    "ComparisonExpression": frozenset({"eq", "ne"}),
    "ArithmeticComparisonExpression": frozenset({"lt", "le", "gt", "ge"}),
    "FuzzyComparisonExpression": frozenset({"eq_fzm", "ne_fzm", "eq_fzs", "ne_fzs"}),
    "AddExpression": frozenset({"add"}),
    "SubtractExpression": frozenset({"sub"}),
    "ArithmeticExpression": frozenset({"mul", "tdiv"}),
    "TernaryExpression": frozenset(),
    "ContainsExpression": frozenset(),
    "GetSliceExpression": frozenset(),
    "GetAttributeExpression": frozenset({"length", "year", "month", "day"}),
    "FunctionCallExpression": frozenset({"min", "max", "abs"}),
    "SymbolExpression": frozenset(),
    "ArrayExpression": frozenset(),
    "BooleanExpression": frozenset(),
    "FloatExpression": frozenset(),
    "StringExpression": frozenset(),
    "DatetimeExpression": frozenset(),
    "TimedeltaExpression": frozenset(),
    "NullExpression": frozenset(),
}

# Plain-words names for refused constructs, so the message names what the author wrote.
_OPERATOR_WORDS = {
    "fdiv": "整除 `//`",
    "mod": "取余 `%`",
    "pow": "乘方 `**`",
    "bwand": "按位与 `&`",
    "bwor": "按位或 `|`",
    "bwxor": "按位异或 `^`",
    "bwlsh": "左移 `<<`",
    "bwrsh": "右移 `>>`",
}
_NODE_WORDS = {
    "GetItemExpression": "下标取值 `x[i]`",
    "SetExpression": "集合 `{...}`",
    "MappingExpression": "映射 `{键: 值}`",
    "CoalesceExpression": "空值合并 `??`",
    "BitwiseExpression": "位运算",
    "BitwiseShiftExpression": "移位运算",
    "ComprehensionExpression": "列表推导 `[... for ...]`",
    "BytesExpression": '字节串 `b"..."`',
}
_TYPE_WORDS = {
    "FLOAT": "数字",
    "STRING": "文本",
    "BOOLEAN": "真/假值",
    "DATETIME": "日期",
    "TIMEDELTA": "时长",
    "NULL": "null",
    "ARRAY": "列表",
    "UNDEFINED": "未知类型",
}
_TYPE_HINT = (
    '数字不加引号（如 revenue > 0），文本要加引号（如 size_class == "small"），是/否字段写 true/false'
)
_FUNCTION_HINT = (
    "$min、$max 的参数是一个数字列表，如 $min([ui_premium_paid * 0.6, 100000])；$abs 的参数是一个数字"
)
_ATTRIBUTE_HINT = "只能使用 .length（文本长度）和 .year、.month、.day（日期）"

# Regular expressions must mean the same in Python `re`, RE2 (DuckDB) and Java (Spark): no flags or groups
# with `(?`, no backslash classes such as \d or \w (Unicode-aware in some engines only), no POSIX classes,
# no `{,n}`. Escaped metacharacters like `\.` are fine.
# Only to word a refusal that rule-engine already made: `null` next to an ordering or arithmetic operator.
_STRING_LITERAL = re.compile(r""""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""")
_NULL_OPERAND = re.compile(r"\bnull\s*(?:<|>|\+|-|\*|/)|(?:<|>|\+|-|\*|/)=?\s*null\b")
_REGEX_BAD = re.compile(r"\(\?|\\[^.^$|()\[\]{}*+?\\/-]|\[:|\{,")


class ExpressionProblem(Exception):
    """An expression is refused: what is wrong, and how to fix it."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)


@dataclass(frozen=True)
class Expression:
    """A parsed, type-checked expression and the catalog fields it reads."""

    text: str
    rule: rule_engine.Rule
    fields: tuple[str, ...]

    @property
    def root(self) -> Any:
        return self.rule.statement.expression

    @property
    def result_type(self) -> Any:
        return self.root.result_type


def closest_fields(name: str, n: int = 3) -> list[str]:
    """Catalog names closest to a mistyped one, best first."""
    return difflib.get_close_matches(name, list(CATALOG), n=n, cutoff=0.5)


def children(node: Any) -> Iterator[Any]:
    """The sub-expressions of a rule-engine node."""
    name = type(node).__name__
    if name == "ArrayExpression":
        yield from node.value
    elif name == "FunctionCallExpression":
        yield node.function
        yield from node.arguments
    elif name == "TernaryExpression":
        yield from (node.condition, node.case_true, node.case_false)
    elif name == "ContainsExpression":
        yield from (node.container, node.member)
    elif name == "GetSliceExpression":
        yield from (x for x in (node.container, node.start, node.stop) if x is not None)
    elif name == "GetAttributeExpression":
        yield node.object
    elif name == "UnaryExpression":
        yield node.right
    elif isinstance(node, ast.BinaryExpressionBase):
        yield from (node.left, node.right)


def walk(node: Any) -> Iterator[Any]:
    """Every node of an expression tree, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)


def _operator(node: Any) -> str | None:
    name = type(node).__name__
    if name == "GetAttributeExpression":
        return str(node.name)
    if name == "FunctionCallExpression":
        return str(node.function.name)
    return getattr(node, "type", None)


# --- types, as far as they can be known before evaluation ---------------------------------------------------


def _kind(node: Any) -> str:
    """The type name of a node's value (FLOAT, STRING, ...), or UNDEFINED when it cannot be known."""
    name = type(node).__name__
    if name == "SymbolExpression":
        known = node.scope is None and node.name in CATALOG
        return RULE_ENGINE_TYPES[CATALOG[node.name].type].name if known else "UNDEFINED"
    result = str(node.result_type.name)
    if result != "UNDEFINED":
        return result
    if name == "GetAttributeExpression":
        return "FLOAT" if node.name in SUPPORTED[name] else "UNDEFINED"
    if name == "AddExpression":
        sides = {_kind(node.left), _kind(node.right)}
        return next((k for k in ("STRING", "FLOAT", "DATETIME") if k in sides), "UNDEFINED")
    if name == "TernaryExpression":
        return _kind(node.case_true)
    return "UNDEFINED"


def _source(node: Any) -> str | None:
    """How the author wrote a simple node (a field, a constant), or None for anything bigger."""
    name = type(node).__name__
    if name == "SymbolExpression":
        return f"{'$' if node.scope else ''}{node.name}"
    if name == "StringExpression":
        return f'"{node.value}"'
    if name == "FloatExpression":
        return format(node.value, "f")
    if name == "BooleanExpression":
        return "true" if node.value else "false"
    if name == "NullExpression":
        return "null"
    if name == "GetAttributeExpression":
        inner = _source(node.object)
        return f"{inner}.{node.name}" if inner else None
    return None


def _side(node: Any, fallback: str) -> str:
    text = _source(node)
    return f"`{text}`" if text else fallback


def _mismatch(left: Any, right: Any, verb: str) -> ExpressionProblem:
    lk, rk = _TYPE_WORDS.get(_kind(left), _kind(left)), _TYPE_WORDS.get(_kind(right), _kind(right))
    return ExpressionProblem(
        f"类型不一致：{_side(left, '左边')} 是{lk}，{_side(right, '右边')} 是{rk}，不能{verb}", _TYPE_HINT
    )


def _known(*kinds: str) -> bool:
    return all(k != "UNDEFINED" for k in kinds)


def _null_problem() -> ExpressionProblem:
    return ExpressionProblem(
        "null 只能用 == 或 != 比较", "判断字段为空请写 employees == null；字段为空时条件本身即视为数据缺失"
    )


_DATE_ARITHMETIC = {("DATETIME", "TIMEDELTA"), ("TIMEDELTA", "TIMEDELTA")}


def _type_problem(node: Any) -> ExpressionProblem | None:
    """The type error at this node, if any: both sides of a comparison or an operation must agree."""
    name = type(node).__name__
    if name in ("ComparisonExpression", "ArithmeticComparisonExpression"):
        lk, rk = _kind(node.left), _kind(node.right)
        if "NULL" in (lk, rk):
            return None if name == "ComparisonExpression" else _null_problem()
        if _known(lk, rk) and lk != rk:
            return _mismatch(node.left, node.right, "比较")
        if name == "ArithmeticComparisonExpression" and "BOOLEAN" in (lk, rk):
            return ExpressionProblem(
                "真/假值不能比较大小", "直接写 is_high_tech 或 not is_high_tech，或写 is_high_tech == true"
            )
    if name in ("AddExpression", "SubtractExpression", "ArithmeticExpression"):
        lk, rk = _kind(node.left), _kind(node.right)
        if "NULL" in (lk, rk):
            return _null_problem()
        allowed = {("FLOAT", "FLOAT")}
        # Dates move by durations both ways (rule-engine's datetime ± timedelta, the engines' intervals).
        if name == "AddExpression":
            allowed |= {("STRING", "STRING"), *_DATE_ARITHMETIC, ("TIMEDELTA", "DATETIME")}
        if name == "SubtractExpression":
            allowed |= {*_DATE_ARITHMETIC, ("DATETIME", "DATETIME")}
        if _known(lk, rk) and (lk, rk) not in allowed:
            return _mismatch(node.left, node.right, "做算术运算")
    if (
        name == "UnaryExpression"
        and node.type == "uminus"
        and _kind(node.right) not in ("FLOAT", "UNDEFINED")
    ):
        return ExpressionProblem(
            f"负号只能用于数字，{_side(node.right, '这里')} 是{_TYPE_WORDS.get(_kind(node.right), '')}",
            "如 -revenue",
        )
    if name == "ContainsExpression":
        return _contains_type_problem(node)
    if name == "FuzzyComparisonExpression" and _kind(node.left) not in ("STRING", "UNDEFINED"):
        return ExpressionProblem(
            f"正则匹配只能用于文本，{_side(node.left, '左边')} 是{_TYPE_WORDS.get(_kind(node.left), '')}",
            '如 name =~ ".*科技.*"',
        )
    return _boolean_operand_problem(node)


def _contains_type_problem(node: Any) -> ExpressionProblem | None:
    container, member = node.container, node.member
    ck, mk = _kind(container), _kind(member)
    if ck == "STRING" and mk not in ("STRING", "UNDEFINED"):
        return _mismatch(member, container, "用 in 判断是否包含")
    if type(container).__name__ == "ArrayExpression" and mk not in ("UNDEFINED", "NULL"):
        for element in container.value:
            ek = _kind(element)
            if _known(ek) and ek != "NULL" and ek != mk:
                return ExpressionProblem(
                    f"类型不一致：{_side(member, '左边')} 是{_TYPE_WORDS.get(mk, mk)}，"
                    f"列表中的 {_side(element, '值')} 是{_TYPE_WORDS.get(ek, ek)}",
                    _TYPE_HINT,
                )
    return None


def _boolean_operand_problem(node: Any) -> ExpressionProblem | None:
    """`and`, `or`, `not` and the condition of `? :` need true/false values, not numbers or text."""
    name = type(node).__name__
    operands: tuple[tuple[str, Any], ...] = ()
    if name == "LogicExpression":
        operands = ((f"`{node.type}` 两边", node.left), (f"`{node.type}` 两边", node.right))
    elif name == "UnaryExpression" and node.type == "not":
        operands = (("`not` 后面", node.right),)
    elif name == "TernaryExpression":
        operands = (("`? :` 的条件", node.condition),)
    for place, operand in operands:
        k = _kind(operand)
        if k not in ("BOOLEAN", "UNDEFINED"):
            return ExpressionProblem(
                f"{place}必须是真/假判断，{_side(operand, '这里')} 是{_TYPE_WORDS.get(k, k)}",
                "写成比较，如 revenue > 0",
            )
    return None


# --- one check per node type ----------------------------------------------------------------------------------


def _finite_reciprocal(value: Decimal) -> bool:
    """1/value has a finite decimal expansion (value = ±2^a·5^b·10^k), so division is exact everywhere."""
    if value == 0:
        return False
    _sign, digits, _exp = value.normalize().as_tuple()
    n = int("".join(map(str, digits)))
    for p in (2, 5):
        while n % p == 0:
            n //= p
    return n == 1


def _check_division(node: Any) -> None:
    if node.type == "tdiv" and not (
        isinstance(node.right, ast.FloatExpression) and _finite_reciprocal(node.right.value)
    ):
        raise ExpressionProblem(
            "除法只能除以 2、5、10 之积这样的数字常量（如 / 10000）",
            "除以字段或除以 3 之类在各引擎上结果不一致；请改用派生字段（如 rd_ratio）或乘法",
        )


def _check_subtraction(node: Any) -> None:
    if _kind(node.left) == "DATETIME" and _kind(node.right) == "DATETIME":
        raise ExpressionProblem("不支持两个日期相减", "与日期常量比较，或使用 age_years")


def _check_slice(node: Any) -> None:
    for bound in (node.start, node.stop):
        if (
            bound is not None
            and not isinstance(bound, ast.NullExpression)
            and not (
                isinstance(bound, ast.FloatExpression)
                and bound.value >= 0
                and bound.value == int(bound.value)
            )
        ):
            raise ExpressionProblem("切片的起止只能是非负整数常量", "如 region_code[:4]")


def _check_regex(node: Any) -> None:
    if not isinstance(node.right, ast.StringExpression):
        raise ExpressionProblem("正则表达式必须是字符串常量", '如 name =~ ".*科技.*"')
    pattern = node.right.value
    if _REGEX_BAD.search(pattern):
        raise ExpressionProblem(
            f"正则表达式 `{pattern}` 使用了各引擎含义不同的写法",
            "只用字面字符和 . ^ $ | ( ) [ ] - * + ? {m,n}，不用 \\d、\\w、(?...) 等；数字请写 [0-9]",
        )


def _check_symbol(node: Any) -> None:
    if node.scope is None and node.name not in CATALOG:
        raise ExpressionProblem(f"未知字段 `{node.name}`", _field_hint(node.name))
    if node.scope == "built-in" and node.name not in SUPPORTED["FunctionCallExpression"]:
        raise ExpressionProblem(
            f"不支持的内置符号 `${node.name}`", '只能使用 $min、$max、$abs；日期请写成 d"2025-01-01"'
        )


def _check_function(node: Any) -> None:
    if getattr(node.function, "scope", None) != "built-in":
        raise ExpressionProblem(f"不支持的函数 `{_operator(node)}`", _FUNCTION_HINT)


def _check_array(node: Any) -> None:
    if not node.value:
        raise ExpressionProblem("列表不能为空", '如 size_class in ["small", "micro"]')
    if any(isinstance(element, ast.NullExpression) for element in node.value):
        raise ExpressionProblem("列表中不能有 null", "判断字段为空请写 employees == null")


_NODE_CHECKS: dict[str, Callable[[Any], None]] = {
    "ArithmeticExpression": _check_division,
    "SubtractExpression": _check_subtraction,
    "GetSliceExpression": _check_slice,
    "FuzzyComparisonExpression": _check_regex,
    "SymbolExpression": _check_symbol,
    "FunctionCallExpression": _check_function,
    "ArrayExpression": _check_array,
}


def _check_node(node: Any) -> None:
    name = type(node).__name__
    op = _operator(node)
    if name not in SUPPORTED:
        raise ExpressionProblem(
            f"不支持的写法：{_NODE_WORDS.get(name, name)}",
            "只能使用比较、逻辑、四则运算、in、正则、切片和 $min/$max/$abs",
        )
    allowed = SUPPORTED[name]
    if allowed and op not in allowed:
        if name == "GetAttributeExpression":
            raise ExpressionProblem(f"不支持的属性 `.{op}`", _ATTRIBUTE_HINT)
        if name == "FunctionCallExpression":
            raise ExpressionProblem(f"不支持的函数 `${op}`", _FUNCTION_HINT)
        raise ExpressionProblem(
            f"不支持的运算：{_OPERATOR_WORDS.get(str(op), f'`{op}`')}",
            "改写为比较、加减乘除或 $min/$max/$abs",
        )
    check = _NODE_CHECKS.get(name)
    if check is not None:
        check(node)


def _first_type_problem(root: Any) -> ExpressionProblem | None:
    """The innermost type error of a tree, so the message points at what the author wrote."""
    for child in children(root):
        problem = _first_type_problem(child)
        if problem is not None:
            return problem
    return _type_problem(root)


def _check_placement(root: Any) -> None:
    """null only as an operand of == / !=; a list only after `in` or as the argument of $min/$max."""
    null_ok: set[int] = set()
    list_ok: set[int] = set()
    for node in walk(root):
        name = type(node).__name__
        if name == "ComparisonExpression":
            null_ok.update(id(c) for c in (node.left, node.right) if isinstance(c, ast.NullExpression))
        elif name == "ContainsExpression":
            list_ok.add(id(node.container))
        elif name == "FunctionCallExpression":
            list_ok.update(id(a) for a in node.arguments)
        elif name == "GetSliceExpression":  # an open bound (`name[2:]`) is a null literal inside rule-engine
            null_ok.update(id(b) for b in (node.start, node.stop) if isinstance(b, ast.NullExpression))
    for node in walk(root):
        if isinstance(node, ast.NullExpression) and id(node) not in null_ok:
            raise _null_problem()
        if isinstance(node, ast.ArrayExpression) and id(node) not in list_ok:
            raise ExpressionProblem(
                "列表只能用在 in 的右边或 $min/$max 的参数中", '如 size_class in ["small", "micro"]'
            )


def _field_hint(name: str) -> str:
    close = closest_fields(name)
    if close:
        return "你是想写 " + "、".join(f"`{c}`" for c in close) + " 吗？"
    return "运行 `zhida fields` 查看全部字段"


def _locate_type_error(text: str) -> ExpressionProblem | None:
    """rule-engine reports a type error without saying where; parse again without field types and find it."""
    try:
        rule = rule_engine.Rule(text, context=_UNTYPED_CONTEXT)
    except re_errors.EngineError:
        return None  # the mismatch is between constants; the caller reports it in general words
    return _first_type_problem(rule.statement.expression)


def _engine_problem(text: str, e: re_errors.EngineError) -> ExpressionProblem:
    """rule-engine's refusal of an expression, in plain words."""
    if isinstance(e, re_errors.SymbolResolutionError):
        return ExpressionProblem(f"未知字段 `{e.symbol_name}`", _field_hint(e.symbol_name))
    if isinstance(e, re_errors.RuleSyntaxError):
        if e.token is None:
            return ExpressionProblem(
                "语法错误：表达式不完整，可能缺少右括号、引号或运算数", "检查括号、引号和运算符"
            )
        return ExpressionProblem(
            f"语法错误：第 {e.token.lexpos + 1} 个字符处的 `{e.token.value}` 无法识别",
            "检查括号、引号和运算符",
        )
    if isinstance(e, re_errors.DatetimeSyntaxError):
        return ExpressionProblem(f"日期常量 `{e.value}` 无效", '日期写成 d"2025-01-01"')
    if isinstance(e, re_errors.RegexSyntaxError):
        return ExpressionProblem(f"正则表达式 `{e.value}` 写法错误：{e.error}", "检查括号和转义")
    if isinstance(e, re_errors.SyntaxError):
        return ExpressionProblem(f"常量写法错误：{e.message}", "检查引号和数字的写法")
    if isinstance(e, re_errors.FunctionCallError):
        return ExpressionProblem(f"函数 `${e.function_name}` 的参数写法不对", _FUNCTION_HINT)
    if isinstance(e, re_errors.AttributeResolutionError):
        return ExpressionProblem(f"不支持的属性 `.{e.attribute_name}`", _ATTRIBUTE_HINT)
    argument = re.search(r"argument #(\d+)", e.message)
    if argument:
        return ExpressionProblem(f"函数的第 {argument.group(1)} 个参数类型不对", _FUNCTION_HINT)
    located = _locate_type_error(text) if "data type mismatch" in e.message else None
    if located is not None:
        return located
    if _NULL_OPERAND.search(_STRING_LITERAL.sub('""', text)):
        return _null_problem()
    return ExpressionProblem("类型不一致：运算或比较两边的类型不同", _TYPE_HINT)


@lru_cache(maxsize=4096)
def parse(text: str) -> Expression:
    """Parse and check one expression; raises ExpressionProblem with a plain-words message."""
    try:
        rule = rule_engine.Rule(text, context=CONTEXT)
    except re_errors.EngineError as e:
        raise _engine_problem(text, e) from None
    root = rule.statement.expression
    for node in walk(root):
        _check_node(node)
    problem = _first_type_problem(root)
    if problem is not None:
        raise problem
    _check_placement(root)
    fields = tuple(
        sorted({n.name for n in walk(root) if isinstance(n, ast.SymbolExpression) and n.scope is None})
    )
    return Expression(text, rule, fields)


def check_kind(expr: Expression, kind: str) -> None:
    """A condition must be boolean; an amount or rank_by must be numeric."""
    t = str(expr.result_type.name)
    words = _TYPE_WORDS.get(t, t)
    if kind == "rule" and t != "BOOLEAN":
        raise ExpressionProblem(f"条件必须是真/假判断，这里得到的是{words}", "写成比较，如 employees >= 10")
    if kind in ("amount", "rank_by") and t != "FLOAT":
        example = (
            "写成金额算式，如 ui_premium_paid * 0.6"
            if kind == "amount"
            else "写成数值，如 rank_by: employees"
        )
        raise ExpressionProblem(f"{kind} 必须是数值，这里得到的是{words}", example)
