"""Applications (快申快享): an enterprise's application for an apply item with its materials, the
returns for correction (补正) that stop the clock, the departments' opinions in joint review (会签); and
offers that come from an accepted application instead of a match run (`offer.match_run_id` may be NULL);
enterprises' ratings of ended items (好差评, `rating`); and the 帮办代办 role (`agent`) with the
authorisations (委托书, `mandate`) it acts on.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 08:53:42
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import Money, UtcDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


OLD_ROLES = (
    "role IN ('policy', 'reviewer', 'finance_maker', 'finance_checker', 'auditor', 'system_admin', "
    "'security_admin')"
)
NEW_ROLES = (
    "role IN ('policy', 'reviewer', 'finance_maker', 'finance_checker', 'auditor', 'system_admin', "
    "'security_admin', 'agent')"
)


def _role_check(old: str, new: str) -> None:
    """Swap the staff_user role check (the new role 帮办代办 `agent`), as revision 0006 does: on SQLite the
    table's definition is edited in place (rebuilding staff_user would break the foreign keys that
    reference it) and the schema version bumped; the stored rows stay valid under both checks."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_staff_user_role"), "staff_user", type_="check")
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
    if changed != 1:
        raise RuntimeError("staff_user: the role check was not found as expected; migrate by hand")


def upgrade() -> None:
    _role_check(OLD_ROLES, NEW_ROLES)
    op.create_table(
        "mandate",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("stored_path", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mandate")),
        sa.UniqueConstraint("public_id", name=op.f("uq_mandate_public_id")),
    )
    with op.batch_alter_table("mandate", schema=None) as batch_op:
        batch_op.create_index("ix_mandate_agent_uscc", ["agent", "uscc"], unique=False)
        batch_op.create_index(batch_op.f("ix_mandate_uscc"), ["uscc"], unique=False)
    op.create_table(
        "application",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("lead_department", sa.Text(), nullable=False),
        sa.Column("reviewers", sa.Text(), nullable=False),
        sa.Column("time_limit_days", sa.Integer(), nullable=False),
        sa.Column("prefilled", sa.Text(), nullable=False),
        sa.Column("supplied", sa.Text(), nullable=False),
        sa.Column("answers", sa.Text(), nullable=False),
        sa.Column("requested_amount", Money(), nullable=True),
        sa.Column("amount", Money(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("submitted_at", UtcDateTime(), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("offer_id", BIG_KEY, nullable=True),
        sa.CheckConstraint(
            "state IN ('draft', 'submitted', 'returned', 'accepted', 'rejected')",
            name=op.f("ck_application_state"),
        ),
        sa.ForeignKeyConstraint(["offer_id"], ["offer.id"], name=op.f("fk_application_offer_id_offer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application")),
        sa.UniqueConstraint("public_id", name=op.f("uq_application_public_id")),
    )
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.create_index("ix_application_lead_state", ["lead_department", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_application_uscc"), ["uscc"], unique=False)
        batch_op.create_index(
            "uq_application_live_key",
            ["uscc", "policy_id", "item_id", "period"],
            unique=True,
            sqlite_where=sa.text("state <> 'rejected'"),
            postgresql_where=sa.text("state <> 'rejected'"),
        )

    op.create_table(
        "application_material",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("application_id", BIG_KEY, nullable=False),
        sa.Column("material_id", sa.String(length=64), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("stored_path", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", UtcDateTime(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application.id"],
            name=op.f("fk_application_material_application_id_application"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_material")),
        sa.UniqueConstraint("public_id", name=op.f("uq_application_material_public_id")),
    )
    with op.batch_alter_table("application_material", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_application_material_application_id"), ["application_id"], unique=False
        )

    op.create_table(
        "application_opinion",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("application_id", BIG_KEY, nullable=False),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("agree", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("given_by", sa.String(length=64), nullable=False),
        sa.Column("given_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application.id"],
            name=op.f("fk_application_opinion_application_id_application"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_opinion")),
        sa.UniqueConstraint(
            "application_id", "department", name=op.f("uq_application_opinion_application_id_department")
        ),
    )
    op.create_table(
        "application_return",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("application_id", BIG_KEY, nullable=False),
        sa.Column("corrections", sa.Text(), nullable=False),
        sa.Column("returned_by", sa.String(length=64), nullable=False),
        sa.Column("returned_at", UtcDateTime(), nullable=False),
        sa.Column("resumed_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["application.id"],
            name=op.f("fk_application_return_application_id_application"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_return")),
    )
    with op.batch_alter_table("application_return", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_application_return_application_id"), ["application_id"], unique=False
        )

    op.create_table(
        "rating",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("subject", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=32), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("rated_at", UtcDateTime(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_by", sa.String(length=64), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name=op.f("ck_rating_score")),
        sa.CheckConstraint("subject IN ('offer', 'application')", name=op.f("ck_rating_subject")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating")),
        sa.UniqueConstraint("public_id", name=op.f("uq_rating_public_id")),
        sa.UniqueConstraint("uscc", "subject", "subject_id", name=op.f("uq_rating_uscc_subject_subject_id")),
    )
    with op.batch_alter_table("rating", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rating_department"), ["department"], unique=False)

    with op.batch_alter_table("offer", schema=None) as batch_op:
        batch_op.alter_column("match_run_id", existing_type=sa.INTEGER(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("mandate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mandate_uscc"))
        batch_op.drop_index("ix_mandate_agent_uscc")
    op.drop_table("mandate")
    agents = (
        op.get_bind().exec_driver_sql("SELECT count(*) FROM staff_user WHERE role = 'agent'").scalar_one()
    )
    if agents:
        raise RuntimeError(f"{agents} staff users have the role agent (帮办代办): change their role first")
    _role_check(NEW_ROLES, OLD_ROLES)
    with op.batch_alter_table("rating", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rating_department"))
    op.drop_table("rating")
    with op.batch_alter_table("offer", schema=None) as batch_op:
        batch_op.alter_column("match_run_id", existing_type=sa.INTEGER(), nullable=False)

    with op.batch_alter_table("application_return", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_application_return_application_id"))

    op.drop_table("application_return")
    op.drop_table("application_opinion")
    with op.batch_alter_table("application_material", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_application_material_application_id"))

    op.drop_table("application_material")
    with op.batch_alter_table("application", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_application_live_key",
            sqlite_where=sa.text("state <> 'rejected'"),
            postgresql_where=sa.text("state <> 'rejected'"),
        )
        batch_op.drop_index(batch_op.f("ix_application_uscc"))
        batch_op.drop_index("ix_application_lead_state")

    op.drop_table("application")
