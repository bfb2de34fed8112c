"""帮办代办: a staff member with the role `agent` acts for an enterprise (opens its applications, fills
them in, uploads materials, submits) on the strength of the enterprise's written authorisation (委托书),
uploaded first and kept like other uploads. Every act is recorded in the audit log under the agent's own
name (`agent:<username>`), and the enterprise sees on its application who acted for it and under which
authorisation. Without an authorisation for that enterprise the agent finds nothing (not found).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from payouts import audit, tokens
from payouts.errors import NotFoundError
from payouts.users import require
from portal.models import Mandate
from portal.supplied import sniff
from rules.errors import PayoutError

_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
PREFIX = "agent:"


def actor(username: str) -> str:
    """How an agent's acts appear in the audit log and to the enterprise."""
    return f"{PREFIX}{username}"


def register(
    session: Session, agent: str, uscc: str, data: bytes, file_name: str, evidence_dir: Path, now: dt.datetime
) -> Mandate:
    """Keep an enterprise's 委托书 (a PDF or an image recognised from its bytes) for `agent`."""
    require(session, agent, "act_for")
    code = uscc.strip().upper()
    if not _USCC.fullmatch(code):
        raise PayoutError(f"统一社会信用代码格式不正确：{uscc}（应为 18 位，不含 I、O、S、V、Z）")
    mime = sniff(data)
    evidence_dir.mkdir(parents=True, exist_ok=True)
    stored = secrets.token_hex(16)
    (evidence_dir / stored).write_bytes(data)
    row = Mandate(
        public_id=tokens.public_id(),
        uscc=code,
        agent=agent,
        file_name=Path(file_name or "委托书").name[:200],
        stored_path=stored,
        media_type=mime,
        sha256=hashlib.sha256(data).hexdigest(),
        created_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        now,
        agent,
        "mandate_register",
        "mandate",
        row.public_id,
        None,
        None,
        None,
        uscc=code,
        sha256=row.sha256,
    )
    return row


def mandates(session: Session, agent: str) -> list[Mandate]:
    require(session, agent, "act_for")
    return list(
        session.scalars(
            select(Mandate)
            .where(Mandate.agent == agent, Mandate.revoked_at.is_(None))
            .order_by(Mandate.id.desc())
        ).all()
    )


def mandate_for(session: Session, agent: str, uscc: str) -> Mandate:
    """The agent's live authorisation for this enterprise; NotFoundError without one."""
    require(session, agent, "act_for")
    row = session.scalar(
        select(Mandate)
        .where(Mandate.agent == agent, Mandate.uscc == uscc, Mandate.revoked_at.is_(None))
        .order_by(Mandate.id.desc())
        .limit(1)
    )
    if row is None:
        raise NotFoundError(f"没有企业 {uscc} 的委托书")
    return row


def for_enterprise(session: Session, uscc: str) -> list[Mandate]:
    """The authorisations an enterprise gave, for its own pages."""
    return list(session.scalars(select(Mandate).where(Mandate.uscc == uscc).order_by(Mandate.id)).all())
