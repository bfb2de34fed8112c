"""`zhida departments`: the departments staff belong to (province, city, county), each with its region code
(GB/T 2260) and its superior; a system administrator's (系统管理员) commands, audited.

A department's staff act on the policies of their department and of its superiors, for the enterprises
of its region (payouts/scope.py, docs/contracts.md#departments-and-regions).
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from api.commands import BY, IDENTITY_HELP, actor, now
from payouts import departments
from payouts.db import connect, transaction

app = typer.Typer(no_args_is_help=True, epilog=IDENTITY_HELP)
console = Console(highlight=False)
LEVELS = "national（国家级）、province（省级）、city（市级）、county（县级）"
# The placement options `add` and `set` share.
LEVEL = typer.Option(..., "--level", help=f"层级：{LEVELS}")
REGION = typer.Option(None, "--region", help="行政区划代码（GB/T 2260 六位，国家级不填）")


@app.command(
    "add",
    help="新增部门（系统管理员操作）：名称须与政策文件的 department 完全一致；"
    "例：zhida departments add 芙蓉区人力资源和社会保障局 --level county --region 430102 "
    "--parent 长沙市人力资源和社会保障局",
    epilog=IDENTITY_HELP,
)
def add(
    name: str = typer.Argument(..., help="部门名称，如 长沙市人力资源和社会保障局"),
    level: str = LEVEL,
    region: str | None = REGION,
    parent: str | None = typer.Option(
        None, "--parent", help="上级部门名称（同一系统的上级，如 湖南省人力资源和社会保障厅）"
    ),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        row = departments.add(s, name, level=level, region_code=region, parent=parent, by=by, now=now())
        shown = departments.describe(s, row)
    console.print(
        f"已新增部门 {shown.name}（{shown.level}，{shown.region}{'，上级：' + shown.parent if shown.parent else ''}）"
    )


@app.command(
    "set",
    help="设定部门的层级、行政区划和上级部门（系统管理员操作），如升级时按原部门名称建立、尚未设定辖区的部门",
    epilog=IDENTITY_HELP,
)
def place(
    name: str = typer.Argument(..., help="部门名称"),
    level: str = LEVEL,
    region: str | None = REGION,
    parent: str | None = typer.Option(None, "--parent", help="上级部门名称"),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        row = departments.place(s, name, level=level, region_code=region, parent=parent, by=by, now=now())
        shown = departments.describe(s, row)
    console.print(f"部门 {shown.name} 已设定为{shown.level}，辖区 {shown.region}")


@app.command("list", help="列出部门：层级、辖区（行政区划）、上级部门")
def list_departments() -> None:
    with transaction(connect(), read_only=True) as s:
        rows = [departments.describe(s, d) for d in departments.all_departments(s)]
    table = Table()
    for col in ("部门", "层级", "辖区", "上级部门"):
        table.add_column(col, overflow="fold")  # names are never cut: they must match policy files exactly
    for d in rows:
        table.add_row(d.name, d.level, d.region, d.parent)
    console.print(table)
