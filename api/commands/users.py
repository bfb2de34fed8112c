"""`zhida users`: staff users (add, roles, departments, disable, passwords) and CLI identity tokens.

Every command here that changes a user is a system administrator's (系统管理员), acting on someone else,
and takes its actor from the staff token in ZHIDA_STAFF_TOKEN (`zhida users token NAME`), never from a
typed name. The one exception is the very first system administrator of an empty installation.
Unlocking an account locked by wrong passwords is a security administrator's (安全管理员).

Passwords follow the staff password policy (`payouts/passwords.py`): at least 12 characters, not the
user name, not only digits, not a common password.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from api.auth import check_password, set_password
from api.commands import BY, IDENTITY_HELP, actor, now
from payouts import stafftokens, users
from payouts.db import connect, transaction
from payouts.errors import RoleError
from payouts.models import Role, StaffUser

app = typer.Typer(no_args_is_help=True, epilog=IDENTITY_HELP)
console = Console(highlight=False)
ROLES = "、".join(f"{r.value}（{users.ROLE_LABELS[r]}）" for r in Role)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        console.print("[red]没有终端可以输入密码：请用 --password-stdin 从标准输入读取（一行）[/red]")
        raise typer.Exit(2)
    return typer.prompt("密码", hide_input=True, confirmation_prompt="再输入一次")


@app.command(
    "add",
    help=f"新增职员用户（系统管理员操作）：角色 {ROLES}。尚无系统管理员时，可不用令牌新增第一位系统管理员",
    epilog=IDENTITY_HELP,
)
def add(
    username: str = typer.Argument(..., help="用户名"),
    role: str = typer.Option(..., "--role", help="角色"),
    department: str | None = typer.Option(
        None,
        "--department",
        help="部门名称（须已用 zhida departments add 添加，与政策文件的 department 完全一致；政策部门用户必填）",
    ),
    display_name: str | None = typer.Option(None, "--display-name", help="姓名"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="从标准输入读取密码（一行）"),
    claimed: str | None = BY,
) -> None:
    if role == Role.POLICY.value and not department:
        raise RoleError("政策部门用户必须指定 --department：只能看到和修改本部门的政策")
    password = _password(password_stdin)
    with transaction(connect()) as s:
        first = role == Role.SYSTEM_ADMIN.value and not users.has_system_admin(s)
    by = "bootstrap" if first and claimed is None and not _has_token() else actor(claimed)
    at = now()
    with transaction(connect()) as s:
        if by != "bootstrap":
            users.require(s, by, "manage_users")
        elif users.has_system_admin(s):
            raise RoleError("已有系统管理员：" + stafftokens.HOW_TO_GET_ONE)
        user = users.create_user(
            s, username, role, display_name=display_name, department=department, by=by, now=at
        )
        set_password(s, username, password, by, at)
    console.print(
        f"已新增用户 {user.username}（{users.ROLE_LABELS[Role(user.role)]}，部门：{user.department or '全部'}）"
    )


def _has_token() -> bool:
    return bool(os.environ.get(stafftokens.TOKEN_ENV))


@app.command(
    "password", help="设置新密码（本人，或系统管理员为他人；原有登录和令牌全部失效）", epilog=IDENTITY_HELP
)
def password(
    username: str = typer.Argument(..., help="用户名"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="从标准输入读取密码（一行）"),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    secret = _password(password_stdin)
    with transaction(connect()) as s:
        if by != username:
            users.require(s, by, "manage_users")
        set_password(s, username, secret, by, now())
    console.print(f"已为 {username} 设置新密码")


@app.command("list", help="列出职员用户")
def list_users() -> None:
    from payouts import departments
    from payouts.models import Department

    with transaction(connect()) as s:
        rows = list(s.scalars(select(StaffUser).order_by(StaffUser.username)).all())
        regions = {d.id: departments.describe(s, d).region for d in s.scalars(select(Department)).all()}
    table = Table()
    for col in ("用户名", "姓名", "角色", "部门", "辖区", "可登录", "状态", "锁定"):
        table.add_column(col)
    for u in rows:
        table.add_row(
            u.username,
            u.display_name,
            users.ROLE_LABELS[Role(u.role)],
            u.department or "全部",
            regions.get(u.department_id, "全部地区") if u.department_id else "全部地区",
            "是" if u.password_hash else "否（未设密码）",
            "启用" if u.active else "停用",
            "已锁定" if u.locked_at else "",
        )
    console.print(table)


@app.command(
    "token",
    help="取得命令行职员令牌：输入本人密码，得到令牌后设置环境变量 ZHIDA_STAFF_TOKEN（有效期内代表本人操作）",
)
def token(
    username: str = typer.Argument(..., help="本人用户名"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="从标准输入读取密码（一行）"),
    hours: int = typer.Option(stafftokens.TOKEN_HOURS, "--hours", help="有效小时数（1 至 24）"),
) -> None:
    secret = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("密码", hide_input=True)
    from api.settings import Settings
    from payouts import signin

    settings = Settings()
    policy = signin.LockoutPolicy(
        settings.login_max_failures, dt.timedelta(minutes=settings.login_failure_window_minutes)
    )
    # The same lockout as the sign-in page: a wrong password counts (and is committed) before the refusal.
    with transaction(connect()) as s:
        checked = signin.authenticate(
            s, username, lambda user: check_password(user, secret), now(), policy, "cli"
        )
        issued = stafftokens.issue(s, username, now(), hours=hours) if checked.user is not None else None
    if checked.refused == "locked":
        raise RoleError("账户已锁定（密码错误次数过多），请联系安全管理员解锁；未发放令牌")
    if issued is None:
        raise RoleError("用户名或密码不正确（或用户已停用），未发放令牌")
    console.print(f"export {stafftokens.TOKEN_ENV}={issued}", soft_wrap=True)
    console.print(
        f"[dim]令牌有效 {hours} 小时，只显示这一次；用完可运行 zhida users revoke-tokens 撤销[/dim]"
    )


@app.command("revoke-tokens", help="撤销本人全部命令行令牌")
def revoke_tokens() -> None:
    by = actor()
    with transaction(connect()) as s:
        n = stafftokens.revoke_all(s, by, now())
    console.print(f"已撤销 {n} 个令牌")


@app.command(
    "set-role", help=f"更改用户角色（系统管理员操作，不能更改自己的）：{ROLES}", epilog=IDENTITY_HELP
)
def set_role(
    username: str = typer.Argument(..., help="用户名"),
    role: str = typer.Argument(..., help="新角色"),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        user = users.set_role(s, username, role, by=by, now=now())
        label = users.ROLE_LABELS[Role(user.role)]
    console.print(f"{username} 的角色已改为{label}")


@app.command(
    "set-department",
    help="更改用户部门（系统管理员操作；部门须已用 zhida departments add 添加；不填为全部部门）",
    epilog=IDENTITY_HELP,
)
def set_department(
    username: str = typer.Argument(..., help="用户名"),
    department: str | None = typer.Argument(None, help="部门"),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        users.set_department(s, username, department, by=by, now=now())
    console.print(f"{username} 的部门已改为{department or '全部'}")


@app.command(
    "set-contact",
    help="设定用户接收办理时限提醒的手机和邮箱，以及是否为部门负责人（接收超时督办，系统管理员操作）",
    epilog=IDENTITY_HELP,
)
def set_contact(
    username: str = typer.Argument(..., help="用户名"),
    phone: str | None = typer.Option(None, "--phone", help="手机号（不填为不发短信）"),
    email: str | None = typer.Option(None, "--email", help="邮箱（不填为不发邮件）"),
    head: bool = typer.Option(False, "--head/--not-head", help="是否为部门负责人"),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        users.set_contact(s, username, phone=phone, email=email, head=head, by=by, now=now())
    console.print(f"{username} 的提醒方式已更新" + ("（部门负责人）" if head else ""))


@app.command("disable", help="停用用户（系统管理员操作；停用后不能登录，令牌失效）", epilog=IDENTITY_HELP)
def disable(username: str = typer.Argument(..., help="用户名"), claimed: str | None = BY) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        users.set_active(s, username, False, by=by, now=now())
    console.print(f"已停用 {username}")


@app.command("enable", help="启用用户（系统管理员操作）", epilog=IDENTITY_HELP)
def enable(username: str = typer.Argument(..., help="用户名"), claimed: str | None = BY) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        users.set_active(s, username, True, by=by, now=now())
    console.print(f"已启用 {username}")


@app.command("unlock", help="解锁因密码错误次数过多而锁定的账户（安全管理员操作）", epilog=IDENTITY_HELP)
def unlock(username: str = typer.Argument(..., help="用户名"), claimed: str | None = BY) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        users.unlock(s, username, by, now())
    console.print(f"已解锁用户 {username}")
