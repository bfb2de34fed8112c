"""Staff authentication: argon2 password hashes, signed session tokens and CSRF tokens.

A session token is a signed, timed record of the username and a fingerprint of the password hash, so
changing a password ends every session made with the old one. The same token serves as a bearer token
for the API and as the console's HttpOnly cookie. CSRF tokens are an HMAC of what they protect (the
session token, or the confirm link and a per-browser nonce), so they need no server-side storage.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlmodel import Session

from payouts import audit
from payouts.models import StaffUser
from payouts.users import get_user
from rules.errors import PayoutError

MIN_PASSWORD_CHARS = 10
_hasher = PasswordHasher()
# Verified when the user is unknown or has no password, so that the answer takes as long either way.
_DUMMY_HASH = _hasher.hash("zhida-no-such-user")


def hash_password(password: str) -> str:
    """The argon2id hash to store for `password`."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise PayoutError(f"密码至少 {MIN_PASSWORD_CHARS} 个字符")
    return _hasher.hash(password)


def check_password(user: StaffUser | None, password: str) -> bool:
    """Whether `password` is the active user's; unknown users cost the same time as known ones."""
    stored = user.password_hash if user is not None and user.password_hash else None
    try:
        ok = _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored is not None and user is not None and user.active


def set_password(session: Session, username: str, password: str, by: str, now: dt.datetime) -> StaffUser:
    """Give a staff user a new password (which ends their sessions), with an audit event."""
    user = get_user(session, username)
    user.password_hash = hash_password(password)
    audit.record(session, now, by, "set_password", "user", username, None, None)
    return user


def password_fingerprint(user: StaffUser) -> str:
    """A short digest of the stored hash: sessions carry it, and die when the password changes."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SessionClaim:
    """What a valid session token says: who, and which password they logged in with."""

    username: str
    fingerprint: str


class Tokens:
    """Issues and checks session tokens and CSRF tokens with the service's secret key."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._secret = secret.encode()
        self._sessions = URLSafeTimedSerializer(secret, salt="zhida-session")
        self.max_age = max_age_seconds

    def session(self, user: StaffUser) -> str:
        return self._sessions.dumps({"u": user.username, "p": password_fingerprint(user)})

    def read_session(self, token: str) -> SessionClaim | None:
        try:
            data = self._sessions.loads(token, max_age=self.max_age)
        except BadSignature:
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("u"), str)
            or not isinstance(data.get("p"), str)
        ):
            return None
        return SessionClaim(data["u"], data["p"])

    def csrf(self, *bound_to: str) -> str:
        """The CSRF token for a form, bound to a session token or to a link token and a nonce."""
        message = "\x1f".join(("csrf", *bound_to)).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:40]

    def csrf_ok(self, given: str | None, *bound_to: str) -> bool:
        return given is not None and hmac.compare_digest(given, self.csrf(*bound_to))
