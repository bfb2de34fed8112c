"""Enterprise login: one-time SMS codes (kept as an HMAC only) and each enterprise's failures and lockout;
an index of offers by enterprise for its own pages.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 23:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import UtcDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "enterprise_login",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", UtcDateTime(), nullable=True),
        sa.Column("last_login_at", UtcDateTime(), nullable=True),
        sa.Column("last_login_via", sa.String(length=16), nullable=True),
        sa.Column("logged_out_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enterprise_login")),
        sa.UniqueConstraint("uscc", name=op.f("uq_enterprise_login_uscc")),
    )
    op.create_table(
        "login_code",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("phone_masked", sa.String(length=32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_code")),
    )
    op.create_index("ix_login_code_uscc_created_at", "login_code", ["uscc", "created_at"], unique=False)
    # The enterprise's pages list its offers, closed ones included (uq_offer_live_key covers live ones only).
    op.create_index("ix_offer_uscc", "offer", ["uscc"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_offer_uscc", table_name="offer")
    op.drop_index("ix_login_code_uscc_created_at", table_name="login_code")
    op.drop_table("login_code")
    op.drop_table("enterprise_login")
