"""帮办代办 on the console (/console/agency): an agent keeps an enterprise's 委托书, then opens, fills in,
uploads for and submits the enterprise's applications with the same form the enterprise uses, confirms
its apply-free offers (意愿确认) and supplies its missing data with the enterprise's own form. Every act
is the agent's in the audit log (`agent:<username>`); anything of an enterprise without the agent's live
委托书 is not found. The agent revokes a 委托书 on the enterprise's written request; the enterprise,
signed in, lists and revokes its 委托书 at /e/mandates. The domain is `portal.agency`,
`portal.applications` and `portal.supplied`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlmodel import Session

from api.deps import Allow, CurrentEnterprise, SessionDep, SettingsDep, TokensDep
from api.enterprise_auth import ENTERPRISE_COOKIE
from api.routes import now, redirect, render
from api.routes.applications import (
    _page,
    apply_item,
    known_values,
    open_for_applying,
    policy_of,
    save_or_submit,
    upload_material,
)
from api.routes.supplied import evidence_dir, out, read_evidence, supply
from payouts import offers
from payouts.errors import NotFoundError
from payouts.models import StaffUser
from portal import agency, supplied
from portal import applications as apps
from portal.models import Application
from rules import formats
from rules.errors import PayoutError

console = APIRouter(prefix="/console/agency", include_in_schema=False)
enterprise_pages = APIRouter(prefix="/e/mandates", include_in_schema=False)
Agent = Annotated[StaffUser, Depends(Allow("act_for"))]


def load_agent_application(
    public_id: Annotated[str, Path(max_length=32)], user: Agent, session: SessionDep
) -> Application:
    """An application of an enterprise whose 委托书 the agent holds; 404 for every other."""
    app = apps.get(session, public_id)
    agency.mandate_for(session, user.username, app.uscc)
    return app


AgentApplication = Annotated[Application, Depends(load_agent_application)]


@console.get("")
def agency_page(request: Request, user: Agent, session: SessionDep) -> Response:
    mandates = agency.mandates(session, user.username)
    today = (formats.china(now()) or now()).date()
    return render(
        request,
        "apply_agency.html",
        {
            "mandates": mandates,
            "applications": {m.uscc: apps.applications_of(session, m.uscc) for m in mandates},
            "items": open_for_applying(request, today),
            "labels": apps.STATE_LABELS,
            "offers": {
                m.uscc: [o for o in agency.offers_of(session, user.username, m.uscc) if agency.confirmable(o)]
                for m in mandates
            },
            "offer_label": offers.label,
        },
    )


@console.post("/mandates")
def register_mandate(
    user: Agent,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    uscc: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    try:
        m = agency.register(
            session,
            user.username,
            uscc,
            read_evidence(file),
            file.filename or "",
            evidence_dir(settings),
            now(),
        )
    except PayoutError as e:
        return redirect("/console/agency", str(e), "error")
    return redirect("/console/agency", f"已登记企业 {m.uscc} 的委托书，可代为办理")


@console.post("/{uscc}/apply/{policy_id}/{item_id}")
def open_for(
    request: Request,
    user: Agent,
    session: SessionDep,
    settings: SettingsDep,
    uscc: Annotated[str, Path(max_length=18)],
    policy_id: Annotated[str, Path(max_length=64)],
    item_id: Annotated[str, Path(max_length=64)],
) -> Response:
    """Open the enterprise's application (pre-filled from the data) on its behalf."""
    mandate = agency.mandate_for(session, user.username, uscc)
    policy = policy_of(request, policy_id)
    item = apply_item(policy, item_id)
    known = known_values(session, settings, policy, item, mandate.uscc)
    app = apps.open_application(
        session, policy, item.id, mandate.uscc, known, now(), actor=agency.actor(user.username)
    )
    return redirect(f"/console/agency/applications/{app.public_id}")


def _agent_page(
    request: Request, session: Session, app: Application, status: int = 200, **context: object
) -> Response:
    return _page(
        request,
        session,
        None,  # type: ignore[arg-type]
        app,
        status,
        layout="base.html",
        form_base=f"/console/agency/applications/{app.public_id}",
        back="/console/agency",
        back_label="帮办代办",
        ent_csrf=getattr(request.state, "csrf", ""),
        agent_view=True,
        **context,
    )


@console.get("/applications/{public_id}")
def agent_application(request: Request, app: AgentApplication, session: SessionDep) -> Response:
    return _agent_page(request, session, app)


@console.post("/applications/{public_id}")
async def agent_save(request: Request, app: AgentApplication, user: Agent, session: SessionDep) -> Response:
    form = await request.form()  # the console's CSRF check has read it already
    return save_or_submit(
        request,
        session,
        app,
        form,
        agency.actor(user.username),
        lambda **c: _agent_page(request, session, app, 422, **c),
    )


@console.post("/applications/{public_id}/materials")
def agent_upload(
    request: Request,
    app: AgentApplication,
    user: Agent,
    session: SessionDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File()],
    material_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    return upload_material(
        request,
        session,
        settings,
        app,
        file,
        material_id,
        agency.actor(user.username),
        lambda **c: _agent_page(request, session, app, 422, **c),
    )


@console.get("/applications/{public_id}/materials/{material}")
def agent_material(
    app: AgentApplication,
    session: SessionDep,
    settings: SettingsDep,
    material: Annotated[str, Path(max_length=32)],
) -> Response:
    path, media, name = apps.material_file(session, app, material, evidence_dir(settings))
    return FileResponse(path, media_type=media, filename=name, content_disposition_type="attachment")


@console.post("/offers/{public_id}/confirm")
def confirm_for(user: Agent, session: SessionDep, public_id: Annotated[str, Path(max_length=32)]) -> Response:
    """Confirm the enterprise's apply-free offer (意愿确认) on its behalf."""
    try:
        offer = agency.confirm_offer(session, user.username, public_id, now())
    except PayoutError as e:
        if isinstance(e, NotFoundError):
            raise
        return redirect("/console/agency", str(e), "error")
    return redirect(
        "/console/agency", f"已代企业 {offer.uscc} 确认领取 {formats.money_exact_cn(offer.amount)}"
    )


@console.post("/mandates/{public_id}/revoke")
def revoke_for(
    user: Agent,
    session: SessionDep,
    public_id: Annotated[str, Path(max_length=32)],
    request_text: Annotated[str, Form(alias="request", max_length=500)] = "",
) -> Response:
    """Revoke a 委托书 on the enterprise's written request (named in the form)."""
    try:
        m = agency.revoke_by_staff(session, user.username, public_id, request_text, now())
    except PayoutError as e:
        if isinstance(e, NotFoundError):
            raise
        return redirect("/console/agency", str(e), "error")
    return redirect("/console/agency", f"已撤销企业 {m.uscc} 的委托书，不能再代为办理")


def _supply_page(
    request: Request, session: Session, uscc: str, status: int = 200, **context: object
) -> Response:
    lines = supplied.missing_lines(session, request.app.state.standings, uscc)
    groups, refusals = supplied.asks(lines)
    mine = [out(session, r) for r in supplied.of_enterprise(session, uscc)]
    return render(
        request,
        "supplied_enterprise.html",
        {
            "agent_view": True,
            "uscc": uscc,
            "supply_action": f"/console/agency/{uscc}/supplied",
            "ent_csrf": getattr(request.state, "csrf", ""),
            "groups": groups,
            "refusals": refusals,
            "asked": sum(len(g.asks) for g in groups),
            "mine": mine,
            "titles": supplied.item_titles(session, supplied.of_enterprise(session, uscc)),
            "pending": {(r.field, r.year): r for r in reversed(mine) if r.state != "rejected"},
            "max_mb": supplied.MAX_EVIDENCE // (1024 * 1024),
            **context,
        },
        status,
    )


@console.get("/{uscc}/supplied")
def supply_page(
    request: Request, user: Agent, session: SessionDep, uscc: Annotated[str, Path(max_length=18)]
) -> Response:
    """The enterprise's missing data, for the agent to supply on its behalf."""
    mandate = agency.mandate_for(session, user.username, uscc)
    return _supply_page(request, session, mandate.uscc)


@console.post("/{uscc}/supplied")
def supply_for(
    request: Request,
    user: Agent,
    session: SessionDep,
    settings: SettingsDep,
    uscc: Annotated[str, Path(max_length=18)],
    evidence: Annotated[UploadFile, File()],
    key: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies defaults)
    value: Annotated[list[str], Form()] = [],  # noqa: B006
    note: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    mandate = agency.mandate_for(session, user.username, uscc)
    try:
        rows = supply(
            request, session, settings, mandate.uscc, key, value, evidence, note, agency.actor(user.username)
        )
    except PayoutError as e:
        typed = dict(zip(key, value, strict=False))
        return _supply_page(request, session, mandate.uscc, 422, error=str(e), typed=typed)
    return redirect(
        f"/console/agency/{mandate.uscc}/supplied", f"已代为提交 {len(rows)} 项数据，等待数据所在部门核实"
    )


# The enterprise's own page: who may act for it, and revoking that.


@enterprise_pages.get("")
def my_mandates(request: Request, me: CurrentEnterprise, session: SessionDep) -> Response:
    return render(
        request,
        "ent_mandates.html",
        {
            "ent": me,
            "ent_csrf": request.state.enterprise_csrf,
            "mandates": list(reversed(agency.for_enterprise(session, me.uscc))),
        },
    )


@enterprise_pages.post("/{public_id}/revoke")
def my_revoke(
    request: Request,
    me: CurrentEnterprise,
    session: SessionDep,
    tokens: TokensDep,
    public_id: Annotated[str, Path(max_length=32)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not tokens.csrf_ok(csrf, "enterprise", request.cookies.get(ENTERPRISE_COOKIE, "")):
        return render(
            request, "error.html", {"title": "页面已过期", "detail": "请刷新页面后重试", "status": 403}, 403
        )
    try:
        agency.revoke_by_enterprise(session, me.uscc, public_id, now())
    except PayoutError as e:
        if isinstance(e, NotFoundError):
            raise
        return redirect("/e/mandates", str(e), "error")
    return redirect("/e/mandates", "已撤销委托，帮办代办工作人员不能再代为办理")
