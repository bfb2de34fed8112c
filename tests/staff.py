"""What staff do in two steps, as the tests need them done: a payee correction proposed by one person and
approved by another (payouts.payees)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from payouts import payees
from payouts.models import Payee


def fix_account(session: Session, uscc: str, *, approver: str = "checker", **proposal: Any) -> Payee:
    """A payee correction as staff make it: proposed (by `proposal["by"]`), then approved by `approver`."""
    change = payees.propose_account_change(session, uscc, **proposal)
    return payees.approve_account_change(session, change.public_id, by=approver, now=proposal["now"])
