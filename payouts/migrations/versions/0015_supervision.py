"""Supervision and outreach: a policy's own time limits and outreach flag, staff phones, e-mail and
department heads, the outbox's e-mail channel and messages without an offer, and the SMS opt-out list.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import UtcDateTime

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policy_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("review_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("payment_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("outreach", sa.Boolean(), server_default="0", nullable=False))
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("email", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("head", sa.Boolean(), server_default="0", nullable=False))
    with op.batch_alter_table("sms_message", schema=None) as batch_op:
        batch_op.alter_column("offer_id", existing_type=BIG_KEY, nullable=True)
        batch_op.alter_column(
            "phone", existing_type=sa.String(length=32), type_=sa.String(length=255), existing_nullable=False
        )
        batch_op.add_column(sa.Column("channel", sa.String(length=8), server_default="sms", nullable=False))
        batch_op.add_column(sa.Column("subject", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("dedupe_key", sa.String(length=160), nullable=True))
        batch_op.add_column(sa.Column("staff_user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("uscc", sa.String(length=18), nullable=True))
        batch_op.add_column(sa.Column("policy_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_sms_message_kind_uscc", ["kind", "uscc"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_sms_message_dedupe_key"), ["dedupe_key"])
        batch_op.create_foreign_key(
            batch_op.f("fk_sms_message_staff_user_id_staff_user"), "staff_user", ["staff_user_id"], ["id"]
        )
    op.create_table(
        "sms_optout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_optout")),
        sa.UniqueConstraint("phone", name=op.f("uq_sms_optout_phone")),
    )


def downgrade() -> None:
    op.drop_table("sms_optout")
    with op.batch_alter_table("sms_message", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_sms_message_staff_user_id_staff_user"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_sms_message_dedupe_key"), type_="unique")
        batch_op.drop_index("ix_sms_message_kind_uscc")
        batch_op.drop_column("policy_id")
        batch_op.drop_column("uscc")
        batch_op.drop_column("staff_user_id")
        batch_op.drop_column("dedupe_key")
        batch_op.drop_column("subject")
        batch_op.drop_column("channel")
        batch_op.alter_column(
            "phone", existing_type=sa.String(length=255), type_=sa.String(length=32), existing_nullable=False
        )
        batch_op.alter_column("offer_id", existing_type=BIG_KEY, nullable=False)
    with op.batch_alter_table("staff_user", schema=None) as batch_op:
        batch_op.drop_column("head")
        batch_op.drop_column("email")
        batch_op.drop_column("phone")
    with op.batch_alter_table("policy_version", schema=None) as batch_op:
        batch_op.drop_column("outreach")
        batch_op.drop_column("payment_days")
        batch_op.drop_column("review_days")
