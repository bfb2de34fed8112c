"""`zhida sms`: send the notices of released offers, the reminders, and expire overdue offers."""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console

from payouts import sms
from payouts.db import PayoutSettings, connect, transaction

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)


def _gateway() -> sms.SmsGateway:
    return sms.OutboxGateway(echo=lambda line: console.print(f"  [dim]短信[/dim] {line}", soft_wrap=True))


def _report(what: str, r: sms.SendResult) -> None:
    console.print(f"{what}：发送 {r.sent:,} 条，失败 {r.failed:,} 条")
    for e in r.errors[:20]:
        console.print(f"  [red]{e}[/red]")


@app.command("send", help="给已发布的要约发送确认短信（写入发件箱并显示）")
def send(limit: int | None = typer.Option(None, "--limit", help="最多发送条数")) -> None:
    settings = PayoutSettings.from_env()
    engine = connect(settings.database_url)
    r = sms.send_notices_in_chunks(engine, _gateway(), dt.datetime.now(dt.UTC), settings, limit=limit)
    _report("确认短信", r)


@app.command("remind", help="给即将到期未确认的企业发送提醒（每档只发一次）")
def remind() -> None:
    settings = PayoutSettings.from_env()
    with transaction(connect(settings.database_url)) as s:
        r = sms.send_reminders(s, _gateway(), dt.datetime.now(dt.UTC), settings)
    _report("到期提醒", r)


@app.command("expire", help="把超过确认期限的要约标记为已过期")
def expire() -> None:
    with transaction(connect()) as s:
        n = sms.expire_overdue(s, dt.datetime.now(dt.UTC))
    console.print(f"已过期 {n:,} 条")
