"""The offer's size class holds every class of the catalog: `not_applicable` (14 characters, central
banking and the financial regulators) did not fit the 8 characters of migration 0012, so importing a run
with such an enterprise failed on PostgreSQL.

Widening a VARCHAR is a change of the catalog only on PostgreSQL (no rewrite of the offers). SQLite does
not enforce the length; its table is rebuilt so that its declared type matches the model.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 11:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("offer") as batch:
        batch.alter_column("size_class", type_=sa.String(length=16), existing_type=sa.String(length=8))


def downgrade() -> None:
    with op.batch_alter_table("offer") as batch:
        batch.alter_column("size_class", type_=sa.String(length=8), existing_type=sa.String(length=16))
