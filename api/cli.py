"""The `zhida` command line: thin typer commands that call the core and render with rich.

Each command's module (and what it imports: DuckDB, Spark, the payouts database) is loaded only when
that command runs, so `zhida --help` and simple commands start at once; the table below names them.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from rules.errors import ZhidaError

# name: (module in api.commands, attribute: a typer app (a group) or a function (one command), help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "fields": ("rules", "fields", "列出字段目录（企业画像）"),
    "rules": ("rules", "app", "政策规则：校验、查看"),
    "snapshot": ("snapshot", "app", "登记数据快照：检查、生成、画像"),
    "match": ("match", "match", "一次性对全部有效政策进行数据比对，写出候选名单、差一点名单和数据缺失名单"),
    "explain": ("match", "explain", "逐条说明一户企业对每个兑现事项的每个条件：条款、读取的数据和结论"),
    "results": ("results", "app", "差一点名单和数据缺失名单：按事项、地区、行业、规模、条件或企业查询与导出"),
    "simulate": ("match", "simulate", "影响测算：新版本比旧版本多覆盖、少覆盖多少企业和资金"),
    "bench": ("bench", "app", "基准测试：匹配、全流程"),
    "chaos": ("chaos", "chaos", "故障注入：随机杀死各步骤的进程，重跑后检查资金与审计不变量"),
    "offers": ("offers", "app", "兑现要约：导入、初核、发布"),
    "sms": ("sms", "app", "短信：发送、提醒"),
    "batch": ("batch", "app", "拨付批次：组批、复核、导出、对账"),
    "finance": ("finance", "app", "资金配置（财政部门）：付款账户、政策资金来源与分担比例"),
    "audit": ("audit", "app", "审计日志：校验、检查点、对象历史"),
    "backup": ("backup", "backup", "备份数据库、文件与签名检查点"),
    "restore": ("backup", "restore", "把备份恢复到空数据库并核对"),
    "db": ("db", "app", "数据库：以所有者升级结构、为应用角色授权"),
    "serve": ("serve", "serve", "启动 Web 服务：职员接口 /api、工作台 /console、企业确认页 /c/"),
    "worker": ("worker", "worker", "运行后台任务：数据比对、发送短信、到期提醒、过期清理"),
    "users": ("users", "app", "职员用户：新增、角色、部门、停用、密码；命令行职员令牌"),
    "departments": ("departments", "app", "部门：省、市、县三级，行政区划与上级部门（分级审核的辖区）"),
    "report": ("report", "report", "月度报告：自包含 HTML 与 Excel 数据表"),
    "supermarket": ("supermarket", "app", "政策超市：重建搜索索引、搜索、基准测试"),
}


class LazyCommands(TyperGroup):
    """The top-level group: commands listed from `COMMANDS`, each imported when it is used."""

    listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, help_text = COMMANDS[cmd_name]
        if self.listing:  # `zhida --help` shows names and help: nothing to import for that
            return click.Command(cmd_name, help=help_text)
        target: Any = getattr(importlib.import_module(f"api.commands.{module}"), attribute)
        if isinstance(target, typer.Typer):
            group = typer.main.get_group(target)
            group.name, group.help = cmd_name, help_text
            return group
        single = typer.Typer()
        single.command(cmd_name, help=None if target.__doc__ else help_text)(target)
        return typer.main.get_command(single)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self.listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self.listing = False


app = typer.Typer(
    cls=LazyCommands, help="直达：免申即享惠企政策平台", no_args_is_help=True, add_completion=False
)
err_console = Console(stderr=True)


@app.callback()
def _top() -> None:
    """直达：免申即享惠企政策平台"""


def main() -> None:
    """Entry point that turns zhida errors, and a wrong command or option (which typer raises outside
    standalone mode), into a message and a non-zero exit code (2 for usage), not a traceback; a command's
    `typer.Exit(code)`, which typer returns outside standalone mode, becomes the process's exit code."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as e:
        err_console.print(f"[red]错误[/red] {e.format_message()}", markup=True, highlight=False)
        sys.exit(e.exit_code)
    except ZhidaError as e:
        err_console.print(f"[red]错误[/red] {e}", markup=True, highlight=False)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)
