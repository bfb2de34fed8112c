"""Applications (快申快享), the enterprise's pages (/e/apply, /e/applications): open an application for an
apply item with every known value filled in, fill in the rest, upload the materials, save, submit, and
follow it until its offer is paid. Server-rendered, mobile-first, no JavaScript.

Every page reads only the signed-in enterprise's own application (`api.deps.load_enterprise_application`:
404 for anyone else's), and every form carries the enterprise session's CSRF token. The domain is
`portal.applications`; the working-day clock is `reports.sla.application_clock` (the one SLA).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Path, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlmodel import Session

from api.deps import (
    ApplicationDep,
    ApplicationReviewer,
    CurrentEnterprise,
    EnterpriseApplicationDep,
    SessionDep,
    SettingsDep,
    TokensDep,
    writes,
)
from api.enterprise_auth import ENTERPRISE_COOKIE
from api.policystore import PolicyStore
from api.routes import now, redirect, render
from api.routes.supplied import evidence_dir, read_evidence
from api.settings import Settings
from matcher.runfolder import parse_manifest
from payouts import audit
from payouts.errors import NotFoundError
from payouts.models import Offer
from portal import agency, ratings
from portal import applications as apps
from portal import standings as portal_standings
from portal.models import Application
from reports.sla import Clock, application_clock
from rules.catalog import CATALOG
from rules.errors import PayoutError, ZhidaError
from rules.policy import Item, Policy

pages = APIRouter(prefix="/e", include_in_schema=False)
log = logging.getLogger("zhida.applications")


def policy_of(request: Request, policy_id: str, version: int | None = None) -> Policy:
    """A published policy (its latest version, or `version`): 404 if there is none."""
    store: PolicyStore = request.app.state.store
    if version is None:
        record = store.latest_published(policy_id)
        if record is None:
            raise NotFoundError(f"没有政策 {policy_id}")
    else:
        record = store.get(policy_id, version, "published")
    return store.parsed(record)


_PARSED: dict[tuple[str, int, str], Policy] = {}  # published versions never change: parse each once


def open_for_applying(request: Request, today: dt.date) -> list[tuple[Policy, Item]]:
    """The apply items (快申快享) of the latest published version of every policy open on `today`."""
    store: PolicyStore = request.app.state.store
    seen: set[str] = set()
    out = []
    for record in store.list("published"):
        if record.id in seen:
            continue
        seen.add(record.id)
        if not record.valid_from <= today.isoformat() <= record.valid_to:
            continue
        key = (record.id, record.version, record.sha256)
        if key not in _PARSED:
            _PARSED[key] = store.parsed(record)
        policy = _PARSED[key]
        out += [(policy, i) for i in policy.items if i.mode == "apply" and policy.guide is not None]
    return out


def apply_item(policy: Policy, item_id: str) -> Item:
    item = next((i for i in policy.items if i.id == item_id and i.mode == "apply"), None)
    if item is None:
        raise NotFoundError(f"政策 {policy.id} 没有可申请的事项 {item_id}")
    return item


def known_values(
    session: Session, settings: Settings, policy: Policy, item: Item, uscc: str
) -> dict[str, apps.Known]:
    """What the latest match run's registry snapshot holds for the enterprise, for the form's fields.

    Read once, when the application is opened; an unreadable or missing snapshot leaves the form to the
    enterprise (the fields it asks are typed in; the others stay unknown for the reviewers)."""
    run = portal_standings.latest_run(session)
    if run is None:
        return {}
    manifest = parse_manifest(run.manifest)
    folder = FilePath(manifest.snapshot.path)
    if not folder.is_absolute():
        folder = settings.data_dir.parent / folder
    try:
        fields = apps.form_fields(policy, item)
        return apps.known_from_snapshot(  # and the enterprise's region (region-scoped staff)
            folder, manifest.as_of, policy.assessment_year, uscc, [*fields, *{apps.REGION} - set(fields)]
        )
    except (ZhidaError, OSError) as e:
        log.warning("pre-fill skipped", extra={"fields": {"detail": str(e)[:200]}})
        return {}


def _csrf_ok(request: Request, tokens: TokensDep, csrf: str) -> bool:
    return tokens.csrf_ok(csrf, "enterprise", request.cookies.get(ENTERPRISE_COOKIE, ""))


def _expired(request: Request) -> Response:
    return render(
        request, "error.html", {"title": "页面已过期", "detail": "请刷新页面后重试", "status": 403}, 403
    )


@dataclass(frozen=True)
class FieldRow:
    """One data line of the form: known (with source and date), to fill in, or unknown to the data."""

    name: str
    label: str
    unit: str
    type: str
    values: tuple[str, ...]
    known: apps.Known | None
    value: str | None  # what the enterprise typed
    asked: bool


def warn_days(request: Request) -> int:
    """Working days before a limit when its light turns yellow: the service's SLA setting (ZHIDA_SLA_*)."""
    return int(request.app.state.settings.sla().warn_days)


def clock(session: Session, app: Application, at: dt.datetime, warn: int = 1) -> Clock | None:
    """The application's working-day clock (`reports.sla.application_clock`, the one SLA)."""
    pauses = [(r.returned_at, r.resumed_at) for r in apps.returns(session, app)]
    return application_clock(
        app.submitted_at,
        app.decided_at,
        app.time_limit_days,
        pauses,
        at,
        paused=app.state == "returned",
        warn_days=warn,
    )


def _rows(
    policy: Policy, item: Item, app: Application, typed: dict[str, str] | None = None
) -> list[FieldRow]:
    known, given = apps.prefilled(app), {**apps.supplied(app), **(typed or {})}
    asked = set(item.application.fields if item.application else [])
    out = []
    for name in apps.form_fields(policy, item):
        f = CATALOG[name]
        out.append(
            FieldRow(name, f.label, f.unit, f.type, f.values, known.get(name), given.get(name), name in asked)
        )
    return out


def app_acted_by(session: Session, app: Application, agent: str) -> bool:
    """Whether this agent acted on the application (opened, saved, uploaded or submitted it)."""
    return any(e.actor == agency.actor(agent) for e in audit.history(session, "application", app.public_id))


def _page(
    request: Request,
    session: SessionDep,
    me: CurrentEnterprise,
    app: Application,
    status: int = 200,
    **context: object,
) -> Response:
    policy = policy_of(request, app.policy_id, app.policy_version)
    item = policy.item(app.item_id)
    uploads = {m.material_id: m for m in apps.materials(session, app)}
    corrections = [(r, json.loads(r.corrections)) for r in apps.returns(session, app)]
    return render(
        request,
        "apply_form.html",
        {
            "ent": me,
            "ent_csrf": getattr(request.state, "enterprise_csrf", ""),
            "app": app,
            "policy": policy,
            "item": item,
            "rows": _rows(policy, item, app, context.pop("typed_fields", None)),  # type: ignore[arg-type]
            "answers": {**apps.answers(app), **context.pop("typed_answers", {})},  # type: ignore[dict-item]
            "uploads": uploads,
            "corrections": corrections,
            "clock": clock(session, app, now(), warn_days(request)),
            "state_label": apps.STATE_LABELS[app.state],
            "editable": app.state in apps.EDITABLE,
            "offer": session.get(Offer, app.offer_id) if app.offer_id else None,
            "max_mb": 10,
            "form_base": f"/e/applications/{app.public_id}",
            "agents": [
                m for m in agency.for_enterprise(session, app.uscc) if app_acted_by(session, app, m.agent)
            ],
            "rating": ratings.of_subject(session, app.uscc, "application", app.public_id),
            "score_labels": ratings.SCORES,
            **context,
        },
        status_code=status,
    )


def save_or_submit(
    request: Request,
    session: Session,
    app: Application,
    form: Any,
    actor: str,
    again: Callable[..., Response],
) -> Response:
    """Save the typed answers and fields; with `do=submit`, submit as well (refused with all that lacks,
    shown on the form again by `again`). Shared by the enterprise and 帮办代办."""
    policy = policy_of(request, app.policy_id, app.policy_version)
    # Only the keys the item asks are read; each value is bounded before the domain checks its type.
    answers = {
        k[2:]: str(v)[:600] for k, v in form.multi_items() if k.startswith("a_") and isinstance(v, str)
    }
    fields = {k[2:]: str(v)[:300] for k, v in form.multi_items() if k.startswith("f_") and isinstance(v, str)}
    here = str(request.url.path)
    try:
        apps.save(session, policy, app, given_answers=answers, given_fields=fields, actor=actor, now=now())
        if form.get("do") == "submit":
            apps.submit(session, policy, app, actor=actor, now=now())
            return redirect(here, "申请已提交，请留意审核进度")
    except PayoutError as e:
        return again(error=str(e), typed_answers=answers, typed_fields=fields)
    return redirect(here, "草稿已保存")


def upload_material(
    request: Request,
    session: Session,
    settings: Settings,
    app: Application,
    file: UploadFile,
    material_id: str,
    actor: str,
    again: Callable[..., Response],
) -> Response:
    """Upload one material of the list (a PDF or an image, at most 10 MB); it replaces an earlier one."""
    policy = policy_of(request, app.policy_id, app.policy_version)
    try:
        apps.upload(
            session,
            policy,
            app,
            material_id,
            read_evidence(file),
            file.filename or "",
            evidence_dir(settings),
            actor=actor,
            now=now(),
        )
    except PayoutError as e:
        return again(error=str(e))
    return redirect(str(request.url.path).removesuffix("/materials") + "#materials", "材料已上传")


@pages.get("/apply/{policy_id}/{item_id}")
def apply_start(
    request: Request,
    me: CurrentEnterprise,
    session: SessionDep,
    policy_id: Annotated[str, Path(max_length=64)],
    item_id: Annotated[str, Path(max_length=64)],
) -> Response:
    """The item's guide and what the application will ask, with the button that opens it."""
    policy = policy_of(request, policy_id)
    item = apply_item(policy, item_id)
    mine = next(
        (
            a
            for a in apps.applications_of(session, me.uscc)
            if (a.policy_id, a.item_id, a.period) == (policy.id, item.id, policy.period)
            and a.state != "rejected"
        ),
        None,
    )
    return render(
        request,
        "apply_start.html",
        {"ent": me, "ent_csrf": request.state.enterprise_csrf, "policy": policy, "item": item, "mine": mine},
    )


@pages.post("/apply/{policy_id}/{item_id}")
def apply_open(
    request: Request,
    me: CurrentEnterprise,
    session: SessionDep,
    settings: SettingsDep,
    tokens: TokensDep,
    policy_id: Annotated[str, Path(max_length=64)],
    item_id: Annotated[str, Path(max_length=64)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Open (or reopen) the enterprise's application, pre-filled from the data."""
    if not _csrf_ok(request, tokens, csrf):
        return _expired(request)
    policy = policy_of(request, policy_id)
    item = apply_item(policy, item_id)
    known = known_values(session, settings, policy, item, me.uscc)
    app = apps.open_application(session, policy, item.id, me.uscc, known, now())
    return redirect(f"/e/applications/{app.public_id}")


@pages.get("/applications")
def my_applications(request: Request, me: CurrentEnterprise, session: SessionDep) -> Response:
    rows = apps.applications_of(session, me.uscc)
    titles = {}
    for a in rows:
        try:
            p = policy_of(request, a.policy_id, a.policy_version)
            titles[a.id] = (p.title, p.item(a.item_id).title)
        except ZhidaError:
            titles[a.id] = (a.policy_id, a.item_id)
    return render(
        request,
        "apply_list.html",
        {
            "ent": me,
            "ent_csrf": request.state.enterprise_csrf,
            "rows": rows,
            "titles": titles,
            "labels": apps.STATE_LABELS,
        },
    )


@pages.get("/applications/{public_id}")
def application_page(
    request: Request, app: EnterpriseApplicationDep, me: CurrentEnterprise, session: SessionDep
) -> Response:
    return _page(request, session, me, app)


@pages.post("/applications/{public_id}")
async def application_save(
    request: Request,
    app: EnterpriseApplicationDep,
    me: CurrentEnterprise,
    session: SessionDep,
    tokens: TokensDep,
) -> Response:
    """Save the typed answers and fields; with `do=submit`, submit as well (refused with all that lacks)."""
    form = await request.form()
    if not _csrf_ok(request, tokens, str(form.get("csrf", ""))[:100]):
        return _expired(request)
    return save_or_submit(
        request,
        session,
        app,
        form,
        f"enterprise:{me.uscc}",
        lambda **c: _page(request, session, me, app, 422, **c),
    )


@pages.post("/applications/{public_id}/materials")
def application_upload(
    request: Request,
    app: EnterpriseApplicationDep,
    me: CurrentEnterprise,
    session: SessionDep,
    settings: SettingsDep,
    tokens: TokensDep,
    file: Annotated[UploadFile, File()],
    material_id: Annotated[str, Form(max_length=64)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Upload one material of the list (a PDF or an image, at most 10 MB); it replaces an earlier one."""
    if not _csrf_ok(request, tokens, csrf):
        return _expired(request)
    return upload_material(
        request,
        session,
        settings,
        app,
        file,
        material_id,
        f"enterprise:{me.uscc}",
        lambda **c: _page(request, session, me, app, 422, **c),
    )


@pages.get("/applications/{public_id}/materials/{material}")
def application_material(
    app: EnterpriseApplicationDep,
    session: SessionDep,
    settings: SettingsDep,
    material: Annotated[str, Path(max_length=32)],
) -> Response:
    """One of the enterprise's own uploads, as an attachment with its sniffed type."""
    path, media, name = apps.material_file(session, app, material, evidence_dir(settings))
    return FileResponse(path, media_type=media, filename=name)


# --- The reviewing departments' console (/console/applications) ---------------------------------------------

console = APIRouter(prefix="/console/applications", include_in_schema=False)
QUEUES = {
    "submitted": ("待审核", (apps.S.SUBMITTED,)),
    "returned": ("补正中", (apps.S.RETURNED,)),
    "decided": ("已办结", (apps.S.ACCEPTED, apps.S.REJECTED)),
}


@dataclass(frozen=True)
class QueueRow:
    app: Application
    title: str
    clock: Clock | None
    waiting: list[str]


@console.get("")
def queue_page(
    request: Request, user: ApplicationReviewer, session: SessionDep, state: str = "submitted"
) -> Response:
    """The department's applications with the committed time limit and its light, oldest first."""
    label, states = QUEUES.get(state, QUEUES["submitted"])
    at, warn = now(), warn_days(request)
    rows = []
    for a in apps.queue(session, user.username, states):
        try:
            p = policy_of(request, a.policy_id, a.policy_version)
            title = (
                p.title if p.item(a.item_id).title in p.title else f"{p.title} · {p.item(a.item_id).title}"
            )
        except ZhidaError:
            title = f"{a.policy_id} / {a.item_id}"
        rows.append(QueueRow(a, title, clock(session, a, at, warn), apps.waiting_opinions(session, a)))
    lights = {c: sum(1 for r in rows if r.clock and r.clock.light == c) for c in ("red", "yellow", "green")}
    return render(
        request,
        "apply_queue.html",
        {
            "rows": rows,
            "state": state if state in QUEUES else "submitted",
            "queues": {k: v[0] for k, v in QUEUES.items()},
            "label": label,
            "lights": lights,
            "department": user.department,
            "labels": apps.STATE_LABELS,
            "warn": warn,
        },
    )


@console.get("/{public_id}")
def review_page(
    request: Request, app: ApplicationDep, user: ApplicationReviewer, session: SessionDep, status: int = 200
) -> Response:
    policy = policy_of(request, app.policy_id, app.policy_version)
    item = policy.item(app.item_id)
    return render(
        request,
        "apply_review.html",
        {
            "app": app,
            "policy": policy,
            "item": item,
            "rows": _rows(policy, item, app),
            "answers": apps.answers(app),
            "uploads": {m.material_id: m for m in apps.materials(session, app)},
            "corrections": [(r, json.loads(r.corrections)) for r in apps.returns(session, app)],
            "opinions": apps.opinions(session, app),
            "waiting": apps.waiting_opinions(session, app),
            "clock": clock(session, app, now(), warn_days(request)),
            "lead": app.lead_department in apps.acts_for(session, user, app),
            "reviewers": apps.reviewers(app),
            "department": user.department,
            "app_state_label": apps.STATE_LABELS[app.state],
            "offer": session.get(Offer, app.offer_id) if app.offer_id else None,
            "lacking": apps.lacking(session, policy, app) if app.state == "submitted" else [],
        },
        status_code=status,
    )


def _back(app: Application, message: str, kind: str = "ok") -> Response:
    return redirect(f"/console/applications/{app.public_id}", message, kind)


@console.post("/{public_id}/opinion")
def opinion_action(
    app: ApplicationDep,
    user: ApplicationReviewer,
    session: SessionDep,
    agree: Annotated[str, Form(max_length=8)] = "",
    note: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        apps.give_opinion(
            session, app.public_id, agree=agree == "yes", note=note, by=user.username, now=now()
        )
    except PayoutError as e:
        return _back(app, str(e), "error")
    return _back(app, "会签意见已记录")


@console.post("/{public_id}/return")
def return_action(
    app: ApplicationDep,
    user: ApplicationReviewer,
    session: SessionDep,
    corrections: Annotated[str, Form(max_length=5000)] = "",
) -> Response:
    """Return for correction: one line per thing to correct, all at once."""
    try:
        apps.return_for_correction(
            session, app.public_id, corrections.splitlines(), by=user.username, now=now()
        )
    except PayoutError as e:
        return _back(app, str(e), "error")
    return _back(app, "已退回补正，计时暂停；企业可看到需补正的全部内容")


@console.post("/{public_id}/reject")
def reject_action(
    app: ApplicationDep,
    user: ApplicationReviewer,
    session: SessionDep,
    reason: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    try:
        apps.reject(session, app.public_id, reason, by=user.username, now=now())
    except PayoutError as e:
        return _back(app, str(e), "error")
    return _back(app, "已作出不予通过的决定，企业可看到理由")


@console.post("/{public_id}/accept")
def accept_action(
    request: Request,
    app: ApplicationDep,
    user: ApplicationReviewer,
    session: SessionDep,
    amount: Annotated[str, Form(max_length=24)] = "",
) -> Response:
    """Accept: the offer is made, confirmed, and waits for the next batch of the policy."""
    policy = policy_of(request, app.policy_id, app.policy_version)
    try:
        value = Decimal(amount.replace(",", "").strip()) if amount.strip() else None
    except InvalidOperation:
        return _back(app, f"核定金额应为数字（元）：{amount}", "error")
    try:
        offer = apps.accept(session, policy, app.public_id, amount=value, by=user.username, now=now())
    except PayoutError as e:
        return _back(app, str(e), "error")
    return _back(app, f"审核通过，核定金额 {offer.amount:,.2f} 元，待财政部门组批拨付")


@console.get("/{public_id}/materials/{material}")
@writes  # the download is audited
def review_material(
    app: ApplicationDep,
    user: ApplicationReviewer,
    session: SessionDep,
    settings: SettingsDep,
    material: Annotated[str, Path(max_length=32)],
) -> Response:
    path, media, name = apps.material_file(session, app, material, evidence_dir(settings))
    audit.record(
        session,
        now(),
        user.username,
        "apply_view_material",
        "application",
        app.public_id,
        None,
        None,
        None,
        material=material,
    )
    response = FileResponse(path, media_type=media, filename=name, content_disposition_type="attachment")
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
