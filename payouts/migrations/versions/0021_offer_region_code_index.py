"""An index on the offer's region code, for region-scoped staff: every list, count, export and bulk action
of a county's or city's user filters the offers by a prefix of it (`region_code LIKE '430102%'`,
payouts/scope.py). On PostgreSQL the index uses the pattern operator class (`varchar_pattern_ops`), so a
prefix LIKE can use it whatever the database's collation; SQLite keeps a plain index.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 15:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain CREATE INDEX holds writes to `offer` while it builds (seconds at a million offers): run the
    # upgrade in a quiet moment, as every migration.
    op.create_index(
        "ix_offer_region_code",
        "offer",
        ["region_code"],
        postgresql_ops={"region_code": "varchar_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_offer_region_code", table_name="offer")
