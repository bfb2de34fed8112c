"""`zhida worker`: claim and run durable jobs (match runs, SMS waves, reminders, the expiry sweep).

SIGTERM (or Ctrl-C) stops it after the job in hand; a second one gives that job back to the queue at
once (another worker takes it up) and exits. A worker killed outright leaves its job to be reclaimed
when its lease runs out.
"""

from __future__ import annotations

import datetime as dt
import signal
from typing import Any

import typer
from rich.console import Console

console = Console(highlight=False)


def worker(
    once: bool = typer.Option(False, "--once", help="执行完当前所有到期任务后退出（测试、定时任务用）"),
    poll: float = typer.Option(2.0, "--poll", min=0.1, help="没有任务时每隔多少秒查看一次队列"),
) -> None:
    """运行后台任务：数据比对、发送短信、到期提醒、过期清理；可同时运行多个。"""
    from api.app import configure_logging
    from api.settings import Settings
    from api.worker import Stop, Worker, context
    from payouts.db import connect

    settings = Settings()
    configure_logging()
    engine = connect(settings.database_url, migration_url=settings.migration_database_url)
    w = Worker(
        context(engine, settings), lease=dt.timedelta(seconds=settings.worker_lease_seconds), poll=poll
    )
    if once:
        n = w.drain()
        console.print(f"已执行 {n:,} 个任务，队列中没有到期的任务")
        return

    def on_signal(sig: int, frame: Any) -> None:
        if w.stopping.is_set():
            raise Stop()  # the second signal: give the job in hand back now
        console.print("收到停止信号：完成当前任务后退出（再按一次立即交还当前任务并退出）")
        w.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    console.print(f"任务进程 {w.name} 已启动，等待任务……")
    w.run()
    console.print("任务进程已停止")
