"""`zhida fields`, `zhida rules validate`, `zhida rules show`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rules.catalog import FIELDS
from rules.errors import PolicyError
from rules.policy import Condition
from rules.ruleset import load_ruleset
from rules.validate import load_policy

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)

_TYPE_WORDS = {
    "string": "文本",
    "integer": "整数",
    "money": "金额",
    "ratio": "比例",
    "date": "日期",
    "boolean": "是/否",
}


def fields() -> None:
    table = Table(title="字段目录（企业画像）")
    for col in ("字段", "名称", "类型", "单位", "来源表", "定义"):
        table.add_column(col)
    for f in FIELDS:
        table.add_row(f.name, f.label, _TYPE_WORDS[f.type], f.unit, f.table, f.definition or "—")
    console.print(table)


def print_problems(e: PolicyError) -> None:
    console.print(f"[red]共 {len(e.problems)} 个问题，文件未载入：[/red]")
    for p in e.problems:
        console.print(f"  {p}", highlight=False, markup=False, soft_wrap=True)


@app.command("validate", help="校验一个目录中的全部政策文件")
def validate(
    directory: Path,
    published: Path | None = typer.Option(None, help="已发布版本所在目录：同 id 同版本而内容不同将被拒绝"),
) -> None:
    try:
        before = load_ruleset(published) if published else None
        ruleset = load_ruleset(directory, published=before)
    except PolicyError as e:
        print_problems(e)
        raise typer.Exit(1) from None
    if not len(ruleset):
        console.print(f"[red]目录中没有政策文件（*.yaml、*.yml）：{directory}[/red]")
        raise typer.Exit(1)
    items = sum(len(p.items) for p in ruleset)
    console.print(
        f"[green]通过[/green]：{len(ruleset)} 项政策、{items} 个兑现事项；指纹 {ruleset.fingerprint}",
        soft_wrap=True,
    )


@app.command("show", help="用中文显示一个政策文件的摘要")
def show(file: Path) -> None:
    try:
        policy = load_policy(file)
    except PolicyError as e:
        print_problems(e)
        raise typer.Exit(1) from None
    console.print(f"[bold]{policy.title}[/bold]（{policy.id} 第 {policy.version} 版）")
    console.print(f"主管部门：{policy.department}    依据：{policy.source.document}")
    if policy.source.url:
        console.print(f"原文：{policy.source.url}")
    console.print(
        f"有效期：{policy.valid_from} 至 {policy.valid_to}    考核年度：{policy.assessment_year}    期次：{policy.period}"
    )
    if policy.budget is not None:
        words = {
            "pro_rata": "超出预算时按比例分配",
            "rank": f"超出预算时按 {policy.rank_by} 从高到低排序兑现",
            "none": "不限额",
        }
        console.print(f"预算：{policy.budget:,} 元，{words[policy.allocation]}")
    if not policy.gives_money:
        console.print(f"类别：{policy.kind}（不发放资金，不参与数据比对；按申兑指南办理）")
    elif all(_is_number(i.amount) and Decimal(i.amount) == 0 for i in policy.items):
        console.print("兑现方式：不涉及资金拨付（减免、缓缴、融资等，按规定直接享受或向有关单位办理）")
    else:
        ways = []
        if any(i.mode == "free" for i in policy.items):
            ways.append("企业一键确认后拨付" if policy.confirmation == "required" else "免确认直接拨付")
        if any(i.mode == "apply" for i in policy.items):
            ways.append(f"快申快享：企业在线申请，由{'、'.join(policy.reviewers or [policy.department])}审核")
        console.print("兑现方式：" + "；".join(ways))
    if policy.guide is not None:
        g = policy.guide
        console.print(
            f"申兑指南：咨询电话 {g.phone}    办理地点：{g.department_address}"
            + (f"    承诺时限：{g.time_limit_days} 个工作日" if g.time_limit_days else ""),
            soft_wrap=True,
        )
        console.print("办理流程：" + " → ".join(g.flow), soft_wrap=True)
    if len(policy.reviewers) > 1:
        console.print(f"会签部门：{'、'.join(policy.reviewers)}（{policy.lead_reviewer}牵头）")
    if policy.exclusive_group:
        console.print(f"就高不重复组：{policy.exclusive_group}")
    _conditions_table("共同条件", policy.conditions)
    for item in policy.items:
        mode = "（快申快享：申请）" if item.mode == "apply" else ""
        console.print(f"\n[bold]事项 {item.id}：{item.title}{mode}[/bold]")
        _conditions_table("事项条件", item.conditions)
        cap = f"，每户最高 {item.cap:,} 元" if item.cap is not None else ""
        if item.amount is None:
            console.print(Text(f"  金额：由审核部门核定{cap}"))
        else:
            console.print(Text(f"  金额：{item.amount}（元，四舍五入到分{cap}）"))
        if item.application is not None:
            asked = item.application
            if asked.fields:
                console.print(Text("  数据缺失时由企业填写：" + "、".join(asked.fields)))
            for q in asked.questions:
                console.print(Text(f"  问题：{q.text}"))
            for m in asked.materials:
                console.print(Text(f"  材料：{m.name}{'' if m.required else '（选交）'}"))


def _conditions_table(title: str, conditions: list[Condition]) -> None:
    if not conditions:
        return
    table = Table(title=title)
    for col in ("条件", "说明", "条款", "规则"):
        table.add_column(col)
    for c in conditions:
        table.add_row(c.id, c.text, c.clause or "—", Text(c.rule))
    console.print(table)


def _is_number(text: str | None) -> bool:
    """Whether an amount is a plain number (`0`, `200000`), not a formula (nor set by the department)."""
    if text is None:
        return False
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True
