"""The FastAPI application: staff API (`/api`), staff console (`/console`), public confirm page (`/c/`).

`create_app(settings)` builds one; `zhida serve` runs it with uvicorn. Every request gets a request id
(`X-Request-ID`, taken from the client when it is sane) and one JSON log line; confirm-link tokens are
cut out of logged paths. Errors are RFC 9457 problem+json on the API and a page in the browser.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.admission import Admission
from api.auth import Tokens
from api.bodylimit import BodyLimit, BodyRule
from api.deps import (
    SESSION_COOKIE,
    CsrfRefused,
    EnterpriseUnauthenticated,
    Unauthenticated,
    client_address,
)
from api.enterprise_auth import ENTERPRISE_COOKIE, enterprise_setup
from api.matchjobs import MatchJobs
from api.metrics import Metrics
from api.metrics import pages as metrics_pages
from api.policystore import PolicyStore
from api.problems import Problem, ProblemItem, problem_response, request_id, status_of, wants_html
from api.ratelimit import limiter
from api.routes import supermarket
from api.settings import Settings
from api.worker import Worker, context
from payouts.db import connect, transaction
from payouts.offers import label as state_label
from payouts.offers import public_label as public_state
from payouts.signin import LockoutPolicy, SessionLimits
from payouts.sms import MemoryGateway
from payouts.users import ROLE_LABELS
from portal.supermarket import region_name
from portal.supplied import MAX_EVIDENCE
from rules import formats
from rules.errors import PolicyError, ZhidaError

HERE = Path(__file__).parent
log = logging.getLogger("zhida.api")
DATABASE_DOWN_TITLE = "系统暂时不可用"
DATABASE_DOWN_DETAIL = "数据库正在恢复，本次操作没有完成，请稍候几秒再试。"
DATABASE_RETRY_SECONDS = 5


def database_unavailable(error: DBAPIError) -> bool:
    """The database cannot be reached now (restart, failover, a connection cut, a deadlock or
    serialization failure): worth trying again, unlike a wrong statement or a broken constraint."""
    return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_TOKEN_PATH = re.compile(r"^/([cr])/[^/]+")  # confirmation and rating links: the token is cut out
PUBLIC_CATALOG = ("/policies", "/api/public/")  # the policy supermarket: public, cacheable pages
HSTS = "max-age=31536000; includeSubDomains"  # production only: browsers then refuse plain HTTP for a year
# Public HTML pages in the schema: their errors are pages too.
PUBLIC_PAGES = ("/c/", "/r/", "/gongshi", "/liangshai")


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, with the request id."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id.get(),
            "pid": os.getpid(),  # which worker process of `zhida serve --workers N`
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """Send zhida's logs to stderr as JSON lines (once per process)."""
    root = logging.getLogger("zhida")
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def _context(request: Request) -> dict[str, Any]:
    return {
        "me": getattr(request.state, "user_record", None),
        "csrf": getattr(request.state, "csrf", ""),
        "settings": request.app.state.settings,
    }


def _state(value: str | None) -> str:
    """A state's Chinese name where it is an offer state; other words (batch, run) as they are."""
    try:
        return state_label(value)
    except ValueError:
        return value or ""


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates", context_processors=[_context])
    templates.env.filters["money"] = formats.money
    templates.env.filters["money_cn"] = formats.money_cn
    templates.env.filters["money_exact"] = formats.money_exact_cn  # 50万元, else 12,345.67元
    templates.env.filters["china_time"] = formats.staff_time
    templates.env.filters["when"] = formats.public_time  # enterprise and public pages: 2025年9月30日 14:05
    templates.env.filters["period"] = formats.period
    templates.env.filters["day"] = formats.day
    templates.env.filters["plain"] = formats.plain  # messages without the CLI's backticks
    templates.env.filters["field_value"] = lambda value, name: formats.field_value(name, value)
    templates.env.filters["region"] = region_name  # GB/T 2260 names of a code or prefix
    templates.env.globals["state_label"] = _state
    templates.env.globals["public_state"] = public_state  # the enterprise's words for a state
    templates.env.globals["role_labels"] = {r.value: label for r, label in ROLE_LABELS.items()}
    return templates


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with every error response documented as problem+json (what the API sends)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for kind in (Problem, ProblemItem):
        components[kind.__name__] = kind.model_json_schema(ref_template="#/components/schemas/{model}")
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for op in operations.values():
            responses = op.setdefault("responses", {})
            codes = (
                ["404", "422", "429"]
                if path.startswith(PUBLIC_PAGES)
                else ["401", "403", "404", "409", "422"]
            )
            if path in ("/api/session",) and "post" in operations and op is operations["post"]:
                codes = ["401", "422", "423", "429"]
            for code in codes:
                responses.setdefault(code, {"description": "问题（RFC 9457）"})
            for code, response in responses.items():
                if code.startswith(("4", "5")):
                    if path.startswith(PUBLIC_PAGES):
                        response["content"] = {"text/html": {"schema": {"type": "string"}}}
                    else:
                        response["content"] = problem
    app.openapi_schema = schema
    return schema


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """While the service runs, so does its own worker (unless `ZHIDA_WORKER=false`): it stops after the
    job in hand; a job still running at exit is taken up again by a worker once its lease runs out."""
    worker: Worker | None = app.state.worker
    thread = worker.start_thread() if worker is not None else None
    try:
        yield
    finally:
        if worker is not None and thread is not None:
            worker.stop()
            thread.join(timeout=app.state.settings.shutdown_seconds)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application for `settings` (default: from the environment)."""
    from api.routes import (
        agency,
        applications,
        audit,
        batches,
        confirm,
        console,
        demo,
        enterprise,
        health,
        offers,
        policies,
        ratings,
        reports,
        runs,
        session,
    )

    settings = settings or Settings()
    configure_logging()
    app = FastAPI(
        title="直达 zhida",
        version="0.1.0",
        description="免申即享惠企政策平台：政策发布、数据比对、初核、意愿确认、拨付与对账。"
        "职员接口以 Bearer 令牌认证（POST /api/session 获取）。",
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = connect(
        settings.database_url,
        connections=settings.max_in_flight,
        migration_url=settings.migration_database_url,
    )
    app.state.tokens = Tokens(settings.secret_key.get_secret_value())
    # Sessions and lockout read the time here (tests set it).
    app.state.clock = lambda: dt.datetime.now(dt.UTC)
    app.state.session_limits = SessionLimits(
        idle=dt.timedelta(minutes=settings.session_idle_minutes),
        absolute=dt.timedelta(hours=settings.session_max_hours),
    )
    app.state.lockout = LockoutPolicy(
        settings.login_max_failures, dt.timedelta(minutes=settings.login_failure_window_minutes)
    )
    app.state.trusted_proxies = settings.proxy_networks()
    app.state.store = PolicyStore(app.state.engine)
    with transaction(app.state.engine) as s:
        # A store kept as files by an earlier release is copied into the database once; the policy
        # supermarket lists what was published before this start.
        app.state.store.import_files(s, settings.data_dir / "policies")
        app.state.store.sync_index(s, dt.datetime.now(dt.UTC))
    app.state.jobs = MatchJobs(settings.data_dir / "runs", app.state.engine)
    window = settings.confirm_window_seconds
    app.state.limits = {
        "ip": limiter(settings.redis_url, "ip", settings.confirm_ip_limit, window),
        "token": limiter(settings.redis_url, "token", settings.confirm_token_limit, window),
        "login": limiter(settings.redis_url, "login", settings.login_limit, window),
    }
    app.state.templates = make_templates()
    app.state.metrics = Metrics(app.state.engine)
    app.state.phone = MemoryGateway() if settings.demo_phone else None
    enterprise_setup(app, settings)
    app.state.worker = (
        Worker(
            context(app.state.engine, settings, app.state.phone, app.state.standings),
            lease=dt.timedelta(seconds=settings.worker_lease_seconds),
        )
        if settings.worker
        else None
    )
    # Inside the request log: a request refused for load is logged, with the usual headers.
    app.add_middleware(
        Admission,
        limit=settings.max_in_flight,
        queue=settings.max_queued,
        wait=settings.queue_wait_seconds,
    )

    # Outside admission (a refused body holds no place), inside the request log and its headers.
    app.add_middleware(
        BodyLimit,
        rules=[
            BodyRule("POST", r"/e/supplied", MAX_EVIDENCE, "证明材料"),
            BodyRule("POST", r"/api/policies|/console/policies/upload", policies.MAX_UPLOAD, "政策文件"),
            BodyRule("POST", r"/(api|console)/batches/[^/]+/return", batches.MAX_RETURN_FILE, "银行回单文件"),
        ],
    )

    @app.middleware("http")
    async def request_context(request: Request, call_next: Any) -> Response:
        given = request.headers.get("x-request-id", "")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        reset = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
        finally:
            app.state.metrics.observe(request, status, time.perf_counter() - started)
            path = _TOKEN_PATH.sub(r"/\1/<token>", request.url.path)
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": request.method,
                        "path": path,
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                        "user": getattr(request.state, "user", None),
                        "ip": client_address(request),
                    }
                },
            )
            request_id.reset(reset)
        response.headers["X-Request-ID"] = rid
        if request.url.path.startswith(PUBLIC_CATALOG) and request.method == "GET" and status == 200:
            response.headers["Cache-Control"] = "public, max-age=300"  # the same for every visitor
        elif not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        if settings.env == "production":
            response.headers["Strict-Transport-Security"] = HSTS
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"  # confirm links carry their token in the path
        if "content-security-policy" not in response.headers:  # a self-contained page brings its own
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            )
        return response

    @app.exception_handler(ZhidaError)
    async def zhida_error(request: Request, error: ZhidaError) -> Response:
        status, title = status_of(error)
        extra: dict[str, Any] = {}
        if isinstance(error, PolicyError):
            extra["problems"] = [ProblemItem(**vars(p)) for p in error.problems]
        return problem_response(request, status, title, str(error), **extra)

    @app.exception_handler(Unauthenticated)
    async def unauthenticated(request: Request, error: Unauthenticated) -> Response:
        if wants_html(request):
            response = RedirectResponse(f"/login?next={request.url.path}", status_code=303)
            response.delete_cookie(SESSION_COOKIE)
            return response
        response = problem_response(
            request, 401, "需要登录", "请先通过 POST /api/session 登录，以 Bearer 令牌访问"
        )
        response.headers["WWW-Authenticate"] = "Bearer"
        return response

    @app.exception_handler(EnterpriseUnauthenticated)
    async def enterprise_unauthenticated(request: Request, error: EnterpriseUnauthenticated) -> Response:
        response = RedirectResponse("/e/login", status_code=303)
        response.delete_cookie(ENTERPRISE_COOKIE)
        return response

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, error: CsrfRefused) -> Response:
        return problem_response(request, 403, "页面已过期", "表单校验失败（CSRF），请刷新页面后重试")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(x) for x in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in error.errors()
        ]
        detail = "；".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem_response(request, 422, "请求参数有误", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        titles = {404: "不存在", 405: "不支持的请求方法", 429: "请求过于频繁"}
        response = problem_response(
            request, error.status_code, titles.get(error.status_code, "请求有误"), str(error.detail)
        )
        for k, v in (error.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> Response:
        # The database restarting, failing over or out of connections: nothing of the request was
        # committed, so the client is told to try again (a confirmation is idempotent).
        if not database_unavailable(error):
            return await internal_error(request, error)
        log.warning("database unavailable: %s", str(error.orig or error).splitlines()[0])
        return problem_response(
            request, 503, DATABASE_DOWN_TITLE, DATABASE_DOWN_DETAIL, retry_after=DATABASE_RETRY_SECONDS
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> Response:
        if isinstance(error, DBAPIError) and database_unavailable(error):
            return await database_error(request, error)  # raised outside the routes (middleware)
        log.exception("unhandled error")
        return problem_response(request, 500, "内部错误", f"请求编号 {request_id.get()}，请联系管理员")

    for module in (session, policies, runs, offers, batches, audit, reports):
        app.include_router(module.router)
        app.include_router(module.pages)
    app.include_router(confirm.router)
    app.include_router(supermarket.router)
    app.include_router(supermarket.pages)
    app.include_router(enterprise.pages)
    app.include_router(applications.pages)
    app.include_router(applications.console)
    app.include_router(ratings.pages)
    app.include_router(ratings.links)
    app.include_router(agency.console)
    app.include_router(agency.enterprise_pages)
    app.include_router(ratings.console)
    from api.routes import disclosure, finance, jobs, notice, payees, replies, supplied, users

    app.include_router(replies.router)
    app.state.limits["sms_reply"] = limiter(
        settings.redis_url, "sms_reply", settings.sms_reply_limit, settings.sms_reply_window_seconds
    )

    app.include_router(finance.router)
    app.include_router(finance.pages)

    for module in (supplied, notice, users, jobs):
        app.include_router(module.router)
        app.include_router(module.pages)
    app.include_router(supplied.enterprise_pages)
    app.include_router(payees.router)
    app.include_router(payees.pages)
    app.include_router(notice.public)
    app.include_router(disclosure.public)
    app.state.limits["objection"] = limiter(
        settings.redis_url, "objection", settings.objection_ip_limit, settings.confirm_window_seconds
    )
    app.include_router(console.pages)
    app.include_router(health.pages)
    app.include_router(metrics_pages)
    if settings.demo_phone:
        app.include_router(demo.pages)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
