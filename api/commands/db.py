"""`zhida db`: migrate the schema as its owner, and grant the service's role what it needs and no more."""

from __future__ import annotations

import typer
from rich.console import Console

from payouts.db import PayoutSettings, grant_app_role, migrate

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)


def _owner_url(url: str | None) -> str:
    settings = PayoutSettings.from_env()
    return url or settings.migration_database_url or settings.database_url


@app.command("migrate", help="以表的所有者角色升级数据库结构（默认 ZHIDA_MIGRATION_DATABASE_URL）")
def migrate_cmd(
    url: str | None = typer.Option(None, "--url", help="所有者角色的数据库地址"),
    app_role: str | None = typer.Option(
        None, "--app-role", help="升级后为该应用角色授权（默认 ZHIDA_APP_ROLE）"
    ),
) -> None:
    migrate(_owner_url(url))
    role = app_role or PayoutSettings.from_env().app_role
    if role:
        grant_app_role(_owner_url(url), role)
    console.print("数据库结构已是最新" + (f"，已为应用角色 {role} 授权" if role else ""))


@app.command(
    "grant",
    help="（PostgreSQL，以所有者身份运行）为服务的应用角色授权：可读写业务表、追加审计日志，"
    "不能改表结构、停用触发器、修改或删除审计记录",
)
def grant(
    app_role: str = typer.Option(
        ..., "--app-role", help="服务连接数据库所用的角色（须已存在，且不拥有任何表）"
    ),
    url: str | None = typer.Option(
        None, "--url", help="所有者角色的数据库地址（默认 ZHIDA_MIGRATION_DATABASE_URL）"
    ),
) -> None:
    grant_app_role(_owner_url(url), app_role)
    console.print(
        f"已为应用角色 {app_role} 授权。服务请以该角色连接（ZHIDA_DATABASE_URL），"
        "迁移以所有者连接（ZHIDA_MIGRATION_DATABASE_URL）；每次升级后再次运行本命令（或设置 ZHIDA_APP_ROLE）"
    )
