"""帮办代办 on the console (/console/agency): an agent keeps an enterprise's 委托书, then opens, fills in,
uploads for and submits the enterprise's applications with the same form the enterprise uses. Every act
is the agent's in the audit log (`agent:<username>`); an application of an enterprise without the
agent's 委托书 is not found. The domain is `portal.agency` and `portal.applications`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlmodel import Session

from api.deps import Allow, SessionDep, SettingsDep
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
from api.routes.supplied import evidence_dir, read_evidence
from payouts.models import StaffUser
from portal import agency
from portal import applications as apps
from portal.models import Application
from rules import formats
from rules.errors import PayoutError

console = APIRouter(prefix="/console/agency", include_in_schema=False)
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
