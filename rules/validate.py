"""Loading a policy file: YAML with line numbers, the model, and every check, all problems at once.

A bad file is refused as a whole: `load_policy` either returns a fully checked `Policy` or raises
`PolicyError` listing every problem with file:line, the policy/item/condition id, what is wrong in plain
words and, where we can, how to fix it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rules.errors import PolicyError, Problem, display_path
from rules.expressions import ExpressionProblem, check_kind, parse
from rules.policy import Policy

Path_ = tuple[str | int, ...]

_PYDANTIC_WORDS = {
    "missing": "缺少必填项",
    "extra_forbidden": "不认识的键（拼写错误？）",
    "string_pattern_mismatch": "只能用小写字母、数字、- 和 _",
    "greater_than_equal": "不能为负数或过小",
    "less_than_equal": "过大",
    "decimal_max_places": "金额最多两位小数（到分）",
    "too_short": "至少要有一项",
    "date_from_datetime_parsing": "日期格式应为 YYYY-MM-DD",
    "date_parsing": "日期格式应为 YYYY-MM-DD",
    "date_type": "日期格式应为 YYYY-MM-DD",
    "literal_error": "取值不在允许范围内",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "string_type": "应为文本",
    "list_type": "应为列表",
    "model_type": "应为键值映射",
    "decimal_parsing": "应为数字",
    "decimal_type": "应为数字",
    "string_too_short": "不能为空",
    "string_too_long": "过长",
}


def _line_map(text: str) -> dict[Path_, int]:
    """Each key path of the YAML document and the 1-based line where its value starts."""
    lines: dict[Path_, int] = {}

    def visit(node: yaml.Node, path: Path_) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, key.value)
                visit(value, sub)
                lines[sub] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                visit(value, (*path, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        visit(root, ())
    return lines


class _Located:
    """Finds the line and the id path (policy/item/condition) of a place in the raw document."""

    def __init__(self, file: str, raw: Any, lines: dict[Path_, int]) -> None:
        self.file, self.raw, self.lines = file, raw, lines

    def line(self, path: Path_) -> int | None:
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return None

    def where(self, path: Path_) -> str:
        ids: list[str] = []
        node: Any = self.raw
        ids.append(str(node.get("id", "?")) if isinstance(node, dict) else "?")
        for step in path:
            try:
                node = node[step]
            except (KeyError, IndexError, TypeError):
                break
            if isinstance(step, int) and isinstance(node, dict):
                ids.append(str(node.get("id", f"#{step + 1}")))
        return "/".join(ids)

    def problem(self, path: Path_, message: str, hint: str | None = None) -> Problem:
        return Problem(self.file, self.line(path), self.where(path), message, hint)


def _pydantic_problems(loc: _Located, error: ValidationError) -> list[Problem]:
    out = []
    for e in error.errors():
        path = tuple(e["loc"])
        key = ".".join(str(p) for p in path if isinstance(p, str))
        words = _PYDANTIC_WORDS.get(e["type"], e["msg"])
        hint = None
        if e["type"] == "literal_error":
            hint = "允许的值：" + str(e.get("ctx", {}).get("expected", ""))
        if e["type"] == "extra_forbidden":
            hint = "删除它，或查看 DESIGN.md 契约 1 中的键名"
        if e["type"] == "string_pattern_mismatch":
            hint = "如 wengang-2025"
        out.append(loc.problem(path, f"`{key}`：{words}", hint))
    return out


def _semantic_problems(loc: _Located, policy: Policy) -> list[Problem]:
    out: list[Problem] = []
    if policy.valid_to < policy.valid_from:
        out.append(loc.problem(("valid_to",), "valid_to 早于 valid_from", "检查有效期的起止日期"))
    if policy.allocation == "rank" and policy.rank_by is None:
        out.append(
            loc.problem(
                ("allocation",), "allocation: rank 需要 rank_by", "写明排序依据，如 rank_by: employees"
            )
        )
    if policy.allocation != "none" and policy.budget is None:
        out.append(
            loc.problem(("allocation",), f"allocation: {policy.allocation} 需要 budget", "写明预算总额（元）")
        )
    if policy.rank_by is not None and policy.allocation != "rank":
        out.append(
            loc.problem(
                ("rank_by",), "rank_by 只在 allocation: rank 时使用", "删除 rank_by 或改为 allocation: rank"
            )
        )

    def duplicates(ids: list[str], path: Path_, what: str) -> None:
        seen: set[str] = set()
        for i, x in enumerate(ids):
            if x in seen:
                out.append(
                    loc.problem((*path, i, "id"), f"{what} id `{x}` 重复", "每个 id 在同一层级内必须唯一")
                )
            seen.add(x)

    duplicates([c.id for c in policy.conditions], ("conditions",), "条件")
    duplicates([i.id for i in policy.items], ("items",), "事项")
    shared = {c.id for c in policy.conditions}
    for n, item in enumerate(policy.items):
        duplicates([c.id for c in item.conditions], ("items", n, "conditions"), "条件")
        for m, c in enumerate(item.conditions):
            if c.id in shared:
                out.append(
                    loc.problem(
                        ("items", n, "conditions", m, "id"),
                        f"条件 id `{c.id}` 与共同条件重复",
                        "事项条件与共同条件的 id 不能相同",
                    )
                )
    return out


def parse_policy_text(text: str, file: str) -> Policy:
    """Check the text of one policy file; return the policy or raise PolicyError with every problem."""
    try:
        raw = yaml.safe_load(text)
        lines = _line_map(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(
            [Problem(file, line, "?", f"YAML 格式错误：{getattr(e, 'problem', e)}", "检查缩进和冒号")]
        ) from None
    if not isinstance(raw, dict):
        raise PolicyError(
            [Problem(file, 1, "?", "文件内容应为一个政策（键值映射）", "参见 DESIGN.md 契约 1")]
        )
    loc = _Located(file, raw, lines)
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as e:
        # Expressions are checked on the raw document too, to list every problem at once.
        problems = _pydantic_problems(loc, e) + _expression_problems(loc, raw)
        raise PolicyError(sorted(problems, key=lambda p: (p.line or 0, p.message))) from None
    problems = _semantic_problems(loc, policy) + _expression_problems(loc, raw)
    if problems:
        raise PolicyError(sorted(problems, key=lambda p: (p.line or 0, p.message)))
    return policy


def _expression_problems(loc: _Located, raw: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []

    def check(value: Any, kind: str, path: Path_) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # `amount: 30000` is a constant expression
        if isinstance(value, str):
            try:
                check_kind(parse(value), kind)
            except ExpressionProblem as e:
                out.append(loc.problem(path, e.message, e.hint))

    for n, c in enumerate(raw.get("conditions") or []):
        if isinstance(c, dict):
            check(c.get("rule"), "rule", ("conditions", n, "rule"))
    for n, item in enumerate(raw.get("items") or []):
        if not isinstance(item, dict):
            continue
        for m, c in enumerate(item.get("conditions") or []):
            if isinstance(c, dict):
                check(c.get("rule"), "rule", ("items", n, "conditions", m, "rule"))
        check(item.get("amount"), "amount", ("items", n, "amount"))
    check(raw.get("rank_by"), "rank_by", ("rank_by",))
    return out


def load_policy(path: Path) -> Policy:
    """Read and check one policy file."""
    file = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PolicyError(
            [Problem(file, None, "?", f"不是 UTF-8 编码的文本：{e.reason}", "另存为 UTF-8")]
        ) from None
    return parse_policy_text(text, file)
