"""Rule expressions: parsing with rule-engine, type-checking against the catalog, and the language subset.

Every `rule`, `amount` and `rank_by` is parsed by the rule-engine package with a type resolver built
from the field catalog. Only the constructs listed in `SUPPORTED` may appear: they are the ones every
engine (the per-enterprise reference and the compiled SQL) gives the same answer for. Anything else is
refused here, by name, before a policy can be loaded.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

import rule_engine
import rule_engine.ast as ast
import rule_engine.errors as re_errors

from rules.catalog import CATALOG, RULE_ENGINE_TYPES

CONTEXT = rule_engine.Context(
    type_resolver=rule_engine.type_resolver_from_dict(
        {name: RULE_ENGINE_TYPES[f.type] for name, f in CATALOG.items()}
    ),
    default_timezone="utc",
)

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

# Plain-words names for refused constructs, so the message says what the author wrote.
_OPERATOR_WORDS = {
    "fdiv": "floor division `//`",
    "mod": "modulo `%`",
    "pow": "power `**`",
    "bwand": "bitwise `&`",
    "bwor": "bitwise `|`",
    "bwxor": "bitwise `^`",
    "bwlsh": "shift `<<`",
    "bwrsh": "shift `>>`",
}

# Regular expressions must mean the same in Python `re`, RE2 (DuckDB) and Java (Spark): a safe subset.
_REGEX_SAFE = re.compile(r"^[\w\u4e00-\u9fff\^\$\.\|\(\)\[\]\-\*\+\?\{\},\\d]*$")
_REGEX_BAD = re.compile(r"\(\?|\\[^d.\\()\[\]{}*+?|^$-]|\\d")


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


def _is_number_literal(node: Any) -> bool:
    return isinstance(node, ast.FloatExpression)


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


def _check_node(node: Any) -> None:
    name = type(node).__name__
    op = _operator(node)
    if name not in SUPPORTED:
        raise ExpressionProblem(
            f"不支持的表达式结构 {name}", "只能使用比较、逻辑、四则运算、in、正则、切片和 $min/$max/$abs"
        )
    allowed = SUPPORTED[name]
    if allowed and op not in allowed:
        word = _OPERATOR_WORDS.get(str(op), f"`{op}`")
        raise ExpressionProblem(f"不支持的运算 {word}（{name}）", "改写为比较、加减乘除或 $min/$max/$abs")
    if name == "SymbolExpression" and node.scope is None and node.name not in CATALOG:
        raise ExpressionProblem(f"未知字段 `{node.name}`")
    if name == "FunctionCallExpression" and getattr(node.function, "scope", None) != "built-in":
        raise ExpressionProblem(f"不支持的函数 `{op}`")
    if name == "SymbolExpression" and node.scope == "built-in" and node.name not in {"min", "max", "abs"}:
        raise ExpressionProblem(
            f"不支持的内置符号 `${node.name}`", '只能使用 $min、$max、$abs；日期请写成 d"2025-01-01"'
        )
    if name == "ArithmeticExpression" and op == "tdiv":
        if not _is_number_literal(node.right) or not _finite_reciprocal(node.right.value):
            raise ExpressionProblem(
                "除法只能除以 2、5、10 之积这样的数字常量（如 / 10000）",
                "除以字段或除以 3 之类在各引擎上结果不一致；请改用派生字段（如 rd_ratio）或乘法",
            )
    if name == "SubtractExpression" and all(
        side.result_type == rule_engine.DataType.DATETIME for side in (node.left, node.right)
    ):
        raise ExpressionProblem("不支持两个日期相减", "与日期常量比较，或使用 age_years")
    if name == "GetSliceExpression":
        for bound in (node.start, node.stop):
            if bound is not None and not (
                _is_number_literal(bound) and bound.value >= 0 and bound.value == int(bound.value)
            ):
                raise ExpressionProblem("切片的起止只能是非负整数常量，如 name[:2]")
    if name == "FuzzyComparisonExpression":
        if not isinstance(node.right, ast.StringExpression):
            raise ExpressionProblem("正则表达式必须是字符串常量")
        pattern = node.right.value
        if not _REGEX_SAFE.match(pattern) or _REGEX_BAD.search(pattern):
            raise ExpressionProblem(
                f"正则表达式 {pattern!r} 使用了各引擎含义不同的写法",
                "只用字面字符、^ $ . | ( ) [ ] - * + ? {m,n}；不用 \\d、(?...) 等",
            )
    if name == "NullExpression":
        return  # allowed only as a comparison operand; checked by the parent
    if name in ("ComparisonExpression", "ArithmeticComparisonExpression"):
        for side in (node.left, node.right):
            if isinstance(side, ast.NullExpression) and name != "ComparisonExpression":
                raise ExpressionProblem("null 只能用 == 或 != 比较")
    if name == "ArrayExpression":
        for element in node.value:
            if isinstance(element, ast.NullExpression):
                raise ExpressionProblem("列表中不能有 null")


def _check_nulls_only_in_equality(root: Any) -> None:
    parents_ok: set[int] = set()
    for node in walk(root):
        if type(node).__name__ == "ComparisonExpression":
            parents_ok.update(id(c) for c in (node.left, node.right) if isinstance(c, ast.NullExpression))
    for node in walk(root):
        if isinstance(node, ast.NullExpression) and id(node) not in parents_ok:
            raise ExpressionProblem("null 只能出现在 == 或 != 比较中")


@lru_cache(maxsize=4096)
def parse(text: str) -> Expression:
    """Parse and check one expression; raises ExpressionProblem with a plain-words message."""
    try:
        rule = rule_engine.Rule(text, context=CONTEXT)
    except re_errors.SymbolResolutionError as e:
        close = closest_fields(e.symbol_name)
        hint = (
            "你是想写 " + "、".join(f"`{c}`" for c in close) + " 吗？"
            if close
            else "运行 `zhida fields` 查看全部字段"
        )
        raise ExpressionProblem(f"未知字段 `{e.symbol_name}`", hint) from None
    except re_errors.RuleSyntaxError as e:
        where = f"（第 {e.token.lexpos + 1} 个字符附近）" if getattr(e, "token", None) is not None else ""
        raise ExpressionProblem(f"语法错误{where}：{e.message}", "检查括号、引号和运算符") from None
    except re_errors.EngineError as e:
        raise ExpressionProblem(
            f"类型错误：{e.message}", "比较两边的类型要一致，如数字与数字、文本与文本"
        ) from None
    root = rule.statement.expression
    for node in walk(root):
        _check_node(node)
    _check_nulls_only_in_equality(root)
    fields = tuple(
        sorted({n.name for n in walk(root) if isinstance(n, ast.SymbolExpression) and n.scope is None})
    )
    return Expression(text, rule, fields)


def check_kind(expr: Expression, kind: str) -> None:
    """A condition must be boolean; an amount or rank_by must be numeric."""
    t = expr.result_type
    if kind == "rule" and t != rule_engine.DataType.BOOLEAN:
        raise ExpressionProblem(f"条件必须是真/假判断，这里得到的是 {t.name}", "写成比较，如 employees >= 10")
    if kind in ("amount", "rank_by") and t != rule_engine.DataType.FLOAT:
        raise ExpressionProblem(
            f"{kind} 必须是数值，这里得到的是 {t.name}", "写成金额算式，如 ui_premium_paid * 0.6"
        )
