"""The audit log: every state change as an append-only, hash-chained event.

Each event stores `prev_hash` and `hash = sha256(prev_hash + canonical JSON of the event)`, so
changing, removing or reordering any stored event breaks the chain, and `verify` says where.
The same change to many things at once (a million offers imported or released) is one bulk event:
its members are listed in `audit_member`, and the event holds their count and digest, so the list
is covered by the chain as well.
Appenders lock the single `audit_head` row (SELECT ... FOR UPDATE on PostgreSQL; SQLite serializes
writers anyway), so concurrent transactions take turns and the chain never forks. The tables refuse
UPDATE and DELETE by trigger (see the first migration). Publishing the head hash from time to time
(`zhida audit verify` prints it) also makes cutting off the end of the log detectable.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Select, insert, literal, select, update
from sqlmodel import Session

from payouts.bulkload import insert_columns
from payouts.models import AuditEvent, AuditHead, AuditMember, MatchRun, Offer

GENESIS = "0" * 64
COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "entity",
    "entity_id",
    "from_state",
    "to_state",
    "reason",
    "data",
    "prev_hash",
    "hash",
)


@dataclass(frozen=True, slots=True)
class Event:
    """A state change to record: who did what to which thing, from which state to which, and why."""

    actor: str
    action: str
    entity: str  # "offer" | "batch" | "payee" | "run" | "user"
    entity_id: str
    from_state: str | None = None
    to_state: str | None = None
    reason: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_string = json.encoder.encode_basestring  # what _ENCODER uses for text (the C version when available)


def _scalar(value: Any) -> str | None:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is int:
        return int.__repr__(value)
    return None


def canonical(value: Any) -> str:
    """The one JSON text of a value that hashing uses: sorted keys, no spaces, UTF-8 kept.

    Flat dicts of text, integers, booleans and nulls (every audit event) are written directly, a few
    times faster than the encoder and with the same result (a test checks it); anything else goes
    through the encoder.
    """
    if type(value) is dict:
        parts = []
        for key in sorted(value):
            text = _scalar(value[key]) if type(key) is str else None
            if text is None:
                return _ENCODER.encode(value)
            parts.append(f"{_string(key)}:{text}")
        return "{" + ",".join(parts) + "}"
    return _ENCODER.encode(value)


def timestamp(at: dt.datetime) -> str:
    """A point in time as the chain hashes it: UTC, microseconds, `Z`."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(prev_hash: str, row: Mapping[str, Any], at_text: str | None = None) -> str:
    """The hash of one stored event, chained to the one before it."""
    body = {
        "seq": row["seq"],
        "at": at_text or timestamp(row["at"]),
        "actor": row["actor"],
        "action": row["action"],
        "entity": row["entity"],
        "entity_id": row["entity_id"],
        "from": row["from_state"],
        "to": row["to_state"],
        "reason": row["reason"],
        "data": row["data"],
    }
    return hashlib.sha256((prev_hash + canonical(body)).encode()).hexdigest()


def append(session: Session, events: Sequence[Event], at: dt.datetime) -> int:
    """Append `events` at time `at` to the chain in the session's transaction; returns the last seq.

    Flushes the session first, so that the rows the events describe are written (and locked) before
    the chain head is: every writer takes its locks in that order.
    """
    if not events:
        return 0
    session.flush()
    head = AuditHead.__table__
    seq, prev = session.execute(select(head.c.seq, head.c.hash).where(head.c.id == 1).with_for_update()).one()
    at_text = timestamp(at)
    columns: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for ev in events:
        seq += 1
        row = {
            "seq": seq,
            "at": at,
            "actor": ev.actor,
            "action": ev.action,
            "entity": ev.entity,
            "entity_id": ev.entity_id,
            "from_state": ev.from_state,
            "to_state": ev.to_state,
            "reason": ev.reason,
            "data": canonical(dict(ev.data)),
            "prev_hash": prev,
        }
        row["hash"] = prev = event_hash(prev, row, at_text)
        for c in COLUMNS:
            columns[c].append(row[c])
    insert_columns(session, AuditEvent.__table__, columns)
    session.execute(update(head).where(head.c.id == 1).values(seq=seq, hash=prev))
    return seq


def members_digest(entity_ids: Sequence[str]) -> str:
    """The digest a bulk event holds of its members: SHA-256 of the sorted ids, one per line."""
    return hashlib.sha256("\n".join(sorted(entity_ids)).encode()).hexdigest()


def append_bulk(
    session: Session, event: Event, members: Sequence[str], at: dt.datetime, *, listed: bool = True
) -> int:
    """Append one event for the same change to every one of `members`; returns its seq (0 if none).

    The members are written to `audit_member`, unless `listed` is false: then the event is the
    creation of a run's offers (`entity` "offers", `entity_id` the run id), whose members are exactly
    the offers of that run, as the offer table records them (`"members_of": "run"` in the data).
    """
    if not members:
        return 0
    if not listed and (event.action, event.entity) != ("import", "offers"):
        raise ValueError("only the creation of a run's offers may leave its members unlisted")
    extra = {} if listed else {"members_of": "run"}
    seq = append(session, [_bulk_event(event, len(members), members_digest(members), **extra)], at)
    if listed:
        insert_columns(
            session, AuditMember.__table__, {"seq": [seq] * len(members), "entity_id": list(members)}
        )
    return seq


def _bulk_event(event: Event, count: int, digest: str, **extra: Any) -> Event:
    data = {**event.data, "count": count, "members": digest, **extra}
    return Event(
        event.actor,
        event.action,
        event.entity,
        event.entity_id,
        event.from_state,
        event.to_state,
        event.reason,
        data,
    )


def append_bulk_query(
    session: Session, event: Event, members: Select[tuple[str]], at: dt.datetime, *, chunk: int = 50_000
) -> int:
    """`append_bulk` for members given as a query of their ids (one column, no duplicates), for sets
    too large to hold: the digest is computed while streaming them in order, and `audit_member` is
    filled by INSERT ... SELECT. Returns the event's seq (0 if there are no members).
    """
    session.flush()
    ids = members.subquery()
    (column,) = ids.c
    binary = column.collate("C") if session.connection().dialect.name == "postgresql" else column
    digest, count = hashlib.sha256(), 0
    ordered = select(column).order_by(binary).execution_options(yield_per=chunk)
    for part in session.execute(ordered).scalars().partitions():
        digest.update(("\n" if count else "").encode() + "\n".join(part).encode())
        count += len(part)
    if not count:
        return 0
    seq = append(session, [_bulk_event(event, count, digest.hexdigest())], at)
    member = AuditMember.__table__
    session.execute(
        insert(member).from_select(["seq", "entity_id"], select(literal(seq, BigInteger), column))
    )
    return seq


def record(
    session: Session,
    at: dt.datetime,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    **data: Any,
) -> int:
    """Append one event; a shorthand for `append` with a single `Event`."""
    return append(session, [Event(actor, action, entity, entity_id, from_state, to_state, reason, data)], at)


@dataclass
class Verification:
    """What `verify` found: how many events, whether the chain holds, the head, and what is wrong."""

    events: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _stored(session: Session, chunk: int) -> Iterator[dict[str, Any]]:
    table = AuditEvent.__table__
    last = 0
    while True:
        rows = (
            session.execute(select(table).where(table.c.seq > last).order_by(table.c.seq).limit(chunk))
            .mappings()
            .all()
        )
        if not rows:
            return
        yield from (dict(r) for r in rows)
        last = rows[-1]["seq"]


def verify(session: Session, chunk: int = 20_000, max_problems: int = 20) -> Verification:
    """Recompute the whole chain from the first event and compare it with what is stored."""
    report = Verification()
    head = session.execute(select(AuditHead.__table__)).mappings().one()
    report.head_seq, report.head_hash = head["seq"], head["hash"]
    expected_seq, prev = 1, GENESIS
    for row in _stored(session, chunk):
        report.events += 1
        seq = row["seq"]
        if seq != expected_seq:
            report.problems.append(f"第 {expected_seq} 条之后缺少事件（下一条是第 {seq} 条）")
        if row["prev_hash"] != prev:
            report.problems.append(f"第 {seq} 条的前一哈希与链不符：链已断开或事件被删除、改序")
        if event_hash(row["prev_hash"], row) != row["hash"]:
            report.problems.append(f"第 {seq} 条的内容与其哈希不符：事件被改动")
        elif '"members":' in row["data"]:
            report.problems += _check_members(session, row)
        if len(report.problems) >= max_problems:
            return report
        expected_seq, prev = seq + 1, row["hash"]
    if (report.head_seq, report.head_hash) != (expected_seq - 1, prev):
        report.problems.append(
            f"链头记录（第 {report.head_seq} 条 {report.head_hash[:12]}…）与最后一条事件"
            f"（第 {expected_seq - 1} 条 {prev[:12]}…）不符"
        )
    return report


def _members(session: Session, row: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    if data.get("members_of") == "run":
        run = select(MatchRun.id).where(MatchRun.run_id == row["entity_id"]).scalar_subquery()
        return list(session.scalars(select(Offer.public_id).where(Offer.match_run_id == run)).all())
    return list(session.scalars(select(AuditMember.entity_id).where(AuditMember.seq == row["seq"])).all())


def _check_members(session: Session, row: Mapping[str, Any]) -> list[str]:
    data = json.loads(row["data"])
    ids = _members(session, row, data)
    if len(ids) != data.get("count") or members_digest(ids) != data.get("members"):
        return [
            f"第 {row['seq']} 条涉及的对象清单与事件记录不符（{len(ids)} 个，事件记录 {data.get('count')} 个）"
        ]
    return []


def history(session: Session, entity: str, entity_id: str) -> list[AuditEvent]:
    """Every event of one thing, oldest first: its own events and the bulk events it is a member of."""
    bulk = select(AuditMember.seq).where(AuditMember.entity_id == entity_id)
    mine = (AuditEvent.entity == entity) & (AuditEvent.entity_id == entity_id)
    listed = (AuditEvent.entity == entity + "s") & AuditEvent.seq.in_(bulk)
    if entity == "offer":
        run = (
            select(MatchRun.run_id)
            .join(Offer, Offer.match_run_id == MatchRun.id)
            .where(Offer.public_id == entity_id)
            .scalar_subquery()
        )
        imported = (
            (AuditEvent.entity == "offers")
            & (AuditEvent.entity_id == run)
            & AuditEvent.data.contains('"members_of":"run"', autoescape=True)
        )
        listed = listed | imported
    query = select(AuditEvent).where(mine | listed)
    return list(session.scalars(query.order_by(AuditEvent.seq)).all())
