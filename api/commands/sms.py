"""`zhida sms`: send the notices of released offers, the reminders, and expire overdue offers."""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console

from api.commands import BY, EXPECT_COUNT, EXPECT_TOTAL, IDENTITY_HELP, actor, confirmed_tally
from payouts import offers, sms, users
from payouts.db import PayoutSettings, connect, transaction
from payouts.selection import OfferFilter, Selection

app = typer.Typer(no_args_is_help=True, epilog="send：" + IDENTITY_HELP)
console = Console(highlight=False)


SHOW_LINKS = typer.Option(
    False, "--show-links", help="开发用：显示完整的确认链接（默认只显示令牌前 4 位，电话号码总是打码）"
)


def _gateway(show_links: bool = False) -> sms.SmsGateway:
    return sms.OutboxGateway(
        echo=lambda line: console.print(f"  [dim]短信[/dim] {line}", soft_wrap=True), reveal_links=show_links
    )


def _report(what: str, r: sms.SendResult) -> None:
    console.print(f"{what}：发送 {r.sent:,} 条，失败 {r.failed:,} 条")
    for e in r.errors[:20]:
        console.print(f"  [red]{e}[/red]")


@app.command(
    "send",
    help="给所选的已发布要约发送确认短信（写入发件箱）；先显示笔数和金额，确认后发送",
    epilog=IDENTITY_HELP,
)
def send(
    run: str | None = typer.Option(None, "--run", help="这个匹配批次的已发布要约"),
    policy: str | None = typer.Option(None, "--policy", help="这项政策的已发布要约"),
    everything: bool = typer.Option(False, "--all", help="全部已发布、待发短信的要约"),
    expect_count: int | None = EXPECT_COUNT,
    expect_total: str | None = EXPECT_TOTAL,
    show_links: bool = SHOW_LINKS,
    queue: bool = typer.Option(
        False, "--queue", help="交给后台任务进程（zhida worker）发送：本命令只排队，进程中断后自动接续"
    ),
    claimed: str | None = BY,
) -> None:
    if run is None and policy is None and not everything:
        console.print("[red]请用 --run 或 --policy 指明要约，或用 --all 表示全部已发布的要约[/red]")
        raise typer.Exit(2)
    by = actor(claimed)
    settings = PayoutSettings.from_env()
    selection = Selection(filter=OfferFilter(policy_id=policy, run_id=run))
    engine = connect(settings.database_url)
    with transaction(engine) as s:
        users.require(s, by, "review")  # who may release offers sends their notices (the API's sms_send)
        preview = offers.preview_action(s, selection, "notify", by=by)
    expected = confirmed_tally(console, "发送确认短信", preview, expect_count, expect_total)
    if queue:
        from api.worker import enqueue_notices

        with transaction(engine) as s:
            enqueue_notices(s, selection, expected, by, dt.datetime.now(dt.UTC))
        console.print(f"已排队：{expected.count:,} 条确认短信由后台任务进程发送，进度见工作台“任务”页")
        return
    r = sms.send_notices_in_chunks(
        engine,
        _gateway(show_links),
        dt.datetime.now(dt.UTC),
        settings,
        actor=by,
        selection=selection,
        expected=expected,
    )
    _report("确认短信", r)


@app.command("remind", help="给即将到期未确认的企业发送提醒（每档只发一次）")
def remind(show_links: bool = SHOW_LINKS) -> None:
    settings = PayoutSettings.from_env()
    with transaction(connect(settings.database_url)) as s:
        r = sms.send_reminders(s, _gateway(show_links), dt.datetime.now(dt.UTC), settings)
    _report("到期提醒", r)


@app.command("expire", help="把超过确认期限的要约标记为已过期")
def expire() -> None:
    with transaction(connect()) as s:
        n = sms.expire_overdue(s, dt.datetime.now(dt.UTC))
    console.print(f"已过期 {n:,} 条")


@app.command("opt-out", help="登记退订短信的号码（企业回复TD退订）：此后不再向该号码发送任何短信")
def opt_out(
    phone: str = typer.Argument(..., help="手机号"),
    reply: str = typer.Option("TD", "--reply", help="企业回复的内容（TD、退订等）"),
) -> None:
    from payouts import outbox

    if not outbox.is_stop_reply(reply):
        raise typer.BadParameter(f"回复“{reply}”不是退订指令（TD、T、N、退订）", param_hint="--reply")
    with transaction(connect()) as s:
        added = outbox.opt_out(s, phone, dt.datetime.now(dt.UTC), "reply")
    console.print("已登记退订" if added else "该号码此前已退订")
