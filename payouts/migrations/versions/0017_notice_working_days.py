"""Public notice periods counted in working days (a policy's `notice_working_days`).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 10:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policy_version") as batch:
        batch.add_column(sa.Column("notice_working", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("public_notice") as batch:
        batch.add_column(sa.Column("working", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("public_notice") as batch:
        batch.drop_column("working")
    with op.batch_alter_table("policy_version") as batch:
        batch.drop_column("notice_working")
