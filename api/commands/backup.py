"""`zhida backup` and `zhida restore`: the database and its files, and a check that the copy is whole."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console

from api.settings import Settings
from payouts import backup as backups

console = Console(highlight=False, soft_wrap=True)


def backup(
    out: Path = typer.Option(..., "--out", help="备份目录（新目录或空目录）"),
) -> None:
    """备份数据库（PostgreSQL 用 pg_dump，SQLite 用在线备份）、数据目录中的文件和匹配批次目录，附签名检查点与清单。"""
    settings = Settings()
    r = backups.backup(settings.database_url, settings.data_dir, out, dt.datetime.now(dt.UTC))
    rows = sum(r.tables.values())
    console.print(
        f"[green]已备份[/green]到 {out}：{len(r.tables)} 张表 {rows:,} 行，审计日志至第 {r.head_seq:,} 条，"
        f"另有文件 {r.files:,} 个，共 {r.bytes / 2**20:,.1f} MiB"
    )


def restore(
    folder: Path = typer.Argument(..., help="zhida backup 写出的备份目录"),
) -> None:
    """把备份恢复到空数据库（ZHIDA_DATABASE_URL）和数据目录，再逐一核对文件哈希、各表行数，并对照检查点校验审计链。"""
    settings = Settings()
    r = backups.restore(folder, settings.database_url, settings.data_dir, say=console.print)
    rows = sum(r.tables.values())
    if not r.ok:
        console.print(f"[red]恢复后的核对发现 {len(r.problems)} 个问题[/red]：")
        for p in r.problems:
            console.print(f"  [red]{p}[/red]")
        raise typer.Exit(1)
    console.print(
        f"[green]已恢复并核对[/green]：{len(r.tables)} 张表 {rows:,} 行与清单一致，审计链至第 {r.head_seq:,} 条"
        f"完整并与检查点相符，恢复文件 {r.files:,} 个"
    )
