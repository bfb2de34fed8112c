"""The policy store's table: uploaded drafts and published versions of policy files, with their text.

One row per (policy, version) (`policy_text`): an upload is a draft, which publishing turns into a
published version in place; a published version is never changed again, and a new one must be higher
than the latest published. Every worker of the service reads and writes the same rows, so publishing
locks the policy's rows (PostgreSQL `SELECT ... FOR UPDATE`; SQLite has one writer at a time): of two
workers publishing the same or competing versions at once, one wins and the other gets a StateError.

The checks of the file itself and the policy supermarket's index live with the service
(`api/policystore.py`); this module only keeps the rows.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from payouts import audit
from payouts.errors import NotFoundError
from payouts.models import PolicyText
from rules.errors import StateError

Status = Literal["draft", "published"]
_IMPORT_LOCK = "zhida:policy_text:import"


def listed(session: Session, status: Status, department: str | None = None) -> list[PolicyText]:
    """Versions in `status` (only `department`'s if given), by policy, newest version first."""
    query = select(PolicyText).where(PolicyText.status == status)
    if department is not None:
        query = query.where(PolicyText.department == department)
    return list(session.scalars(query.order_by(PolicyText.policy_id, PolicyText.version.desc())))


def find(session: Session, policy_id: str, version: int, status: Status) -> PolicyText | None:
    return session.scalar(
        select(PolicyText).where(
            PolicyText.policy_id == policy_id, PolicyText.version == version, PolicyText.status == status
        )
    )


def latest_published(session: Session, policy_id: str) -> PolicyText | None:
    return session.scalar(
        select(PolicyText)
        .where(PolicyText.policy_id == policy_id, PolicyText.status == "published")
        .order_by(PolicyText.version.desc())
        .limit(1)
    )


def latest_of_all(session: Session) -> list[PolicyText]:
    """The latest published version of every policy, by policy id."""
    newest = (
        select(PolicyText.policy_id, func.max(PolicyText.version).label("version"))
        .where(PolicyText.status == "published")
        .group_by(PolicyText.policy_id)
        .subquery()
    )
    query = select(PolicyText).join(
        newest, (PolicyText.policy_id == newest.c.policy_id) & (PolicyText.version == newest.c.version)
    )
    return list(session.scalars(query.order_by(PolicyText.policy_id)))


def departments(session: Session) -> dict[str, str]:
    """Policy id → department, from every stored version (a published one wins over a draft)."""
    rows = session.execute(
        select(PolicyText.policy_id, PolicyText.department).order_by(
            PolicyText.status, PolicyText.version
        )  # 'draft' < 'published': the published ones come last and win
    )
    return dict(rows.tuples().all())


def save_draft(session: Session, row: PolicyText) -> bool:
    """Keep `row` as the draft of its (policy, version), replacing an earlier draft of it; False when that
    version is published already (then nothing changes). Safe against a concurrent upload of the same
    version (one statement: insert, or update the draft)."""
    values = {c.name: getattr(row, c.name) for c in PolicyText.__table__.columns if c.name != "id"}
    values["status"] = "draft"
    values["published_by"] = values["published_at"] = None
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(PolicyText).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["policy_id", "version"],
        set_={k: statement.excluded[k] for k in values if k not in ("policy_id", "version")},
        where=PolicyText.status == "draft",
    )
    return session.connection().execute(statement.returning(PolicyText.__table__.c.id)).first() is not None


def publish(session: Session, policy_id: str, version: int, by: str, now: dt.datetime) -> PolicyText:
    """Publish the draft (policy, version), with an audit event; StateError when that version or a higher
    one is published already (also when another worker has just done so), NotFoundError without a draft."""
    # Lock every version of the policy: a second publisher waits here, then sees what the first did.
    rows = session.scalars(
        select(PolicyText)
        .where(PolicyText.policy_id == policy_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    published = [r.version for r in rows if r.status == "published"]
    if published and max(published) >= version:
        raise StateError(f"政策 {policy_id} 已发布到第 {max(published)} 版，不能再发布第 {version} 版")
    draft = next((r for r in rows if r.version == version and r.status == "draft"), None)
    if draft is None:
        raise NotFoundError(f"没有草稿政策 {policy_id} 第 {version} 版")
    session.execute(
        update(PolicyText)
        .where(PolicyText.id == draft.id, PolicyText.status == "draft")
        .values(status="published", published_by=by, published_at=now)
    )
    draft.status, draft.published_by, draft.published_at = "published", by, now
    audit.record(
        session,
        now,
        by,
        "publish",
        "policy",
        f"{policy_id}@{version}",
        "draft",
        "published",
        sha256=draft.sha256,
    )
    return draft


def import_folder(session: Session, root: Path) -> int:
    """Copy a policy store kept as files (`<root>/{drafts,published}/<id>@<version>.yaml` beside its
    `.json` record, as the service kept it before this table) into the table, once: only when the table
    is empty. The number of versions copied. The files are left where they are."""
    if session.get_bind().dialect.name == "postgresql":  # workers starting together import once
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:n))"), {"n": _IMPORT_LOCK})
    if session.scalar(select(func.count()).select_from(PolicyText)):
        return 0
    found: dict[tuple[str, int], PolicyText] = {}
    for folder in ("drafts", "published"):  # a version found in both is published
        for meta in sorted((root / folder).glob("*.json")):
            row = _row(json.loads(meta.read_text(encoding="utf-8")), meta.with_suffix(".yaml"))
            found[(row.policy_id, row.version)] = row
    session.add_all(found.values())
    session.flush()
    return len(found)


def _row(record: dict[str, Any], yaml_path: Path) -> PolicyText:
    def when(value: str | None) -> dt.datetime | None:
        if not value:
            return None
        at = dt.datetime.fromisoformat(value)
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)

    return PolicyText(
        policy_id=record["id"],
        version=int(record["version"]),
        status=record["status"],
        text=yaml_path.read_text(encoding="utf-8"),
        sha256=record["sha256"],
        title=record["title"],
        department=record["department"],
        valid_from=dt.date.fromisoformat(record["valid_from"]),
        valid_to=dt.date.fromisoformat(record["valid_to"]),
        file_name=record["file_name"],
        uploaded_by=record["uploaded_by"],
        uploaded_at=when(record["uploaded_at"]),
        published_by=record.get("published_by"),
        published_at=when(record.get("published_at")),
    )
