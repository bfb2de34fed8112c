"""The enterprise's own pages (/e): sign in (one-time code by SMS, or the provincial unified identity),
my policies (every item of the latest match run and where the enterprise stands), and each offer's
timeline. Server-rendered, mobile-first, no JavaScript.

- Sign-in forms carry a CSRF token bound to a per-browser nonce cookie; signed-in forms (sign-out) one
  bound to the enterprise session. Codes asked and tried are rate-limited per IP in memory
  (`api/ratelimit.py`); `portal.identity` limits codes per address and per enterprise in the database,
  blocks an address (not the enterprise) after five wrong codes, and the enterprise is told by SMS.
- Every page reads only the signed-in enterprise's data: the offer page goes through
  `api.deps.load_enterprise_offer`, which answers 404 for any other enterprise's offer.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from api.deps import (
    CurrentEnterprise,
    EnterpriseOfferDep,
    SessionDep,
    SettingsDep,
    TokensDep,
    client_address,
    writes,
)
from api.enterprise_auth import ENTERPRISE_COOKIE, FLOW_COOKIE, valid_uscc
from api.routes import BrowserNonce, now, redirect, render
from api.routes.applications import open_for_applying
from api.routes.offers import gateway
from payouts.errors import LoginError, LoginThrottled, SmsError
from payouts.timeline import timeline
from portal import identity, ratings
from portal import standings as portal_standings
from rules import formats

pages = APIRouter(prefix="/e", include_in_schema=False)
log = logging.getLogger("zhida.enterprise")
OIDC_FAILED = "统一身份认证登录未成功，请重新登录；如仍不成功，请稍后再试或使用短信验证码登录"
OIDC_UNAVAILABLE = "统一身份认证暂不可用，请稍后再试或使用短信验证码登录"

NONCE = BrowserNonce("zhida_e", "/e/", 3600)


def _ip(request: Request) -> str:
    return client_address(request)


def _login_page(
    request: Request,
    tokens: TokensDep,
    settings: SettingsDep,
    template: str,
    status: int = 200,
    **context: object,
) -> Response:
    """A sign-in page with a fresh CSRF token bound to this browser's nonce cookie."""
    nonce = NONCE.current(request)
    response = render(
        request,
        template,
        {
            "form_csrf": tokens.csrf("enterprise-login", nonce),
            "oidc": request.app.state.oidc is not None,
            "sms_login": settings.sms_login,
            **context,
        },
        status_code=status,
    )
    NONCE.keep(response, nonce, settings.cookie_secure)
    return response


def _csrf_ok(request: Request, tokens: TokensDep, csrf: str) -> bool:
    return tokens.csrf_ok(csrf, "enterprise-login", NONCE.given(request))


def _signed_in(request: Request, settings: SettingsDep, uscc: str, via: str) -> Response:
    token = request.app.state.enterprise_tokens.session(uscc, via, now())
    response = redirect("/e", "登录成功")
    response.set_cookie(
        ENTERPRISE_COOKIE,
        token,
        max_age=settings.enterprise_session_hours * 3600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    response.delete_cookie(FLOW_COOKIE, path="/e/")
    return response


def _busy(
    request: Request, tokens: TokensDep, settings: SettingsDep, keys: list[tuple[str, str]], **ctx: object
) -> Response | None:
    limits = request.app.state.limits
    for name, key in keys:
        if not limits[name].hit(key):
            response = _login_page(
                request, tokens, settings, "ent_login.html", 429, error="请求过于频繁，请稍后再试", **ctx
            )
            response.headers["Retry-After"] = str(limits[name].retry_after(key))
            return response
    return None


@pages.get("/login")
def login_page(request: Request, tokens: TokensDep, settings: SettingsDep) -> Response:
    return _login_page(request, tokens, settings, "ent_login.html")


@pages.post("/login/code")
def send_code(
    request: Request,
    session: SessionDep,
    tokens: TokensDep,
    settings: SettingsDep,
    uscc: Annotated[str, Form(max_length=40)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Send a one-time code to the enterprise's registered contact phone."""
    if not settings.sms_login:
        return _login_page(request, tokens, settings, "ent_login.html", 404, error="未开放短信验证码登录")
    if not _csrf_ok(request, tokens, csrf):
        return _login_page(request, tokens, settings, "ent_login.html", 403, error="页面已过期，请重试")
    try:
        code = valid_uscc(uscc)
    except LoginError as e:
        return _login_page(request, tokens, settings, "ent_login.html", 422, error=str(e), uscc=uscc)
    busy = _busy(request, tokens, settings, [("code_ip", f"send|{_ip(request)}")], uscc=code)
    if busy is not None:
        return busy
    standings: portal_standings.Standings = request.app.state.standings
    try:
        sent = identity.send_code(
            session,
            standings.contact(session, code),
            gateway(request),
            secret=settings.secret_key.get_secret_value().encode(),
            sign=settings.payouts().sms_sign,
            now=now(),
            ip=_ip(request),
        )
    except LoginThrottled as e:
        return _throttled(request, tokens, settings, "ent_login.html", str(e), e.retry_at, code)
    except (LoginError, SmsError) as e:
        return _login_page(request, tokens, settings, "ent_login.html", 422, error=str(e), uscc=code)
    return _login_page(request, tokens, settings, "ent_code.html", uscc=code, sent=sent)


def _throttled(
    request: Request,
    tokens: TokensDep,
    settings: SettingsDep,
    template: str,
    message: str,
    retry_at: dt.datetime,
    uscc: str,
    status: int = 429,
) -> Response:
    response = _login_page(request, tokens, settings, template, status, error=message, uscc=uscc)
    response.headers["Retry-After"] = str(max(1, int((retry_at - now()).total_seconds()) + 1))
    return response


@pages.post("/login/verify")
def verify_code(
    request: Request,
    session: SessionDep,
    tokens: TokensDep,
    settings: SettingsDep,
    uscc: Annotated[str, Form(max_length=40)] = "",
    code: Annotated[str, Form(max_length=12)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check the code; a right one signs the enterprise in."""
    if not _csrf_ok(request, tokens, csrf):
        return _login_page(request, tokens, settings, "ent_login.html", 403, error="页面已过期，请重试")
    try:
        who = valid_uscc(uscc)
    except LoginError as e:
        return _login_page(request, tokens, settings, "ent_login.html", 422, error=str(e))
    if not request.app.state.limits["code_ip"].hit(f"try|{_ip(request)}"):
        return _busy_page(request, tokens, settings, who)
    attempt = identity.check_code(
        session, who, code, secret=settings.secret_key.get_secret_value().encode(), now=now(), ip=_ip(request)
    )
    if attempt.guessed:
        standings: portal_standings.Standings = request.app.state.standings
        contact = standings.contact(session, who)
        identity.alert_guessing(
            session, who, contact, gateway(request), sign=settings.payouts().sms_sign, now=now()
        )
    if attempt.locked_until is not None:
        status = 423 if attempt.enterprise_locked else 429
        return _throttled(
            request, tokens, settings, "ent_login.html", attempt.message, attempt.locked_until, who, status
        )
    if not attempt.ok:
        return _login_page(request, tokens, settings, "ent_code.html", 401, error=attempt.message, uscc=who)
    return _signed_in(request, settings, who, "sms")


def _busy_page(request: Request, tokens: TokensDep, settings: SettingsDep, uscc: str) -> Response:
    response = _login_page(
        request, tokens, settings, "ent_code.html", 429, error="尝试过于频繁，请稍后再试", uscc=uscc
    )
    limiter = request.app.state.limits["code_ip"]
    response.headers["Retry-After"] = str(limiter.retry_after(f"try|{_ip(request)}"))
    return response


@pages.get("/login/oidc")
def oidc_start(request: Request, settings: SettingsDep, tokens: TokensDep) -> Response:
    """Send the browser to the provincial unified identity."""
    provider = request.app.state.oidc
    if provider is None:
        return _login_page(request, tokens, settings, "ent_login.html", 404, error="未配置统一身份认证")
    try:
        # The redirect URI registered with the provider: from the settings, never from the request's Host.
        auth = provider.start(settings.public_url.rstrip("/") + "/e/login/oidc/callback")
    except LoginError as e:
        log.warning("oidc start failed", extra={"fields": {"detail": str(e)}})
        return _login_page(request, tokens, settings, "ent_login.html", 502, error=OIDC_UNAVAILABLE)
    response = RedirectResponse(auth.url, status_code=303)
    response.set_cookie(
        FLOW_COOKIE,
        request.app.state.enterprise_tokens.flow(auth.flow),
        max_age=600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",  # the provider sends the browser back with a top-level GET
        path="/e/",
    )
    return response


@pages.get("/login/oidc/callback", name="oidc_callback")
@writes  # records the sign-in
def oidc_callback(
    request: Request, session: SessionDep, settings: SettingsDep, tokens: TokensDep
) -> Response:
    """The way back from the unified identity: check state, exchange the code, validate the ID token."""
    provider = request.app.state.oidc
    if provider is None:
        return _login_page(request, tokens, settings, "ent_login.html", 404, error="未配置统一身份认证")
    flow = request.app.state.enterprise_tokens.read_flow(request.cookies.get(FLOW_COOKIE))
    params = {
        k: v for k, v in request.query_params.items() if k in ("code", "state", "error", "error_description")
    }
    try:
        uscc = provider.finish(params, flow)
    except LoginError as e:
        # What went wrong (the provider's words, a token's flaw) is for the log, not for the page.
        log.warning("oidc sign-in failed", extra={"fields": {"detail": str(e), "ip": _ip(request)}})
        response = _login_page(request, tokens, settings, "ent_login.html", 401, error=OIDC_FAILED)
        response.delete_cookie(FLOW_COOKIE, path="/e/")
        return response
    identity.record_login(session, uscc, "oidc", now(), _ip(request))
    return _signed_in(request, settings, uscc, "oidc")


@pages.post("/logout")
def logout(
    request: Request,
    me: CurrentEnterprise,
    session: SessionDep,
    tokens: TokensDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not tokens.csrf_ok(csrf, "enterprise", request.cookies.get(ENTERPRISE_COOKIE, "")):
        return render(
            request, "error.html", {"title": "页面已过期", "detail": "请刷新页面后重试", "status": 403}, 403
        )
    identity.logout(session, me.uscc, now(), _ip(request))
    response = redirect("/e/login", "已退出")
    response.delete_cookie(ENTERPRISE_COOKIE, path="/")
    return response


@pages.get("")
def my_policies(request: Request, me: CurrentEnterprise, session: SessionDep) -> Response:
    """Every item of the latest match run and where this enterprise stands; its offers."""
    standings: portal_standings.Standings = request.app.state.standings
    view, items = standings.standings(session, me.uscc)
    mine = portal_standings.offers_of(session, me.uscc)
    contact = standings.contact(session, me.uscc)
    groups = {status: [s for s in items if s.status == status] for status in portal_standings.STATUS_LABELS}
    return render(
        request,
        "ent_home.html",
        {
            "ent": me,
            "name": contact.name if contact else me.uscc,
            "run": view,
            "groups": groups,
            "labels": portal_standings.STATUS_LABELS,
            "offers": mine,
            "titles": portal_standings.policy_titles(session, mine),
            "ent_csrf": request.state.enterprise_csrf,
            "guessed_at": identity.guessing_notice(session, me.uscc, now()),
            "applyable": open_for_applying(request, (formats.china(now()) or now()).date()),
        },
    )


@pages.get("/offers/{public_id}")
def offer_page(
    request: Request, offer: EnterpriseOfferDep, me: CurrentEnterprise, session: SessionDep
) -> Response:
    """One offer's timeline: what happened, the amounts, what happens next and by when."""
    return render(
        request,
        "ent_offer.html",
        {
            "ent": me,
            "t": timeline(session, offer),
            "ent_csrf": request.state.enterprise_csrf,
            "rating": ratings.of_subject(session, me.uscc, "offer", offer.public_id),
            "score_labels": ratings.SCORES,
        },
    )
