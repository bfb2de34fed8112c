"""Policy supermarket (政策超市): the public listing of published policies and its search terms.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 00:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import Money, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_listing",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("max_amount", Money(), nullable=True),
        sa.Column("budget", Money(), nullable=True),
        sa.Column("regions", sa.Text(), nullable=True),
        sa.Column("regions_excluded", sa.Text(), nullable=True),
        sa.Column("sections", sa.String(length=64), nullable=True),
        sa.Column("sizes", sa.String(length=64), nullable=True),
        sa.Column("published_at", UtcDateTime(), nullable=False),
        sa.Column("indexed_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_listing")),
        sa.UniqueConstraint("policy_id", name=op.f("uq_policy_listing_policy_id")),
    )
    op.create_table(
        "policy_token",
        sa.Column("listing_id", sa.Integer(), nullable=False),
        sa.Column(
            "token",
            sa.String(length=32).with_variant(sa.String(length=32, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["listing_id"],
            ["policy_listing.id"],
            name=op.f("fk_policy_token_listing_id_policy_listing"),
        ),
        sa.PrimaryKeyConstraint("listing_id", "token", name=op.f("pk_policy_token")),
    )
    op.create_index("ix_policy_token_token", "policy_token", ["token", "listing_id", "weight"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_policy_token_token", table_name="policy_token")
    op.drop_table("policy_token")
    op.drop_table("policy_listing")
