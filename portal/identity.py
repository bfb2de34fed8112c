"""Enterprise sign-in by a one-time code sent by SMS to the registered contact phone (the built-in
identity; the provincial unified identity, OIDC, is an adapter in `api/enterprise_auth.py`).

- The code is 6 random digits (`secrets`), kept only as an HMAC under the service's secret key, so a
  copy of the database gives no code; it expires `CODE_TTL` after it is sent and is used at most once.
  A new code revokes the enterprise's earlier ones.
- Guesses are throttled per client address, so that a stranger who knows a USCC cannot lock the
  enterprise out: `MAX_FAILURES` wrong codes in a row from one address block that address (for this
  enterprise) for `CLIENT_BLOCK`, each further block within a day twice as long; the enterprise and
  every other address go on signing in. Only `ENTERPRISE_CEILING` wrong codes within a day from all
  addresses together (far above the ~30 one address can reach) lock the enterprise out for `LOCKOUT`.
  The enterprise's row is locked while a code is checked, so parallel guesses are counted one by one;
  the counts are committed with the answer (a wrong code is an answer, not an exception).
- Codes sent are limited per address and enterprise (`CLIENT_CODES`) and per enterprise (`ENTERPRISE_CODES`),
  per hour and per day, counted in the database; a new code revokes only the earlier codes asked from the
  same address, so a stranger asking for codes cannot void the one the enterprise is typing. A code given
  is checked against one code only: the one its address asked for, else the enterprise's newest.
- When an address is blocked the enterprise is told, at most once per `DAY`: by SMS (`ALERT_TEMPLATE`) and
  by a notice on its home page for `NOTICE_PERIOD`.
- The phone is the one the latest match run registered (see `portal.standings.Standings.contact`);
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
from payouts.errors import LoginError, LoginThrottled, SmsError
from payouts.sms import OutgoingSms, SmsGateway
from portal.models import EnterpriseLogin, LoginClient, LoginCode
from portal.standings import Contact
from rules.formats import CHINA

CODE_TTL = dt.timedelta(minutes=5)
MAX_FAILURES = 5  # wrong codes in a row from one address before it is blocked
CLIENT_BLOCK = dt.timedelta(minutes=30)  # the first block of an address; it doubles within a day
DAY = dt.timedelta(hours=24)
NOTICE_PERIOD = dt.timedelta(days=7)  # the home page says codes were guessed, this long after the alert
ENTERPRISE_CEILING = 100  # wrong codes from all addresses within a day before the enterprise locks
LOCKOUT = dt.timedelta(minutes=30)  # the enterprise-wide lockout at the ceiling
# Codes sent: (per hour, per day), per address and enterprise, and per enterprise.
CLIENT_CODES = (3, 5)
ENTERPRISE_CODES = (12, 30)
CODE_DIGITS = 6
LOGIN_CODE = "login_code"  # the SMS kind
LOGIN_ALERT = "login_alert"
TEMPLATE = "【{sign}】您正在登录惠企直达（{name}），验证码 {code}，5分钟内有效。如非本人操作请忽略。"
ALERT_TEMPLATE = (
    "【{sign}】{name}：{time} 起，有人多次输入贵单位惠企直达登录验证码有误，相关来源已被暂停尝试，"
    "贵单位正常登录不受影响。如非本单位人员操作，请勿向任何人透露验证码；如有疑问，请联系政策主管部门。"
)


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


def _client_row(session: Session, uscc: str, client: str) -> LoginClient:
    """One address's record for the enterprise (created on first use); the caller holds the enterprise's
    row lock, so no two checks of the same enterprise race here."""
    query = select(LoginClient).where(LoginClient.uscc == uscc, LoginClient.client == client)
    row = session.scalar(query)
    if row is None:
        row = LoginClient(uscc=uscc, client=client, failures=0, blocks=0)
        session.add(row)
        session.flush()
    return row


def _client(ip: str | None) -> str:
    return (ip or "-")[:64]


def _hhmm(at: dt.datetime) -> str:
    return f"{at.astimezone(CHINA):%H:%M}"


def _locked_message(until: dt.datetime) -> str:
    return f"该企业验证码错误次数过多，已锁定，请于 {_hhmm(until)} 后再试"


def _blocked_message(until: dt.datetime) -> str:
    return f"本设备验证码错误次数过多，已暂停尝试，请于 {_hhmm(until)} 后再试"


def locked_until(session: Session, uscc: str, now: dt.datetime) -> dt.datetime | None:
    """When the enterprise's lockout ends, if it is locked out now."""
    until = session.scalar(select(EnterpriseLogin.locked_until).where(EnterpriseLogin.uscc == uscc))
    return until if until is not None and until > now else None


@dataclass(frozen=True)
class SentCode:
    """A code went out: to which (masked) phone, and until when it is valid."""

    phone_masked: str
    expires_at: dt.datetime


def _codes_since(
    session: Session, uscc: str, since: dt.datetime, client: str | None = None
) -> list[dt.datetime]:
    query = select(LoginCode.created_at).where(LoginCode.uscc == uscc, LoginCode.created_at > since)
    if client is not None:
        query = query.where(LoginCode.ip == client)
    return sorted(session.scalars(query).all())


def _code_quota(session: Session, uscc: str, client: str, now: dt.datetime) -> None:
    """LoginThrottled when this address, or the enterprise, has had its codes for the hour or the day."""
    for who, (per_hour, per_day) in ((client, CLIENT_CODES), (None, ENTERPRISE_CODES)):
        for span, limit in ((dt.timedelta(hours=1), per_hour), (DAY, per_day)):
            sent = _codes_since(session, uscc, now - span, who)
            if len(sent) >= limit:
                retry = sent[len(sent) - limit] + span
                if who is None:
                    message = (
                        f"该企业获取验证码次数已达上限，请于 {retry.astimezone(CHINA):%m-%d %H:%M} 后再试"
                    )
                else:
                    message = f"获取验证码过于频繁，请于 {retry.astimezone(CHINA):%m-%d %H:%M} 后再试"
                raise LoginThrottled(message, retry)


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
    locked out, LoginThrottled when this address is blocked or has had its codes (see the module
    docstring), SmsError when the gateway refuses."""
    if contact is None or not contact.phone:
        raise LoginError(
            "未找到该企业登记的联系电话，无法发送验证码；请核对统一社会信用代码，或联系政策主管部门"
        )
    client = _client(ip)
    row = _login_row(session, contact.uscc)
    if row.locked_until is not None and row.locked_until > now:
        raise LoginThrottled(_locked_message(row.locked_until), row.locked_until)
    blocked = session.scalar(
        select(LoginClient.blocked_until).where(
            LoginClient.uscc == contact.uscc, LoginClient.client == client
        )
    )
    if blocked is not None and blocked > now:
        raise LoginThrottled(_blocked_message(blocked), blocked)
    _code_quota(session, contact.uscc, client, now)
    session.execute(  # only this address's earlier codes: a stranger cannot void the enterprise's own
        update(LoginCode)
        .where(
            LoginCode.uscc == contact.uscc,
            LoginCode.ip == client,
            LoginCode.used_at.is_(None),
            LoginCode.revoked_at.is_(None),
        )
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
        ip=client,
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
    """The answer to a code: signed in, or why not (and how many tries are left).

    `locked_until` is when this address may try again: the end of its block, or of the enterprise's
    lockout (`enterprise_locked`). `guessed` says the enterprise should be told its codes are being
    guessed (`alert_guessing`).
    """

    ok: bool
    message: str = ""
    tries_left: int = 0
    locked_until: dt.datetime | None = None
    enterprise_locked: bool = False
    guessed: bool = False


def check_code(
    session: Session, uscc: str, code: str, *, secret: bytes, now: dt.datetime, ip: str | None
) -> Attempt:
    """Check a code for the enterprise; a right one signs in (and is used up), a wrong one counts against
    this address, and against the enterprise's day ceiling.

    The caller commits whatever the answer, so that failures and blocks stick.
    """
    row = _login_row(session, uscc)
    actor = f"enterprise:{uscc}"
    if row.locked_until is not None and row.locked_until > now:
        return Attempt(False, _locked_message(row.locked_until), 0, row.locked_until, enterprise_locked=True)
    client = _client(ip)
    mine = _client_row(session, uscc, client)
    if mine.blocked_until is not None and mine.blocked_until > now:
        return Attempt(False, _blocked_message(mine.blocked_until), 0, mine.blocked_until)
    if mine.last_failure_at is not None and mine.last_failure_at <= now - DAY:
        mine.failures = 0  # a typo a day ago does not count towards today's block
    live = [
        c
        for c in session.scalars(
            select(LoginCode)
            .where(LoginCode.uscc == uscc, LoginCode.used_at.is_(None), LoginCode.revoked_at.is_(None))
            .order_by(LoginCode.id.desc())
            .with_for_update()
        ).all()
        if c.expires_at > now
    ]
    if not live:
        return Attempt(False, "验证码已失效，请重新获取", MAX_FAILURES - mine.failures)
    # One code per guess, whatever the number of live codes: the one this address asked for, else (an
    # address that changed on the way, a phone moving from Wi-Fi to mobile data) the newest.
    candidate = next((c for c in live if c.ip == client), live[0])
    wanted = code_hash(secret, uscc, code.strip())
    right = candidate if hmac.compare_digest(candidate.code_hash, wanted) else None
    if right is not None:
        right.used_at = now
        for other in live:  # a sign-in ends every other outstanding code of the enterprise
            if other is not right:
                other.revoked_at = now
        mine.failures, mine.blocks, mine.blocked_until = 0, 0, None
        row.last_login_at, row.last_login_via = now, "sms"
        audit.record(session, now, actor, "login", "enterprise", uscc, ip=ip, via="sms")
        return Attempt(True)
    if row.failures_since is None or row.failures_since <= now - DAY:
        row.failures, row.failures_since = 0, now
    row.failures += 1
    mine.failures += 1
    mine.last_failure_at = now
    if row.failures >= ENTERPRISE_CEILING:
        row.failures, row.failures_since, row.locked_until = 0, None, now + LOCKOUT
        for c in live:
            c.revoked_at = now
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
        return Attempt(False, _locked_message(row.locked_until), 0, row.locked_until, True, guessed=True)
    if mine.failures >= MAX_FAILURES:
        if mine.blocked_until is None or mine.blocked_until <= now - DAY:
            mine.blocks = 0
        mine.blocks += 1
        mine.failures = 0
        mine.blocked_until = now + min(CLIENT_BLOCK * 2 ** (mine.blocks - 1), DAY)
        audit.record(
            session,
            now,
            actor,
            "login_blocked",
            "enterprise",
            uscc,
            ip=ip,
            until=audit.timestamp(mine.blocked_until),
            blocks=mine.blocks,
        )
        return Attempt(False, _blocked_message(mine.blocked_until), 0, mine.blocked_until, guessed=True)
    audit.record(session, now, actor, "login_failed", "enterprise", uscc, ip=ip, failures=mine.failures)
    left = MAX_FAILURES - mine.failures
    return Attempt(False, f"验证码错误，还可尝试 {left} 次", left)


def alert_guessing(
    session: Session,
    uscc: str,
    contact: Contact | None,
    gateway: SmsGateway,
    *,
    sign: str,
    now: dt.datetime,
) -> bool:
    """Tell the enterprise that its codes are being guessed, at most once per `DAY`: a notice on its home
    page for `NOTICE_PERIOD` (`guessing_notice`) and an SMS to its registered phone; whether the SMS went
    out. A gateway failure is recorded and does not undo the block that prompted it, nor the notice."""
    row = _login_row(session, uscc)
    if row.alerted_at is not None and row.alerted_at > now - DAY:
        return False
    row.alerted_at = now
    if contact is None or not contact.phone:
        audit.record(session, now, "system", "login_alert", "enterprise", uscc, channel="page")
        return False
    when = f"{now.astimezone(CHINA):%m月%d日 %H:%M}"
    text = ALERT_TEMPLATE.format(sign=sign, name=contact.name, time=when)
    try:
        gateway.send(
            OutgoingSms(contact.phone, LOGIN_ALERT, text, {"sign": sign, "name": contact.name, "time": when})
        )
    except SmsError as e:
        audit.record(
            session, now, "system", "login_alert_failed", "enterprise", uscc, channel="sms", error=str(e)
        )
        return False
    audit.record(
        session,
        now,
        "system",
        "login_alert",
        "enterprise",
        uscc,
        channel="sms",
        phone=mask_phone(contact.phone),
    )
    return True


def guessing_notice(session: Session, uscc: str, now: dt.datetime) -> dt.datetime | None:
    """When the enterprise was last told its codes were being guessed, if within `NOTICE_PERIOD`: its home
    page says so."""
    at = session.scalar(select(EnterpriseLogin.alerted_at).where(EnterpriseLogin.uscc == uscc))
    return at if at is not None and at > now - NOTICE_PERIOD else None


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
