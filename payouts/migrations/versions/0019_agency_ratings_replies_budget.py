"""帮办代办 revocation (who revoked a 委托书 and on what request), the gateway's upstream SMS replies
(回复TD退订, each taken once by its provider id), and the amount of a 预算指标 (指标金额) on a policy's
funding, against which batch approval is checked; offers found by when they were paid (the closing SMS
with its rating link goes to items paid lately).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 11:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import Money, UtcDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mandate") as batch:
        batch.add_column(sa.Column("revoked_by", sa.String(64), nullable=True))
        batch.add_column(sa.Column("revoke_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("policy_funding") as batch:
        batch.add_column(sa.Column("budget_amount", Money, nullable=True))
    op.create_table(
        "sms_reply",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("provider_id", sa.String(128), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("stop", sa.Boolean(), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("provider_id", name=op.f("uq_sms_reply_provider_id")),
    )
    op.create_index(op.f("ix_policy_funding_budget_no"), "policy_funding", ["budget_no"])
    op.create_index(op.f("ix_offer_paid_at"), "offer", ["paid_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_offer_paid_at"), "offer")
    op.drop_index(op.f("ix_policy_funding_budget_no"), "policy_funding")
    op.drop_table("sms_reply")
    with op.batch_alter_table("policy_funding") as batch:
        batch.drop_column("budget_amount")
    with op.batch_alter_table("mandate") as batch:
        batch.drop_column("revoke_reason")
        batch.drop_column("revoked_by")
