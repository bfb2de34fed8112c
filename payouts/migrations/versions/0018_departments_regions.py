"""Departments as data (province, city, county, with a region code and a superior), staff users pointing
at one, the enterprise's region on each offer (for region-scoped staff), the region a batch was made for,
the reviewing departments of a policy version and the co-reviewers' opinions on offers (会签), and the
enterprise's region on each application.

Existing users keep working: every department name a user carries becomes a department without a level
or region (its staff still see every region) until `zhida departments set` places it. Offers imported
before carry no region until `zhida offers backfill-profile` fills it.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 11:40:00
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import UtcDateTime

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "department",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("region_code", sa.String(length=6), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "level IS NULL OR level IN ('national', 'province', 'city', 'county')",
            name=op.f("ck_department_level"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["department.id"], name=op.f("fk_department_parent_id_department")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_department")),
        sa.UniqueConstraint("name", name=op.f("uq_department_name")),
    )
    op.create_index(op.f("ix_department_parent_id"), "department", ["parent_id"], unique=False)
    op.create_table(
        "offer_opinion",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("offer_id", BIG_KEY, nullable=False),
        sa.Column("department", sa.String(length=100), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("agree", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("given_by", sa.String(length=64), nullable=False),
        sa.Column("given_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["offer_id"], ["offer.id"], name=op.f("fk_offer_opinion_offer_id_offer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_opinion")),
        sa.UniqueConstraint(
            "offer_id", "department", "round", name=op.f("uq_offer_opinion_offer_id_department_round")
        ),
    )
    # Nullable columns without a default: PostgreSQL adds them without rewriting the table. On SQLite the
    # column is added in place (rebuilding staff_user would break the foreign keys that reference it).
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql(
            "ALTER TABLE staff_user ADD COLUMN department_id INTEGER REFERENCES department (id)"
        )
    else:
        op.add_column("staff_user", sa.Column("department_id", sa.Integer(), nullable=True))
        op.create_foreign_key(
            op.f("fk_staff_user_department_id_department"),
            "staff_user",
            "department",
            ["department_id"],
            ["id"],
        )
    op.create_index(op.f("ix_staff_user_department_id"), "staff_user", ["department_id"], unique=False)
    op.add_column("offer", sa.Column("region_code", sa.String(length=6), nullable=True))
    op.add_column("batch", sa.Column("region", sa.String(length=6), nullable=True))
    op.add_column("application", sa.Column("region_code", sa.String(length=6), nullable=True))
    op.add_column("policy_version", sa.Column("reviewers", sa.Text(), nullable=True))

    # Every department name a user carries becomes a department (not yet placed: no level, no region).
    now = dt.datetime.now(dt.UTC)
    names = [
        r[0]
        for r in bind.execute(
            sa.text("SELECT DISTINCT department FROM staff_user WHERE department IS NOT NULL")
        )
    ]
    department = sa.table("department", sa.column("name", sa.String), sa.column("created_at", UtcDateTime()))
    for name in sorted(names):
        bind.execute(department.insert().values(name=name, created_at=now))
    bind.execute(
        sa.text(
            "UPDATE staff_user SET department_id = "
            "(SELECT d.id FROM department d WHERE d.name = staff_user.department) "
            "WHERE department IS NOT NULL"
        )
    )


def downgrade() -> None:
    op.drop_column("policy_version", "reviewers")
    with op.batch_alter_table("application") as batch:
        batch.drop_column("region_code")
    with op.batch_alter_table("batch") as batch:
        batch.drop_column("region")
    with op.batch_alter_table("offer") as batch:
        batch.drop_column("region_code")
    op.drop_index(op.f("ix_staff_user_department_id"), table_name="staff_user")
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        bind.exec_driver_sql("ALTER TABLE staff_user DROP COLUMN department_id")
    else:
        op.drop_constraint(op.f("fk_staff_user_department_id_department"), "staff_user", type_="foreignkey")
        op.drop_column("staff_user", "department_id")
    op.drop_table("offer_opinion")
    op.drop_index(op.f("ix_department_parent_id"), table_name="department")
    op.drop_table("department")
