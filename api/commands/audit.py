"""`zhida audit`: verify the hash chain of the audit log, and show the history of one thing."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from payouts import audit
from payouts.db import connect, transaction

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)


@app.command("verify", help="校验审计日志的哈希链：任何改动、删除、改序都会被发现")
def verify() -> None:
    with transaction(connect()) as s:
        report = audit.verify(s)
    if report.ok:
        console.print(f"[green]审计日志完整[/green]：{report.events:,} 条事件，链头 {report.head_hash}")
        return
    console.print(f"[red]审计日志校验失败[/red]（已检查 {report.events:,} 条）：")
    for p in report.problems:
        console.print(f"  {p}")
    raise typer.Exit(1)


@app.command("log", help="一个对象（要约、批次、账户……）的全部审计事件")
def log(
    entity_id: str = typer.Argument(..., help="要约编号、批次号等"),
    entity: str = typer.Option("offer", "--entity", help="offer | batch | payee | run | user"),
) -> None:
    with transaction(connect()) as s:
        events = audit.history(s, entity, entity_id)
    table = Table(title=f"{entity} {entity_id}")
    for col in ("序号", "时间（UTC）", "操作人", "动作", "从", "到", "原因"):
        table.add_column(col)
    for e in events:
        table.add_row(
            str(e.seq),
            audit.timestamp(e.at),
            e.actor,
            e.action,
            e.from_state or "",
            e.to_state or "",
            e.reason or "",
        )
    console.print(table)
