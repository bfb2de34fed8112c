"""What staff do, as the tests need them done: a payee correction proposed by one person and approved by
another (payouts.payees); the finance checker's payer accounts of 长沙 and its 芙蓉区, and a policy's cost
shared between them (payouts.finance)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from payouts import finance, payees
from payouts.models import Payee


def fix_account(session: Session, uscc: str, *, approver: str = "checker", **proposal: Any) -> Payee:
    """A payee correction as staff make it: proposed (by `proposal["by"]`), then approved by `approver`."""
    change = payees.propose_account_change(session, uscc, **proposal)
    return payees.approve_account_change(session, change.public_id, by=approver, now=proposal["now"])


def payer_accounts(session: Session, now: dt.datetime, *, district_format: str = "treasury") -> None:
    """The finance checker sets the payer accounts of the city (bank CSV) and of its 芙蓉区 (`district_format`,
    treasury vouchers unless told)."""
    finance.set_payer_account(
        session,
        "city",
        name="长沙市财政局",
        account_no="430001000000000001",
        bank_name="国家金库长沙市中心支库",
        file_format="bank_csv",
        by="checker",
        now=now,
    )
    finance.set_payer_account(
        session,
        "furong",
        name="长沙市芙蓉区财政局",
        account_no="430102000000000002",
        bank_name="国家金库长沙市芙蓉区支库",
        file_format=district_format,
        adm_div_code="430102",
        by="checker",
        now=now,
    )


def share_cost(session: Session, policy_id: str, now: dt.datetime, shares: tuple[int, int] = (1, 1)) -> None:
    """The city's and 芙蓉区's payer accounts (`payer_accounts`), and the policy's cost shared between them."""
    payer_accounts(session, now)
    finance.set_funding(
        session,
        policy_id,
        [
            finance.Part("city", shares[0], "市级财政专项资金", "长财预〔2025〕101号"),
            finance.Part("furong", shares[1], "区级财政配套资金", "芙财预〔2025〕7号"),
        ],
        by="checker",
        now=now,
    )
