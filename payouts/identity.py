"""Enterprise sign-in by a one-time code sent by SMS to the registered contact phone (the built-in
identity; the provincial unified identity, OIDC, is an adapter in `api/enterprise_auth.py`).

- The code is 6 random digits (`secrets`), kept only as an HMAC under the service's secret key, so a
  copy of the database gives no code; it expires `CODE_TTL` after it is sent and is used at most once.
  A new code revokes the enterprise's earlier ones.
- `MAX_FAILURES` wrong codes in a row lock the enterprise out for `LOCKOUT`: no code is sent or
  accepted until then, and its outstanding code is revoked. The enterprise's row is locked while a code
  is checked, so parallel guesses are counted one by one; the failure count is committed with the
  answer (a wrong code is an answer, not an exception).
- The phone is the one the latest match run registered (see `payouts.enterprise.Standings.contact`);
  the enterprise cannot choose where the code goes.
- Every code sent, sign-in, wrong code and lockout is an audit event on entity "enterprise".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from payouts import audit
from payouts.enterprise import Contact
from payouts.errors import LoginError
from payouts.models import EnterpriseLogin, LoginCode
from payouts.sms import OutgoingSms, SmsGateway

CODE_TTL = dt.timedelta(minutes=5)
MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=30)
CODE_DIGITS = 6
LOGIN_CODE = "login_code"  # the SMS kind
TEMPLATE = "【{sign}】您正在登录惠企直达（{name}），验证码 {code}，5分钟内有效。如非本人操作请忽略。"
CHINA = dt.timezone(dt.timedelta(hours=8))


def mask_phone(phone: str) -> str:
    """A phone number as pages show it: 138****1234."""
    digits = phone.strip()
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 8 else "****"


def code_hash(secret: bytes, uscc: str, code: str) -> str:
    """What is stored of a code: HMAC-SHA256 under the service's key, bound to the enterprise."""
    return hmac.new(secret, f"login\x1f{uscc}\x1f{code}".encode(), hashlib.sha256).hexdigest()


def _login_row(session: Session, uscc: str) -> EnterpriseLogin:
    """The enterprise's sign-in row, locked for update (created on first use)."""
    query = select(EnterpriseLogin).where(EnterpriseLogin.uscc == uscc).with_for_update()
    row = session.scalar(query)
    if row is None:
        try:
            with session.begin_nested():  # two first sign-ins at once: one inserts, the other reads it
                session.add(EnterpriseLogin(uscc=uscc, failures=0))
        except IntegrityError:
            pass
        row = session.scalar(query)
        assert row is not None
    return row


def _locked_message(until: dt.datetime) -> str:
    return f"验证码错误次数过多，已锁定，请于 {until.astimezone(CHINA):%H:%M} 后再试"


def locked_until(session: Session, uscc: str, now: dt.datetime) -> dt.datetime | None:
    """When the enterprise's lockout ends, if it is locked out now."""
    until = session.scalar(select(EnterpriseLogin.locked_until).where(EnterpriseLogin.uscc == uscc))
    return until if until is not None and until > now else None


@dataclass(frozen=True)
class SentCode:
    """A code went out: to which (masked) phone, and until when it is valid."""

    phone_masked: str
    expires_at: dt.datetime


def send_code(
    session: Session,
    contact: Contact | None,
    gateway: SmsGateway,
    *,
    secret: bytes,
    sign: str,
    now: dt.datetime,
    ip: str | None,
) -> SentCode:
    """Send a fresh code to the enterprise's registered phone; LoginError when there is none or it is
    locked out, SmsError when the gateway refuses."""
    if contact is None or not contact.phone:
        raise LoginError(
            "未找到该企业登记的联系电话，无法发送验证码；请核对统一社会信用代码，或联系政策主管部门"
        )
    row = _login_row(session, contact.uscc)
    if row.locked_until is not None and row.locked_until > now:
        raise LoginError(_locked_message(row.locked_until))
    session.execute(
        update(LoginCode)
        .where(LoginCode.uscc == contact.uscc, LoginCode.used_at.is_(None), LoginCode.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    masked = mask_phone(contact.phone)
    record = LoginCode(
        uscc=contact.uscc,
        code_hash=code_hash(secret, contact.uscc, code),
        phone_masked=masked,
        created_at=now,
        expires_at=now + CODE_TTL,
        ip=ip,
    )
    session.add(record)
    text = TEMPLATE.format(sign=sign, name=contact.name, code=code)
    gateway.send(
        OutgoingSms(contact.phone, LOGIN_CODE, text, {"sign": sign, "name": contact.name, "code": code})
    )
    audit.record(
        session,
        now,
        f"enterprise:{contact.uscc}",
        "login_code",
        "enterprise",
        contact.uscc,
        ip=ip,
        phone=masked,
    )
    return SentCode(masked, record.expires_at)


@dataclass(frozen=True)
class Attempt:
    """The answer to a code: signed in, or why not (and how many tries are left)."""

    ok: bool
    message: str = ""
    tries_left: int = 0
    locked_until: dt.datetime | None = None


def check_code(
    session: Session, uscc: str, code: str, *, secret: bytes, now: dt.datetime, ip: str | None
) -> Attempt:
    """Check a code for the enterprise; a right one signs in (and is used up), a wrong one counts.

    The caller commits whatever the answer, so that failures and lockouts stick.
    """
    row = _login_row(session, uscc)
    actor = f"enterprise:{uscc}"
    if row.locked_until is not None and row.locked_until > now:
        return Attempt(False, _locked_message(row.locked_until), 0, row.locked_until)
    live = session.scalar(
        select(LoginCode)
        .where(LoginCode.uscc == uscc, LoginCode.used_at.is_(None), LoginCode.revoked_at.is_(None))
        .order_by(LoginCode.id.desc())
        .limit(1)
        .with_for_update()
    )
    if live is None or live.expires_at <= now:
        return Attempt(False, "验证码已失效，请重新获取", MAX_FAILURES - row.failures)
    given = code.strip()
    if hmac.compare_digest(live.code_hash, code_hash(secret, uscc, given)):
        live.used_at = now
        row.failures, row.locked_until = 0, None
        row.last_login_at, row.last_login_via = now, "sms"
        audit.record(session, now, actor, "login", "enterprise", uscc, ip=ip, via="sms")
        return Attempt(True)
    row.failures += 1
    if row.failures >= MAX_FAILURES:
        row.failures, row.locked_until, live.revoked_at = 0, now + LOCKOUT, now
        audit.record(
            session,
            now,
            actor,
            "login_locked",
            "enterprise",
            uscc,
            ip=ip,
            until=audit.timestamp(row.locked_until),
        )
        return Attempt(False, _locked_message(row.locked_until), 0, row.locked_until)
    audit.record(session, now, actor, "login_failed", "enterprise", uscc, ip=ip, failures=row.failures)
    left = MAX_FAILURES - row.failures
    return Attempt(False, f"验证码错误，还可尝试 {left} 次", left)


def logout(session: Session, uscc: str, now: dt.datetime, ip: str | None) -> None:
    """Sign the enterprise out: every session it opened until now ends (on every device)."""
    row = _login_row(session, uscc)
    row.logged_out_at = now
    audit.record(session, now, f"enterprise:{uscc}", "logout", "enterprise", uscc, ip=ip)


def session_alive(session: Session, uscc: str, signed_in_at: dt.datetime) -> bool:
    """Whether a session opened at `signed_in_at` is still valid (no sign-out since)."""
    out = session.scalar(select(EnterpriseLogin.logged_out_at).where(EnterpriseLogin.uscc == uscc))
    return out is None or signed_in_at > out


def record_login(
    session: Session, uscc: str, via: str, now: dt.datetime, ip: str | None, **data: str
) -> None:
    """Record a sign-in through another identity provider (e.g. the provincial unified identity)."""
    row = _login_row(session, uscc)
    row.last_login_at, row.last_login_via = now, via
    audit.record(session, now, f"enterprise:{uscc}", "login", "enterprise", uscc, ip=ip, via=via, **data)
