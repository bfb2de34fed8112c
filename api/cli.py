"""The `zhida` command line: thin typer commands that call the core and render with rich."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from api.commands import audit, batch, generate, match, offers, profile, report, serve, sms, snapshot, users
from api.commands import rules as rules_cmd
from api.commands import supermarket as supermarket_cmd
from rules.errors import ZhidaError

app = typer.Typer(help="直达：免申即享惠企政策平台", no_args_is_help=True, add_completion=False)
err_console = Console(stderr=True)

app.command("fields", help="列出字段目录（企业画像）")(rules_cmd.fields)
app.add_typer(rules_cmd.app, name="rules", help="政策规则：校验、查看")
app.add_typer(snapshot.app, name="snapshot", help="登记数据快照：检查、生成")
snapshot.app.command("generate", help="生成合成快照")(generate.generate)
app.command("match")(match.match)
app.command("explain")(match.explain)
app.command("simulate")(match.simulate)
app.command("bench")(match.bench)
snapshot.app.command("profile", help="构建企业画像并显示字段覆盖率")(profile.profile)
app.add_typer(offers.app, name="offers", help="兑现要约：导入、初核、发布")
app.add_typer(sms.app, name="sms", help="短信：发送、提醒")
app.add_typer(batch.app, name="batch", help="拨付批次：组批、复核、导出、对账")
app.add_typer(audit.app, name="audit", help="审计日志")
app.command("serve")(serve.serve)
app.add_typer(users.app, name="users", help="职员用户：新增、列表、设置密码")
app.command("report", help="月度报告：自包含 HTML 与 Excel 数据表")(report.report)
app.add_typer(supermarket_cmd.app, name="supermarket", help="政策超市：重建搜索索引、搜索、基准测试")


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
