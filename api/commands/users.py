"""`zhida users`: add staff users (role, department, password), list them, set a new password."""

from __future__ import annotations

import datetime as dt
import sys

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from api.auth import set_password
from payouts import users
from payouts.db import connect, transaction
from payouts.errors import RoleError
from payouts.models import Role, StaffUser

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)

BY = typer.Option("cli", "--by", envvar="ZHIDA_USER", help="操作人用户名（或环境变量 ZHIDA_USER）")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        console.print("[red]没有终端可以输入密码：请用 --password-stdin 从标准输入读取（一行）[/red]")
        raise typer.Exit(2)
    return typer.prompt("密码", hide_input=True, confirmation_prompt="再输入一次")


@app.command("add", help="新增职员用户：角色 policy|reviewer|finance_maker|finance_checker|auditor|admin")
def add(
    username: str = typer.Argument(..., help="用户名"),
    role: str = typer.Option(..., "--role", help="角色"),
    department: str | None = typer.Option(
        None, "--department", help="部门（与政策文件的 department 完全一致；政策部门用户必填）"
    ),
    display_name: str | None = typer.Option(None, "--display-name", help="姓名"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="从标准输入读取密码（一行）"),
    by: str = BY,
) -> None:
    if role == Role.POLICY.value and not department:
        raise RoleError("政策部门用户必须指定 --department：只能看到和修改本部门的政策")
    password = _password(password_stdin)
    now = dt.datetime.now(dt.UTC)
    with transaction(connect()) as s:
        user = users.create_user(
            s, username, role, display_name=display_name, department=department, by=by, now=now
        )
        set_password(s, username, password, by, now)
    console.print(
        f"已新增用户 {user.username}（{users.ROLE_LABELS[Role(user.role)]}，部门：{user.department or '全部'}）"
    )


@app.command("password", help="为用户设置新密码（原有登录全部失效）")
def password(
    username: str = typer.Argument(..., help="用户名"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="从标准输入读取密码（一行）"),
    by: str = BY,
) -> None:
    secret = _password(password_stdin)
    with transaction(connect()) as s:
        set_password(s, username, secret, by, dt.datetime.now(dt.UTC))
    console.print(f"已为 {username} 设置新密码")


@app.command("list", help="列出职员用户")
def list_users() -> None:
    with transaction(connect()) as s:
        rows = list(s.scalars(select(StaffUser).order_by(StaffUser.username)).all())
    table = Table()
    for col in ("用户名", "姓名", "角色", "部门", "可登录", "状态"):
        table.add_column(col)
    for u in rows:
        table.add_row(
            u.username,
            u.display_name,
            users.ROLE_LABELS[Role(u.role)],
            u.department or "全部",
            "是" if u.password_hash else "否（未设密码）",
            "启用" if u.active else "停用",
        )
    console.print(table)
