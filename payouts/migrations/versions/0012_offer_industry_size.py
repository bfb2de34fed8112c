"""The enterprise's industry section (GB/T 4754 门类) and size class on each offer, for the review queue's
filters: taken at import from the run folder's payees (the profile of the run's latest assessment year).

Offers imported before carry neither (NULL) until `zhida offers backfill-profile` fills them from their
run's snapshot.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns without a default: PostgreSQL adds them without rewriting the table.
    op.add_column("offer", sa.Column("industry_section", sa.String(length=1), nullable=True))
    op.add_column("offer", sa.Column("size_class", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("offer") as batch:
        batch.drop_column("size_class")
        batch.drop_column("industry_section")
