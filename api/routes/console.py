"""The console's front page: SLA lights per stage and the funnel, for the user's department."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep, SettingsDep, StoreDep, may, scoped_policy_ids, user_scope
from api.routes import now, render
from api.routes.reports import funnel_of
from payouts.models import PolicyVersion
from reports.sla import lights

COLOURS = [("green", "绿灯"), ("yellow", "黄灯"), ("red", "红灯")]

pages = APIRouter(include_in_schema=False)


@pages.get("/console")
def dashboard(
    request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep, store: StoreDep
) -> Response:
    scope = scoped_policy_ids(session, store, user)
    region = user_scope(user).region  # a region-scoped user counts their own enterprises only
    rows = lights(session, settings.sla(), now(), scope, region)
    stages = funnel_of(session, scope, None, None, region).stages if may(user, "report_read") else []
    return render(
        request,
        "dashboard.html",
        {
            "lights": [r for r in rows if r.policy_id is None],
            "by_policy": [r for r in rows if r.policy_id],
            "stages": stages,
            "colours": COLOURS,
            "titles": dict(
                session.execute(
                    select(PolicyVersion.policy_id, PolicyVersion.title).order_by(PolicyVersion.version)
                ).all()
            ),
            "can_list": may(user, "offer_read"),
            "can_supervise": may(user, "report_read"),
        },
    )
