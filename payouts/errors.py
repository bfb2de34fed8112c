"""Payout errors more precise than `PayoutError`, so that the API can map them to the right status.

They extend the one hierarchy of `rules.errors` (ZhidaError → PayoutError).
"""

from __future__ import annotations

import datetime as dt

from rules.errors import PayoutError


class NotFoundError(PayoutError):
    """A named offer, batch, run or user does not exist."""


class RoleError(PayoutError):
    """The user may not do this: wrong role, inactive, or the maker trying to check their own batch."""


class LinkError(PayoutError):
    """An SMS link is unknown, expired, or no longer usable for this offer."""


class RunImportError(PayoutError):
    """A match run folder cannot be imported (bad manifest, bad columns, over budget, already imported)."""


class BankFileError(PayoutError):
    """A bank return file is refused: wrong batch, duplicate, unknown line, or amounts that differ."""


class BankExportError(PayoutError):
    """A batch's bank file cannot be written exactly: a name unsafe for the file or longer than its format
    allows (the error names the line)."""


class SmsError(PayoutError):
    """The SMS gateway refused or failed to send a message."""


class LoginError(PayoutError):
    """An enterprise cannot sign in: no registered contact phone, locked out, or a refused identity token."""


class LoginThrottled(LoginError):
    """Too many codes asked for, or wrong codes given, from one address or for one enterprise: it may try
    again at `retry_at`."""

    def __init__(self, message: str, retry_at: dt.datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at
