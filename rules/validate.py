"""Loading a policy file: YAML with line numbers, the model, and every check, all problems at once.

A bad file is refused as a whole: `load_policy` either returns a fully checked `Policy` or raises
`PolicyError` listing every problem with file:line, the policy/item/condition id, what is wrong in plain
words and, where we can, how to fix it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeGuard

import yaml
from pydantic import BaseModel, ValidationError

from rules.catalog import CATALOG
from rules.errors import PolicyError, Problem, display_path
from rules.expressions import ExpressionProblem, check_kind, closest_fields, parse
from rules.policy import (
    MONEY_KINDS,
    Application,
    Condition,
    Guide,
    Item,
    Material,
    Policy,
    Question,
    Source,
)

Path_ = tuple[str | int, ...]

_DATE_WORDS = "不是有效日期，应写成 YYYY-MM-DD，如 2025-01-01"
_PYDANTIC_WORDS = {
    "string_pattern_mismatch": "只能用小写字母、数字、- 和 _，并以字母或数字开头",
    "decimal_max_places": "金额最多两位小数（到分）",
    "decimal_max_digits": "金额位数过多",
    "decimal_whole_digits": "金额位数过多",
    "too_short": "至少要有一项",
    "date_from_datetime_parsing": _DATE_WORDS,
    "date_from_datetime_inexact": _DATE_WORDS,
    "date_parsing": _DATE_WORDS,
    "date_type": _DATE_WORDS,
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "int_from_float": "应为整数",
    "string_type": "应为文本",
    "list_type": "应为列表（每项以 - 开头）",
    "model_type": "应为键值映射（下一行缩进写 键: 值）",
    "model_attributes_type": "应为键值映射（下一行缩进写 键: 值）",
    "decimal_parsing": "应为数字",
    "decimal_type": "应为数字",
    "finite_number": "应为有限的数字",
    "string_too_short": "不能为空",
    "string_too_long": "过长",
}
_PYDANTIC_HINTS = {
    "string_pattern_mismatch": "如 wengang-2025",
    "string_type": '文本请加引号，如 "2025"',
    "int_from_float": "如 version: 2",
    "decimal_max_places": "如 30000000.00",
}

_MISSING_EXAMPLES = {
    "id": "id: wengang-2025",
    "version": "version: 1",
    "title": "title: 2025年失业保险稳岗返还",
    "department": "department: 市人力资源和社会保障局",
    "source": "source: {document: 某人社发〔2025〕12号}",
    "document": "document: 某人社发〔2025〕12号",
    "valid_from": "valid_from: 2025-01-01",
    "valid_to": "valid_to: 2025-12-31",
    "assessment_year": "assessment_year: 2024",
    "period": 'period: "2025"',
    "items": "items: [{id: sme, title: 中小微企业返还, amount: ui_premium_paid * 0.6}]",
    "text": "text: 未被列入严重失信主体名单",
    "rule": "rule: not serious_dishonest",
    "amount": "amount: ui_premium_paid * 0.6",
    "phone": 'phone: "0731-88888888"',
    "department_address": "department_address: 市政务服务中心二楼科技窗口",
    "time_limit_days": "time_limit_days: 20",
    "flow": "flow: [网上申请, 部门审核, 资金拨付]",
    "name": "name: 研发费用专项审计报告",
    "type": "type: money",
}

# PyYAML's most frequent complaints, in plain words: (start of PyYAML's text, message, hint).
_YAML_WORDS = (
    (
        "mapping values are not allowed here",
        "这里不能出现“: ”（冒号加空格）",
        "值中含有“: ”时（如 a ? b : c），请给整个值加引号",
    ),
    (
        "expected <block end>",
        "缩进没有对齐，或值以引号开头却没有在引号处结束",
        "以引号或 [ 开头的规则请整体再加一层引号，如 rule: '\"科技\" in name'",
    ),
    ("found character '\\t'", "不能用 Tab 缩进", "改用空格缩进"),
    ("could not find expected ':'", "缺少冒号“:”", "每个键后面写“: ”再写值"),
    ("found unexpected end of stream", "引号没有闭合", "检查这一行及之后的引号"),
)


class _Loader(yaml.SafeLoader):
    """YAML as policies need it: decimal numbers as Decimal (money is never float), impossible dates as text
    so the model reports them with their line."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return loader.construct_yaml_float(node)  # .inf, .nan: refused by the model


def _construct_date(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_date)


def _compose(text: str) -> tuple[dict[Path_, int], list[tuple[Path_, str, int, int]]]:
    """Each key path of the YAML document with the 1-based line where it starts, and every key that a
    mapping repeats (path of the mapping, key, line, line of its first use)."""
    lines: dict[Path_, int] = {}
    repeated: list[tuple[Path_, str, int, int]] = []

    def visit(node: yaml.Node, path: Path_) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                sub = (*path, key.value)
                visit(value, sub)
                lines[sub] = key.start_mark.line + 1
                if key.value in first:
                    repeated.append((path, str(key.value), lines[sub], first[key.value]))
                else:
                    first[key.value] = lines[sub]
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                visit(value, (*path, i))

    root = yaml.compose(text, Loader=_Loader)
    if root is not None:
        visit(root, ())
    return lines, repeated


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


def _model_at(path: Path_) -> type[BaseModel]:
    """The record a mapping at this place of the document is read as."""
    steps = [p for p in path if isinstance(p, str)]
    if steps[:1] == ["source"]:
        return Source
    if steps[:1] == ["guide"]:
        return Guide
    if steps[-1:] == ["questions"]:
        return Question
    if steps[-1:] == ["materials"]:
        return Material
    if steps[-1:] == ["application"]:
        return Application
    if steps[-1:] == ["conditions"]:
        return Condition
    if steps[:1] == ["items"]:
        return Item
    return Policy


def _key(path: Path_) -> str:
    """The key a problem is about, relative to its item or condition: `cap`, `source.document`."""
    tail: list[str] = []
    for p in reversed(path):
        if isinstance(p, int):
            break
        tail.insert(0, p)
    if not tail and len(path) >= 2 and isinstance(path[-1], int):  # an entry of a list of texts (`tags`)
        return f"{path[-2]} 第 {path[-1] + 1} 项"
    return ".".join(tail)


def _pydantic_problem(loc: _Located, e: Any) -> Problem:
    path: Path_ = tuple(e["loc"])
    key, kind, ctx = _key(path), e["type"], e.get("ctx", {})
    hint = _PYDANTIC_HINTS.get(kind)
    if kind == "missing":
        example = _MISSING_EXAMPLES.get(str(path[-1]))
        return loc.problem(path, f"缺少必填项 `{key}`", f"补上一行，如 {example}" if example else None)
    if kind == "extra_forbidden":
        known = list(_model_at(path[:-1]).model_fields)
        close = difflib.get_close_matches(str(path[-1]), known, n=1, cutoff=0.6)
        hint = f"你是想写 `{close[0]}` 吗？" if close else "删除它；允许的键：" + "、".join(known)
        return loc.problem(path, f"不认识的键 `{key}`", hint)
    if kind == "literal_error":
        allowed = "、".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        said = "（yes/no/true/false 在 YAML 中是真/假值）" if isinstance(e["input"], bool) else ""
        return loc.problem(path, f"`{key}`：取值不在允许范围内{said}", f"允许的值：{allowed}")
    if kind == "greater_than_equal" and ctx.get("ge") == 0:
        return loc.problem(path, f"`{key}`：不能为负数", "金额以元为单位，如 1000000.00")
    if kind == "greater_than_equal":
        words = f"不能小于 {ctx.get('ge')}"
    elif kind == "less_than_equal":
        words = f"不能大于 {ctx.get('le')}"
    else:
        words = _PYDANTIC_WORDS.get(kind, e["msg"])
    return loc.problem(path, f"`{key}`：{words}", hint)


# Conditions per item, shared ones included: the matcher gives each one bit of a 64-bit integer.
MAX_CONDITIONS = 62


def _semantic_problems(loc: _Located, raw: dict[str, Any]) -> list[Problem]:
    """Checks across keys, on the raw document, so that they are listed even when the model refuses it."""
    out: list[Problem] = []
    valid_from, valid_to = raw.get("valid_from"), raw.get("valid_to")
    if _is_day(valid_from) and _is_day(valid_to) and valid_to < valid_from:
        out.append(
            loc.problem(
                ("valid_to",),
                f"valid_to（{valid_to}）早于 valid_from（{valid_from}）",
                "检查有效期的起止日期",
            )
        )
    if raw.get("notice_days") is not None and raw.get("notice_working_days") is not None:
        out.append(
            loc.problem(
                ("notice_working_days",),
                "notice_days 与 notice_working_days 只能写一个",
                "文件按工作日计算公示期的写 notice_working_days，按自然日计算的写 notice_days",
            )
        )
    allocation, rank_by, budget = raw.get("allocation", "none"), raw.get("rank_by"), raw.get("budget")
    if allocation == "rank" and rank_by is None:
        out.append(
            loc.problem(
                ("allocation",), "allocation: rank 需要 rank_by", "写明排序依据，如 rank_by: employees"
            )
        )
    if allocation in ("pro_rata", "rank") and budget is None:
        out.append(
            loc.problem(("allocation",), f"allocation: {allocation} 需要 budget", "写明预算总额（元）")
        )
    if rank_by is not None and allocation in ("pro_rata", "none"):
        out.append(
            loc.problem(
                ("rank_by",), "rank_by 只在 allocation: rank 时使用", "删除 rank_by 或改为 allocation: rank"
            )
        )

    def ids(entries: Any) -> list[tuple[int, Any]]:
        if not isinstance(entries, list):
            return []
        return [
            (i, e["id"])
            for i, e in enumerate(entries)
            if isinstance(e, dict) and isinstance(e.get("id"), str)
        ]

    def duplicates(entries: Any, path: Path_, what: str) -> None:
        seen: set[Any] = set()
        for i, x in ids(entries):
            if x in seen:
                out.append(
                    loc.problem((*path, i, "id"), f"{what} id `{x}` 重复", "每个 id 在同一层级内必须唯一")
                )
            seen.add(x)

    duplicates(raw.get("conditions"), ("conditions",), "条件")
    duplicates(raw.get("items"), ("items",), "事项")
    shared = {x for _, x in ids(raw.get("conditions"))}
    for n, item in _items(raw):
        count = sum(len(c) for c in (raw.get("conditions"), item.get("conditions")) if isinstance(c, list))
        if count > MAX_CONDITIONS:
            out.append(
                loc.problem(
                    ("items", n, "conditions"),
                    f"事项共有 {count} 个条件（含共同条件），超过 {MAX_CONDITIONS} 个的上限",
                    "合并同类条件（如用 in 列表），或把事项拆成几个",
                )
            )
        duplicates(item.get("conditions"), ("items", n, "conditions"), "条件")
        for m, x in ids(item.get("conditions")):
            if x in shared:
                out.append(
                    loc.problem(
                        ("items", n, "conditions", m, "id"),
                        f"条件 id `{x}` 与共同条件重复",
                        "事项条件与共同条件的 id 不能相同",
                    )
                )
    out += _apply_problems(loc, raw)
    return out


def _apply_problems(loc: _Located, raw: dict[str, Any]) -> list[Problem]:
    """快申快享 checks: what a kind allows, what an apply item needs, and the application's lists."""
    out: list[Problem] = []
    kind, items = raw.get("kind"), raw.get("items")
    money = kind is None or kind in MONEY_KINDS
    if money and "items" not in raw:
        out.append(
            loc.problem(("items",), "缺少必填项 `items`", f"补上一行，如 {_MISSING_EXAMPLES['items']}")
        )
    elif money and isinstance(items, list) and not items:
        out.append(
            loc.problem(
                ("items",),
                "`items`：至少要有一项",
                "补上兑现事项；不发放资金的政策请写 kind: 权益 或 kind: 资质",
            )
        )
    if not money and isinstance(kind, str) and items:
        out.append(
            loc.problem(
                ("items",),
                f"{kind}类政策不发放资金，不能有兑现事项",
                "删除 items，把办理方式写在 guide 中；发放资金的政策请写 kind: 减免 或 kind: 奖补",
            )
        )
    applies = [(n, item) for n, item in _items(raw) if item.get("mode") == "apply"]
    if raw.get("guide") is None and (applies or (not money and isinstance(kind, str))):
        why = "有申请事项（mode: apply）" if applies else f"{kind}类政策"
        out.append(
            loc.problem(
                ("kind",) if not applies else ("items", applies[0][0], "mode"),
                f"{why}必须有申兑指南 guide",
                "补上 guide: {phone: 咨询电话, department_address: 办理地点, time_limit_days: 20, flow: [网上申请, 部门审核, 资金拨付]}",
            )
        )
    guide = raw.get("guide")
    if applies and isinstance(guide, dict) and guide.get("time_limit_days") is None:
        out.append(
            loc.problem(
                ("guide",),
                "有申请事项（mode: apply）的申兑指南必须写承诺时限 time_limit_days",
                "补上 time_limit_days: 20（自提交至办结的工作日数，以申兑指南为准）",
            )
        )
    reviewers = raw.get("reviewers")
    if isinstance(reviewers, list):
        seen: set[Any] = set()
        for i, r in enumerate(reviewers):
            if r in seen:
                out.append(
                    loc.problem(("reviewers", i), f"会签部门“{r}”重复", "每个部门只写一次，第一个为牵头部门")
                )
            seen.add(r)
    for n, item in _items(raw):
        apply = item.get("mode") == "apply"
        if not apply and "amount" not in item:
            out.append(
                loc.problem(
                    ("items", n),
                    "缺少必填项 `amount`",
                    "补上一行，如 amount: ui_premium_paid * 0.6",
                )
            )
        if apply and item.get("amount") is None and item.get("cap") is None:
            out.append(
                loc.problem(
                    ("items", n),
                    "申请事项没有 amount 时由审核部门核定金额，必须写上限 cap",
                    "补上 cap: 500000.00，或写出 amount 算式",
                )
            )
        application = item.get("application")
        if application is not None and not apply:
            out.append(
                loc.problem(
                    ("items", n, "application"),
                    "只有申请事项才有 application",
                    "在事项中加上 mode: apply，或删除 application",
                )
            )
        if isinstance(application, dict):
            out += _application_problems(loc, application, ("items", n, "application"))
    return out


def _application_problems(loc: _Located, application: dict[str, Any], path: Path_) -> list[Problem]:
    out: list[Problem] = []
    fields = application.get("fields")
    for i, name in enumerate(fields if isinstance(fields, list) else []):
        if isinstance(name, str) and name not in CATALOG:
            close = closest_fields(name)
            hint = (
                ("你是想写 " + "、".join(f"`{c}`" for c in close) + " 吗？")
                if close
                else "运行 `zhida fields` 查看全部字段"
            )
            out.append(loc.problem((*path, "fields", i), f"未知字段 `{name}`", hint))
    for what, key in (("问题", "questions"), ("材料", "materials")):
        entries = application.get(key)
        seen: set[Any] = set()
        for i, e in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(e, dict):
                continue
            if e.get("id") in seen:
                out.append(
                    loc.problem(
                        (*path, key, i, "id"),
                        f"{what} id `{e.get('id')}` 重复",
                        "每个 id 在同一层级内必须唯一",
                    )
                )
            seen.add(e.get("id"))
            if key != "questions":
                continue
            choices = e.get("choices")
            if e.get("type") == "choice" and not choices:
                out.append(
                    loc.problem((*path, key, i, "type"), "选择题必须列出选项 choices", "如 choices: [是, 否]")
                )
            if e.get("type") != "choice" and choices:
                out.append(
                    loc.problem(
                        (*path, key, i, "choices"),
                        "只有 type: choice 的问题才有选项",
                        "删除 choices，或改为 type: choice",
                    )
                )
    return out


def _is_day(value: Any) -> TypeGuard[dt.date]:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _items(raw: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """The items of a raw document that are mappings, with their position."""
    items = raw.get("items")
    if not isinstance(items, list):
        return []
    return [(n, item) for n, item in enumerate(items) if isinstance(item, dict)]


def _expression_problems(loc: _Located, raw: dict[str, Any]) -> list[Problem]:
    out: list[Problem] = []

    def check(value: Any, kind: str, path: Path_) -> None:
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            value = str(value)  # `amount: 30000` is a constant expression
        if isinstance(value, str):
            try:
                check_kind(parse(value), kind)
            except ExpressionProblem as e:
                out.append(loc.problem(path, e.message, e.hint))

    conditions = raw.get("conditions")
    for n, c in enumerate(conditions if isinstance(conditions, list) else []):
        if isinstance(c, dict):
            check(c.get("rule"), "rule", ("conditions", n, "rule"))
    for n, item in _items(raw):
        item_conditions = item.get("conditions")
        for m, c in enumerate(item_conditions if isinstance(item_conditions, list) else []):
            if isinstance(c, dict):
                check(c.get("rule"), "rule", ("items", n, "conditions", m, "rule"))
        check(item.get("amount"), "amount", ("items", n, "amount"))
    check(raw.get("rank_by"), "rank_by", ("rank_by",))
    return out


def _policy_id(text: str) -> str:
    """The policy id as written on a top-level `id:` line, to name a file that cannot be parsed."""
    found = re.search(r"^id:[ \t]*['\"]?([A-Za-z0-9_-]+)", text, flags=re.MULTILINE)
    return found.group(1) if found else "?"


def _yaml_problem(file: str, text: str, e: yaml.YAMLError) -> Problem:
    mark = getattr(e, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    column = f"（第 {mark.column + 1} 列）" if mark is not None else ""
    said = str(getattr(e, "problem", None) or e)
    message, hint = f"{said}", "检查缩进、冒号和引号"
    for start, words, how in _YAML_WORDS:
        if said.startswith(start):
            message, hint = words, how
            break
    return Problem(file, line, _policy_id(text), f"YAML 格式错误{column}：{message}", hint)


# A policy file is a few hundred YAML nodes; these bounds refuse a document built to exhaust the service.
MAX_NODES = 50_000
MAX_DEPTH = 50


def _check_shape(text: str, file: str) -> None:
    """Refuse anchors and aliases (a policy needs none, and nested aliases expand exponentially: a few
    hundred bytes can take gigabytes) and documents too large or too deep, before anything is built.
    Reads the parser's events only, so the cost is linear in the text."""
    nodes = depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1 if event.start_mark else None
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise PolicyError(
                [
                    Problem(
                        file,
                        line,
                        _policy_id(text),
                        "不支持 YAML 锚点和别名（& 和 *）",
                        "把被引用的内容直接写在这里，不要用 & 和 * 引用",
                    )
                ]
            )
        if isinstance(event, yaml.NodeEvent):
            nodes += 1
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if nodes > MAX_NODES or depth > MAX_DEPTH:
            what = f"超过 {MAX_NODES:,} 个值" if nodes > MAX_NODES else f"嵌套超过 {MAX_DEPTH} 层"
            raise PolicyError(
                [Problem(file, line, _policy_id(text), f"文件过大：{what}", "一个文件只写一个政策")]
            )


def parse_policy_text(text: str, file: str) -> Policy:
    """Check the text of one policy file; return the policy or raise PolicyError with every problem."""
    try:
        _check_shape(text, file)
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader: builds no Python objects
        lines, repeated = _compose(text)
    except yaml.YAMLError as e:
        raise PolicyError([_yaml_problem(file, text, e)]) from None
    if not isinstance(raw, dict):
        raise PolicyError(
            [
                Problem(
                    file,
                    lines.get((), 1),
                    "?",
                    "文件内容应为一个政策（键值映射），这里是" + _shape(raw),
                    "一个文件只写一个政策，每行写 键: 值，如 id: wengang-2025",
                )
            ]
        )
    loc = _Located(file, raw, lines)
    problems = [
        loc.problem(
            (*path, key), f"键 `{key}` 重复出现（第 {first} 行已有）", "删除其中一个：否则只有后一个生效"
        )
        for path, key, _line, first in repeated
    ]
    problems += _semantic_problems(loc, raw) + _expression_problems(loc, raw)
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as e:
        problems += [_pydantic_problem(loc, x) for x in e.errors()]
    if problems:
        raise PolicyError(sorted(problems, key=lambda p: (p.line or 0, p.message)))
    return policy


def _shape(raw: Any) -> str:
    if raw is None:
        return "空文件"
    if isinstance(raw, list):
        return "一个列表"
    return "单个值"


def load_policy(path: Path) -> Policy:
    """Read and check one policy file."""
    file = display_path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PolicyError(
            [Problem(file, None, "?", f"无法读取文件：{e.strerror}", "检查路径和权限")]
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        guess = "，看起来是 GBK/GB18030 编码" if _is_gb18030(data) else ""
        raise PolicyError(
            [
                Problem(
                    file,
                    line,
                    _policy_id(data.decode("utf-8", errors="replace")),
                    f"文件不是 UTF-8 编码{guess}",
                    "用编辑器把文件另存为 UTF-8",
                )
            ]
        ) from None
    return parse_policy_text(text, file)


def _is_gb18030(data: bytes) -> bool:
    try:
        data.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return True
