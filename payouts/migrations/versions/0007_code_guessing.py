"""Enterprise sign-in codes guessed by strangers: wrong codes and blocks per client address, the
enterprise-wide day window of wrong codes, and when the enterprise was last told its codes are guessed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 02:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import UtcDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_client",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", UtcDateTime(), nullable=True),
        sa.Column("blocks", sa.Integer(), nullable=False),
        sa.Column("blocked_until", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_client")),
        sa.UniqueConstraint("uscc", "client", name=op.f("uq_login_client_uscc_client")),
    )
    with op.batch_alter_table("enterprise_login", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failures_since", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("alerted_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("enterprise_login", schema=None) as batch_op:
        batch_op.drop_column("alerted_at")
        batch_op.drop_column("failures_since")
    op.drop_table("login_client")
