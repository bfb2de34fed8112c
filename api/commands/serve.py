"""`zhida serve`: run the web service (staff API, console, public confirm page) with uvicorn.

`zhida serve --demo` starts a fresh demo on its own database under `var/demo/web*`: the bundled policy
library published, demo users with a known password, and one policy's offers already sent by SMS, so
that it can print a confirmation link that works; then it prints the console's address and the users.

`zhida serve --workers N` runs N worker processes on one socket (docs/operations.md#several-workers).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import typer
from fastapi import FastAPI
from rich.console import Console
from rich.table import Table

from api.auth import set_password
from payouts import imports, offers, sms, users
from payouts.db import transaction
from payouts.payees import mask_phone
from rules.ruleset import library_dir

console = Console(highlight=False)
log = logging.getLogger("zhida.serve")

DEMO_DIR = Path("var/demo")
DEMO_AS_OF = "2025-09-30"
DEMO_PASSWORD = "zhida-demo-2025"
DEMO_DEPARTMENT = "长沙市科学技术局"  # gaoxin-changsha: the policy the walkthrough changes and publishes
SAMPLE_POLICY = "shenggui-heilongjiang"  # its offers are released and notified at start, for a sample link
# Matched with the sample (its offers stay drafted), so that the demo enterprise also has near misses.
NEAR_MISS_POLICY = "wengang-2025"
DEMO_USERS = (
    ("demo-policy", "policy", "政策部门演示员", DEMO_DEPARTMENT),
    ("demo-reviewer", "reviewer", "初核演示员", None),
    ("demo-maker", "finance_maker", "制单演示员", None),
    ("demo-checker", "finance_checker", "复核演示员", None),
    ("demo-auditor", "auditor", "安全审计演示员", None),
    ("demo-sysadmin", "system_admin", "系统管理员演示员", None),
    ("demo-secadmin", "security_admin", "安全管理员演示员", None),
)


def _demo_environment(host: str, port: int) -> None:
    """Point the settings at a fresh demo database and folders (what is set already is kept)."""
    web_db = DEMO_DIR / "web.db"
    web_dir = DEMO_DIR / "web"
    for path in (web_db, web_db.with_suffix(".db-wal"), web_db.with_suffix(".db-shm")):
        path.unlink(missing_ok=True)
    shutil.rmtree(web_dir, ignore_errors=True)
    public = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    defaults = {
        "ZHIDA_DATABASE_URL": f"sqlite:///{web_db}",
        "ZHIDA_DATA_DIR": str(web_dir),
        "ZHIDA_SNAPSHOTS_ROOT": str(DEMO_DIR),
        "ZHIDA_AS_OF": DEMO_AS_OF,
        "ZHIDA_PUBLIC_URL": public,
        "ZHIDA_DEMO_PHONE": "true",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def _ensure_snapshot() -> Path:
    snapshot = DEMO_DIR / "snapshot"
    if not (snapshot / "enterprises.parquet").exists():
        from devtools.generate import generate_snapshot

        console.print("生成演示快照（100,000 户，随机种子 42）……")
        generate_snapshot(snapshot, 100_000, 42)
    return snapshot


def prepare_demo(app: FastAPI) -> str | None:
    """Publish the library, add the demo users, and notify the sample policy's offers; a sample link."""
    from matcher.run import run_match

    state = app.state
    settings = state.settings
    snapshot = _ensure_snapshot()
    now = dt.datetime.now(dt.UTC)
    with transaction(state.engine) as s:
        for name, role, display, dept in DEMO_USERS:
            users.create_user(s, name, role, display_name=display, department=dept, carry_over=True, now=now)
            set_password(s, name, DEMO_PASSWORD, "system", now)
        state.store.seed(library_dir(), s, "system", now)
    work = settings.data_dir / "sample"
    sample = state.store.latest_published(SAMPLE_POLICY)
    if sample is None:
        return None
    (work / "policies").mkdir(parents=True, exist_ok=True)
    for record in (sample, state.store.latest_published(NEAR_MISS_POLICY)):
        if record is not None:
            (work / "policies" / f"{record.key}.yaml").write_text(state.store.text(record), encoding="utf-8")
    run_match(snapshot, work / "policies", work / "run", settings.default_as_of())
    with transaction(state.engine) as s:
        imports.import_run(s, work / "run", "demo-reviewer", now)
        offers.release(s, "demo-reviewer", now, policy_id=SAMPLE_POLICY)
        sms.send_notices(s, state.phone, now, settings.payouts(), limit=None, actor="system")
    sent = state.phone.sent
    return sent[0].params["link"] if sent else None


def demo_enterprise_login(app: FastAPI) -> str | None:
    """How to sign in as an enterprise that has an offer and a near miss (我的政策), for the demo."""
    from portal.standings import demo_enterprise

    with transaction(app.state.engine) as s:
        who = demo_enterprise(s, app.state.standings)
    if who is None:
        return None
    base = app.state.settings.public_url
    return (
        f"企业登录（我的政策）：{base}/e/login ，统一社会信用代码 [bold]{who.uscc}[/bold]（{who.name}）；"
        f"点“获取验证码”后，验证码在演示手机 {base}/demo/phone（发往 {mask_phone(who.phone)}）"
    )


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="监听地址"),
    port: int = typer.Option(8000, "--port", help="端口"),
    demo: bool = typer.Option(False, "--demo", help="演示：全新的演示数据库、演示用户和一条可用的确认链接"),
    reload: bool = typer.Option(False, "--reload", help="开发：代码改动后自动重启（不能与 --demo 同用）"),
    workers: int = typer.Option(
        1, "--workers", min=1, max=64, help="工作进程数：多个进程共用数据库（及 ZHIDA_REDIS_URL 的限流计数）"
    ),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="生产：本进程不执行后台任务，由单独运行的 zhida worker 执行"
    ),
) -> None:
    """启动 Web 服务：职员接口 /api、工作台 /console、企业确认页 /c/。"""
    import uvicorn

    from api.settings import Settings

    if demo and reload:
        raise typer.BadParameter("--demo 与 --reload 不能同用")
    if workers > 1 and (demo or reload):
        raise typer.BadParameter(
            "--workers 大于 1 时不能同用 --demo 或 --reload：演示手机把发出的短信保存在进程内存中，"
            "别的工作进程看不到；开发时的自动重启只管一个进程。请去掉 --workers"
        )
    if demo:
        _demo_environment(host, port)
    if workers > 1:
        share_secret_key(os.environ)
    if no_worker:
        os.environ["ZHIDA_WORKER"] = "false"
    settings = Settings()
    if workers > 1:
        serve_workers(settings, host, port, workers)
        return
    if reload:
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=host,
            port=port,
            reload=True,
            access_log=False,
            proxy_headers=False,  # the app reads X-Forwarded-For itself, from ZHIDA_TRUSTED_PROXIES only
            timeout_graceful_shutdown=settings.shutdown_seconds,
        )
        return
    from api.app import create_app  # not before: the workers' supervisor need not load the app

    app = create_app(settings)
    link = prepare_demo(app) if demo else None
    console.print(
        f"工作台：[bold]{settings.public_url}/console[/bold]    接口文档：{settings.public_url}/api/docs"
    )
    console.print(f"政策超市（公开，无需登录）：[bold]{settings.public_url}/policies[/bold]")
    if demo:
        table = Table(title=f"演示用户（密码均为 {DEMO_PASSWORD}）")
        for col in ("用户名", "角色", "部门"):
            table.add_column(col)
        for name, role, display, dept in DEMO_USERS:
            table.add_row(name, f"{display}（{role}）", dept or "全部")
        console.print(table)
        if link:
            console.print(f"示例确认链接（企业手机上打开）：[bold]{link}[/bold]")
        if login := demo_enterprise_login(app):
            console.print(login)
        console.print(f"演示手机（本服务发出的短信）：{settings.public_url}/demo/phone")
        console.print(
            "演示流程：demo-policy 上传并发布 gaoxin-changsha 第 2 版 → demo-reviewer 数据比对、初核发布、发送短信 → "
            "在演示手机打开链接确认 → demo-maker 制单 → demo-checker 复核 → 导出银行文件 → 导入回单"
        )
    config = server_config(app, host, port, settings.shutdown_seconds)
    StoppableServer(config, settings.shutdown_seconds + HARD_STOP_MARGIN).run()


def share_secret_key(environ: MutableMapping[str, str]) -> None:
    """Give every worker the same secret key: without `ZHIDA_SECRET_KEY` a development service makes one
    per process, and a worker would refuse the CSRF tokens, enterprise sessions and sign-in codes of
    another. Production refuses to start without one anyway (api/settings.py)."""
    from api.settings import PLACEHOLDER_SECRET

    if environ.get("ZHIDA_SECRET_KEY", PLACEHOLDER_SECRET) == PLACEHOLDER_SECRET:
        environ["ZHIDA_SECRET_KEY"] = secrets.token_urlsafe(32)


def serve_workers(settings: Any, host: str, port: int, workers: int) -> None:
    """Run `workers` processes of the service on one socket, each building the app from the environment.

    Everything that must hold across them is in the database (sessions, lockouts, sign-in codes, link
    tokens, the policy store) or in Redis (rate limits, `ZHIDA_REDIS_URL`); without Redis each process
    counts its own limits, which production refuses and development is warned about.
    """
    if settings.demo_phone:
        raise typer.BadParameter(
            "ZHIDA_DEMO_PHONE 开启时只能以单个工作进程运行：演示手机把短信保存在进程内存中。请去掉 --workers"
        )
    if not settings.redis_url:
        if settings.env == "production":
            raise typer.BadParameter(
                f"生产环境以 {workers} 个工作进程运行时须设置 ZHIDA_REDIS_URL（如 redis://127.0.0.1:6379/0）："
                f"否则每个进程各自计数，确认页、登录与验证码的频率限制放宽为 {workers} 倍"
            )
        console.print(
            f"[bold red]注意：未设置 ZHIDA_REDIS_URL，{workers} 个工作进程各自计数频率限制，"
            f"实际上限是设定值的 {workers} 倍；生产环境须设置 ZHIDA_REDIS_URL[/bold red]"
        )
        log.warning("no ZHIDA_REDIS_URL: each of the %d workers counts its own rate limits", workers)
    console.print(
        f"工作台：[bold]{settings.public_url}/console[/bold]（{workers} 个工作进程）    "
        f"接口文档：{settings.public_url}/api/docs"
    )
    config = server_config("api.app:create_app", host, port, settings.shutdown_seconds, workers=workers)
    StoppableWorkers(config, settings.shutdown_seconds + HARD_STOP_MARGIN).run()


def server_config(app: FastAPI | str, host: str, port: int, shutdown_seconds: float, workers: int = 1) -> Any:
    """uvicorn's configuration for the service (`app`: the app, or the factory's import string)."""
    import uvicorn

    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        workers=workers,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 (FORWARDED_ALLOW_IPS): the app decides instead,
        # from ZHIDA_TRUSTED_PROXIES (api/deps.py `client_address`).
        proxy_headers=False,
        timeout_graceful_shutdown=shutdown_seconds,
    )


HARD_STOP_MARGIN = 3.0  # seconds past the graceful shutdown after which the process is ended anyway


class StoppableServer:
    """uvicorn's server, made to stop within `deadline` seconds of SIGTERM (or Ctrl-C) whatever it is doing.

    uvicorn lets the requests in flight finish for `timeout_graceful_shutdown` seconds, then cancels
    them; but a cancelled request still waits for its worker thread, and a thread (a match run, a query)
    cannot be interrupted. Past the deadline the process exits at once: the database rolls back what
    was not committed.
    """

    def __init__(self, config: Any, deadline: float) -> None:
        import uvicorn

        self.deadline = deadline
        self.server = uvicorn.Server(config)
        graceful = self.server.handle_exit

        def handle_exit(sig: int, frame: Any) -> None:
            graceful(sig, frame)
            if not self._armed.is_set():
                self._armed.set()
                timer = threading.Timer(self.deadline, self._exit_now)
                timer.daemon = True  # a graceful stop before the deadline ends the process as usual
                timer.start()

        self._armed = threading.Event()
        self.server.handle_exit = handle_exit  # type: ignore[method-assign]

    def _exit_now(self) -> None:
        log.error("shutdown took longer than %.0f s: exiting now", self.deadline)
        logging.shutdown()
        os._exit(1)

    def run(self) -> None:
        self.server.run()


class StoppableWorkers:
    """uvicorn's supervisor of several worker processes (what `uvicorn.run(..., workers=N)` runs), made to
    end them all within `deadline` seconds of SIGTERM or Ctrl-C: each worker is sent SIGTERM and lets its
    requests finish for `timeout_graceful_shutdown` seconds; a worker still running at the deadline (a
    thread that cannot be interrupted) is killed, and the database rolls back what it had not committed."""

    def __init__(self, config: Any, deadline: float) -> None:
        from uvicorn.supervisors.multiprocess import Multiprocess

        outer = self

        class _Supervisor(Multiprocess):
            def join_all(self) -> None:
                outer._join_all(self.processes)

        self.deadline = deadline
        self.supervisor = _Supervisor(config, sockets=[config.bind_socket()])

    def _join_all(self, processes: list[Any]) -> None:
        end = time.monotonic() + self.deadline
        for worker in processes:
            worker.process.join(max(0.0, end - time.monotonic()))
            if worker.process.exitcode is None:
                log.error("worker %s still running %.0f s after shutdown: killed", worker.pid, self.deadline)
                worker.kill()
                worker.process.join()

    def run(self) -> None:
        self.supervisor.run()
