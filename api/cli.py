"""The `zhida` command line: thin typer commands that call the core and render with rich."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from api.commands import rules as rules_cmd
from rules.errors import ZhidaError

app = typer.Typer(help="直达：免申即享惠企政策平台", no_args_is_help=True, add_completion=False)
console = Console()
err_console = Console(stderr=True)

app.command("fields", help="列出字段目录（企业画像）")(rules_cmd.fields)
app.add_typer(rules_cmd.app, name="rules", help="政策规则：校验、查看")


def main() -> None:
    """Entry point that turns zhida errors into a message and a non-zero exit code."""
    try:
        app(standalone_mode=False)
    except ZhidaError as e:
        err_console.print(f"[red]错误[/red] {e}", markup=True, highlight=False)
        sys.exit(1)
