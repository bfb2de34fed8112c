"""Errors as RFC 9457 problem details: which zhida error gives which status, and the response itself.

The API answers `application/problem+json`; pages (console, confirm page) get the same facts as HTML.
"""

from __future__ import annotations

import contextvars
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from payouts.errors import (
    BankExportError,
    BankFileError,
    LinkError,
    NotFoundError,
    RoleError,
    RunImportError,
    SmsError,
)
from rules.errors import (
    BudgetError,
    MatchError,
    PayoutError,
    PolicyError,
    SnapshotError,
    StateError,
    ZhidaError,
)

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


class ProblemItem(BaseModel):
    """One problem in a refused policy file: where it is and what to do."""

    file: str
    line: int | None = None
    where: str
    message: str
    hint: str | None = None


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong, for people (title, detail) and programs (status, type)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    problems: list[ProblemItem] | None = None
    errors: list[dict[str, Any]] | None = None


# Most specific first: the first class an error is an instance of decides the answer.
ERROR_STATUS: list[tuple[type[Exception], int, str]] = [
    (PolicyError, 422, "政策文件有误"),
    (NotFoundError, 404, "不存在"),
    (LinkError, 404, "链接无效"),
    (RoleError, 403, "无权操作"),
    (BudgetError, 409, "超出预算"),
    (StateError, 409, "当前状态不允许此操作"),
    (RunImportError, 422, "匹配结果不能导入"),
    (BankFileError, 422, "银行回单被拒绝"),
    (BankExportError, 422, "银行文件无法导出"),
    (SmsError, 502, "短信发送失败"),
    (SnapshotError, 422, "快照不可用"),
    (MatchError, 422, "匹配不能进行"),
    (PayoutError, 422, "操作被拒绝"),
    (ZhidaError, 400, "请求有误"),
]


def status_of(error: Exception) -> tuple[int, str]:
    for kind, status, title in ERROR_STATUS:
        if isinstance(error, kind):
            return status, title
    return 500, "内部错误"


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api") and request.url.path != "/openapi.json"


# Pages for enterprises and the public (supermarket, notices, my policies, confirmation links): their
# errors never point to the staff console.
PUBLIC_PAGES = ("/policies", "/gongshi", "/liangshai", "/e/", "/c/", "/r/")


def _error_template(request: Request) -> str:
    path = request.url.path
    return "error_public.html" if path == "/e" or path.startswith(PUBLIC_PAGES) else "error.html"


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str | None,
    *,
    retry_after: int | None = None,
    **extra: Any,
) -> Response:
    """The error as problem+json on the API, and as a page everywhere else; with `retry_after`, a
    `Retry-After` header, and a page that tries again by itself after that many seconds (GET only)."""
    if wants_html(request):
        again = retry_after if request.method == "GET" else None
        response: Response = request.app.state.templates.TemplateResponse(
            request,
            _error_template(request),
            {"title": title, "detail": detail, "status": status, "retry_after": again},
            status_code=status,
        )
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response
    body = Problem(
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request_id.get(),
        **extra,
    )
    response = JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type="application/problem+json"
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
