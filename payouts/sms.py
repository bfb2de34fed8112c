"""SMS to enterprises: the notice with its one-click link, reminders before expiry, and the expiry sweep.

Messages go through an `SmsGateway`. The default (`OutboxGateway`) keeps them in the `sms_message`
table (the outbox) and echoes them to the console; `TemplateGateway` is the shape of a real
provider's template API (sign name, template code, parameters), with the HTTP call injected.

Each message carries its own link token (128 bits); only its SHA-256 is stored, and the stored text
has the token cut out. The token is derived (HMAC, `tokens.derived_link_token`) from the link key
`ZHIDA_LINK_KEY` and the outbox row's attempt (offer public id, round, kind, attempt number), and so
is the provider-side idempotency key every message carries (`OutgoingSms.key`). Why derived and not
drawn at random and stored: a notice whose hand-over was cut short by a crash is sent again by the
next call with the same key, and a provider that already took it drops the copy; the enterprise then
holds the first copy's link, so the copy must carry the same token. Deriving it needs no secret in
the database (a database reader alone cannot build a link, as with random tokens); storing the token
encrypted would need the same application-held key plus a column to wipe. A new attempt (after a
refusal) gets a new token and a new key. `send_notices`, which hands messages over inside the
caller's transaction, gains the same: if its process dies, the rows roll back, and the next call
composes attempt 1 again, with the same token and key. Changing the link key leaves the links
already sent working (only hashes are stored), but a notice cut short before the change cannot be
sent again as it was: it stays `sending`, reported, for staff to check with the provider.

Every link of an offer expires at the offer's deadline (`link_ttl_days` after the first notice).
Reminders go out `reminder_days` before the deadline, each at most once per round (a unique key on
offer, round and kind). `expire_overdue` moves offers whose deadline has passed to `expired`.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Engine,
    Row,
    Select,
    Text,
    and_,
    func,
    select,
    text,
    true,
    update,
)
from sqlmodel import Session

from payouts import audit, bulkload, offers, scope, tokens
from payouts.audit import Event
from payouts.db import PayoutSettings, transaction
from payouts.errors import SmsError
from payouts.models import Offer, OfferState, Payee, PolicyVersion, SmsMessage, SmsOptOut
from payouts.payees import mask_phone
from payouts.selection import Selection, Tally
from rules.formats import CHINA, money_exact_cn

SEGMENT = 67  # characters per segment of a concatenated Chinese (UCS-2) SMS
MAX_CHARS = 2 * SEGMENT
NOTICE = "notice"
SENDING = "sending"  # claimed by a chunked sender: handed to the gateway or about to be
KEY_CHANGED = "链接密钥已更换，这条发送中断的短信无法按原样重发：请与短信平台核对是否已送达"
_SENDER_LOCK = 0x7A68_6964_6101  # PostgreSQL advisory lock key: one chunked sender at a time

# The department that pays and a phone the enterprise can look up come first, so that the message does not
# read like a scam; no material is asked for; the link comes last (nothing after it for a phone to glue on).
TEMPLATES = {
    NOTICE: "【{sign}】{department}：{name}符合“{title}”，可获{amount}，拨付至对公账户，无需提交材料，"
    "咨询{phone}。请于{date}前确认：{link}",
    "reminder": "【{sign}】{department}：“{title}”{amount}待{name}确认，{date}到期，咨询{phone}：{link}",
}


@dataclass(frozen=True)
class Subject:
    """What an offer's SMS names besides the enterprise: the item's title, the paying department and the
    service phone (the policy's, else the deployment's)."""

    title: str
    department: str
    phone: str | None


@dataclass(frozen=True)
class OutgoingSms:
    """One message as a gateway gets it: the full text, the template parameters, and the provider-side
    idempotency key (the same for every hand-over of one outbox attempt; random for a message that
    is never handed over twice, such as a sign-in code)."""

    phone: str
    kind: str
    text: str
    params: dict[str, str]
    key: str = field(default_factory=lambda: secrets.token_hex(16))


class SmsGateway(Protocol):
    """Sends one SMS; returns the provider's reference or raises SmsError."""

    name: str

    def send(self, sms: OutgoingSms) -> str: ...


@dataclass
class OutboxGateway:
    """The default gateway: the outbox table is the record, and each message is echoed (masked) to the
    console; `reveal_links` (development only) echoes working links."""

    echo: Callable[[str], None] | None = None
    name: str = "outbox"
    reveal_links: bool = False

    def send(self, sms: OutgoingSms) -> str:
        if self.echo is not None:
            self.echo(masked_line(sms, reveal_links=self.reveal_links))
        return "outbox"


def masked_line(sms: OutgoingSms, *, reveal_links: bool = False) -> str:
    """A message as logs and terminals show it: the phone masked (139****8988) and, unless
    `reveal_links`, the link's token cut to its first four characters, so the line opens nothing."""
    link = sms.params.get("link")
    text = cut_token(sms.text, link.rsplit("/", 1)[-1]) if link and not reveal_links else sms.text
    return f"{mask_phone(sms.phone)} {text}"


def cut_token(text: str, token: str) -> str:
    """`text` with the link token cut to its first four characters: it names the link, opens nothing."""
    return text.replace(token, token[:4] + "…")


@dataclass
class MemoryGateway:
    """Keeps every message sent, with its link, in memory: the enterprise's phone in tests and demos.

    Like a provider, it takes a message once per idempotency key: a copy handed over again with the
    key of one it took is recorded in `duplicates`, not sent, and answered with the first one's
    reference."""

    sent: list[OutgoingSms] = field(default_factory=list)
    fail_phones: set[str] = field(default_factory=set)
    name: str = "memory"
    duplicates: list[OutgoingSms] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)  # idempotency key → the provider's reference

    def send(self, sms: OutgoingSms) -> str:
        if sms.phone in self.fail_phones:
            raise SmsError(f"号码 {sms.phone} 无法送达")
        if sms.key in self.refs:
            self.duplicates.append(sms)
            return self.refs[sms.key]
        self.sent.append(sms)
        self.refs[sms.key] = f"mem-{len(self.sent)}"
        return self.refs[sms.key]


@dataclass
class TemplateGateway:
    """Adapter shape for a provider's template SMS API (e.g. SendSms with SignName/TemplateCode).

    `transport` performs the HTTP call with the request dict and returns the provider's response;
    a response whose `Code` is not `OK` raises SmsError with the provider's message. The message's
    idempotency key goes in the request's `key_field` (the provider's out-id), by which the provider
    drops a copy of a message it already took.
    """

    transport: Callable[[dict[str, Any]], dict[str, Any]]
    sign_name: str
    template_codes: dict[str, str]
    name: str = "template"
    key_field: str = "OutId"

    def send(self, sms: OutgoingSms) -> str:
        # Its own template where the provider has one (e.g. "login_code"); reminders share one. Any
        # other kind (sign-in codes, sign-in alerts) without a template of its own is refused: sent
        # through the reminder's template it would reach the enterprise as a wrong message.
        if sms.kind in self.template_codes:
            kind = sms.kind
        elif sms.kind == NOTICE or sms.kind.startswith("reminder"):
            kind = NOTICE if sms.kind == NOTICE else "reminder"
        else:
            raise SmsError(f"短信平台未配置“{sms.kind}”类短信的模板，无法发送")
        request = {
            "PhoneNumbers": sms.phone,
            "SignName": self.sign_name,
            "TemplateCode": self.template_codes[kind],
            "TemplateParam": json.dumps(sms.params, ensure_ascii=False, sort_keys=True),
            self.key_field: sms.key,
        }
        response = self.transport(request)
        if response.get("Code") != "OK":
            raise SmsError(f"短信平台拒绝：{response.get('Code')} {response.get('Message', '')}".strip())
        return str(response.get("BizId", ""))


def _shorten(text: str, keep: int) -> str:
    return text if len(text) <= keep else text[: max(keep - 1, 1)] + "…"


def fit_text(template: str, values: dict[str, str], steps: Sequence[tuple[str, int]]) -> str:
    """`template` filled with `values`, shortened to fit two SMS segments: each (key, floor) of `steps` in
    turn shortens that value (to no fewer than `floor` characters) until the text fits; `values` is updated
    to what was sent. What `steps` does not name (the link, the amount, a phone) is never shortened."""
    text = template.format(**values)
    for key, floor in steps:
        over = len(text) - MAX_CHARS
        if over <= 0:
            break
        values[key] = _shorten(values[key], max(len(values[key]) - over, floor))
        text = template.format(**values)
    return text


def render(
    kind: str,
    *,
    sign: str,
    name: str,
    title: str,
    amount: Decimal,
    deadline: dt.datetime,
    link: str,
    department: str,
    phone: str,
) -> tuple[str, dict[str, str]]:
    """The text of one SMS and its template parameters, shortened to fit two SMS segments.

    The link, the amount and the phone are never shortened; the policy title, then the enterprise name,
    then the department are.
    """
    local = deadline.astimezone(CHINA)
    params = {
        "sign": sign,
        "department": department,
        "name": name,
        "title": title,
        "amount": money_exact_cn(amount),
        "date": f"{local.month}月{local.day}日",
        "phone": phone,
        "link": link,
    }
    template = TEMPLATES[NOTICE if kind == NOTICE else "reminder"]
    steps = (("title", 8), ("name", 6), ("department", 6), ("title", 4), ("name", 2), ("department", 2))
    text = fit_text(template, params, steps)
    if len(text) > MAX_CHARS:
        raise SmsError(f"短信超长（{len(text)} 字）：请缩短链接地址 ZHIDA_LINK_BASE")
    return text, params


@dataclass
class SendResult:
    """How many messages went out, and how many the gateway refused (kept for a retry)."""

    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _titles(session: Session) -> dict[tuple[str, int, str], Subject]:
    """(policy, version, item) → its subject: "policy title·item title" (the item title only if it says
    more), the department and the policy's service phone."""
    out = {}
    for p in session.scalars(select(PolicyVersion)):
        items = json.loads(p.items)
        for item in items:
            title = p.title if len(items) == 1 or item["title"] in p.title else f"{p.title}·{item['title']}"
            out[(p.policy_id, p.version, item["id"])] = Subject(title, p.department, p.service_phone)
    return out


def _compose(
    gateway: SmsGateway,
    offer: Offer | Row[Any],  # an Offer, or a row of its columns and its payee's (`_CLAIMED`)
    payee: Payee | Row[Any],
    kind: str,
    title: Subject,
    deadline: dt.datetime,
    settings: PayoutSettings,
    attempt: int,
) -> tuple[dict[str, Any], OutgoingSms]:
    """Attempt `attempt` of the message of this offer's round and kind: the outbox row's fields (the
    text with the token cut out, only the token's hash) and the SMS to send, with its token and
    idempotency key derived from the attempt (the same every time it is composed)."""
    attempt_id = f"{offer.public_id}|{offer.round}|{kind}|{attempt}"
    token = tokens.derived_link_token(settings.link_key, attempt_id)
    link = settings.link_base + token
    text, params = render(
        kind,
        sign=settings.sms_sign,
        name=payee.name,
        title=title.title,
        amount=offer.amount,
        deadline=deadline,
        link=link,
        department=title.department,
        phone=title.phone or settings.service_phone,
    )
    fields = {
        "text": cut_token(text, token),
        "token_hash": tokens.token_hash(token),
        "expires_at": deadline,
        "gateway": gateway.name,
        "error": None,
    }
    key = tokens.sms_key(settings.link_key, attempt_id)
    return fields, OutgoingSms(payee.contact_phone or "", kind, text, params, key)


def _prepare(
    message: SmsMessage | None,
    gateway: SmsGateway,
    offer: Offer | Row[Any],  # an Offer, or a row of its columns and its payee's (`_CLAIMED`)
    payee: Payee | Row[Any],
    kind: str,
    title: Subject,
    deadline: dt.datetime,
    settings: PayoutSettings,
    now: dt.datetime,
) -> tuple[SmsMessage, OutgoingSms]:
    """The message row of this round and kind (the given one, or a new one the caller adds) with the
    token of its next attempt, and the SMS to send; the row keeps only the token's hash."""
    attempt = (message.attempts or 0) + 1 if message is not None else 1
    fields, outgoing = _compose(gateway, offer, payee, kind, title, deadline, settings, attempt)
    if message is None:
        message = SmsMessage(
            offer_id=offer.id,
            round=offer.round,
            kind=kind,
            phone=payee.contact_phone or "",
            created_at=now,
            status="queued",
            **fields,
        )
    else:
        for name, value in fields.items():
            setattr(message, name, value)
    message.attempts = attempt
    return message, outgoing


def _deliver(
    session: Session,
    gateway: SmsGateway,
    offer: Offer,
    payee: Payee,
    kind: str,
    title: Subject,
    deadline: dt.datetime,
    settings: PayoutSettings,
    now: dt.datetime,
) -> tuple[bool, str | None]:
    """Write (or reuse) the message row for this round and kind, make its token, and send it."""
    with session.no_autoflush:  # the rows of earlier messages are flushed once, with the audit events
        message = session.scalar(
            select(SmsMessage).where(
                SmsMessage.offer_id == offer.id, SmsMessage.round == offer.round, SmsMessage.kind == kind
            )
        )
    if message is not None and message.status in ("sent", SENDING):
        return False, None
    message, outgoing = _prepare(message, gateway, offer, payee, kind, title, deadline, settings, now)
    session.add(message)
    try:
        message.provider_ref = gateway.send(outgoing)
    except SmsError as e:
        message.status, message.error, message.token_hash = "failed", str(e), None
        return False, f"{offer.public_id}: {e}"
    message.status, message.sent_at = "sent", now
    return True, None


def reachable() -> ColumnElement[bool]:
    """The payee's phone is not on the opt-out list (回复TD退订): no SMS goes to a number that opted out;
    its offers wait, released, for staff to reach the enterprise another way."""
    return ~select(SmsOptOut.id).where(SmsOptOut.phone == Payee.contact_phone).exists()


def _released(
    limit: int | None, after: int = 0, where: ColumnElement[bool] | None = None, *, stuck: bool = False
) -> Select[tuple[Offer, Payee]]:
    """Released offers (with an id above `after`, matching `where`), locked (skipping those another
    sender holds), without a notice of their round that was sent or is being sent (`stuck`: or with
    one left `sending` by a sender that stopped)."""
    busy = select(SmsMessage.id).where(
        SmsMessage.offer_id == Offer.id,
        # Said again of the message (the planner does not carry a range across a join), so that the
        # check reads the outbox from `after` on (a merge join along its unique key), not every notice
        # sent before this chunk: a run of many chunks would otherwise grow with the square of its size.
        SmsMessage.offer_id > after,
        SmsMessage.round == Offer.round,
        SmsMessage.kind == NOTICE,
        SmsMessage.status.in_(("sent",) if stuck else ("sent", SENDING)),
    )
    return (
        select(Offer, Payee)
        .join(Payee, Payee.id == Offer.payee_id)
        .where(Offer.state == OfferState.RELEASED.value, Offer.id > after, ~busy.exists(), reachable())
        .where(true() if where is None else where)
        .order_by(Offer.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Offer)
    )


def send_notices(
    session: Session,
    gateway: SmsGateway,
    now: dt.datetime,
    settings: PayoutSettings | None = None,
    *,
    limit: int | None = None,
    actor: str = "system",
    selection: Selection | None = None,
    expected: Tally | None = None,
) -> SendResult:
    """Send the notice SMS of every released offer (of `selection`, when given); a sent offer becomes
    `notified` with a deadline. Nothing is sent when the offers are not the `expected` count and total.

    Offers another sender is working on are skipped (SKIP LOCKED on PostgreSQL), so two senders at
    once do not send twice. A refused message is kept as failed and retried by the next call.
    All in the caller's transaction: for many messages, `send_notices_in_chunks` commits as it goes.
    """
    settings = settings or PayoutSettings.from_env()
    titles = _titles(session)
    query = _released(limit).where(scope.of_username(session, actor).offers(deciding=True))
    if selection is not None:
        query = query.where(offers.acting(selection, "notify"))
    rows = session.execute(query).all()
    Tally.of([offer.amount for offer, _ in rows]).check(expected)
    result = SendResult()
    events: list[Event] = []
    for offer, payee in rows:
        deadline = offer.deadline or now + dt.timedelta(days=settings.link_ttl_days)
        title = titles[(offer.policy_id, offer.policy_version, offer.item_id)]
        ok, error = _deliver(session, gateway, offer, payee, NOTICE, title, deadline, settings, now)
        if ok:
            offer.deadline = deadline
            events.append(
                offers.move(
                    offer,
                    OfferState.NOTIFIED,
                    actor=actor,
                    action="notify",
                    now=now,
                    gateway=gateway.name,
                    deadline=audit.timestamp(deadline),
                )
            )
            result.sent += 1
        elif error:
            result.failed += 1
            result.errors.append(error)
    audit.append(session, events, now)
    return result


@dataclass(frozen=True)
class _Claim:
    """A notice claimed for sending: its outbox row (committed, with the token's hash) and the SMS."""

    message_id: int
    offer_id: int
    public_id: str
    sms: OutgoingSms
    deadline: dt.datetime  # the offer's deadline if it has none yet, as the message states it


def send_notices_in_chunks(
    engine: Engine,
    gateway: SmsGateway,
    now: dt.datetime,
    settings: PayoutSettings | None = None,
    *,
    chunk: int = 1000,
    limit: int | None = None,
    actor: str = "system",
    selection: Selection | None = None,
    expected: Tally | None = None,
) -> SendResult:
    """`send_notices` for any number of offers, `chunk` at a time, each in its own transactions, so
    that the next call goes on where this one stopped, and a crash never makes a message reach the
    enterprise twice:

    1. claim (committed before anything is sent): the next released offers without a notice of their
       round sent get their outbox row, status `sending`, with the hash of the attempt's token;
    2. send the chunk, with no transaction open, each message with its idempotency key;
    3. settle (committed): the messages sent become `sent` and their offers `notified` (one bulk
       audit event per chunk); refused ones `failed` (retried by the next call, a new attempt).

    If sending stops on an exception, the messages already sent are settled and those not yet tried
    are released (`failed`, to be retried) before the exception goes on. The message being handed to
    the gateway at that moment, or a chunk whose process died, stays `sending`: whether it went out is
    unknown, so the next call hands it over again as it was, with the same token and key, and the
    provider drops the copy if it took the first. One chunked sender runs at a time (a PostgreSQL
    advisory lock, which a dead process's connection lets go), so a `sending` row found by a sender
    is never one another sender is handing over.
    """
    settings = settings or PayoutSettings.from_env()
    with transaction(engine, read_only=True) as session:  # the actor's region and policies only
        mine = scope.of_username(session, actor).offers(deciding=True)
    where = and_(mine, offers.acting(selection, "notify")) if selection is not None else mine
    with one_sender(engine):
        return _send_in_chunks(engine, gateway, now, settings, chunk, limit, actor, where, expected)


@contextmanager
def one_sender(engine: Engine, lock: int = _SENDER_LOCK) -> Iterator[None]:
    """Hold a chunked sender's lock (PostgreSQL; SQLite runs one process): the notices' by default,
    the outbox's (`payouts.outbox.send_chunk`) with its own key."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock})
            conn.commit()


def _send_in_chunks(
    engine: Engine,
    gateway: SmsGateway,
    now: dt.datetime,
    settings: PayoutSettings,
    chunk: int,
    limit: int | None,
    actor: str,
    where: ColumnElement[bool] | None,
    expected: Tally | None,
) -> SendResult:
    if expected is not None:
        # Chunks commit as they go, so the set is checked before anything is sent, and no more
        # messages than confirmed go out even if more offers are released meanwhile.
        with transaction(engine) as session:
            Tally.of(
                list(
                    session.scalars(_released(None, where=where, stuck=True).with_only_columns(Offer.amount))
                )
            ).check(expected)
        limit = expected.count if limit is None else min(limit, expected.count)
    result = SendResult()
    after = 0  # offers are taken in id order, each once per call: a refused one waits for the next call
    analyzed = 0  # notices sent by this call when the outbox's statistics were last taken
    while limit is None or result.sent + result.failed < limit:
        size = chunk if limit is None else min(chunk, limit - result.sent - result.failed)
        with transaction(engine) as session:
            claims, last = _claim_notices(session, gateway, now, settings, size, after, where, result)
        if last is None:
            break
        after = last
        outcomes: dict[int, tuple[str, str]] = {}  # message id → (provider reference, error or "")
        try:
            for c in claims:
                try:
                    outcomes[c.message_id] = (gateway.send(c.sms), "")
                except SmsError as e:
                    outcomes[c.message_id] = ("", str(e))
        finally:
            with transaction(engine) as session:
                _settle_notices(session, gateway, claims, outcomes, now, settings, actor, result)
        if result.sent >= max(chunk, 2 * analyzed):
            # The outbox grows by a chunk at a time and nothing else gives the planner its statistics
            # (autovacuum may be off or late): planned as if it held a handful of notices, the claim's
            # check for a notice already sent reads every notice sent so far once per offer (a nested
            # loop), and each chunk costs more than the last. Taken again each time the count doubles.
            with transaction(engine) as session:
                bulkload.analyze(session, SmsMessage.__table__, ["offer_id", "round", "kind", "status"])
            analyzed = result.sent
    if result.sent >= offers.ANALYZE_AFTER:
        # Many offers are notified now: the planner learns it before the next bulk step (the
        # confirmations, reminders and expiry), which would otherwise be planned for none.
        with transaction(engine) as session:
            bulkload.analyze(session, Offer.__table__, ["state", "deadline", "notified_at"])
    return result


_CLAIMED = (  # what `_claim_notices` reads of an offer and its payee
    Offer.id,
    Offer.public_id,
    Offer.round,
    Offer.amount,
    Offer.deadline,
    Offer.policy_id,
    Offer.policy_version,
    Offer.item_id,
    Payee.name,
    Payee.contact_phone,
)


def _claim_notices(
    session: Session,
    gateway: SmsGateway,
    now: dt.datetime,
    settings: PayoutSettings,
    size: int,
    after: int,
    where: ColumnElement[bool] | None,
    result: SendResult,
) -> tuple[list[_Claim], int | None]:
    """The claims of the next `size` offers after `after`, and the last offer's id (None: no more)."""
    # The columns a notice needs, not whole Offer and Payee objects: a thousand of each per chunk
    # cost more to build than the query takes.
    rows = session.execute(_released(size, after, where, stuck=True).with_only_columns(*_CLAIMED)).all()
    if not rows:
        return [], None
    titles = _titles(session)
    round_of = {r.id: (r.round, r.public_id) for r in rows}
    with session.no_autoflush:
        earlier = {  # the notice of the offer's round, if one was tried
            m.offer_id: m
            for m in session.scalars(
                select(SmsMessage).where(
                    bulkload.among(session, SmsMessage.offer_id, [r.id for r in rows]),
                    SmsMessage.kind == NOTICE,
                )
            )
            if m.round == round_of[m.offer_id][0]
        }
    claims: dict[int, tuple[OutgoingSms, dt.datetime]] = {}  # offer id → the SMS to send, its deadline
    fresh: list[dict[str, Any]] = []  # rows of messages new this round, inserted in one statement
    for offer in rows:
        payee = offer  # the row holds the payee's name and phone too
        deadline = offer.deadline or now + dt.timedelta(days=settings.link_ttl_days)
        title = titles[(offer.policy_id, offer.policy_version, offer.item_id)]
        message = earlier.get(offer.id)
        if message is not None and message.status == SENDING:
            # Cut short: the same attempt again, as it was (its deadline, token and key).
            deadline = offer.deadline or message.expires_at
            fields, outgoing = _compose(
                gateway, offer, payee, NOTICE, title, deadline, settings, message.attempts
            )
            if fields["token_hash"] != message.token_hash:
                result.failed += 1
                result.errors.append(f"{offer.public_id}: {KEY_CHANGED}")
                continue
            claims[offer.id] = outgoing, message.expires_at
            continue
        if message is not None:  # a retry: the same row, a new token
            message, outgoing = _prepare(
                message, gateway, offer, payee, NOTICE, title, deadline, settings, now
            )
            message.status = SENDING
            session.add(message)
            claims[offer.id] = outgoing, deadline
            continue
        fields, outgoing = _compose(gateway, offer, payee, NOTICE, title, deadline, settings, 1)
        del fields["error"]  # none yet
        fresh.append(
            {
                "offer_id": offer.id,
                "round": offer.round,
                "kind": NOTICE,
                "phone": outgoing.phone,
                "created_at": now,
                "status": SENDING,
                "attempts": 1,
                **fields,
            }
        )
        claims[offer.id] = outgoing, deadline
    session.flush()  # the retried rows
    table = SmsMessage.__table__
    if fresh:  # one COPY (PostgreSQL), not one INSERT per message
        bulkload.insert_columns(session, table, {name: [row[name] for row in fresh] for name in fresh[0]})
    if not claims:
        return [], rows[-1].id
    ids = {
        offer_id: message_id
        for offer_id, message_round, message_id in session.execute(
            select(table.c.offer_id, table.c.round, table.c.id).where(
                bulkload.among(session, table.c.offer_id, claims), table.c.kind == NOTICE
            )
        )
        if round_of[offer_id][0] == message_round
    }
    last = rows[-1].id
    return [_Claim(ids[oid], oid, round_of[oid][1], sms, d) for oid, (sms, d) in claims.items()], last


def _settle_notices(
    session: Session,
    gateway: SmsGateway,
    claims: list[_Claim],
    outcomes: dict[int, tuple[str, str]],
    now: dt.datetime,
    settings: PayoutSettings,
    actor: str,
    result: SendResult,
) -> None:
    tried = claims[: len(outcomes)]  # outcomes are recorded in claim order
    sent = [c for c in tried if not outcomes[c.message_id][1]]
    refused = [c for c in tried if outcomes[c.message_id][1]]
    untried = claims[
        len(tried) + 1 :
    ]  # claims[len(tried)], if any, was in the gateway's hands: left `sending`
    failures = [(c, outcomes[c.message_id][1]) for c in refused] + [(c, "发送中断，未发出") for c in untried]
    if sent or failures:
        _record_outcomes(session, sent, outcomes, failures, now)
    by_deadline: dict[dt.datetime, list[int]] = {}  # one deadline in a chunk but for notices sent again
    for c in sent:
        by_deadline.setdefault(c.deadline, []).append(c.offer_id)
    table = Offer.__table__
    for deadline, ids in by_deadline.items():
        offers.move_where(
            session,
            bulkload.among(session, table.c.id, ids),
            OfferState.RELEASED,
            OfferState.NOTIFIED,
            actor=actor,
            action="notify",
            now=now,
            values={"deadline": func.coalesce(table.c.deadline, deadline)},
            subject=gateway.name,
        )
    result.sent += len(sent)
    result.failed += len(refused)
    result.errors += [f"{c.public_id}: {outcomes[c.message_id][1]}" for c in refused]


def _record_outcomes(
    session: Session,
    sent: list[_Claim],
    outcomes: dict[int, tuple[str, str]],
    failures: list[tuple[_Claim, str]],
    now: dt.datetime,
) -> None:
    """The outbox rows of a chunk's messages sent (with the provider's reference) and failed (with the
    error; the token's hash cleared): the outcomes go to a scratch table in one write, and from there
    to the outbox in one UPDATE for the sent and one for the failed, not one UPDATE per message."""
    outcome = bulkload.scratch_table(
        session,
        "sms_outcome",
        Column("message_id", BigInteger, primary_key=True),
        Column("sent", Boolean, nullable=False),
        Column("provider_ref", Text),
        Column("error", Text),
    )
    bulkload.insert_columns(
        session,
        outcome,
        {
            "message_id": [c.message_id for c in sent] + [c.message_id for c, _ in failures],
            "sent": [True] * len(sent) + [False] * len(failures),
            "provider_ref": [outcomes[c.message_id][0] for c in sent] + [None] * len(failures),
            "error": [None] * len(sent) + [error for _, error in failures],
        },
    )
    bulkload.index_scratch(session, outcome)
    m = SmsMessage.__table__
    mine = and_(m.c.id == outcome.c.message_id, outcome.c.sent)
    session.execute(
        update(m).where(mine).values(status="sent", sent_at=now, provider_ref=outcome.c.provider_ref)
    )
    mine = and_(m.c.id == outcome.c.message_id, ~outcome.c.sent)
    session.execute(update(m).where(mine).values(status="failed", error=outcome.c.error, token_hash=None))


def send_reminders(
    session: Session, gateway: SmsGateway, now: dt.datetime, settings: PayoutSettings | None = None
) -> SendResult:
    """Remind enterprises whose offer expires within `reminder_days`: the nearest reminder only, once."""
    settings = settings or PayoutSettings.from_env()
    titles = _titles(session)
    result = SendResult()
    days = sorted(settings.reminder_days)
    horizon = now + dt.timedelta(days=days[-1]) if days else now
    query = (
        select(Offer, Payee)
        .join(Payee, Payee.id == Offer.payee_id)
        .where(
            and_(
                Offer.state == OfferState.NOTIFIED.value,
                Offer.deadline > now,
                Offer.deadline <= horizon,
                reachable(),
            )
        )
        .order_by(Offer.id)
        .with_for_update(skip_locked=True, of=Offer)
    )
    for offer, payee in session.execute(query).all():
        assert offer.deadline is not None
        left = offer.deadline - now
        day = next(d for d in days if left <= dt.timedelta(days=d))
        kinds = {f"reminder_{d}d" for d in days if d <= day}
        sent = session.scalars(
            select(SmsMessage.kind).where(
                SmsMessage.offer_id == offer.id,
                SmsMessage.round == offer.round,
                SmsMessage.kind.in_(kinds),
                SmsMessage.status == "sent",
            )
        ).all()
        if sent:
            continue  # this reminder, or a later one, already went out
        title = titles[(offer.policy_id, offer.policy_version, offer.item_id)]
        ok, error = _deliver(
            session, gateway, offer, payee, f"reminder_{day}d", title, offer.deadline, settings, now
        )
        result.sent += ok
        if error:
            result.failed += 1
            result.errors.append(error)
    return result


def expire_overdue(session: Session, now: dt.datetime, actor: str = "system") -> int:
    """Move every notified offer whose deadline has passed to `expired`; returns how many."""
    expired = offers.move_where(
        session,
        Offer.__table__.c.deadline <= now,
        OfferState.NOTIFIED,
        OfferState.EXPIRED,
        actor=actor,
        action="expire",
        now=now,
        reason="确认期限已过",
    )
    return len(expired)
