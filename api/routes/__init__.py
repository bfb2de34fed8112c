"""Route modules, one per noun. Each has `router` (the JSON API under /api) and `pages` (the console).

The few things every console page does live here: render a template, redirect after a form with a
one-time message, and the problem responses every API route documents.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

FLASH_COOKIE = "zhida_flash"
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,64}")


@dataclass(frozen=True)
class BrowserNonce:
    """A random value kept in an HttpOnly cookie of one browser, to which the CSRF tokens of forms
    without a signed-in session are bound (confirmation links, enterprise sign-in, objections)."""

    cookie: str
    path: str
    max_age: int | None = None  # None: until the browser closes

    def given(self, request: Request) -> str:
        """The value the browser sent (empty when none)."""
        return request.cookies.get(self.cookie, "")

    def current(self, request: Request) -> str:
        """The browser's value if it sent a well-formed one, else a new one (set it with `keep`)."""
        given = self.given(request)
        return given if _NONCE.fullmatch(given) else secrets.token_urlsafe(16)

    def keep(self, response: Response, nonce: str, secure: bool) -> None:
        response.set_cookie(
            self.cookie,
            nonce,
            httponly=True,
            samesite="strict",
            secure=secure,
            path=self.path,
            max_age=self.max_age,
        )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> Response:
    """A console or confirm page; shows (and clears) the message left by the previous form."""
    context = dict(context or {})
    raw = request.cookies.get(FLASH_COOKIE)
    if raw:
        try:
            context.setdefault("flash", json.loads(base64.urlsafe_b64decode(raw.encode())))
        except (ValueError, UnicodeDecodeError):
            context.setdefault("flash", None)
    response = request.app.state.templates.TemplateResponse(request, name, context, status_code=status_code)
    if raw:
        response.delete_cookie(FLASH_COOKIE)
    return response


def redirect(url: str, message: str | None = None, kind: str = "ok") -> Response:
    """See-other to `url`, leaving `message` for the next page."""
    response = RedirectResponse(url, status_code=303)
    if message:
        value = base64.urlsafe_b64encode(json.dumps({"kind": kind, "text": message}).encode()).decode()
        response.set_cookie(FLASH_COOKIE, value, max_age=60, httponly=True, samesite="lax")
    return response
