"""`zhida snapshot check`: load and validate a registry snapshot, print the data-quality report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console

from matcher.duckdb_engine import connect
from matcher.snapshot import load_snapshot, report_json

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)


@app.command("check")
def check(
    directory: Path = typer.Argument(..., help="快照目录"),
    json_out: Path | None = typer.Option(None, "--json", help="把报告另存为 JSON 文件"),
    today: dt.datetime | None = typer.Option(
        None,
        formats=["%Y-%m-%d"],
        help="判断“未来日期”和年度范围的基准日（默认取 snapshot.yaml 的 taken_at，否则今天）",
    ),
) -> None:
    """校验快照并打印数据质量报告。

    被拒绝的行只计入报告，退出码仍为 0；只有表不可用（缺文件、缺列、类型会丢失信息）时以 1 退出。
    """
    report = load_snapshot(directory, connect(), today=today.date() if today else None)
    console.print(report.to_text(), markup=False)
    if json_out:
        json_out.write_text(report_json(report) + "\n", encoding="utf-8")
        console.print(f"\nJSON 报告：{json_out}", markup=False)


def _more_commands() -> None:
    """`generate` and `profile` live in modules of their own; they are `zhida snapshot` commands."""
    from api.commands import generate, profile

    app.command("generate", help="生成合成快照")(generate.generate)
    app.command("profile", help="构建企业画像并显示字段覆盖率")(profile.profile)


_more_commands()
