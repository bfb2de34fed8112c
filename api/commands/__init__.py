"""Sub-commands of the `zhida` CLI, one module per noun, and the few things several of them share."""

from __future__ import annotations

import datetime as dt
import os
import sys
from decimal import Decimal, InvalidOperation

import typer
from rich.console import Console
from rich.table import Table

from payouts.selection import Preview, Tally

# Who does it, where the payouts part records an actor (offers, batches, accounts, users): the staff user
# of the token in ZHIDA_STAFF_TOKEN (`zhida users token NAME`). A name typed as `--by` is refused: it is
# kept, hidden, only so that an old script gets that message rather than "no such option".
BY = typer.Option(None, "--by", hidden=True, help="不再使用：操作人取自职员令牌 ZHIDA_STAFF_TOKEN")
IDENTITY_HELP = (
    "操作人取自职员令牌：先运行 zhida users token 用户名（输入本人密码），再设置环境变量 ZHIDA_STAFF_TOKEN。"
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def actor(claimed: str | None = None) -> str:
    """The username of the staff token in ZHIDA_STAFF_TOKEN; refuses (RoleError, in Chinese, saying how
    to get a token) when there is none or it is invalid, and refuses any name claimed with `--by`."""
    from payouts import stafftokens  # the database only when a command acts (help and rules stay light)
    from payouts.db import connect, transaction
    from payouts.errors import RoleError

    if claimed is not None:
        raise RoleError(
            f"不接受 --by {claimed}：操作人不能自行填写，只取自本人的职员令牌。{stafftokens.HOW_TO_GET_ONE}"
        )
    with transaction(connect()) as s:
        return stafftokens.resolve(s, os.environ.get(stafftokens.TOKEN_ENV), now()).username


EXPECT_COUNT = typer.Option(None, "--expect-count", help="预览显示的笔数（无终端确认时必填）")
EXPECT_TOTAL = typer.Option(None, "--expect-total", help="预览显示的合计金额，元（无终端确认时必填）")


def confirmed_tally(
    console: Console, word: str, preview: Preview, count: int | None, total: str | None
) -> Tally:
    """Show what a bulk command will act on (count, total, policies) and return the count and total its
    user confirmed: given as --expect-count/--expect-total, or typed at the terminal. The command is
    refused (exit 2) without either: nothing changes money or many offers unseen.
    """
    table = Table(title=f"将{word}的要约")
    for col in ("政策", "笔数", "金额（元）", "意愿确认"):
        table.add_column(col, justify="right" if col in ("笔数", "金额（元）") else "left")
    for p in preview.policies:
        table.add_row(
            p.title, f"{p.count:,}", f"{p.total:,.2f}", "无需确认，直接确认" if p.direct else "短信确认"
        )
    table.add_row("合计", f"{preview.tally.count:,}", f"{preview.tally.total:,.2f}", "")
    console.print(table)
    if count is not None and total is not None:
        try:
            return Tally(count, Decimal(total))
        except InvalidOperation:
            console.print(f"[red]--expect-total 应为金额（元），如 {preview.tally.total}：{total}[/red]")
            raise typer.Exit(2) from None
    if preview.tally.count == 0:
        console.print(f"没有可以{word}的要约，未做任何改动")
        raise typer.Exit(0)
    if sys.stdin.isatty():
        if typer.confirm(f"确认{word}以上 {preview.tally.count:,} 条、{preview.tally.total:,.2f} 元？"):
            return preview.tally
        console.print("已取消，未做任何改动")
        raise typer.Exit(1)
    console.print(
        f"[red]没有终端可以确认。核对以上笔数和金额后，加上 --expect-count {preview.tally.count} "
        f"--expect-total {preview.tally.total} 再运行[/red]",
        soft_wrap=True,
    )
    raise typer.Exit(2)
