"""Staff sign-in: a bearer token for the API, an HttpOnly cookie for the console; who am I; sign-out.

The session lives on the server (`payouts/signin.py`): signing out ends it for the cookie and the bearer
token alike. The sign-in form carries a CSRF token bound to a per-browser nonce, so that no other site
can sign a browser in under an account of its choosing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from api.auth import check_password
from api.deps import (
    SESSION_COOKIE,
    CurrentUser,
    SessionDep,
    SettingsDep,
    TokensDep,
    client_address,
    presented_token,
)
from api.problems import problem_response
from api.routes import BrowserNonce, redirect, render
from payouts import signin
from payouts.models import StaffUser
from payouts.users import ROLE_LABELS, Role

router = APIRouter(prefix="/api", tags=["session"])
pages = APIRouter(include_in_schema=False)
LOGIN_NONCE = BrowserNonce("zhida_l", "/login")  # the sign-in form's CSRF token is bound to it
LOCKED = "账户已锁定（密码错误次数过多），请联系安全管理员解锁"
WRONG = "用户名或密码错误"


class Credentials(BaseModel):
    """A username and password."""

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserOut(BaseModel):
    """A staff user as the API shows them."""

    username: str
    display_name: str
    role: str
    role_label: str
    department: str | None


class SessionOut(BaseModel):
    """A bearer token for `Authorization: Bearer …`: it ends at sign-out (DELETE /api/session), after
    `idle_seconds` without a request, and at the latest `expires_in` seconds after sign-in."""

    token: str
    token_type: str = "bearer"
    expires_in: int
    idle_seconds: int
    user: UserOut


def user_out(user: StaffUser) -> UserOut:
    return UserOut(
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        role_label=ROLE_LABELS[Role(user.role)],
        department=user.department,
    )


class RateLimited(Exception):
    """Too many sign-in attempts for one client address and username within the window."""


def _sign_in(request: Request, session: SessionDep, username: str, password: str) -> signin.SignIn:
    """Check the password and open a session (failures counted and audited in the database); RateLimited
    once this client has tried this name too often (a quick brake before any lockout)."""
    ip = client_address(request)
    if not request.app.state.limits["login"].hit(f"{ip}|{username}"):
        raise RateLimited()
    state = request.app.state
    return signin.sign_in(
        session, username, lambda user: check_password(user, password), state.clock(), state.lockout, ip
    )


def _session_out(request: Request, result: signin.SignIn) -> SessionOut:
    assert result.user is not None and result.token is not None
    limits: signin.SessionLimits = request.app.state.session_limits
    return SessionOut(
        token=result.token,
        expires_in=int(limits.absolute.total_seconds()),
        idle_seconds=int(limits.idle.total_seconds()),
        user=user_out(result.user),
    )


@router.post("/session", response_model=SessionOut, summary="登录，取得 Bearer 令牌")
def sign_in(body: Credentials, request: Request, session: SessionDep) -> Response | SessionOut:
    try:
        result = _sign_in(request, session, body.username, body.password)
    except RateLimited:
        return problem_response(request, 429, "请求过于频繁", "登录尝试过多，请稍后再试")
    if result.refused == "locked":
        return problem_response(request, 423, "账户已锁定", LOCKED)
    if result.refused is not None:
        return problem_response(request, 401, WRONG, WRONG)
    return _session_out(request, result)


@router.delete("/session", status_code=204, summary="退出登录（令牌随即失效）")
def sign_out_api(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    token, _ = presented_token(request)
    signin.end_session(session, token or "", request.app.state.clock(), client_address(request))
    return Response(status_code=204)


@router.get("/me", response_model=UserOut, summary="当前用户")
def me(user: CurrentUser) -> UserOut:
    return user_out(user)


@pages.get("/")
def home() -> Response:
    return RedirectResponse("/console", status_code=303)


def _login_form(
    request: Request, tokens: TokensDep, secure: bool, context: dict[str, object], status_code: int = 200
) -> Response:
    nonce = LOGIN_NONCE.current(request)
    response = render(
        request, "login.html", {**context, "login_csrf": tokens.csrf("login", nonce)}, status_code
    )
    LOGIN_NONCE.keep(response, nonce, secure)
    return response


@pages.get("/login")
def login_page(
    request: Request, tokens: TokensDep, settings: SettingsDep, next: str = "/console"
) -> Response:
    return _login_form(request, tokens, settings.cookie_secure, {"next": _local(next)})


@pages.post("/login")
def login(
    request: Request,
    session: SessionDep,
    tokens: TokensDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=300)] = "/console",
    csrf: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    secure = settings.cookie_secure
    if not tokens.csrf_ok(csrf, "login", LOGIN_NONCE.given(request)):
        context = {"next": _local(next), "error": "页面已过期，请重新输入用户名和密码登录"}
        return _login_form(request, tokens, secure, context, 403)
    try:
        result = _sign_in(request, session, username, password)
    except RateLimited:
        context = {"next": _local(next), "error": "登录尝试过多，请稍后再试"}
        return _login_form(request, tokens, secure, context, 429)
    if result.refused is not None:
        error, status = (LOCKED, 423) if result.refused == "locked" else (WRONG, 401)
        context = {"next": _local(next), "error": error, "username": username}
        return _login_form(request, tokens, secure, context, status)
    response = redirect(_local(next))
    response.set_cookie(  # no Max-Age: the cookie ends with the browser, the session on the server
        SESSION_COOKIE, result.token or "", httponly=True, secure=secure, samesite="lax"
    )
    return response


@pages.post("/logout")
def logout(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    token, _ = presented_token(request)
    signin.end_session(session, token or "", request.app.state.clock(), client_address(request))
    response = redirect("/login", "已退出")
    response.delete_cookie(SESSION_COOKIE)
    return response


def _local(url: str) -> str:
    """Only paths of this site, so that the login page cannot send anyone elsewhere."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/console"
