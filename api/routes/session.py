"""Staff sign-in: a bearer token for the API, an HttpOnly cookie for the console; who am I; sign-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.auth import check_password
from api.deps import SESSION_COOKIE, CurrentUser, SessionDep, SettingsDep, TokensDep
from api.problems import problem_response
from api.routes import redirect, render
from payouts.models import StaffUser
from payouts.users import ROLE_LABELS, Role

router = APIRouter(prefix="/api", tags=["session"])
pages = APIRouter(include_in_schema=False)


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
    """A bearer token for `Authorization: Bearer …`, valid for `expires_in` seconds."""

    token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserOut


def user_out(user: StaffUser) -> UserOut:
    return UserOut(
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        role_label=ROLE_LABELS[Role(user.role)],
        department=user.department,
    )


def _sign_in(request: Request, session: SessionDep, username: str, password: str) -> StaffUser | None:
    """The user, if the password is right; RateLimited once this IP has tried this name too often."""
    limiter = request.app.state.limits["login"]
    if not limiter.hit(f"{request.client.host if request.client else '-'}|{username}"):
        raise RateLimited()
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    return user if check_password(user, password) else None


class RateLimited(Exception):
    """Too many sign-in attempts for one IP and username within the window."""


@router.post("/session", response_model=SessionOut, summary="登录，取得 Bearer 令牌")
def sign_in(
    body: Credentials, request: Request, session: SessionDep, tokens: TokensDep
) -> Response | SessionOut:
    try:
        user = _sign_in(request, session, body.username, body.password)
    except RateLimited:
        return problem_response(request, 429, "请求过于频繁", "登录尝试过多，请稍后再试")
    if user is None:
        return problem_response(request, 401, "用户名或密码错误", "用户名或密码错误")
    return SessionOut(token=tokens.session(user), expires_in=tokens.max_age, user=user_out(user))


@router.get("/me", response_model=UserOut, summary="当前用户")
def me(user: CurrentUser) -> UserOut:
    return user_out(user)


@pages.get("/")
def home() -> Response:
    return RedirectResponse("/console", status_code=303)


@pages.get("/login")
def login_page(request: Request, next: str = "/console") -> Response:
    return render(request, "login.html", {"next": _local(next)})


@pages.post("/login")
def login(
    request: Request,
    session: SessionDep,
    tokens: TokensDep,
    settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form(max_length=300)] = "/console",
) -> Response:
    try:
        user = _sign_in(request, session, username, password)
    except RateLimited:
        return render(request, "login.html", {"next": _local(next), "error": "登录尝试过多，请稍后再试"}, 429)
    if user is None:
        context = {"next": _local(next), "error": "用户名或密码错误", "username": username}
        return render(request, "login.html", context, 401)
    response = redirect(_local(next))
    response.set_cookie(
        SESSION_COOKIE,
        tokens.session(user),
        max_age=tokens.max_age,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
    )
    return response


@pages.post("/logout")
def logout(user: CurrentUser) -> Response:
    response = redirect("/login", "已退出")
    response.delete_cookie(SESSION_COOKIE)
    return response


def _local(url: str) -> str:
    """Only paths of this site, so that the login page cannot send anyone elsewhere."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/console"
