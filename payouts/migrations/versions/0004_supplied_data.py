"""Supplied data and public notice: values enterprises supply for missing fields (with evidence), the
overrides verified from them, public notices (公示) of payout batches with their objections (异议), and
each policy version's notice period.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 23:37:16.472815
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import UtcDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supplied_value",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("missing_field", sa.String(length=64), nullable=False),
        sa.Column("snapshot_table", sa.String(length=32), nullable=False),
        sa.Column("snapshot_column", sa.String(length=64), nullable=False),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("evidence_name", sa.Text(), nullable=False),
        sa.Column("evidence_path", sa.String(length=64), nullable=False),
        sa.Column("evidence_type", sa.String(length=64), nullable=False),
        sa.Column("evidence_size", sa.Integer(), nullable=False),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("submitted_by", sa.String(length=64), nullable=False),
        sa.Column("submitted_at", UtcDateTime(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('submitted', 'verified', 'rejected')", name=op.f("ck_supplied_value_state")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["staff_user.id"], name=op.f("fk_supplied_value_decided_by_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supplied_value")),
        sa.UniqueConstraint("public_id", name=op.f("uq_supplied_value_public_id")),
    )
    with op.batch_alter_table("supplied_value", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_supplied_value_department"), ["department"], unique=False)
        batch_op.create_index(batch_op.f("ix_supplied_value_uscc"), ["uscc"], unique=False)

    op.create_table(
        "data_override",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("supplied_id", BIG_KEY, nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("snapshot_table", sa.String(length=32), nullable=False),
        sa.Column("snapshot_column", sa.String(length=64), nullable=False),
        sa.Column("year", sa.Integer(), nullable=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("verified_by", sa.Integer(), nullable=False),
        sa.Column("verified_at", UtcDateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("retired_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["supplied_id"], ["supplied_value.id"], name=op.f("fk_data_override_supplied_id_supplied_value")
        ),
        sa.ForeignKeyConstraint(
            ["verified_by"], ["staff_user.id"], name=op.f("fk_data_override_verified_by_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_override")),
        sa.UniqueConstraint("public_id", name=op.f("uq_data_override_public_id")),
        sa.UniqueConstraint("supplied_id", name=op.f("uq_data_override_supplied_id")),
    )
    with op.batch_alter_table("data_override", schema=None) as batch_op:
        batch_op.create_index(
            "ix_data_override_key", ["uscc", "snapshot_table", "snapshot_column"], unique=False
        )

    op.create_table(
        "public_notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("ends_at", UtcDateTime(), nullable=False),
        sa.Column("opened_by", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_public_notice_batch_id_batch")),
        sa.ForeignKeyConstraint(
            ["opened_by"], ["staff_user.id"], name=op.f("fk_public_notice_opened_by_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_public_notice")),
        sa.UniqueConstraint("batch_id", name=op.f("uq_public_notice_batch_id")),
        sa.UniqueConstraint("public_id", name=op.f("uq_public_notice_public_id")),
    )
    with op.batch_alter_table("public_notice", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_public_notice_ends_at"), ["ends_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_public_notice_policy_id"), ["policy_id"], unique=False)

    op.create_table(
        "objection",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("notice_id", sa.Integer(), nullable=False),
        sa.Column("batch_line_id", BIG_KEY, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("filed_at", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("resolved_by", sa.Integer(), nullable=True),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.CheckConstraint("state IN ('open', 'upheld', 'dismissed')", name=op.f("ck_objection_state")),
        sa.ForeignKeyConstraint(
            ["batch_line_id"], ["batch_line.id"], name=op.f("fk_objection_batch_line_id_batch_line")
        ),
        sa.ForeignKeyConstraint(
            ["notice_id"], ["public_notice.id"], name=op.f("fk_objection_notice_id_public_notice")
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by"], ["staff_user.id"], name=op.f("fk_objection_resolved_by_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_objection")),
        sa.UniqueConstraint("public_id", name=op.f("uq_objection_public_id")),
    )
    with op.batch_alter_table("objection", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_objection_notice_id"), ["notice_id"], unique=False)

    with op.batch_alter_table("policy_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policy_version", schema=None) as batch_op:
        batch_op.drop_column("notice_days")

    with op.batch_alter_table("objection", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_objection_notice_id"))

    op.drop_table("objection")
    with op.batch_alter_table("public_notice", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_public_notice_policy_id"))
        batch_op.drop_index(batch_op.f("ix_public_notice_ends_at"))

    op.drop_table("public_notice")
    with op.batch_alter_table("data_override", schema=None) as batch_op:
        batch_op.drop_index("ix_data_override_key")

    op.drop_table("data_override")
    with op.batch_alter_table("supplied_value", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_supplied_value_uscc"))
        batch_op.drop_index(batch_op.f("ix_supplied_value_department"))

    op.drop_table("supplied_value")
