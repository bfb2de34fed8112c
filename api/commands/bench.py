"""`zhida bench`: benchmarks that print figures (the match alone, and the whole payout flow)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from api.commands import match

app = typer.Typer(no_args_is_help=True)
app.command("match", help="基准测试：匹配（DuckDB 或 Spark）的用时、内存与 rule-engine 参照的加速比")(
    match.bench
)
console = Console(highlight=False)


@app.command("flow", help="基准测试：从数据比对到银行文件的全流程，逐阶段列出行数、用时和峰值内存")
def flow(
    enterprises: int = typer.Option(100_000, "--enterprises", "-n", min=100, help="合成企业户数"),
    work: Path = typer.Option(Path("var/bench-flow"), help="合成快照、匹配结果与银行文件的目录"),
    url: str | None = typer.Option(
        None,
        "--url",
        help="数据库地址，默认取 ZHIDA_DATABASE_URL，未设置时用工作目录中的 SQLite；"
        "PostgreSQL 库名须以 zhida_bench 开头（将被重建）",
    ),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    from devtools.flow import STAGE_LABELS, Stage, run_flow, totals

    table = Table(title=f"全流程基准：{enterprises:,} 户企业")
    for col in ("阶段", "行数", "用时（秒）", "峰值内存（MiB）"):
        table.add_column(col, justify="left" if col == "阶段" else "right")

    def report(stage: Stage) -> None:
        console.print(
            f"{stage.name}: {stage.rows:,} rows, {stage.seconds:.1f} s, "
            f"peak RSS {stage.peak_bytes / 2**20:,.0f} MiB{'' if stage.timed else ' (not timed)'}"
        )
        table.add_row(
            STAGE_LABELS[stage.name],
            f"{stage.rows:,}",
            f"{stage.seconds:.1f}",
            f"{stage.peak_bytes / 2**20:,.0f}",
        )

    stages = run_flow(
        enterprises, work, url or os.environ.get("ZHIDA_DATABASE_URL"), seed=seed, report=report
    )
    console.print(table)
    seconds, peak = totals(stages)
    console.print(f"total: {seconds:.1f} s, peak RSS: {peak / 2**30:.2f} GiB")
