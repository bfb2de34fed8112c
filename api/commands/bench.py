"""`zhida bench`: benchmarks that print figures (the match alone, and the whole payout flow)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from api.commands import match

app = typer.Typer(no_args_is_help=True)
app.command("match", help="基准测试：匹配（DuckDB 或 Spark）的用时、内存与 rule-engine 参照的加速比")(
    match.bench
)
console = Console(highlight=False)


@app.command("flow", help="基准测试：从数据比对到银行文件的全流程，逐阶段列出行数、用时和峰值内存")
def flow(
    enterprises: int = typer.Option(100_000, "--enterprises", "-n", min=100, help="合成企业户数"),
    work: Path = typer.Option(Path("var/bench-flow"), help="合成快照、匹配结果与银行文件的目录"),
    url: str | None = typer.Option(
        None,
        "--url",
        help="数据库地址，默认取 ZHIDA_DATABASE_URL，未设置时用工作目录中的 SQLite；"
        "PostgreSQL 库名须以 zhida_bench 开头（将被重建）",
    ),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    from devtools.flow import STAGE_LABELS, Stage, run_flow, totals

    table = Table(title=f"全流程基准：{enterprises:,} 户企业")
    for col in ("阶段", "行数", "用时（秒）", "峰值内存（MiB）"):
        table.add_column(col, justify="left" if col == "阶段" else "right")

    def report(stage: Stage) -> None:
        console.print(
            f"{stage.name}: {stage.rows:,} rows, {stage.seconds:.1f} s, "
            f"peak RSS {stage.peak_bytes / 2**20:,.0f} MiB{'' if stage.timed else ' (not timed)'}"
        )
        table.add_row(
            STAGE_LABELS[stage.name],
            f"{stage.rows:,}",
            f"{stage.seconds:.1f}",
            f"{stage.peak_bytes / 2**20:,.0f}",
        )

    stages = run_flow(
        enterprises, work, url or os.environ.get("ZHIDA_DATABASE_URL"), seed=seed, report=report
    )
    console.print(table)
    seconds, peak = totals(stages)
    console.print(f"total: {seconds:.1f} s, peak RSS: {peak / 2**30:.2f} GiB")


@app.command("confirm", help="基准测试：并发意愿确认的速率，以及审计链（链头行）所占的代价")
def confirm(
    enterprises: int = typer.Option(
        30_000, "--enterprises", "-n", min=100, help="合成企业户数（决定待确认要约数）"
    ),
    clients: str = typer.Option("1,4,8,16", "--clients", help="并发客户端数，逗号分隔"),
    seconds: float = typer.Option(5.0, "--seconds", min=0.5, max=60, help="每档持续秒数"),
    work: Path = typer.Option(Path("var/bench-confirm"), help="工作目录"),
    url: str | None = typer.Option(
        None, "--url", help="数据库地址，默认取 ZHIDA_DATABASE_URL（库名须以 zhida_bench 开头）"
    ),
) -> None:
    from devtools.confirm_rate import Rate, run

    levels = [int(x) for x in clients.split(",") if x]
    table = Table(title="并发意愿确认")
    for col in ("并发数", "审计链", "确认笔数", "秒", "每秒笔数"):
        table.add_column(col, justify="right")
    rates: dict[tuple[int, bool], float] = {}

    def report(r: Rate) -> None:
        rates[(r.clients, r.chain)] = r.per_second
        console.print(f"{r.clients} clients, chain {'on' if r.chain else 'off'}: {r.per_second:,.0f}/s")
        table.add_row(
            str(r.clients),
            "写入" if r.chain else "不写（对照）",
            f"{r.confirmed:,}",
            f"{r.seconds:.1f}",
            f"{r.per_second:,.0f}",
        )

    run(enterprises, work, url or os.environ.get("ZHIDA_DATABASE_URL"), levels, seconds, report)
    console.print(table)
    for n in levels:
        on, off = rates.get((n, True), 0.0), rates.get((n, False), 0.0)
        console.print(
            f"{n} clients: with the chain {on:,.0f}/s, without {off:,.0f}/s, ratio {on / off if off else 0:.2f}"
        )


@app.command("wave", help="负载测试：短信批量发出后的高峰，多个工作进程上的打开与一键确认（仅本机回环）")
def wave(
    url: str = typer.Option(
        ..., "--url", help="PostgreSQL 数据库地址（库名须以 zhida_bench 开头，将被重建）"
    ),
    enterprises: int = typer.Option(
        60_000, "--enterprises", "-n", min=100, help="合成企业户数（须有足够的待确认要约）"
    ),
    links: int = typer.Option(10_000, "--links", min=1, help="各打开并确认一次的链接数"),
    doubles: int = typer.Option(500, "--doubles", min=0, help="另有多少条链接被同时点击两次"),
    clients: int = typer.Option(200, "--clients", min=1, max=2000, help="并发浏览器数"),
    workers: int = typer.Option(2, "--workers", min=1, max=16, help="服务的工作进程数"),
    timeout: float = typer.Option(30.0, "--timeout", min=1, max=120, help="每个请求的时限（秒）"),
    work: Path = typer.Option(Path("var/bench-wave"), help="工作目录"),
) -> None:
    from devtools.smswave import run

    raise typer.Exit(run(url, enterprises, links, doubles, clients, workers, timeout, work))


@app.command("console", help="基准测试：大数据量下工作台各列表的首字节时间（在 bench flow 的数据库上）")
def console_lists(
    url: str = typer.Option(..., "--url", help="bench flow 用过的数据库地址（库名以 zhida_bench 开头）"),
    clients: int = typer.Option(1, "--clients", min=1, max=100, help="同时打开列表的职员数"),
    repeats: int = typer.Option(20, "--repeats", min=1, max=1000, help="每个列表计时的请求数"),
    workers: int = typer.Option(1, "--workers", min=1, max=16, help="服务的工作进程数"),
    work: Path = typer.Option(Path("var/bench-console"), help="工作目录（服务日志）"),
) -> None:
    import datetime as dt
    import secrets

    from sqlalchemy import select

    from api.auth import set_password
    from devtools import bench_console, flow
    from payouts import users
    from payouts.db import make_engine, transaction
    from payouts.models import StaffUser

    flow._check_url(url)
    password = "Bench-" + secrets.token_urlsafe(12)
    engine = make_engine(url)
    with transaction(engine) as s:  # the flow's staff users get a password for this run
        at = dt.datetime.now(dt.UTC)
        if s.scalar(select(StaffUser.id).where(StaffUser.username == flow.AUDITOR)) is None:
            users.create_user(s, flow.AUDITOR, "auditor", now=at)  # a flow database made before it existed
        for name in (flow.REVIEWER, flow.MAKER, flow.AUDITOR):
            set_password(s, name, password, "system", at)
    engine.dispose()
    bench_console.run(url, password, clients, repeats, workers, work)


@app.command(
    "handwritten",
    help="基准测试：zhida match 与手写 DuckDB 脚本做同样的工作（校验、画像、匹配、写出），交替运行并给出用时比",
)
def handwritten(
    enterprises: int = typer.Option(1_000_000, "--enterprises", "-n", min=1000, help="合成企业户数"),
    rounds: int = typer.Option(3, "--rounds", min=1, max=20, help="每一方运行的次数（交替进行）"),
    work: Path = typer.Option(Path("var/bench-handwritten"), help="合成快照、政策与结果的目录"),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    from devtools.bench_handwritten import run

    done, diff = run(enterprises, work, rounds=rounds, seed=seed, say=lambda m: console.print(m))
    table = Table(title=f"zhida match 与手写 DuckDB：{enterprises:,} 户企业 × 7 项政策")
    for col in ("轮次", "一方", "用时（秒）", "CPU（秒）", "各阶段（秒）"):
        table.add_column(col, justify="left" if col in ("一方", "各阶段（秒）") else "right")
    for n, r in enumerate(done):
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r.stages.items() if k != "total")
        table.add_row(str(n // 2 + 1), r.side, f"{r.wall_s:.2f}", f"{r.cpu_s:.2f}", stages)
    console.print(table)
    hand = [r for r in done if r.side == "handwritten"]
    ours = [r for r in done if r.side == "zhida"]
    for label, pick in (("wall", lambda r: r.wall_s), ("cpu", lambda r: r.cpu_s)):
        h, z = sorted(pick(r) for r in hand), sorted(pick(r) for r in ours)
        console.print(
            f"{label}: handwritten {h[0]:.2f}–{h[-1]:.2f} s, zhida match {z[0]:.2f}–{z[-1]:.2f} s, "
            f"ratio (medians) {z[len(z) // 2] / h[len(h) // 2]:.2f}"
        )
    console.print(
        "disagreement (rows in one output and not the other): "
        + ", ".join(f"{k} {v}" for k, v in diff.items())
    )
    if any(diff.values()):
        raise typer.Exit(1)
