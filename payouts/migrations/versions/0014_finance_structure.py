"""The finance structure: payer accounts and policy funding (versioned, the finance bureau's), batches per
payer (code, file format, fund source, budget index, share, group), and an offer's lines per payer.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payer_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("account_no", sa.String(length=64), nullable=False),
        sa.Column("bank_name", sa.Text(), nullable=False),
        sa.Column("file_format", sa.String(length=16), nullable=False),
        sa.Column("adm_div_code", sa.String(length=12), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.Column("set_at", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "file_format IN ('bank_csv', 'pain001', 'treasury')", name=op.f("ck_payer_account_file_format")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payer_account")),
        sa.UniqueConstraint("code", "version", name=op.f("uq_payer_account_code_version")),
    )
    op.create_table(
        "policy_funding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("payer_code", sa.String(length=32), nullable=False),
        sa.Column("share", sa.Integer(), nullable=False),
        sa.Column("fund_source", sa.Text(), nullable=False),
        sa.Column("budget_no", sa.String(length=64), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.Column("set_at", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint("share > 0", name=op.f("ck_policy_funding_share_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_funding")),
        sa.UniqueConstraint(
            "policy_id", "version", "payer_code", name=op.f("uq_policy_funding_policy_id_version_payer_code")
        ),
    )
    op.create_index(op.f("ix_policy_funding_policy_id"), "policy_funding", ["policy_id"], unique=False)
    with op.batch_alter_table("batch") as batch:
        batch.add_column(sa.Column("payer_code", sa.String(length=32), server_default="", nullable=False))
        batch.add_column(
            sa.Column("file_format", sa.String(length=16), server_default="bank_csv", nullable=False)
        )
        batch.add_column(sa.Column("adm_div_code", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("fund_source", sa.Text(), nullable=True))
        batch.add_column(sa.Column("budget_no", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("share", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("group_ref", sa.String(length=35), nullable=True))
        batch.add_column(sa.Column("voucher_sha256", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_batch_group_ref"), ["group_ref"], unique=False)
    with op.batch_alter_table("batch_line") as batch:
        batch.add_column(sa.Column("payer_code", sa.String(length=32), server_default="", nullable=False))
    # An offer now has at most one live line per payer (cost sharing): the unique index gains the payer.
    op.drop_index(
        "uq_batch_line_live_offer",
        table_name="batch_line",
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )
    op.create_index(
        "uq_batch_line_live_offer_payer",
        "batch_line",
        ["offer_id", "payer_code"],
        unique=True,
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_batch_line_live_offer_payer",
        table_name="batch_line",
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )
    op.create_index(
        "uq_batch_line_live_offer",
        "batch_line",
        ["offer_id"],
        unique=True,
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )
    with op.batch_alter_table("batch_line") as batch:
        batch.drop_column("payer_code")
    with op.batch_alter_table("batch") as batch:
        batch.drop_index(batch.f("ix_batch_group_ref"))
        for column in (
            "voucher_sha256",
            "group_ref",
            "share",
            "budget_no",
            "fund_source",
            "adm_div_code",
            "file_format",
            "payer_code",
        ):
            batch.drop_column(column)
    op.drop_index(op.f("ix_policy_funding_policy_id"), table_name="policy_funding")
    op.drop_table("policy_funding")
    op.drop_table("payer_account")
