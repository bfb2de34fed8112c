"""Ratings (好差评): the enterprise rates an ended item (/e/ratings, from the application or the offer's
timeline); the rated department reads its ratings and answers them (/console/ratings), a poor one
within 5 working days by the official calendar. The domain is `portal.ratings`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from api.deps import ApplicationReviewer, CurrentEnterprise, SessionDep, TokensDep
from api.enterprise_auth import ENTERPRISE_COOKIE
from api.routes import now, redirect, render
from payouts.errors import NotFoundError
from portal import ratings
from portal.models import Rating
from rules.errors import PayoutError
from rules.workdays import china_date, working_day_after

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
    due: object  # the last day to answer a poor rating (None: no answer owed)
    overdue: bool


@console.get("")
def ratings_page(request: Request, user: ApplicationReviewer, session: SessionDep) -> Response:
    """The department's ratings by policy, poor unanswered ones first with the day they must be answered by."""
    today = china_date(now())
    rows = []
    for r in ratings.for_department(session, user.username):
        owed = r.score <= ratings.POOR and r.answer is None
        due = working_day_after(china_date(r.rated_at), ratings.ANSWER_DAYS, strict=False) if owed else None
        rows.append(RatingRow(r, ratings.SCORES[r.score], due, bool(due and today > due)))
    by_policy: dict[str, list[int]] = {}
    for row in rows:
        by_policy.setdefault(row.rating.policy_id, []).append(row.rating.score)
    summary = {
        pid: (len(s), sum(1 for x in s if x >= 4), sum(1 for x in s if x <= ratings.POOR))
        for pid, s in sorted(by_policy.items())
    }
    return render(
        request,
        "apply_ratings.html",
        {"rows": rows, "summary": summary, "department": user.department},
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
