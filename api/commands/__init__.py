"""Sub-commands of the `zhida` CLI, one module per noun, and the few things several of them share."""

from __future__ import annotations

import datetime as dt

import typer

# Who does it: required where the payouts part records an actor (offers, batches).
BY = typer.Option(..., "--by", envvar="ZHIDA_USER", help="操作人用户名（或环境变量 ZHIDA_USER）")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
