"""Indexes for the console's offer lists at a million offers: a state's offers in import order, and an
enterprise's offers found from its payees (the name search).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 06:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain CREATE INDEX holds writes to `offer` while it builds (seconds at a million offers): run the
    # upgrade in a quiet moment, as every migration.
    op.create_index("ix_offer_state_id", "offer", ["state", "id"])
    op.create_index("ix_offer_payee_id", "offer", ["payee_id"])


def downgrade() -> None:
    op.drop_index("ix_offer_payee_id", table_name="offer")
    op.drop_index("ix_offer_state_id", table_name="offer")
