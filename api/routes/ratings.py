"""Ratings (好差评): the enterprise rates an ended item (/e/ratings, from the application or the offer's
timeline); the console lists them by department and policy for every report reader (their own department's
only, if they have one), and the rated department's staff answer them (/console/ratings), a poor one
within 5 working days by the official calendar. The domain is `portal.ratings`."""

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
    TokensDep,
    department,
    may,
)
from api.enterprise_auth import ENTERPRISE_COOKIE
from api.routes import now, redirect, render
from payouts.errors import NotFoundError
from payouts.models import PolicyVersion
from portal import ratings
from portal.models import Rating
from rules.errors import PayoutError
from rules.workdays import china_date

pages = APIRouter(prefix="/e/ratings", include_in_schema=False)
console = APIRouter(prefix="/console/ratings", include_in_schema=False)
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
