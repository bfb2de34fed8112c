"""`zhida snapshot generate`: write a synthetic registry snapshot, with a progress bar and a summary."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from devtools.generate import DEFAULT_TAKEN_AT, TABLES, generate_snapshot

console = Console(highlight=False)

_TABLE_WORDS = {
    "enterprises": "企业登记",
    "annual_reports": "企业年报",
    "tax": "税务",
    "social_insurance": "社会保险",
    "credit": "信用",
    "certifications": "资质认定",
    "stats_listing": "规上统计名录",
    "bank_accounts": "对公账户",
    "payments": "既往拨付",
}


def generate(
    enterprises: int = typer.Option(..., "--enterprises", "-n", min=1, help="企业数"),
    out: Path = typer.Option(..., "--out", help="输出目录（同名文件将被覆盖）"),
    seed: int = typer.Option(0, "--seed", min=0, help="随机种子：同一种子、企业数和快照日期生成相同的快照"),
    taken_at: dt.datetime | None = typer.Option(
        None, "--taken-at", formats=["%Y-%m-%d"], help=f"快照日期，默认 {DEFAULT_TAKEN_AT}"
    ),
    chunk_size: int = typer.Option(500_000, "--chunk-size", min=1, help="每批生成并写入的企业数"),
) -> None:
    day = taken_at.date() if taken_at else DEFAULT_TAKEN_AT
    started = time.perf_counter()
    with Progress(
        TextColumn("生成企业"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("generate", total=enterprises)
        rows = generate_snapshot(
            out,
            enterprises,
            seed,
            taken_at=day,
            chunk_size=chunk_size,
            progress=lambda done: bar.advance(task, done),
        )
    seconds = time.perf_counter() - started

    console.print(f"合成快照已写入 {out}（快照日期 {day}，随机种子 {seed}）", soft_wrap=True)
    table = Table()
    table.add_column("表")
    table.add_column("名称")
    table.add_column("行数", justify="right")
    for name in TABLES:
        table.add_row(f"{name}.parquet", _TABLE_WORDS[name], f"{rows[name]:,}")
    table.add_row("snapshot.yaml", "快照说明", "")
    console.print(table)
    console.print(f"用时 {seconds:.1f} 秒，每秒 {enterprises / seconds:,.0f} 家企业")
