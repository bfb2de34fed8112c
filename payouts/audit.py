"""The audit log: every state change as an append-only, keyed hash chain of events.

Each event stores `prev_hash` and `hash = HMAC-SHA256(key, prev_hash + canonical JSON of the event)`
under the audit key (`ZHIDA_AUDIT_KEY`, held by the application and the auditor, never by the
database), so changing, removing or reordering any stored event breaks the chain, `verify` says where,
and whoever owns the database cannot recompute the chain after a change: that needs the key. Events
written before the chain was keyed (`chain` 1) carry `sha256(prev_hash + JSON)`; they may only come
before the first keyed event (`chain` 2), whose HMAC covers the last of them.
The same change to many things at once (a million offers imported or released) is one bulk event:
its members are listed in `audit_member`, and the event holds their count and digest, so the list
is covered by the chain as well.
Appenders lock the single `audit_head` row (SELECT ... FOR UPDATE on PostgreSQL; SQLite serializes
writers anyway), so concurrent transactions take turns and the chain never forks. The tables refuse
UPDATE and DELETE by trigger (see the first migration); the service connects as a role that owns
nothing, so it cannot disable them (`payouts.db.grant_app_role`).

Cutting off the end of the log (and setting `audit_head` back) leaves a shorter chain that holds, so
the head is also written, signed, to files outside the database (`payouts.checkpoints`): when a batch
is approved, once a day by the first transaction that records an event (when
`ZHIDA_AUDIT_CHECKPOINT_DIR` is set), and by `zhida audit checkpoint`. `verify` checks the chain
against them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    and_,
    cast,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from payouts import checkpoints
from payouts.bulkload import insert_columns
from payouts.checkpoints import Checkpoint
from payouts.models import AuditEvent, AuditHead, AuditMember, MatchRun, Offer, Payee, PayeeChange, StaffUser
from rules.errors import PayoutError

log = logging.getLogger(__name__)

GENESIS = "0" * 64
LEGACY, KEYED = 1, 2  # `chain` of an event: plain SHA-256 (before the key), HMAC-SHA256 under the key
KEY_ENV = "ZHIDA_AUDIT_KEY"
MIN_KEY_CHARS = 32
# Development only: a fixed, public value, so that a developer's chain verifies across restarts.
# Production refuses it (api/settings.py and `chain_key`): with it anyone can recompute the chain.
DEVELOPMENT_KEY = "zhida-development-audit-key/public/never-use-in-production"
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
    "chain",
)


def key_problem(value: str | None) -> str | None:
    """What is wrong with `value` as a production audit key, in Chinese, or None if nothing is."""
    if not value or value == DEVELOPMENT_KEY or len(value) < MIN_KEY_CHARS:
        return (
            f"{KEY_ENV} 必须设置为至少 {MIN_KEY_CHARS} 个字符的随机值（审计日志的密钥，"
            "只由本服务和审计员保管，不得存入数据库），且不能是开发环境的默认值"
        )
    return None


def chain_key(env: Mapping[str, str] | None = None) -> bytes:
    """The audit key from `ZHIDA_AUDIT_KEY`; in development, when unset, the public development key.

    In production (`ZHIDA_ENV=production`) a missing, short or development key is refused.
    """
    env = os.environ if env is None else env
    value = env.get(KEY_ENV, "")
    if env.get("ZHIDA_ENV") == "production":
        problem = key_problem(value)
        if problem:
            raise PayoutError(problem)
    return (value or DEVELOPMENT_KEY).encode()


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


def _body(row: Mapping[str, Any], at_text: str | None) -> dict[str, Any]:
    return {
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


def legacy_hash(prev_hash: str, row: Mapping[str, Any], at_text: str | None = None) -> str:
    """The hash of an event written before the chain was keyed (`chain` 1): anyone can compute it."""
    return hashlib.sha256((prev_hash + canonical(_body(row, at_text))).encode()).hexdigest()


def hasher(key: bytes) -> Callable[[str, Mapping[str, Any], str | None], str]:
    """The keyed hash of one event, chained to the one before it (`chain` 2): only the key makes it."""
    base = hmac.new(key, digestmod=hashlib.sha256)

    def keyed(prev_hash: str, row: Mapping[str, Any], at_text: str | None = None) -> str:
        mac = base.copy()
        mac.update((prev_hash + canonical({**_body(row, at_text), "chain": KEYED})).encode())
        return mac.hexdigest()

    return keyed


def event_hash(prev_hash: str, row: Mapping[str, Any], at_text: str | None = None, *, key: bytes) -> str:
    """The keyed hash of one stored event under `key`."""
    return hasher(key)(prev_hash, row, at_text)


def append(session: Session, events: Sequence[Event], at: dt.datetime) -> int:
    """Append `events` at time `at` to the chain in the session's transaction; returns the last seq.

    Flushes the session first, so that the rows the events describe are written (and locked) before
    the chain head is: every writer takes its locks in that order.
    """
    if not events:
        return 0
    keyed = hasher(chain_key())
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
            "chain": KEYED,
        }
        row["hash"] = prev = keyed(prev, row, at_text)
        for c in COLUMNS:
            columns[c].append(row[c])
    insert_columns(session, AuditEvent.__table__, columns)
    session.execute(update(head).where(head.c.id == 1).values(seq=seq, hash=prev))
    session.info[_HEAD] = (seq, prev)
    return seq


_HEAD = "zhida_audit_head"  # session.info: (seq, hash) of the last event this transaction appended
_CHECKPOINT = "zhida_audit_checkpoint"  # session.info: this transaction leaves a checkpoint
_daily: dict[str, dt.date] = {}  # checkpoint directory -> the last day this process saw one taken


def checkpoint_on_commit(session: Session) -> None:
    """Write the head this transaction leaves as a signed checkpoint once it commits (when
    `ZHIDA_AUDIT_CHECKPOINT_DIR` is set); after, so that no checkpoint names an event rolled back."""
    session.info[_CHECKPOINT] = True


def take_checkpoint(session: Session, now: dt.datetime, key: bytes | None = None) -> Checkpoint:
    """A signed checkpoint of the chain's head as this session sees it."""
    head = AuditHead.__table__
    seq, head_hash = session.execute(select(head.c.seq, head.c.hash).where(head.c.id == 1)).one()
    return Checkpoint.signed(key or chain_key(), seq, head_hash, now)


@event.listens_for(OrmSession, "after_commit")
def _checkpoint_after_commit(session: OrmSession) -> None:
    head = session.info.pop(_HEAD, None)
    wanted = session.info.pop(_CHECKPOINT, False)
    if head is None:
        return  # nothing appended: the head is where the last checkpoint left it
    folder = checkpoints.directory()
    if folder is None:
        return
    now = dt.datetime.now(dt.UTC)
    today, name = now.date(), str(folder)
    if not wanted and (_daily.get(name) == today or checkpoints.taken_on(folder, today)):
        _daily[name] = today
        return
    try:
        path = checkpoints.write_into(folder, Checkpoint.signed(chain_key(), head[0], head[1], now))
    except (OSError, PayoutError):
        # The events are committed: say loudly that their checkpoint is missing, and try again with
        # the next event (the day is not marked as done).
        log.exception("audit checkpoint of event %s could not be written into %s", head[0], folder)
        return
    _daily[name] = today
    log.info("audit checkpoint written: %s", path)


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_at_the_end(session: OrmSession, transaction: Any) -> None:
    if transaction.parent is None:  # the whole transaction, committed (already handled) or rolled back
        session.info.pop(_HEAD, None)
        session.info.pop(_CHECKPOINT, None)


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
    session: Session,
    event: Event,
    members: Select[tuple[str]],
    at: dt.datetime,
    *,
    chunk: int = 50_000,
    listed: bool = True,
) -> int:
    """`append_bulk` for members given as a query of their ids (one column, no duplicates), for sets
    too large to hold: the digest is computed while streaming them in order, and `audit_member` is
    filled by INSERT ... SELECT (unless `listed` is false: the creation of a run's offers, as in
    `append_bulk`). Returns the event's seq (0 if there are no members).
    """
    if not listed and (event.action, event.entity) != ("import", "offers"):
        raise ValueError("only the creation of a run's offers may leave its members unlisted")
    session.flush()
    count, digest = streamed_digest(session, members, chunk=chunk)
    if not count:
        return 0
    extra = {} if listed else {"members_of": "run"}
    seq = append(session, [_bulk_event(event, count, digest, **extra)], at)
    if listed:
        (column,) = members.subquery().c
        member = AuditMember.__table__
        session.execute(
            insert(member).from_select(["seq", "entity_id"], select(literal(seq, BigInteger), column))
        )
    return seq


def streamed_digest(session: Session, members: Select[tuple[str]], *, chunk: int = 50_000) -> tuple[int, str]:
    """How many ids `members` selects and their `members_digest`, computed while streaming them in
    binary order (the order of Python's `sorted`), `chunk` at a time: memory does not grow with them."""
    ids = members.subquery()
    (column,) = ids.c
    binary = column.collate("C") if session.connection().dialect.name == "postgresql" else column
    digest, count = hashlib.sha256(), 0
    ordered = select(column).order_by(binary).execution_options(yield_per=chunk)
    for part in session.execute(ordered).scalars().partitions():
        digest.update(("\n" if count else "").encode() + "\n".join(part).encode())
        count += len(part)
    return count, digest.hexdigest()


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
    legacy: int = 0  # events written before the chain was keyed (plain SHA-256)
    checkpoints: int = 0  # signed checkpoints the chain was checked against
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


def _checkpoint_name(cp: Checkpoint) -> str:
    return f"检查点 {cp.source or '（未命名）'}（{cp.at}，第 {cp.seq} 条）"


def verify(
    session: Session,
    chunk: int = 20_000,
    max_problems: int = 20,
    *,
    key: bytes | None = None,
    against: Sequence[Checkpoint] = (),
) -> Verification:
    """Recompute the whole chain from the first event under the audit key and compare it with what is
    stored, and with the signed checkpoints `against` (each one's event must still be there, with the
    hash the checkpoint names: a cut tail, a rewritten or a re-linked chain all fail here).
    """
    key = key or chain_key()
    keyed = hasher(key)
    report = Verification()
    anchors: dict[int, list[Checkpoint]] = {}
    for cp in against:
        if cp.valid(key):
            anchors.setdefault(cp.seq, []).append(cp)
            report.checkpoints += 1
        else:
            report.problems.append(
                f"{_checkpoint_name(cp)}的签名不符：检查点文件被改动，或 {KEY_ENV} 不是签名时的密钥"
            )
    head = session.execute(select(AuditHead.__table__)).mappings().one()
    report.head_seq, report.head_hash = head["seq"], head["hash"]
    expected_seq, prev = 1, GENESIS
    keyed_seen = keyed_wrong = 0
    for row in _stored(session, chunk):
        report.events += 1
        seq = row["seq"]
        if seq != expected_seq:
            report.problems.append(f"第 {expected_seq} 条之后缺少事件（下一条是第 {seq} 条）")
            report.problems += _missing_anchors(anchors, expected_seq, seq)
        if row["prev_hash"] != prev:
            report.problems.append(f"第 {seq} 条的前一哈希与链不符：链已断开或事件被删除、改序")
        if row["chain"] == KEYED:
            keyed_seen += 1
            expected = keyed(row["prev_hash"], row, None)
        elif row["chain"] == LEGACY and not keyed_seen:
            report.legacy += 1
            expected = legacy_hash(row["prev_hash"], row)
        else:
            report.problems.append(
                f"第 {seq} 条标为无密钥的旧式事件（chain={row['chain']}），却在带密钥的事件之后：链被改写"
            )
            expected = None
        if expected is not None and expected != row["hash"]:
            keyed_wrong += row["chain"] == KEYED
            report.problems.append(f"第 {seq} 条的内容与其哈希不符：事件被改动，或其后的链被重新计算")
        elif expected is not None and '"members":' in row["data"]:
            report.problems += _check_members(session, row)
        for cp in anchors.pop(seq, ()):
            if cp.hash != row["hash"]:
                report.problems.append(
                    f"第 {seq} 条的哈希与{_checkpoint_name(cp)}不符：该检查点之前的日志被改写或删改"
                )
        if len(report.problems) >= max_problems:
            return report
        expected_seq, prev = seq + 1, row["hash"]
    last = expected_seq - 1
    for seq in sorted(anchors):
        if seq == 0:
            continue  # a checkpoint of the empty chain
        for cp in anchors[seq]:
            report.problems.append(
                f"日志末尾被截断：{_checkpoint_name(cp)}记录到第 {seq} 条，库中最后一条是第 {last} 条"
            )
    if (report.head_seq, report.head_hash) != (last, prev):
        report.problems.append(
            f"链头记录（第 {report.head_seq} 条 {report.head_hash[:12]}…）与最后一条事件"
            f"（第 {last} 条 {prev[:12]}…）不符"
        )
    if keyed_seen and keyed_wrong == keyed_seen:
        report.problems.append(
            f"每一条带密钥的事件都与其哈希不符：若日志未被改写，则 {KEY_ENV} 不是写入日志时的密钥"
        )
    return report


def _missing_anchors(anchors: dict[int, list[Checkpoint]], first: int, after: int) -> list[str]:
    """Checkpoints whose event is in the gap first..after-1 (deleted)."""
    gone = [seq for seq in anchors if first <= seq < after]
    return [
        f"{_checkpoint_name(cp)}记录的第 {seq} 条事件已被删除"
        for seq in sorted(gone)
        for cp in anchors.pop(seq)
    ]


def _members(row: Mapping[str, Any], data: Mapping[str, Any]) -> Select[tuple[str]]:
    """The ids a stored bulk event covers: its listed members, or the offers of its run."""
    if data.get("members_of") == "run":
        run = select(MatchRun.id).where(MatchRun.run_id == row["entity_id"]).scalar_subquery()
        return select(Offer.public_id).where(Offer.match_run_id == run)
    return select(AuditMember.entity_id).where(AuditMember.seq == row["seq"])


def _check_members(session: Session, row: Mapping[str, Any]) -> list[str]:
    data = json.loads(row["data"])
    count, digest = streamed_digest(session, _members(row, data))
    if count != data.get("count") or digest != data.get("members"):
        return [
            f"第 {row['seq']} 条涉及的对象清单与事件记录不符（{count} 个，事件记录 {data.get('count')} 个）"
        ]
    return []


# What staff read for an audit action (the log keeps the English word; pages and exports show these).
ACTION_LABELS = {
    "import": "导入比对结果",
    "review_opinion": "会签意见",
    "add_department": "新增部门",
    "place_department": "设定部门层级和辖区",
    "release": "初核通过发布",
    "hold": "暂缓",
    "drop": "剔除",
    "notify": "发送确认短信",
    "confirm": "企业确认领取",
    "decline": "企业放弃",
    "account_wrong": "企业反映账户有误",
    "expire": "确认逾期",
    "batch": "纳入拨付批次",
    "unbatch": "移出拨付批次",
    "assemble": "制单",
    "approve": "复核通过",
    "reject": "退回",
    "export": "导出银行文件",
    "reconcile": "导入银行回单",
    "remove_line": "异议成立，移出批次",
    "resolve": "处理异议",
    "correct_account": "更正对公账户",
    "verify": "核实补充数据",
    "retire": "停用数据更正",
    "view_evidence": "查看证明材料",
    "create_user": "新增用户",
    "set_role": "更改角色",
    "set_department": "更改部门",
    "set_active": "停用或启用",
    "set_password": "设置密码",
    "unlock": "解除锁定",
    "issue_cli_token": "签发命令行令牌",
    "revoke_cli_tokens": "吊销命令行令牌",
    "sign_in": "登录",
    "sign_in_failed": "登录失败",
    "sign_in_refused": "登录被拒绝",
    "sign_out": "退出登录",
    "lock": "锁定账户",
    "publish": "发布政策",
    "create": "新建",
    "supply": "企业补充数据",
    "object": "提出异议",
    "open": "开始公示",
    "propose_account_change": "提出账户变更",
    "approve_account_change": "批准账户变更",
    "reject_account_change": "驳回账户变更",
    "login": "企业登录",
    "login_code": "发送企业登录验证码",
    "login_failed": "企业登录失败",
    "login_locked": "企业登录锁定",
    "login_blocked": "企业登录被阻止",
    "login_alert": "企业登录提醒",
    "login_alert_failed": "企业登录提醒发送失败",
    "logout": "企业退出登录",
}

# What staff read for the thing an event is about.
ENTITY_LABELS = {
    "offer": "要约",
    "offers": "要约（批量）",
    "batch": "拨付批次",
    "run": "比对结果",
    "payee": "对公账户",
    "payee_change": "账户变更申请",
    "user": "用户",
    "enterprise": "企业",
    "notice": "公示",
    "objection": "异议",
    "supplied": "补充数据",
    "override": "数据更正",
    "policy": "政策",
}


def entity_label(entity: str) -> str:
    """What an event is about, as staff read it: 要约, 拨付批次 (an unknown kind as it is)."""
    return ENTITY_LABELS.get(entity, entity)


def action_label(action: str) -> str:
    """An audit action as staff read it: 暂缓, 复核通过 (an unknown action as it is)."""
    return ACTION_LABELS.get(action, action)


def actor_label(
    actor: str, names: Mapping[str, str] | None = None, enterprises: Mapping[str, str] | None = None
) -> str:
    """Who acted, as staff read it: a member of staff by name (`names`: username → display name),
    系统 for the system's own jobs, an enterprise by its name (`enterprises`: USCC → name), else
    企业（USCC）."""
    if actor == "system":
        return "系统"
    if actor.startswith("enterprise:"):
        uscc = actor.removeprefix("enterprise:")
        name = (enterprises or {}).get(uscc)
        return f"{name}（企业）" if name else f"企业（{uscc}）"
    if actor.startswith("agent:"):  # 帮办代办 acting for an enterprise (portal.agency)
        agent = actor.removeprefix("agent:")
        return f"帮办代办（{(names or {}).get(agent, agent)}）"
    return (names or {}).get(actor, actor)


def history(session: Session, entity: str, entity_id: str) -> list[AuditEvent]:
    """Every event of one thing, oldest first: its own events and the bulk events it is a member of."""
    query = select(AuditEvent).where(about(entity, entity_id))
    return list(session.scalars(query.order_by(AuditEvent.seq)).all())


def about(entity: str, entity_id: str | Select[tuple[str]]) -> ColumnElement[bool]:
    """The events of one thing (or of the things whose ids `entity_id` selects): their own, the bulk
    events listing them, and, for offers, the import of their run."""
    ids = entity_id if isinstance(entity_id, Select) else None

    def one_of(column: Any) -> ColumnElement[bool]:
        return column.in_(ids) if ids is not None else column == entity_id

    bulk = select(AuditMember.seq).where(one_of(AuditMember.entity_id))
    mine = (AuditEvent.entity == entity) & one_of(AuditEvent.entity_id)
    listed = (AuditEvent.entity == entity + "s") & AuditEvent.seq.in_(bulk)
    if entity == "offer":
        runs = (
            select(MatchRun.run_id)
            .join(Offer, Offer.match_run_id == MatchRun.id)
            .where(one_of(Offer.public_id))
        )
        imported = (
            (AuditEvent.entity == "offers")
            & AuditEvent.entity_id.in_(runs)
            & AuditEvent.data.contains('"members_of":"run"', autoescape=True)
        )
        listed = listed | imported
    return mine | listed


@dataclass(frozen=True)
class EventSearch:
    """What an auditor looks for in the log; every field that is set must hold.

    `actors`: the stored actor values (a username, `system`, `enterprise:USCC`); `enterprise`: a USCC
    (its offers' events, its sign-ins, its account's changes, and what it did itself); `offer`: an offer's
    public id (`history`); `since`/`until`: a half-open range [since, until) of moments.
    """

    actors: tuple[str, ...] | None = None
    action: str | None = None
    enterprise: str | None = None
    offer: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None

    def condition(self) -> ColumnElement[bool]:
        e = AuditEvent.__table__.c
        where: list[ColumnElement[bool]] = []
        if self.actors is not None:
            where.append(e.actor.in_(self.actors))
        if self.action:
            where.append(e.action == self.action)
        if self.offer:
            where.append(about("offer", self.offer))
        if self.enterprise:
            uscc = self.enterprise
            offers = select(Offer.public_id).where(Offer.uscc == uscc)
            payees = select(cast(Payee.id, String)).where(Payee.uscc == uscc)
            changes = select(PayeeChange.public_id).where(PayeeChange.uscc == uscc)
            where.append(
                or_(
                    e.actor == f"enterprise:{uscc}",
                    and_(e.entity == "enterprise", e.entity_id == uscc),
                    and_(e.entity == "payee", e.entity_id.in_(payees)),
                    and_(e.entity == "payee_change", e.entity_id.in_(changes)),
                    about("offer", offers),
                )
            )
        if self.since is not None:
            where.append(e.at >= self.since)
        if self.until is not None:
            where.append(e.at < self.until)
        return and_(true(), *where)


def search(
    session: Session, wanted: EventSearch, *, limit: int, offset: int = 0, cap: int = 100_000
) -> tuple[int, list[AuditEvent]]:
    """The events matching `wanted`, newest first: how many (counted up to `cap` + 1: more than `cap`
    means more), and `limit` of them from `offset`."""
    where = wanted.condition()
    some = select(AuditEvent.seq).where(where).limit(cap + 1).subquery()
    count = session.scalar(select(func.count()).select_from(some)) or 0
    page = select(AuditEvent).where(where).order_by(AuditEvent.seq.desc()).limit(limit).offset(offset)
    return count, list(session.scalars(page).all())


def found_pages(session: Session, wanted: EventSearch, size: int = 5_000) -> Iterator[list[AuditEvent]]:
    """Every event matching `wanted`, newest first, `size` at a time (by sequence number, so that memory
    stays one page whatever the number of events); each page is let go of before the next is read."""
    where, before = wanted.condition(), None
    while True:
        page = select(AuditEvent).where(where).order_by(AuditEvent.seq.desc()).limit(size)
        if before is not None:
            page = page.where(AuditEvent.seq < before)
        events = list(session.scalars(page).all())
        if not events:
            return
        yield events
        before = events[-1].seq
        session.expunge_all()


def actors_named(session: Session, text: str) -> tuple[str, ...]:
    """The stored actor values a person may mean by `text`: 系统 (the system's jobs), a USCC (that
    enterprise), or staff whose username or display name holds it."""
    text = text.strip()
    found: set[str] = {text}
    if text in ("系统", "system"):
        found.add("system")
    if len(text) == 18 and text.isalnum():
        found.add(f"enterprise:{text.upper()}")
    if text.startswith("企业"):
        found.add(f"enterprise:{text.removeprefix('企业').strip('（）() ').upper()}")
    staff = select(StaffUser.username).where(
        or_(
            StaffUser.username.contains(text, autoescape=True),
            StaffUser.display_name.contains(text, autoescape=True),
        )
    )
    found.update(session.scalars(staff).all())
    return tuple(sorted(found))


def offer_histories(session: Session) -> dict[str, list[AuditEvent]]:
    """Every offer's audit events, oldest first (`history` of all offers at once): its own, the bulk
    ones listing it, its run's import."""
    out: dict[str, list[AuditEvent]] = {}
    for e in session.scalars(select(AuditEvent).where(AuditEvent.entity == "offer")):
        out.setdefault(e.entity_id, []).append(e)
    for member, e in session.execute(
        select(AuditMember.entity_id, AuditEvent).join(AuditEvent, AuditEvent.seq == AuditMember.seq)
    ):
        out.setdefault(member, []).append(e)
    runs = dict(session.execute(select(MatchRun.run_id, MatchRun.id)).all())
    imports = select(AuditEvent).where(AuditEvent.data.contains('"members_of":"run"', autoescape=True))
    for e in session.scalars(imports):
        for public_id in session.scalars(
            select(Offer.public_id).where(Offer.match_run_id == runs[e.entity_id])
        ):
            out.setdefault(public_id, []).append(e)
    return {k: sorted(v, key=lambda e: e.seq) for k, v in out.items()}


def replay_problem(events: Sequence[AuditEvent], state: str) -> str | None:
    """Why replaying `events`, change by change, does not end in `state` (None when it does)."""
    now: str | None = None
    for e in events:
        if e.from_state != now:
            return f"event {e.seq} ({e.action}) starts from {e.from_state}, the log had {now}"
        now = e.to_state
    return None if now == state else f"the log ends in {now}, the state is {state}"
