"""`zhida chaos`: kill the payout steps at random points, run them again, check the invariants."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(highlight=False)


def chaos(
    crashes: int = typer.Option(30, "--crashes", min=1, help="崩溃点个数"),
    database_url: str = typer.Option(
        ..., "--database-url", help="PostgreSQL 数据库地址，库名须以 zhida_chaos 开头（将被重建）"
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="随机种子：同一种子给出同样的步骤与崩溃点"),
    enterprises: int = typer.Option(2_000, "--enterprises", "-n", min=100, help="合成企业户数"),
    work: Path = typer.Option(Path("var/chaos"), "--work", help="合成快照、匹配结果与银行文件的目录"),
    restart_database: bool = typer.Option(
        False,
        "--restart-database",
        help="改为在企业集中确认时重启本机 PostgreSQL（pg_ctlcluster），检查客户端得到可重试的答复、确认不丢失",
    ),
) -> None:
    """故障注入：在导入、发布、短信、确认、组批、复核、导出、对账、核实补充数据中随机杀死进程，重跑后检查不变量"""
    from devtools import chaos as harness

    if restart_database:
        problems = harness.restart_during_confirmations(database_url, work, echo=console.print)
        console.print(f"restart: {len(problems)} problems")
        raise typer.Exit(1 if problems else 0)
    violations = harness.chaos(
        crashes, database_url, seed=seed, enterprises=enterprises, work=work, echo=console.print
    )
    console.print(f"{crashes} crash points, {len(violations)} invariant violations")
    raise typer.Exit(1 if violations else 0)
