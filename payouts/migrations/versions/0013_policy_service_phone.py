"""A policy's service phone (咨询电话), named in its SMS and on the enterprise's pages.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policy_version") as batch:
        batch.add_column(sa.Column("service_phone", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policy_version") as batch:
        batch.drop_column("service_phone")
