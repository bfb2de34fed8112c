"""Separation of duties (三员分立): the administrator split into system and security administrators (the
auditor keeps auditing), CLI identity tokens, and payee changes approved by a second person.

Existing `admin` users become system administrators (系统管理员): they keep managing users and lose
everything else the old role could do (review, account corrections, audit verification).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 02:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import UtcDateTime

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD_ROLES = "role IN ('policy', 'reviewer', 'finance_maker', 'finance_checker', 'auditor', 'admin')"
NEW_ROLES = (
    "role IN ('policy', 'reviewer', 'finance_maker', 'finance_checker', 'auditor', 'system_admin', "
    "'security_admin')"
)

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _roles(old: str, new: str, rename: tuple[str, str]) -> None:
    """Rename one role's rows and swap the staff_user role check.

    SQLite cannot alter a CHECK constraint, and rebuilding staff_user (alembic's batch mode) would break
    the foreign keys of every table that references it; so, as SQLite's documentation describes for
    changes that leave the stored rows valid, the table's definition is edited in place and the schema
    version bumped so that connections reload it; the renamed rows are then written under the new check.
    """
    bind = op.get_bind()
    rows = sa.text("UPDATE staff_user SET role = :new WHERE role = :old")
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_staff_user_role"), "staff_user", type_="check")
        bind.execute(rows, {"old": rename[0], "new": rename[1]})
        op.create_check_constraint(op.f("ck_staff_user_role"), "staff_user", new)
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    changed = bind.execute(
        sa.text(
            "UPDATE sqlite_master SET sql = replace(sql, :old, :new) WHERE type = 'table' AND name = 'staff_user'"
        ),
        {"old": old, "new": new},
    ).rowcount
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    if (
        changed != 1
        or new
        not in bind.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'staff_user'").scalar_one()
    ):
        raise RuntimeError("staff_user: the role check was not found as expected; migrate by hand")
    bind.execute(rows, {"old": rename[0], "new": rename[1]})  # checked against the new definition


def upgrade() -> None:
    _roles(OLD_ROLES, NEW_ROLES, ("admin", "system_admin"))
    op.create_table(
        "staff_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("password_fp", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["staff_user.id"], name=op.f("fk_staff_token_user_id_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_token_token_hash")),
    )
    op.create_index(op.f("ix_staff_token_user_id"), "staff_token", ["user_id"], unique=False)
    op.create_table(
        "payee_change",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("old_payee_id", BIG_KEY, nullable=False),
        sa.Column("bank_name", sa.Text(), nullable=False),
        sa.Column("account_no", sa.String(length=64), nullable=False),
        sa.Column("account_name", sa.Text(), nullable=False),
        sa.Column("contact_phone", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("proposed_by", sa.Integer(), nullable=False),
        sa.Column("proposed_at", UtcDateTime(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("new_payee_id", BIG_KEY, nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'rejected')", name=op.f("ck_payee_change_state")
        ),
        sa.ForeignKeyConstraint(
            ["old_payee_id"], ["payee.id"], name=op.f("fk_payee_change_old_payee_id_payee")
        ),
        sa.ForeignKeyConstraint(
            ["new_payee_id"], ["payee.id"], name=op.f("fk_payee_change_new_payee_id_payee")
        ),
        sa.ForeignKeyConstraint(
            ["proposed_by"], ["staff_user.id"], name=op.f("fk_payee_change_proposed_by_staff_user")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["staff_user.id"], name=op.f("fk_payee_change_decided_by_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payee_change")),
        sa.UniqueConstraint("public_id", name=op.f("uq_payee_change_public_id")),
    )
    op.create_index(op.f("ix_payee_change_uscc"), "payee_change", ["uscc"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_payee_change_uscc"), table_name="payee_change")
    op.drop_table("payee_change")
    op.drop_index(op.f("ix_staff_token_user_id"), table_name="staff_token")
    op.drop_table("staff_token")
    op.execute("UPDATE staff_user SET role = 'auditor' WHERE role = 'security_admin'")
    _roles(NEW_ROLES, OLD_ROLES, ("system_admin", "admin"))
