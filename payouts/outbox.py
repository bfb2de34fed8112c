"""The outbox for messages that are not an offer's notice: SMS and e-mail to staff (the SLA's reminders
and escalations, `reports.supervision`) and SMS to enterprises that nearly qualify (`portal.outreach`),
kept in the same `sms_message` table as the offers' SMS, with the opt-out list every SMS sender honours.

Each message has an idempotency key (`dedupe_key`, unique): `send_once` writes the row and hands the
message over only if no row with that key exists, so a job that runs again (after a crash, or on
another worker) never sends a message twice; a message the gateway refused is tried again, as the
same row, by the next call. The key also goes to the provider (`OutgoingSms.key`), so a hand-over cut
short is dropped by a provider that already took it.

Many messages (outreach, the rating links) go out in chunks, as `payouts.sms` sends the notices:
`send_chunk` claims a chunk (rows `sending`, committed), hands it over with no transaction open, and
settles it (`sent` or `failed`, committed) before the caller composes the next, so a crash loses at
most the chunk in hand. A row left `sending` (the process died while handing it over: whether it went
out is unknown) is handed over again by `resume`, with the same text and provider key, before anything
new is sent; the provider drops the copy if it took the first. One chunked outbox sender runs at a
time (`payouts.sms.one_sender`, its own lock).

E-mail goes through a `MailGateway` (the shape of an SMTP relay or a government mail API); the
default keeps the outbox row as the record and logs the masked address, `MemoryMail` keeps messages
for tests and the demo.

Opt-out (回复TD退订): a number on the `sms_optout` list gets no SMS from zhida — neither outreach nor the
notices and reminders about its offers (`payouts.sms` checks `opted_out` before sending). The SMS
gateway passes the enterprises' replies on (`take_reply`, behind the authenticated callback
`POST /api/sms/replies`): each reply is taken once by its provider id, and a stop word puts the number
on the list, with an audit event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from payouts import audit
from payouts.db import transaction
from payouts.errors import SmsError
from payouts.models import SmsMessage, SmsOptOut, SmsReply
from payouts.payees import mask_phone
from payouts.sms import SENDING, OutgoingSms, SmsGateway, one_sender

OUTBOX_SENDER_LOCK = 0x7A68_6964_6102  # PostgreSQL advisory lock key: one chunked outbox sender
CUT_SHORT = "发送中断，未发出"
OPT_OUT_HINT = "回复TD退订"
OPTED_OUT = "该号码已退订短信（回复TD退订），未发送"
STOP_WORDS = frozenset({"TD", "T", "退订", "N"})


@dataclass(frozen=True)
class OutgoingMail:
    """One e-mail as a mail gateway gets it, with its idempotency key."""

    to: str
    subject: str
    text: str
    key: str


class MailGateway(Protocol):
    """Sends one e-mail; returns the relay's reference or raises SmsError."""

    name: str

    def send(self, mail: OutgoingMail) -> str: ...


def mask_email(address: str) -> str:
    """An e-mail address as logs show it: zh***@example.gov.cn."""
    local, _, domain = address.partition("@")
    return f"{local[:2]}***@{domain}" if domain else "***"


@dataclass
class OutboxMail:
    """The default mail gateway: the outbox row is the record; each message is logged, masked."""

    echo: Callable[[str], None] | None = None
    name: str = "outbox"

    def send(self, mail: OutgoingMail) -> str:
        if self.echo is not None:
            self.echo(f"{mask_email(mail.to)} {mail.subject}")
        return "outbox"


@dataclass
class MemoryMail:
    """Keeps every e-mail in memory (tests, the demo); like a relay, takes each key once."""

    sent: list[OutgoingMail] = field(default_factory=list)
    fail_to: set[str] = field(default_factory=set)
    name: str = "memory"

    def send(self, mail: OutgoingMail) -> str:
        if mail.to in self.fail_to:
            raise SmsError(f"邮箱 {mask_email(mail.to)} 无法送达")
        if any(m.key == mail.key for m in self.sent):
            return "dup"
        self.sent.append(mail)
        return f"mail-{len(self.sent)}"


def _key(dedupe_key: str) -> str:
    """The provider-side idempotency key of an outbox key (hashed: the outbox key names staff and work)."""
    return hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]


# --- opt-out ------------------------------------------------------------------------------------------


def opted_out(session: Session, phones: Iterable[str]) -> set[str]:
    """The numbers among `phones` that opted out of SMS."""
    wanted = sorted({p for p in phones if p})
    found: set[str] = set()
    for i in range(0, len(wanted), 5000):  # bounded parameter lists
        found |= set(
            session.scalars(select(SmsOptOut.phone).where(SmsOptOut.phone.in_(wanted[i : i + 5000])))
        )
    return found


def opt_out(session: Session, phone: str, now: dt.datetime, source: str = "reply") -> bool:
    """Put `phone` on the opt-out list (True if it was not on it yet)."""
    if session.scalar(select(SmsOptOut.id).where(SmsOptOut.phone == phone)) is not None:
        return False
    session.add(SmsOptOut(phone=phone, created_at=now, source=source))
    session.flush()
    return True


def is_stop_reply(text: str) -> bool:
    """Whether an enterprise's reply to an SMS asks to stop (TD, 退订, …), as providers pass replies on."""
    return text.strip().upper() in STOP_WORDS


def normal_phone(raw: str) -> str | None:
    """A mainland mobile number as payees keep it (13800000002), from what a gateway passes on
    (+86 138-0000-0002, 8613800000002); None when it is not one."""
    digits = "".join(c for c in raw if c.isdigit())
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits if len(digits) == 11 and digits.startswith("1") else None


@dataclass(frozen=True)
class Reply:
    """What became of one upstream SMS."""

    provider_id: str
    stop: bool  # a stop word
    opted_out: bool  # the number went on the opt-out list now
    repeated: bool  # the gateway passed this reply on before


def take_reply(session: Session, provider_id: str, phone: str, text: str, now: dt.datetime) -> Reply:
    """Take one upstream SMS once (by the provider's id): a stop word (TD, T, 退订) opts the number out of
    every SMS, outreach included, with an audit event (the number masked). Gateways retry callbacks, so
    a reply taken before changes nothing."""
    if session.scalar(select(SmsReply.id).where(SmsReply.provider_id == provider_id)) is not None:
        return Reply(provider_id, is_stop_reply(text), False, True)
    stop = is_stop_reply(text)
    try:
        with session.begin_nested():
            session.add(
                SmsReply(provider_id=provider_id, phone=phone, text=text[:500], stop=stop, received_at=now)
            )
    except IntegrityError:  # the same reply, passed on twice at once: the other request took it
        return Reply(provider_id, stop, False, True)
    added = stop and opt_out(session, phone, now, "reply")
    if added:
        audit.record(
            session,
            now,
            "sms_gateway",
            "sms_opt_out",
            "sms_optout",
            mask_phone(phone),
            None,
            "opted_out",
            "企业回复退订",
            reply=provider_id,
        )
    return Reply(provider_id, stop, added, False)


# --- sending once ---------------------------------------------------------------------------------------


@dataclass
class Sent:
    """What `send_once` did with one message."""

    sent: bool = False  # handed over now
    skipped: str | None = None  # why not: already sent, opted out
    error: str | None = None  # the gateway refused (kept for the next call)


def send_once(
    session: Session,
    *,
    dedupe_key: str,
    kind: str,
    channel: str,
    to: str,
    text: str,
    now: dt.datetime,
    sms: SmsGateway | None = None,
    mail: MailGateway | None = None,
    subject: str | None = None,
    staff_user_id: int | None = None,
    uscc: str | None = None,
    policy_id: str | None = None,
) -> Sent:
    """Send one message unless the message with `dedupe_key` went out already; the outbox row is written
    in the caller's transaction, with its outcome. An SMS to an opted-out number is recorded, not sent."""
    row = session.scalar(select(SmsMessage).where(SmsMessage.dedupe_key == dedupe_key))
    if row is not None and row.status == "sent":
        return Sent(skipped="sent")
    if row is None:
        row = SmsMessage(
            offer_id=None,
            round=0,
            kind=kind,
            phone=to,
            channel=channel,
            subject=subject,
            dedupe_key=dedupe_key,
            staff_user_id=staff_user_id,
            uscc=uscc,
            policy_id=policy_id,
            text=text,
            expires_at=now,
            status="queued",
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another worker wrote it first: theirs
            return Sent(skipped="sent")
    row.attempts = (row.attempts or 0) + 1
    if channel == "sms" and opted_out(session, [to]):
        row.status, row.error = "skipped", OPTED_OUT
        return Sent(skipped="opted_out")
    try:
        if channel == "sms":
            assert sms is not None
            row.gateway = sms.name
            row.provider_ref = sms.send(OutgoingSms(to, kind, text, {"text": text}, _key(dedupe_key)))
        else:
            assert mail is not None
            row.gateway = mail.name
            row.provider_ref = mail.send(OutgoingMail(to, subject or "", text, _key(dedupe_key)))
    except SmsError as e:
        row.status, row.error = "failed", str(e)
        return Sent(error=str(e))
    row.status, row.sent_at, row.error = "sent", now, None
    return Sent(sent=True)


# --- sending in chunks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One SMS for `send_chunk`: its idempotency key, the full text the enterprise gets, and what the
    outbox row keeps (`stored`: the text with a link token cut out; `token_hash`: the token's hash)."""

    dedupe_key: str
    kind: str
    to: str
    text: str
    uscc: str | None = None
    policy_id: str | None = None
    params: dict[str, str] | None = None
    stored: str | None = None
    token_hash: str | None = None
    expires_at: dt.datetime | None = None

    def outgoing(self) -> OutgoingSms:
        return OutgoingSms(
            self.to, self.kind, self.text, self.params or {"text": self.text}, _key(self.dedupe_key)
        )


@dataclass
class Chunk:
    """What `send_chunk` did with each message, by key: "sent", "failed" (kept, tried by the next call),
    "already" (sent before, or in hand), "opted_out"; and the gateway's refusals."""

    outcome: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _claim(session: Session, messages: Sequence[Message], now: dt.datetime, done: Chunk) -> list[Message]:
    """Write each message's row as `sending` (new, or its failed row again); the messages to hand over."""
    keys = [m.dedupe_key for m in messages]
    rows = {
        r.dedupe_key: r
        for r in session.scalars(select(SmsMessage).where(SmsMessage.dedupe_key.in_(keys)).with_for_update())
    }
    stopped = opted_out(session, [m.to for m in messages])
    claimed = []
    for m in messages:
        row = rows.get(m.dedupe_key)
        if row is not None and row.status in ("sent", SENDING):
            done.outcome[m.dedupe_key] = "already"
            continue
        if row is None:
            row = SmsMessage(
                offer_id=None,
                round=0,
                kind=m.kind,
                phone=m.to,
                channel="sms",
                dedupe_key=m.dedupe_key,
                uscc=m.uscc,
                policy_id=m.policy_id,
                text=m.stored or m.text,
                token_hash=m.token_hash,
                expires_at=m.expires_at or now,
                status="queued",
                created_at=now,
            )
            session.add(row)
            rows[m.dedupe_key] = row
        row.attempts = (row.attempts or 0) + 1
        if m.to in stopped:
            row.status, row.error = "skipped", OPTED_OUT
            done.outcome[m.dedupe_key] = "opted_out"
            continue
        row.status, row.error = SENDING, None
        claimed.append(m)
    return claimed


def _settle(
    session: Session,
    gateway: SmsGateway,
    claimed: list[Message],
    refs: dict[str, str],
    errors: dict[str, str],
    now: dt.datetime,
) -> None:
    """Record what became of a claimed chunk; a message neither sent nor refused was not tried (the
    chunk stopped before it) and is `failed`, for the next call, except the one in the gateway's hands."""
    rows = {
        r.dedupe_key: r
        for r in session.scalars(
            select(SmsMessage).where(SmsMessage.dedupe_key.in_([m.dedupe_key for m in claimed]))
        )
    }
    tried = len(refs) + len(errors)
    for n, m in enumerate(claimed):
        row = rows[m.dedupe_key]
        row.gateway = gateway.name
        if m.dedupe_key in refs:
            row.status, row.sent_at, row.provider_ref = "sent", now, refs[m.dedupe_key]
        elif m.dedupe_key in errors:
            row.status, row.error = "failed", errors[m.dedupe_key]
        elif n > tried:  # claimed[tried] was being handed over: unknown, stays `sending`
            row.status, row.error = "failed", CUT_SHORT


def send_chunk(engine: Engine, gateway: SmsGateway, messages: Sequence[Message], now: dt.datetime) -> Chunk:
    """Send one chunk of messages, each at most once by its key: claim (committed), hand over with no
    transaction open, settle (committed). See the module's docstring."""
    done = Chunk()
    with one_sender(engine, OUTBOX_SENDER_LOCK):
        with transaction(engine) as session:
            claimed = _claim(session, messages, now, done)
        refs: dict[str, str] = {}
        errors: dict[str, str] = {}
        try:
            for m in claimed:
                try:
                    refs[m.dedupe_key] = gateway.send(m.outgoing())
                except SmsError as e:
                    errors[m.dedupe_key] = str(e)
        finally:
            with transaction(engine) as session:
                _settle(session, gateway, claimed, refs, errors, now)
    for key in refs:
        done.outcome[key] = "sent"
    for key, error in errors.items():
        done.outcome[key] = "failed"
        done.errors.append(error)
    return done


def resume(
    engine: Engine,
    gateway: SmsGateway,
    kind: str,
    now: dt.datetime,
    compose: Callable[[SmsMessage], OutgoingSms] | None = None,
) -> int:
    """Hand over again, as they were, the messages of `kind` a sender left `sending` (see above): the
    same text and provider key (`compose` rebuilds a message whose row keeps its text without the
    link token). How many were handed over."""
    with one_sender(engine, OUTBOX_SENDER_LOCK):
        with transaction(engine, read_only=True) as session:
            rows = list(
                session.scalars(
                    select(SmsMessage)
                    .where(SmsMessage.kind == kind, SmsMessage.status == SENDING)
                    .order_by(SmsMessage.id)
                )
            )
        handed = 0
        for row in rows:
            assert row.dedupe_key is not None
            sms = (
                compose(row)
                if compose
                else OutgoingSms(row.phone, row.kind, row.text, {"text": row.text}, _key(row.dedupe_key))
            )
            try:
                ref, error = gateway.send(sms), None
            except SmsError as e:
                ref, error = None, str(e)
            with transaction(engine) as session:
                again = session.get(SmsMessage, row.id)
                assert again is not None
                if error is None:
                    again.status, again.sent_at, again.provider_ref, again.gateway = (
                        "sent",
                        now,
                        ref,
                        gateway.name,
                    )
                    handed += 1
                else:
                    again.status, again.error = "failed", error
    return handed
