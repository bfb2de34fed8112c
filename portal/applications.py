"""Applications (快申快享): an enterprise applies for an apply item (`mode: apply`) with everything the
government already knows filled in; the reviewing departments decide within the policy's committed time
limit; an accepted application becomes an offer, already confirmed, that joins batches like any other.

```
application:  draft ──submit──► submitted ──accept (lead)──► accepted → offer (confirmed) → batch → paid
                ▲                 │  ▲   └──reject (lead, reason)──► rejected
                └── save, upload  │  └──submit again──┐
                                  └──return (补正)──► returned (the clock stops)
```
- Pre-filled values (`Known`) are what the registry snapshot held for the enterprise when it opened the
  application, each with its source department and date; the enterprise does not type them again.
  It fills in only the catalog fields the item lists in `application.fields` that the data lacks.
- A return for correction lists everything to correct at once (一次性告知); the working-day clock stops
  from the return until the enterprise submits again (`ApplicationReturn`; counted by
  `rules.workdays.working_days_running`).
- Joint review (会签): every reviewing department records its opinion; the lead (the policy's first
  reviewer) decides once all the others have given theirs.
- Accepting never takes a policy past its budget: the policy's version rows are locked (as batches
  lock them) and the live offers of the policy and period are summed with the new amount, exactly.
- An enterprise sees only its own applications and materials; staff only those their department reviews.
  Anything else is "not found", exactly as a nonexistent one.
- Every step is an audit event (entity "application").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from matcher.profile import build_profile, profile_row
from matcher.snapshot import load_snapshot
from payouts import audit, scope, tokens
from payouts.errors import NotFoundError, RoleError
from payouts.models import CLOSED_STATES, Offer, OfferState, Payee, PolicyVersion, StaffUser
from payouts.users import require
from portal.models import (
    Application,
    ApplicationMaterial,
    ApplicationOpinion,
    ApplicationReturn,
    ApplicationState,
)
from portal.supplied import EVIDENCE_TYPES, enterprise_actor, parse_value, sniff
from rules import formats
from rules.catalog import CATALOG
from rules.errors import BudgetError, PayoutError, StateError
from rules.expressions import parse
from rules.policy import Item, Policy, Question
from rules.reference import evaluate_amount, evaluate_condition

S = ApplicationState
FEN = Decimal("0.01")
STATE_LABELS = {
    "draft": "草稿",
    "submitted": "审核中",
    "returned": "待补正",
    "accepted": "已通过",
    "rejected": "未通过",
}
# The enterprise may change its application in these states.
EDITABLE = (S.DRAFT, S.RETURNED)
_MAX_ANSWER = 500
_TRUE = {"true", "1", "是", "yes", "y"}
_FALSE = {"false", "0", "否", "no", "n"}

# The profile field whose value places an application in a region (read with the form's fields).
REGION = "region_code"


@dataclass(frozen=True)
class Known:
    """A value the government already holds for the enterprise: canonical text, who holds it, as of when."""

    value: str
    source: str
    as_of: dt.date


# --- what the data already says -------------------------------------------------------------------------


def form_fields(policy: Policy, item: Item) -> list[str]:
    """The catalog fields an application shows: those its conditions and amount read, then those it asks."""
    rules = [c.rule for c in (*policy.conditions, *item.conditions)]
    if item.amount is not None:
        rules.append(item.amount)
    names = [f for r in rules for f in parse(r).fields]
    names += item.application.fields if item.application else []
    return list(dict.fromkeys(names))


def canonical(value: object) -> str:
    """A profile value as the canonical text an application keeps (as `portal.supplied.parse_value` does)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()[:10]
    return str(value)


def typed(name: str, text: str) -> object:
    """Canonical text back to the value a rule reads, by the field's catalog type."""
    kind = CATALOG[name].type
    if kind == "integer":
        return int(text)
    if kind in ("money", "ratio"):
        return Decimal(text)
    if kind == "boolean":
        return text == "true"
    if kind == "date":
        return dt.date.fromisoformat(text)
    return text


def known_from_snapshot(
    snapshot: Path, as_of: dt.date, year: int, uscc: str, fields: list[str]
) -> dict[str, Known]:
    """What a registry snapshot holds for one enterprise: the profile fields of `fields` that are not empty,
    each with the department that holds it and the snapshot's date (its taken_at, else `as_of`)."""
    con = duckdb.connect()
    try:
        with tempfile.TemporaryDirectory(prefix="zhida-prefill-") as tmp:
            report = load_snapshot(_one_enterprise(con, snapshot, uscc, Path(tmp)), con, today=as_of)
            row = profile_row(con, build_profile(con, year, as_of), uscc)
    finally:
        con.close()
    day = report.taken_at or as_of
    return {
        f: Known(canonical(row[f]), CATALOG[f].department, day)
        for f in fields
        if row is not None and row.get(f) is not None
    }


def _one_enterprise(con: duckdb.DuckDBPyConnection, snapshot: Path, uscc: str, out: Path) -> Path:
    """A copy of the snapshot folder holding only this enterprise's rows (each table filtered on uscc),
    so that opening an application reads a few rows instead of validating every enterprise (docs/
    performance.md#pre-filling-an-application): the same loader, the same profile, one enterprise."""
    for source in sorted(snapshot.iterdir()):
        if source.suffix == ".parquet":
            con.execute(
                f"COPY (SELECT * FROM read_parquet(?) WHERE uscc = ?) TO '{out / source.name}' (FORMAT parquet)",
                [str(source), uscc],
            )
        elif source.suffix == ".csv":
            con.execute(
                f"COPY (SELECT * FROM read_csv(?, all_varchar = true, header = true) WHERE uscc = ?) "
                f"TO '{out / source.name}' (FORMAT csv, HEADER true)",
                [str(source), uscc],
            )
        elif source.name == "snapshot.yaml":
            shutil.copyfile(source, out / source.name)
    return out


# --- reading and the owners' rules ------------------------------------------------------------------------


def _yuan(value: Decimal) -> str:
    return f"{formats.money(value)}元"


def _json(text: str) -> Any:
    return json.loads(text) if text else {}


def prefilled(app: Application) -> dict[str, Known]:
    return {
        k: Known(v["value"], v["source"], dt.date.fromisoformat(v["as_of"]))
        for k, v in _json(app.prefilled).items()
    }


def supplied(app: Application) -> dict[str, str]:
    return dict(_json(app.supplied))


def answers(app: Application) -> dict[str, str]:
    return dict(_json(app.answers))


def reviewers(app: Application) -> list[str]:
    return list(_json(app.reviewers))


def _get(session: Session, public_id: str, *, lock: bool = False) -> Application:
    query = select(Application).where(Application.public_id == public_id)
    app = session.scalar(query.with_for_update() if lock else query)
    if app is None:
        raise NotFoundError(f"没有申请 {public_id}")
    return app


def get(session: Session, public_id: str) -> Application:
    """An application by its public id, for a caller that authorizes it itself (帮办代办: `portal.agency`)."""
    return _get(session, public_id)


def of_enterprise(session: Session, uscc: str, public_id: str, *, lock: bool = False) -> Application:
    """The enterprise's own application; another's is not found, exactly as a nonexistent one."""
    app = _get(session, public_id, lock=lock)
    if app.uscc != uscc:
        raise NotFoundError(f"没有申请 {public_id}")
    return app


def applications_of(session: Session, uscc: str) -> list[Application]:
    return list(
        session.scalars(
            select(Application).where(Application.uscc == uscc).order_by(Application.id.desc())
        ).all()
    )


def _staff(session: Session, username: str) -> StaffUser:
    user = require(session, username, "application_review")
    if not user.department:
        raise RoleError(f"用户 {username} 不属于任何部门，不能审核申请")
    return user


def for_department(session: Session, username: str, public_id: str, *, lock: bool = False) -> Application:
    """An application the user's department reviews; any other is not found. Drafts are the enterprise's."""
    user = _staff(session, username)
    app = _get(session, public_id, lock=lock)
    if app.state == S.DRAFT or not _acting(scope.of(session, user), app):
        raise NotFoundError(f"没有申请 {public_id}")
    return app


def acts_for(session: Session, user: StaffUser, app: Application) -> list[str]:
    """The application's reviewing departments the user acts for, in the policy's order (the lead first):
    those that are the user's own department or one of its superiors (芙蓉区财政局 for 长沙市财政局), for an
    enterprise of the user's region (`payouts/scope.py`); [] for anyone else."""
    return _acting(scope.of(session, user), app)


def _acting(mine: scope.Scope, app: Application) -> list[str]:
    if not mine.region_code(app.region_code):
        return []
    names = mine.departments or frozenset()
    return [d for d in reviewers(app) if d in names]


def queue(
    session: Session, username: str, states: tuple[ApplicationState, ...] = (S.SUBMITTED,)
) -> list[Application]:
    """The applications the user's department reviews in these states, oldest submission first."""
    mine = scope.of(session, _staff(session, username))
    rows = session.scalars(
        select(Application)
        .where(Application.state.in_([s.value for s in states]))
        .order_by(Application.submitted_at, Application.id)
    ).all()
    return [a for a in rows if _acting(mine, a)]


def returns(session: Session, app: Application) -> list[ApplicationReturn]:
    return list(
        session.scalars(
            select(ApplicationReturn)
            .where(ApplicationReturn.application_id == app.id)
            .order_by(ApplicationReturn.id)
        ).all()
    )


def opinions(session: Session, app: Application) -> list[ApplicationOpinion]:
    return list(
        session.scalars(
            select(ApplicationOpinion)
            .where(ApplicationOpinion.application_id == app.id)
            .order_by(ApplicationOpinion.id)
        ).all()
    )


def materials(session: Session, app: Application) -> list[ApplicationMaterial]:
    """The current upload of each material (a newer one replaces the older)."""
    return list(
        session.scalars(
            select(ApplicationMaterial)
            .where(ApplicationMaterial.application_id == app.id, ApplicationMaterial.active)
            .order_by(ApplicationMaterial.id)
        ).all()
    )


def _item(policy: Policy, app: Application) -> Item:
    if (policy.id, policy.version) != (app.policy_id, app.policy_version):
        raise PayoutError(f"申请 {app.public_id} 属于政策 {app.policy_id} 第 {app.policy_version} 版")
    return policy.item(app.item_id)


def _event(
    app: Application, actor: str, action: str, before: str | None, reason: str | None = None, **data: Any
) -> audit.Event:
    return audit.Event(actor, action, "application", app.public_id, before, app.state, reason, data)


# --- the enterprise's steps --------------------------------------------------------------------------------


def _region(known: Mapping[str, Known]) -> str | None:
    """The enterprise's region code among what the snapshot holds (`REGION`), if it is six digits."""
    k = known.get(REGION)
    value = str(k.value) if k is not None else ""
    return value if len(value) == 6 and value.isdigit() else None


def open_application(
    session: Session,
    policy: Policy,
    item_id: str,
    uscc: str,
    known: Mapping[str, Known],
    now: dt.datetime,
    *,
    actor: str | None = None,
) -> Application:
    """The enterprise's application for an apply item: its live one if it has one, else a new draft with
    every known value of the form's fields filled in."""
    item = next((i for i in policy.items if i.id == item_id), None)
    if item is None or item.mode != "apply" or policy.guide is None:
        raise NotFoundError(f"政策 {policy.id} 没有可申请的事项 {item_id}")
    if not policy.active_on((formats.china(now) or now).date()):
        raise StateError(
            f"“{policy.title}”不在申报期内（{formats.day(policy.valid_from)}至{formats.day(policy.valid_to)}）"
        )
    live = session.scalar(
        select(Application).where(
            Application.uscc == uscc,
            Application.policy_id == policy.id,
            Application.item_id == item_id,
            Application.period == policy.period,
            Application.state != S.REJECTED.value,
        )
    )
    if live is not None:
        return live
    fields = form_fields(policy, item)
    # Validation gives every policy with an apply item a guide with its time limit.
    assert policy.guide is not None and policy.guide.time_limit_days is not None
    app = Application(
        public_id=tokens.public_id(),
        uscc=uscc,
        region_code=_region(known),
        policy_id=policy.id,
        policy_version=policy.version,
        item_id=item.id,
        period=policy.period,
        state=S.DRAFT.value,
        lead_department=policy.lead_reviewer,
        reviewers=json.dumps(policy.reviewers or [policy.department], ensure_ascii=False),
        time_limit_days=policy.guide.time_limit_days,
        prefilled=json.dumps(
            {
                f: {"value": k.value, "source": k.source, "as_of": k.as_of.isoformat()}
                for f in fields
                if (k := known.get(f)) is not None
            },
            ensure_ascii=False,
            sort_keys=True,
        ),
        opened_by=actor or enterprise_actor(uscc),
        created_at=now,
        updated_at=now,
    )
    session.add(app)
    session.flush()
    audit.append(
        session, [_event(app, app.opened_by, "apply_open", None, policy=policy.id, item=item.id)], now
    )
    return app


def parse_answer(q: Question, raw: str) -> str:
    """An answer typed for its question, as canonical text; PayoutError saying what is expected."""
    text = raw.strip()
    if len(text) > _MAX_ANSWER:
        raise PayoutError(f"“{q.text}”过长（最多 {_MAX_ANSWER} 个字符）")
    if q.type == "integer":
        if not re.fullmatch(r"-?\d{1,12}", text.replace(",", "")):
            raise PayoutError(f"“{q.text}”应为整数：{text}")
        return str(int(text.replace(",", "")))
    if q.type == "money":
        try:
            number = Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise PayoutError(f"“{q.text}”应为金额（元）：{text}") from None
        if (
            not number.is_finite()
            or number < 0
            or number >= Decimal("1e16")
            or number != number.quantize(FEN)
        ):
            raise PayoutError(f"“{q.text}”应为不小于 0、精确到分的金额（元）：{text}")
        return format(number.quantize(FEN), "f")
    if q.type == "date":
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            raise PayoutError(f"“{q.text}”应为日期，如 2025-05-01：{text}") from None
    if q.type == "boolean":
        if text.lower() in _TRUE:
            return "true"
        if text.lower() in _FALSE:
            return "false"
        raise PayoutError(f"“{q.text}”应为“是”或“否”：{text}")
    if q.type == "choice" and text not in q.choices:
        raise PayoutError(f"“{q.text}”应为以下之一：{'、'.join(q.choices)}（填写的是 {text}）")
    return text


def save(
    session: Session,
    policy: Policy,
    app: Application,
    *,
    given_answers: Mapping[str, str],
    given_fields: Mapping[str, str],
    actor: str,
    now: dt.datetime,
) -> Application:
    """Save a draft (or a returned application being corrected): answers and supplied fields, each checked
    by its type. A blank value clears it; a key the item does not ask is refused; known values cannot be
    overwritten."""
    item = _item(policy, app)
    _editable(app)
    asked = item.application or None
    questions = {q.id: q for q in (asked.questions if asked else [])}
    askable = [f for f in (asked.fields if asked else []) if f not in prefilled(app)]
    problems: list[str] = []
    new_answers, new_fields = answers(app), supplied(app)
    for key, raw in given_answers.items():
        q = questions.get(key)
        if q is None:
            raise PayoutError(f"本事项没有问题 {key}")
        if not raw.strip():
            new_answers.pop(key, None)
            continue
        try:
            new_answers[key] = parse_answer(q, raw)
        except PayoutError as e:
            problems.append(str(e))
    for key, raw in given_fields.items():
        if key not in askable:
            raise PayoutError(
                f"本事项不需填写 {key}" if key not in CATALOG else f"“{CATALOG[key].label}”不需填写"
            )
        if not raw.strip():
            new_fields.pop(key, None)
            continue
        try:
            new_fields[key] = parse_value(CATALOG[key], raw)
        except PayoutError as e:
            problems.append(str(e))
    if problems:
        raise PayoutError("；".join(problems))
    app.answers = json.dumps(new_answers, ensure_ascii=False, sort_keys=True)
    app.supplied = json.dumps(new_fields, ensure_ascii=False, sort_keys=True)
    app.updated_at = now
    audit.append(
        session,
        [_event(app, actor, "apply_save", app.state, answers=sorted(new_answers), fields=sorted(new_fields))],
        now,
    )
    return app


def _editable(app: Application) -> None:
    if app.state not in EDITABLE:
        raise StateError(f"申请{STATE_LABELS[app.state]}，不能修改")


def upload(
    session: Session,
    policy: Policy,
    app: Application,
    material_id: str,
    data: bytes,
    file_name: str,
    evidence_dir: Path,
    *,
    actor: str,
    now: dt.datetime,
) -> ApplicationMaterial:
    """Upload one material of the item's list (a PDF or an image recognised from its bytes, at most
    10 MB), stored under a random name outside the web root; it replaces the earlier upload."""
    item = _item(policy, app)
    _editable(app)
    wanted = {m.id: m for m in (item.application.materials if item.application else [])}
    if material_id not in wanted:
        raise PayoutError(f"本事项没有材料 {material_id}")
    mime = sniff(data)
    evidence_dir.mkdir(parents=True, exist_ok=True)
    stored = secrets.token_hex(16)
    (evidence_dir / stored).write_bytes(data)
    for old in materials(session, app):
        if old.material_id == material_id:
            old.active = False
    row = ApplicationMaterial(
        public_id=tokens.public_id(),
        application_id=app.id,
        material_id=material_id,
        file_name=Path(file_name or wanted[material_id].name).name[:200],
        stored_path=stored,
        media_type=mime,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        uploaded_by=actor,
        uploaded_at=now,
    )
    session.add(row)
    app.updated_at = now
    session.flush()
    audit.append(
        session, [_event(app, actor, "apply_upload", app.state, material=material_id, sha256=row.sha256)], now
    )
    return row


def material_file(
    session: Session, app: Application, material_public_id: str, evidence_dir: Path
) -> tuple[Path, str, str]:
    """The stored file of one material of `app` (which the caller has already authorized): path, media type
    and a safe download name."""
    row = session.scalar(
        select(ApplicationMaterial).where(
            ApplicationMaterial.public_id == material_public_id, ApplicationMaterial.application_id == app.id
        )
    )
    if (
        row is None
        or not re.fullmatch(r"[0-9a-f]{32}", row.stored_path)
        or not (evidence_dir / row.stored_path).is_file()
    ):
        raise NotFoundError(f"没有材料 {material_public_id}")
    extension = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
    assert row.media_type in EVIDENCE_TYPES
    return (
        evidence_dir / row.stored_path,
        row.media_type,
        f"{app.public_id}-{row.material_id}.{extension[row.media_type]}",
    )


def values(app: Application) -> dict[str, object]:
    """The typed values a rule reads: what was known, and what the enterprise supplied."""
    row: dict[str, object] = {k: typed(k, v.value) for k, v in prefilled(app).items()}
    row |= {k: typed(k, v) for k, v in supplied(app).items()}
    return row


def lacking(session: Session, policy: Policy, app: Application) -> list[str]:
    """Everything the application still lacks before it can be submitted, in plain words, all at once:
    unanswered questions, fields to fill in, materials to upload, and conditions the values fail."""
    item = _item(policy, app)
    asked = item.application
    out: list[str] = []
    if asked is not None:
        given = answers(app)
        out += [f"请回答：{q.text}" for q in asked.questions if q.required and q.id not in given]
        row = values(app)
        out += [f"请填写：{CATALOG[f].label}" for f in asked.fields if row.get(f) is None]
        uploaded = {m.material_id for m in materials(session, app)}
        out += [f"请上传：{m.name}" for m in asked.materials if m.required and m.id not in uploaded]
    row = values(app)
    full = {f: row.get(f) for f in CATALOG}
    for c in (*policy.conditions, *item.conditions):
        verdict = evaluate_condition(c, full)
        if verdict.value is False:
            out.append(f"不符合条件：{c.text}")
    return out


def submit(
    session: Session, policy: Policy, app: Application, *, actor: str, now: dt.datetime
) -> Application:
    """Submit a draft, or a corrected returned application (the clock runs again). Refused with everything
    it still lacks, listed at once."""
    item = _item(policy, app)
    _editable(app)
    missing = lacking(session, policy, app)
    if missing:
        raise StateError("申请还不能提交：" + "；".join(missing))
    before = app.state
    if app.state == S.RETURNED:
        pause = returns(session, app)[-1]
        pause.resumed_at = now
    else:
        app.submitted_at = now
    full = {f: values(app).get(f) for f in CATALOG}
    app.requested_amount = evaluate_amount(item, full)[0] if item.amount is not None else None
    app.state = S.SUBMITTED.value
    app.updated_at = now
    amount = None if app.requested_amount is None else str(app.requested_amount)
    audit.append(session, [_event(app, actor, "apply_submit", before, amount=amount)], now)
    return app


# --- the departments' steps --------------------------------------------------------------------------------


def _submitted(app: Application) -> None:
    if app.state != S.SUBMITTED:
        raise StateError(f"申请{STATE_LABELS[app.state]}，不能审核")


def _lead(session: Session, username: str, app: Application) -> None:
    if app.lead_department not in acts_for(session, _staff(session, username), app):
        raise RoleError(f"只有牵头部门（{app.lead_department}）可以作出决定")


def give_opinion(
    session: Session, public_id: str, *, agree: bool, note: str | None, by: str, now: dt.datetime
) -> ApplicationOpinion:
    """A reviewing department's opinion in joint review (会签); giving it again replaces the earlier one."""
    app = for_department(session, by, public_id, lock=True)
    _submitted(app)
    # In the name of the co-reviewing department the policy names (the user's own or a superior of it).
    named = [d for d in acts_for(session, _staff(session, by), app) if d in reviewers(app)[1:]]
    if not named:
        raise RoleError(f"本部门不是该申请的会签部门（牵头部门：{app.lead_department}）")
    department = named[0]
    text = (note or "").strip()[:1000] or None
    if not agree and not text:
        raise PayoutError("不同意时请写明理由")
    row = session.scalar(
        select(ApplicationOpinion).where(
            ApplicationOpinion.application_id == app.id, ApplicationOpinion.department == department
        )
    )
    if row is None:
        row = ApplicationOpinion(
            application_id=app.id, department=department, agree=agree, note=text, given_by=by, given_at=now
        )
        session.add(row)
    else:
        row.agree, row.note, row.given_by, row.given_at = agree, text, by, now
    audit.append(
        session, [_event(app, by, "apply_opinion", app.state, text, department=department, agree=agree)], now
    )
    return row


def waiting_opinions(session: Session, app: Application) -> list[str]:
    """The co-reviewing departments that have not given their opinion yet."""
    given = {o.department for o in opinions(session, app)}
    return [d for d in reviewers(app)[1:] if d not in given]


def return_for_correction(
    session: Session, public_id: str, corrections: list[str], *, by: str, now: dt.datetime
) -> ApplicationReturn:
    """Return a submitted application for correction (补正), with everything to correct listed at once; the
    clock stops until the enterprise submits again."""
    app = for_department(session, by, public_id, lock=True)
    _submitted(app)
    _lead(session, by, app)
    wanted = [c.strip()[:500] for c in corrections if c.strip()]
    if not wanted:
        raise PayoutError("请一次性列出需要补正的全部内容")
    pause = ApplicationReturn(
        application_id=app.id,
        corrections=json.dumps(wanted, ensure_ascii=False),
        returned_by=by,
        returned_at=now,
    )
    session.add(pause)
    app.state = S.RETURNED.value
    app.updated_at = now
    audit.append(
        session,
        [_event(app, by, "apply_return", S.SUBMITTED.value, "；".join(wanted), count=len(wanted))],
        now,
    )
    return pause


def reject(session: Session, public_id: str, reason: str, *, by: str, now: dt.datetime) -> Application:
    """Reject a submitted application with its reason (the lead department)."""
    app = for_department(session, by, public_id, lock=True)
    _submitted(app)
    _lead(session, by, app)
    why = reason.strip()[:1000]
    if not why:
        raise PayoutError("请写明不予通过的理由")
    app.state, app.reason, app.decided_at, app.decided_by, app.updated_at = (
        S.REJECTED.value,
        why,
        now,
        by,
        now,
    )
    audit.append(session, [_event(app, by, "apply_reject", S.SUBMITTED.value, why)], now)
    return app


def _policy_version(session: Session, policy: Policy) -> None:
    """The policy version's row (what batches and budgets read), added if no run imported it yet."""
    exists = select(PolicyVersion.id).where(
        PolicyVersion.policy_id == policy.id, PolicyVersion.version == policy.version
    )
    if session.scalar(exists) is not None:
        return
    row = PolicyVersion(
        policy_id=policy.id,
        version=policy.version,
        title=policy.title,
        department=policy.department,
        period=policy.period,
        budget=policy.budget,
        allocation=policy.allocation,
        confirmation=policy.confirmation,
        items=json.dumps(
            [
                {"id": i.id, "title": i.title, "conditions": [c.model_dump() for c in i.conditions]}
                for i in policy.items
            ],
            ensure_ascii=False,
        ),
        conditions=json.dumps([c.model_dump() for c in policy.conditions], ensure_ascii=False),
        notice_days=policy.notice_working_days or policy.notice_days,
        notice_working=policy.notice_working_days is not None,
    )
    try:
        with session.begin_nested():  # another reviewer may add it at the same moment
            session.add(row)
    except IntegrityError:
        pass


def committed(session: Session, policy_id: str, period: str) -> Decimal:
    """The exact sum of the live offers of a policy and period: what its budget already carries."""
    total = session.scalar(
        select(func.coalesce(func.sum(Offer.amount), 0)).where(
            Offer.policy_id == policy_id,
            Offer.period == period,
            Offer.state.not_in([s.value for s in CLOSED_STATES]),
        )
    )
    return Decimal(total or 0).quantize(FEN)


def _payee(session: Session, uscc: str) -> Payee:
    payee = session.scalar(select(Payee).where(Payee.uscc == uscc).order_by(Payee.id.desc()).limit(1))
    if payee is None or not payee.account_no:
        raise StateError("该企业没有登记的对公账户，不能拨付：请先由企业在开户银行办理并报送登记")
    return payee


def accept(
    session: Session,
    policy: Policy,
    public_id: str,
    *,
    amount: Decimal | None,
    by: str,
    now: dt.datetime,
) -> Offer:
    """Accept a submitted application (the lead department, once every co-reviewer has given its opinion):
    it becomes an offer of `amount` (at most the computed amount and the item's cap), already confirmed by
    applying, paid to the enterprise's registered account. Refused with BudgetError if the policy's live
    offers and this one would exceed its budget; the policy's rows are locked, so two acceptances take
    turns and never both pass."""
    app = for_department(session, by, public_id, lock=True)
    item = _item(policy, app)
    _submitted(app)
    _lead(session, by, app)
    waiting = waiting_opinions(session, app)
    if waiting:
        raise StateError(f"会签部门尚未提出意见：{'、'.join(waiting)}")
    if amount is None:
        amount = app.requested_amount
    if amount is None:
        raise PayoutError("本事项金额由审核部门核定，请填写核定金额")
    amount = Decimal(amount)
    if amount != amount.quantize(FEN) or amount <= 0:
        raise PayoutError(f"核定金额应大于 0 并精确到分：{amount}")
    if item.cap is not None and amount > item.cap:
        raise PayoutError(f"核定金额{_yuan(amount)}超过本事项上限{_yuan(item.cap)}")
    if app.requested_amount is not None and amount > app.requested_amount:
        raise PayoutError(f"核定金额{_yuan(amount)}超过按政策计算的金额{_yuan(app.requested_amount)}")
    payee = _payee(session, app.uscc)
    _policy_version(session, policy)
    session.scalars(
        select(PolicyVersion.id)
        .where(PolicyVersion.policy_id == policy.id, PolicyVersion.period == app.period)
        .order_by(PolicyVersion.id)
        .with_for_update()
    ).all()
    if policy.budget is not None:
        used = committed(session, policy.id, app.period)
        if used + amount > policy.budget:
            raise BudgetError(
                f"超出预算：“{policy.title}”预算{_yuan(policy.budget)}，已安排{_yuan(used)}，"
                f"剩余{_yuan(policy.budget - used)}，本申请{_yuan(amount)}"
            )
    offer = Offer(
        public_id=tokens.public_id(),
        match_run_id=None,
        policy_id=policy.id,
        policy_version=policy.version,
        item_id=item.id,
        period=app.period,
        uscc=app.uscc,
        amount=amount,
        amount_before_allocation=amount,
        payee_id=payee.id,
        state=OfferState.CONFIRMED.value,
        created_at=now,
        confirmed_at=now,
        updated_at=now,
    )
    session.add(offer)
    session.flush()
    app.state, app.amount, app.offer_id = S.ACCEPTED.value, amount, offer.id
    app.decided_at, app.decided_by, app.updated_at = now, by, now
    audit.append(
        session,
        [
            _event(app, by, "apply_accept", S.SUBMITTED.value, amount=str(amount), offer=offer.public_id),
            audit.Event(
                by,
                "apply_accept",
                "offer",
                offer.public_id,
                None,
                offer.state,
                None,
                {"application": app.public_id, "amount": str(amount)},
            ),
        ],
        now,
    )
    return offer
