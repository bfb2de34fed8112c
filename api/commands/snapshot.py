"""`zhida snapshot check`: load and validate a registry snapshot, print the data-quality report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from matcher.duckdb_engine import connect
from matcher.snapshot import RULES, load_snapshot, report_json

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)


@app.command("check")
def check(
    directory: Path = typer.Argument(..., help="快照目录"),
    json_out: Path | None = typer.Option(None, "--json", help="把报告另存为 JSON 文件"),
    today: str | None = typer.Option(
        None, help="判断“未来日期”的基准日 YYYY-MM-DD（默认取 snapshot.yaml 的 taken_at，否则今天）"
    ),
) -> None:
    """校验快照并打印数据质量报告；只有表不可用时才以非零退出，被拒绝的行不影响退出码。"""
    day = dt.date.fromisoformat(today) if today else None
    report = load_snapshot(directory, connect(), today=day)
    table = Table(title=f"数据质量报告：{report.directory}")
    for col in ("表", "读入", "接受", "拒绝", "拒绝原因（前几例见 --json）"):
        table.add_column(col, justify="right" if col in ("读入", "接受", "拒绝") else "left")
    for t in report.tables.values():
        reasons = "\n".join(f"{RULES[r]} ({r}) {n:,}" for r, n in t.rejected.items()) or "—"
        table.add_row(
            t.name, f"{t.rows_read:,}", f"{t.rows_accepted:,}", f"{t.rows_read - t.rows_accepted:,}", reasons
        )
    console.print(table)
    for t in report.tables.values():
        for rule, examples in t.examples.items():
            for ex in examples[:2]:
                value = "" if ex["column"] == "uscc" else f" {ex['column']}={ex['value']}"
                console.print(f"  例：{t.name} 第 {ex['row']} 行 {RULES[rule]}：uscc={ex['uscc']}{value}")
    console.print(f"快照指纹 {report.fingerprint}；共拒绝 {report.rejected_total:,} 行")
    if json_out:
        json_out.write_text(report_json(report) + "\n", encoding="utf-8")
        console.print(f"JSON 报告：{json_out}")
