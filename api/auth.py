"""Staff authentication: argon2 password hashes under the password policy, and CSRF tokens.

Sessions are kept on the server (`payouts/signin.py`): a random token, the same for the API's bearer
header and the console's HttpOnly cookie, that sign-out, a new password or a disabled account ends.
CSRF tokens are an HMAC of what they protect (the session token, or a link or form and a per-browser
nonce), so they need no server-side storage.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session

from payouts import audit, passwords, signin
from payouts.models import StaffUser
from payouts.users import get_user

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the user is unknown or has no password, so that the answer takes as long either
    way; made at first use, not at import (every CLI command that imports this module would pay it)."""
    return _hasher.hash("zhida-no-such-user")


def hash_password(username: str, password: str) -> str:
    """The argon2id hash to store for `username`'s new `password`, if the policy allows it."""
    passwords.check(username, password)
    return _hasher.hash(password)


def check_password(user: StaffUser | None, password: str) -> bool:
    """Whether `password` is the active user's; unknown users cost the same time as known ones."""
    stored = user.password_hash if user is not None and user.password_hash else None
    try:
        ok = _hasher.verify(stored or _dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return False
    return ok and stored is not None and user is not None and user.active


def set_password(session: Session, username: str, password: str, by: str, now: dt.datetime) -> StaffUser:
    """Give a staff user a new password (which ends their sessions), with an audit event."""
    user = get_user(session, username)
    user.password_hash = hash_password(username, password)
    ended = signin.end_sessions(session, user, now, "password")
    audit.record(session, now, by, "set_password", "user", username, None, None, sessions_ended=ended)
    return user


class Tokens:
    """Issues and checks CSRF tokens with the service's secret key."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def csrf(self, *bound_to: str) -> str:
        """The CSRF token for a form, bound to a session token or to a link token and a nonce."""
        message = "\x1f".join(("csrf", *bound_to)).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:40]

    def csrf_ok(self, given: str | None, *bound_to: str) -> bool:
        return given is not None and hmac.compare_digest(given, self.csrf(*bound_to))
