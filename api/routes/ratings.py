"""Ratings (好差评): the enterprise rates an ended item (/e/ratings, from the application or the offer's
timeline, or /r/{token} from the closing SMS without signing in); the console lists them by department and
policy for every report reader (their own department's only, if they have one), and the rated department's
staff answer them (/console/ratings), a poor one within 5 working days by the official calendar. The domain
is `portal.ratings`.

The rating link's page is guarded as the confirmation page is (`api.routes.confirm`): one neutral page
for every link that cannot be used, per-address and per-link rate limits, a CSRF token bound to the link
and to a per-browser nonce cookie, the token cut out of the request log."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from sqlalchemy import select

from api.deps import (
    ApplicationReviewer,
    CurrentEnterprise,
    ReportReader,
    SessionDep,
    SettingsDep,
    TokensDep,
    department,
    may,
)
from api.enterprise_auth import ENTERPRISE_COOKIE
from api.routes import BrowserNonce, now, redirect, render
from api.routes.confirm import _TOKEN, limited, neutral
from payouts.errors import LinkError, NotFoundError
from payouts.models import Offer, PolicyVersion
from payouts.tokens import token_hash
from portal import ratings
from portal.models import Application, Rating
from rules.errors import PayoutError
from rules.formats import money_exact_cn
from rules.workdays import china_date

pages = APIRouter(prefix="/e/ratings", include_in_schema=False)
console = APIRouter(prefix="/console/ratings", include_in_schema=False)
links = APIRouter(prefix="/r", include_in_schema=False)
LINK_NONCE = BrowserNonce("zhida_r", "/r/", 86400)
_BACK = {"offer": "/e/offers/{}", "application": "/e/applications/{}"}


@pages.post("")
def rate(
    request: Request,
    me: CurrentEnterprise,
    session: SessionDep,
    tokens: TokensDep,
    subject: Annotated[str, Form(max_length=16)] = "",
    subject_id: Annotated[str, Form(max_length=32)] = "",
    score: Annotated[int, Form(ge=0, le=9)] = 0,
    comment: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not tokens.csrf_ok(csrf, "enterprise", request.cookies.get(ENTERPRISE_COOKIE, "")):
        return render(
            request, "error.html", {"title": "页面已过期", "detail": "请刷新页面后重试", "status": 403}, 403
        )
    back = _BACK.get(subject, "/e").format(subject_id)
    try:
        ratings.rate(session, me.uscc, subject, subject_id, score, comment, now())
    except PayoutError as e:
        if isinstance(e, NotFoundError):
            raise
        return redirect(f"{back}#rating", str(e), "error")
    return redirect(f"{back}#rating", "感谢评价")


@dataclass(frozen=True)
class RatingRow:
    rating: Rating
    label: str
    title: str  # the policy's title
    due: dt.date | None  # the last day to answer a poor rating (None: no answer owed)
    overdue: bool
    may_answer: bool  # staff of the rated department who review applications


@console.get("")
def ratings_page(request: Request, user: ReportReader, session: SessionDep) -> Response:
    """Ratings by department and policy (the user's department only, if they have one): how many, the share
    满意 or better, the poor ones and those past their 5 working days; then every rating, poor unanswered
    first with the day it must be answered by, and the answer form for the rated department's staff."""
    today = china_date(now())
    mine = department(user)
    rows = ratings.listed(session, mine)
    titles = dict(
        session.execute(
            select(PolicyVersion.policy_id, PolicyVersion.title).order_by(PolicyVersion.version)
        ).all()
    )  # the latest version's title wins
    answers = may(user, "application_review")
    listed = []
    for r in rows:
        due = ratings.answer_due(r)
        listed.append(
            RatingRow(
                r,
                ratings.SCORES[r.score],
                titles.get(r.policy_id, r.policy_id),
                due,
                bool(due and today > due),
                answers and bool(user.department) and user.department == r.department,
            )
        )
    return render(
        request,
        "apply_ratings.html",
        {
            "rows": listed,
            "summary": ratings.tally(rows, today),
            "titles": titles,
            "department": mine,
        },
    )


@console.post("/{public_id}/answer")
def answer(
    user: ApplicationReviewer,
    session: SessionDep,
    public_id: Annotated[str, Path(max_length=32)],
    text: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        ratings.answer(session, public_id, text, by=user.username, now=now())
    except PayoutError as e:
        if isinstance(e, NotFoundError):
            raise
        return redirect("/console/ratings", str(e), "error")
    return redirect("/console/ratings", "已答复，企业可在办理进度页看到答复")


def _linked_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    tokens: TokensDep,
    token: str,
    status: int = 200,
    error: str | None = None,
) -> Response:
    """The item a rating link opens, with its rating form or the rating given; the neutral page for
    any link that cannot be used."""
    try:
        linked = ratings.by_link(session, token, now())
    except LinkError:
        return neutral(request)
    if linked.subject == "offer":
        offer = session.scalar(select(Offer).where(Offer.public_id == linked.subject_id))
        assert offer is not None
        policy_id, version, item_id = offer.policy_id, offer.policy_version, offer.item_id
        outcome = f"资金{money_exact_cn(offer.amount)}已到账"
    else:
        app = session.scalar(select(Application).where(Application.public_id == linked.subject_id))
        assert app is not None
        policy_id, version, item_id = app.policy_id, app.policy_version, app.item_id
        outcome = "申请已办结（未通过）"
    title, department = ratings._title(session, policy_id, version, item_id)
    nonce = LINK_NONCE.current(request)
    response = render(
        request,
        "rating_link.html",
        {
            "title": title,
            "department": department,
            "outcome": outcome,
            "token": token,
            "subject_id": linked.subject_id,
            "rating": ratings.of_subject(session, linked.uscc, linked.subject, linked.subject_id),
            "score_labels": ratings.SCORES,
            "form_csrf": tokens.csrf("rating", token_hash(token), nonce),
            "error": error,
        },
        status,
    )
    LINK_NONCE.keep(response, nonce, settings.cookie_secure)
    return response


@links.get("/{token}")
def rating_link(
    request: Request, token: str, session: SessionDep, settings: SettingsDep, tokens: TokensDep
) -> Response:
    if not _TOKEN.match(token):
        return neutral(request)
    if (busy := limited(request, token)) is not None:
        return busy
    return _linked_page(request, session, settings, tokens, token)


@links.post("/{token}")
def rate_by_link(
    request: Request,
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    tokens: TokensDep,
    subject_id: Annotated[str, Form(max_length=32)] = "",
    score: Annotated[int, Form(ge=0, le=9)] = 0,
    comment: Annotated[str, Form(max_length=1000)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not _TOKEN.match(token):
        return neutral(request)
    if (busy := limited(request, token)) is not None:
        return busy
    if not tokens.csrf_ok(csrf, "rating", token_hash(token), LINK_NONCE.given(request)):
        return render(request, "confirm_expired.html", {"token": token, "base": "/r/"}, status_code=403)
    try:
        ratings.rate_by_link(session, token, subject_id, score, comment, now())
    except (LinkError, NotFoundError):
        return neutral(request)
    except PayoutError as e:
        return _linked_page(request, session, settings, tokens, token, 422, str(e))
    return _linked_page(request, session, settings, tokens, token)
