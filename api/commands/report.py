"""`zhida report`: the monthly report for leaders, one self-contained HTML file and an .xlsx of its tables."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(highlight=False, soft_wrap=True)


def report(
    month: str = typer.Option(..., "--month", help="报告月份，YYYY-MM（如 2025-10）"),
    out: Path = typer.Option(..., "--out", file_okay=False, help="输出目录"),
    run: Path | None = typer.Option(
        None,
        "--run",
        exists=True,
        file_okay=False,
        help="“差一点符合”所用的匹配结果目录（默认：月末前最近导入的批次）",
    ),
) -> None:
    """写出月度报告：核心指标与上月比较、分部门分政策到账、兑现漏斗、到账工作日、各部门时限亮灯、主要卡点条件。"""
    # Loaded here, not at start: pandas and the rule engine would make `zhida report --help` take seconds.
    from api.settings import SlaSettings
    from payouts.db import connect, transaction
    from reports.monthly import write_report

    with transaction(connect()) as s:
        written = write_report(s, month, out, run, SlaSettings().sla())
    console.print(f"月度报告：{written.html}", markup=False)
    console.print(f"数据表：{written.xlsx}", markup=False)
