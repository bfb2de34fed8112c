"""The public confirmation page behind the SMS link (/c/{token}): look, confirm with one click, decline,
or report a wrong account. Works without JavaScript.

- An unknown, expired or already used link gets one neutral page (same status, same text), so links
  cannot be probed; tokens are never logged (the request log cuts them out).
- At most `confirm_ip_limit` requests per IP and `confirm_token_limit` per link in each window.
- Every answer is a POST carrying a CSRF token bound to the link and to a per-browser nonce cookie.
- Responses are `Cache-Control: no-store` and `Referrer-Policy: no-referrer` (set for every page).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import SessionDep, SettingsDep, TokensDep, client_address
from api.routes import BrowserNonce, now, render
from payouts import confirm
from payouts.errors import LinkError
from payouts.tokens import token_hash
from rules.errors import StateError
from rules.formats import CHINA

router = APIRouter(prefix="/c", tags=["confirm"])
NONCE = BrowserNonce("zhida_c", "/c/", 86400)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
HTML = {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "页面"}
RESPONSES: dict[int | str, dict[str, object]] = {200: HTML, 403: HTML, 404: HTML, 429: HTML}


def neutral(request: Request) -> Response:
    """The one page for every link that cannot be used, whatever the reason."""
    return render(request, "confirm_neutral.html", {}, status_code=404)


def limited(request: Request, token: str) -> Response | None:
    """A 429 page when this IP or this link asked too often; None when the request may go on."""
    limits = request.app.state.limits
    ip = client_address(request)
    for name, key in (("ip", ip), ("token", token_hash(token))):
        if not limits[name].hit(key):
            response = render(request, "confirm_busy.html", {}, status_code=429)
            response.headers["Retry-After"] = str(limits[name].retry_after(key))
            return response
    return None


def _page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    tokens: TokensDep,
    token: str,
    template: str,
    **extra: object,
) -> Response:
    """The offer page (or a follow-up question) with a fresh CSRF token, or the neutral page."""
    try:
        offer = confirm.view(session, token, now())
    except LinkError:
        return neutral(request)
    if not offer.can_respond:
        return neutral(request)
    nonce = NONCE.current(request)
    response = render(
        request,
        template,
        {
            "offer": offer,
            "token": token,
            "form_csrf": tokens.csrf("confirm", token_hash(token), nonce),
            **extra,
        },
    )
    NONCE.keep(response, nonce, settings.cookie_secure)
    return response


def _guard(request: Request, tokens: TokensDep, token: str, csrf: str) -> Response | None:
    """Refuse a malformed link, too many requests, or a form without its CSRF token."""
    if not _TOKEN.match(token):
        return neutral(request)
    if (busy := limited(request, token)) is not None:
        return busy
    if not tokens.csrf_ok(csrf, "confirm", token_hash(token), NONCE.given(request)):
        return render(request, "confirm_expired.html", {"token": token}, status_code=403)
    return None


def _receipt(request: Request, session: SessionDep, token: str, answer: confirm.Answer) -> Response:
    """What the enterprise did, when, and what happens next (the same again for a repeated click)."""
    offer = confirm.view(session, token, now())
    when = answer.at.astimezone(CHINA).strftime("%Y年%m月%d日 %H:%M")
    return render(request, "confirm_receipt.html", {"offer": offer, "kind": answer.kind, "now_text": when})


def _client(request: Request) -> tuple[str | None, str | None]:
    return client_address(request), request.headers.get("user-agent")


@router.get("/{token}", response_class=HTMLResponse, responses=RESPONSES, summary="确认页面（短信链接）")
def show(
    request: Request, token: str, session: SessionDep, settings: SettingsDep, tokens: TokensDep
) -> Response:
    if not _TOKEN.match(token):
        return neutral(request)
    if (busy := limited(request, token)) is not None:
        return busy
    return _page(request, session, settings, tokens, token, "confirm_offer.html")


@router.post("/{token}/confirm", response_class=HTMLResponse, responses=RESPONSES, summary="确认领取")
def do_confirm(
    request: Request,
    token: str,
    session: SessionDep,
    tokens: TokensDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if (refused := _guard(request, tokens, token, csrf)) is not None:
        return refused
    ip, agent = _client(request)
    try:
        answer = confirm.confirm(session, token, ip=ip, user_agent=agent, now=now())
    except (LinkError, StateError):
        return neutral(request)
    return _receipt(request, session, token, answer)


def _asked_then(
    request: Request,
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    tokens: TokensDep,
    csrf: str,
    sure: str,
    ask: str,
    act: Callable[[str | None, str | None], confirm.Answer],
) -> Response:
    """An answer that is asked once more before it counts (decline, wrong account): the question page,
    then `act(ip, user_agent)` and its receipt."""
    if (refused := _guard(request, tokens, token, csrf)) is not None:
        return refused
    if sure != "yes":
        return _page(request, session, settings, tokens, token, "confirm_ask.html", ask=ask)
    ip, agent = _client(request)
    try:
        answer = act(ip, agent)
    except (LinkError, StateError):
        return neutral(request)
    return _receipt(request, session, token, answer)


@router.post("/{token}/decline", response_class=HTMLResponse, responses=RESPONSES, summary="放弃（先问一次）")
def do_decline(
    request: Request,
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    tokens: TokensDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
    sure: Annotated[str, Form(max_length=10)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def act(ip: str | None, agent: str | None) -> confirm.Answer:
        return confirm.decline(
            session, token, ip=ip, user_agent=agent, now=now(), reason=reason.strip() or None
        )

    return _asked_then(request, token, session, settings, tokens, csrf, sure, "decline", act)


@router.post(
    "/{token}/account-wrong", response_class=HTMLResponse, responses=RESPONSES, summary="反映账户信息有误"
)
def do_account_wrong(
    request: Request,
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    tokens: TokensDep,
    csrf: Annotated[str, Form(max_length=100)] = "",
    sure: Annotated[str, Form(max_length=10)] = "",
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    def act(ip: str | None, agent: str | None) -> confirm.Answer:
        return confirm.report_wrong_account(
            session, token, ip=ip, user_agent=agent, now=now(), note=note.strip() or None
        )

    return _asked_then(request, token, session, settings, tokens, csrf, sure, "account_wrong", act)
