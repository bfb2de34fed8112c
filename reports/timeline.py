"""The two queries every report is answered from: `offer_timeline` (one row per offer with the time it
reached each stage) and `message_answers` (SMS sent per kind and the confirmations their links brought).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Subquery, and_, func, select
from sqlmodel import Session

from payouts.models import Batch, BatchLine, Confirmation, MatchRun, Offer, PolicyVersion, SmsMessage

TIMELINE_COLUMNS = [
    "offer_id",
    "public_id",
    "run_id",
    "policy_id",
    "item_id",
    "title",
    "department",
    "confirmation",
    "uscc",
    "amount",
    "state",
    "imported_at",
    "released_at",
    "notified_at",
    "confirmed_at",
    "batched_at",
    "approved_at",
    "paid_at",
]
STAMPS = ["imported_at", "released_at", "notified_at", "confirmed_at", "batched_at", "approved_at", "paid_at"]


def first_batches() -> Subquery:
    """Per offer ever put in a batch: when its first batch was made (`batched_at`) and approved (`approved_at`)."""
    return (
        select(
            BatchLine.offer_id,
            func.min(Batch.created_at).label("batched_at"),
            func.min(Batch.approved_at).label("approved_at"),
        )
        .join(Batch, Batch.id == BatchLine.batch_id)
        .group_by(BatchLine.offer_id)
        .subquery()
    )


def offer_timeline(session: Session, *, run_id: str | None = None) -> pd.DataFrame:
    """One row per offer: its policy, department, amount (Decimal), state and when it reached each stage.

    `batched_at` and `approved_at` are those of the first batch the offer was put in. Times are UTC.
    """
    first_batch = first_batches()
    query = (
        select(
            Offer.id,
            Offer.public_id,
            MatchRun.run_id,
            Offer.policy_id,
            Offer.item_id,
            PolicyVersion.title,
            PolicyVersion.department,
            PolicyVersion.confirmation,
            Offer.uscc,
            Offer.amount,
            Offer.state,
            MatchRun.imported_at,
            Offer.released_at,
            Offer.notified_at,
            Offer.confirmed_at,
            first_batch.c.batched_at,
            first_batch.c.approved_at,
            Offer.paid_at,
        )
        .join(MatchRun, MatchRun.id == Offer.match_run_id)
        .join(
            PolicyVersion,
            and_(PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version),
        )
        .outerjoin(first_batch, first_batch.c.offer_id == Offer.id)
        .order_by(Offer.id)
    )
    if run_id is not None:
        query = query.where(MatchRun.run_id == run_id)
    df = pd.DataFrame.from_records(session.execute(query).all(), columns=TIMELINE_COLUMNS)
    for column in STAMPS:
        df[column] = pd.to_datetime(df[column], utc=True)
    return df


def message_answers(session: Session) -> pd.DataFrame:
    """Per SMS kind (notice, reminder_3d, ...): messages sent and the answers their links brought."""
    confirmed = func.count(Confirmation.id).filter(Confirmation.kind == "confirm")
    declined = func.count(Confirmation.id).filter(Confirmation.kind == "decline")
    rows = session.execute(
        select(SmsMessage.kind, func.count(SmsMessage.id), confirmed, declined)
        .outerjoin(Confirmation, Confirmation.sms_message_id == SmsMessage.id)
        .where(SmsMessage.status == "sent", SmsMessage.offer_id.is_not(None))  # the offers' SMS only
        .group_by(SmsMessage.kind)
    ).all()
    return pd.DataFrame.from_records(rows, columns=["kind", "sent", "confirmed", "declined"])


def _kind_label(kind: str) -> str:
    if kind == "notice":
        return "首条通知"
    if kind.startswith("reminder_") and kind.endswith("d"):
        return f"到期前{kind[len('reminder_') : -1]}天提醒"
    return kind


def _kind_order(kind: str) -> tuple[int, int]:
    if kind == "notice":
        return (0, 0)
    digits = kind.removeprefix("reminder_").removesuffix("d")
    return (1, -int(digits)) if digits.isdigit() else (2, 0)


def confirmation_by_message(answers: pd.DataFrame) -> pd.DataFrame:
    """Per SMS kind, in the order they go out: sent, confirmed through that link, and the rate.

    `cumulative` is the share of notified offers confirmed by that message or an earlier one.
    """
    df = answers.copy()
    df["order"] = [_kind_order(k) for k in df["kind"]]
    df = df.sort_values("order", ignore_index=True).drop(columns="order")
    df.insert(1, "label", [_kind_label(k) for k in df["kind"]])
    df["rate"] = [c / s if s else 0.0 for c, s in zip(df["confirmed"], df["sent"], strict=True)]
    notified = int(df.loc[df["kind"] == "notice", "sent"].sum())
    df["cumulative"] = df["confirmed"].cumsum() / notified if notified else 0.0
    return df
