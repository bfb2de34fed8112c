"""`zhida audit`: verify the keyed hash chain of the audit log (against signed checkpoints), take a
checkpoint, and show the history of one thing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from payouts import audit, checkpoints
from payouts.db import connect, transaction

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)


@app.command(
    "verify", help="校验审计日志的带密钥哈希链，并对照库外的签名检查点：改动、删除、改序、截断都会被发现"
)
def verify(
    checkpoint: list[Path] = typer.Option(
        [],
        "--checkpoint",
        help="检查点文件或目录（可多次给出）；不给时使用 ZHIDA_AUDIT_CHECKPOINT_DIR 中的全部检查点",
    ),
) -> None:
    folder = checkpoints.directory()
    paths = checkpoint or ([folder] if folder and folder.is_dir() else [])
    against = checkpoints.load_all(paths)
    with transaction(connect(), read_only=True) as s:
        report = audit.verify(s, against=against)
    if report.ok:
        console.print(
            f"[green]审计日志完整[/green]：{report.events:,} 条事件，链头 {report.head_hash}，"
            f"对照 {report.checkpoints} 个签名检查点"
        )
        if report.legacy:
            console.print(f"  其中前 {report.legacy:,} 条写于启用密钥之前，由其后第一条带密钥事件的哈希覆盖")
        if not against:
            console.print("  [yellow]未对照任何检查点：日志末尾被截断无法发现（请用 --checkpoint）[/yellow]")
        return
    console.print(f"[red]审计日志校验失败[/red]（已检查 {report.events:,} 条）：")
    for p in report.problems:
        console.print(f"  {p}")
    raise typer.Exit(1)


@app.command("checkpoint", help="校验审计日志后，将链头（序号、哈希、时间）签名写入库外的检查点文件")
def checkpoint(
    out: Path | None = typer.Option(
        None, "--out", help="检查点文件；不给时写入 ZHIDA_AUDIT_CHECKPOINT_DIR 目录"
    ),
) -> None:
    folder = checkpoints.directory()
    if out is None and folder is None:
        console.print("[red]请用 --out 指定检查点文件，或设置 ZHIDA_AUDIT_CHECKPOINT_DIR[/red]")
        raise typer.Exit(2)
    with transaction(connect(), read_only=True) as s:
        report = audit.verify(s)  # never sign a head whose chain does not hold
        if not report.ok:
            console.print("[red]审计日志校验失败，不签发检查点[/red]：")
            for p in report.problems:
                console.print(f"  {p}")
            raise typer.Exit(1)
    # The head the verification read and checked, not one read again after it.
    cp = checkpoints.Checkpoint.signed(
        audit.chain_key(), report.head_seq, report.head_hash, dt.datetime.now(dt.UTC)
    )
    if out is not None:
        path = checkpoints.write(cp, out)
    else:
        assert folder is not None
        path = checkpoints.write_into(folder, cp)
    console.print(f"已写入检查点 {path}：第 {cp.seq} 条，链头 {cp.hash}，{cp.at}")
    console.print("  请将检查点保存到数据库管理员无法改写的地方（另一台主机、只追加存储）")


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
