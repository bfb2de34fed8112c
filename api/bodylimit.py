"""Request body caps, checked before the application reads (or spools to disk) a byte too many.

Each request gets the cap of the first rule that matches its method and path, else the default: the
enterprise's evidence 10 MB, a policy file 1 MiB, a bank return file 50 MiB (each with room for the
multipart envelope), any other body 1 MiB. A `Content-Length` above the cap is refused at once, the
body unread; a body without one (chunked) is counted as it streams in, and the moment it passes the
cap the application is told the client went away and the answer is 413 instead of whatever it made of
that. The answer is a page in the browser and problem+json on the API, in Chinese.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

ENVELOPE = 64 << 10  # multipart boundaries and the form's other fields around an uploaded file
DEFAULT_BODY = 1 << 20
TOO_LARGE_TITLE = "请求内容过大"


@dataclass(frozen=True)
class BodyRule:
    """Requests of `method` whose path matches `path` may send at most `limit` bytes of `what`
    (plus `ENVELOPE` when it is an uploaded file)."""

    method: str
    path: str  # a regular expression over the whole path
    limit: int
    what: str
    upload: bool = True

    @property
    def cap(self) -> int:
        return self.limit + (ENVELOPE if self.upload else 0)

    def detail(self) -> str:
        return f"{self.what}不能超过 {_size(self.limit)}，请压缩或拆分后重新提交"


DEFAULT_RULE = BodyRule("*", ".*", DEFAULT_BODY, "提交的内容", upload=False)


def _size(n: int) -> str:
    if n % (1 << 20) == 0:
        return f"{n >> 20} MB"
    return f"{n >> 10} KB"


class BodyLimit:
    """ASGI middleware: the body caps of the module docstring."""

    def __init__(self, app: ASGIApp, rules: Sequence[BodyRule], default: BodyRule = DEFAULT_RULE) -> None:
        self.app = app
        self.rules = [(r, re.compile(r.path)) for r in rules]
        self.default = default

    def rule(self, method: str, path: str) -> BodyRule:
        for rule, pattern in self.rules:
            if rule.method in (method, "*") and pattern.fullmatch(path):
                return rule
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.rule(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > rule.cap:
            await self._refuse(scope, receive, send, rule)
            return
        received = 0
        over = False
        started = False  # the application's own response went out (before the body ran over)

        async def counted() -> Message:
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > rule.cap:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # what the application made of a cut body: the answer is 413 instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not (over and not started):
                raise
        if over and not started:
            await self._refuse(scope, receive, send, rule)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, rule: BodyRule) -> None:
        response = problem_response(Request(scope, receive), 413, TOO_LARGE_TITLE, rule.detail())
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
