"""The policy store in the database: uploaded drafts and published versions with their YAML text
(until now files under `<data dir>/policies/`, imported once at start by `api.policystore`).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_text",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", UtcDateTime(), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=True),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("status IN ('draft', 'published')", name=op.f("ck_policy_text_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_text")),
        sa.UniqueConstraint("policy_id", "version", name=op.f("uq_policy_text_policy_id_version")),
    )


def downgrade() -> None:
    op.drop_table("policy_text")
