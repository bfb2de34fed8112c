"""Initial schema: every payouts table, the append-only audit log and its chain head.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 20:56:27.982208
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from payouts.sqltypes import Money, UtcDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit keys.
BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS = "0" * 64  # prev_hash of the first audit event

# The audit log is append-only in the database itself, not only by convention.
AUDIT_TABLES = ("audit_event", "audit_member")
APPEND_ONLY = {
    "postgresql": [
        """
        CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
        END $$
        """,
        *(
            f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {t} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
            for t in AUDIT_TABLES
        ),
    ],
    "sqlite": [
        f"CREATE TRIGGER {t}_no_{verb.lower()} BEFORE {verb} ON {t} "
        f"BEGIN SELECT RAISE(ABORT, '{t} is append-only: {verb} refused'); END"
        for t in AUDIT_TABLES
        for verb in ("UPDATE", "DELETE")
    ],
}
DROP_APPEND_ONLY = {
    "postgresql": [
        *(f"DROP TRIGGER {t}_append_only ON {t}" for t in AUDIT_TABLES),
        "DROP FUNCTION audit_append_only()",
    ],
    "sqlite": [f"DROP TRIGGER {t}_no_{verb}" for t in AUDIT_TABLES for verb in ("update", "delete")],
}

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("entity", sa.String(length=16), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_event")),
    )
    op.create_index("ix_audit_event_entity", "audit_event", ["entity", "entity_id"], unique=False)
    op.create_table(
        "audit_member",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", "entity_id", name=op.f("pk_audit_member")),
    )
    op.create_index("ix_audit_member_entity_id", "audit_member", ["entity_id"], unique=False)

    audit_head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_audit_head_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "policy_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("department", sa.Text(), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("budget", Money(), nullable=True),
        sa.Column("allocation", sa.String(length=16), nullable=False),
        sa.Column("confirmation", sa.String(length=16), nullable=False),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_version")),
        sa.UniqueConstraint("policy_id", "version", name=op.f("uq_policy_version_policy_id_version")),
    )
    op.create_index(op.f("ix_policy_version_policy_id"), "policy_version", ["policy_id"], unique=False)

    op.create_table(
        "staff_user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("department", sa.String(length=100), nullable=True),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "role IN ('policy', 'reviewer', 'finance_maker', 'finance_checker', 'auditor', 'admin')",
            name=op.f("ck_staff_user_role"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_user")),
        sa.UniqueConstraint("username", name=op.f("uq_staff_user_username")),
    )
    op.create_table(
        "batch",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=35), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("maker_id", sa.Integer(), nullable=False),
        sa.Column("checker_id", sa.Integer(), nullable=True),
        sa.Column("line_count", sa.Integer(), nullable=False),
        sa.Column("total", Money(), nullable=False),
        sa.Column("payer_name", sa.Text(), nullable=False),
        sa.Column("payer_account", sa.String(length=64), nullable=False),
        sa.Column("payer_bank", sa.Text(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("approved_at", UtcDateTime(), nullable=True),
        sa.Column("exported_at", UtcDateTime(), nullable=True),
        sa.Column("reconciled_at", UtcDateTime(), nullable=True),
        sa.Column("rejected_at", UtcDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("csv_sha256", sa.String(length=64), nullable=True),
        sa.Column("xml_sha256", sa.String(length=64), nullable=True),
        sa.CheckConstraint(
            "state IN ('assembled', 'approved', 'exported', 'reconciled', 'rejected')",
            name=op.f("ck_batch_state"),
        ),
        sa.CheckConstraint("checker_id IS NULL OR checker_id <> maker_id", name=op.f("ck_batch_four_eyes")),
        sa.ForeignKeyConstraint(
            ["checker_id"], ["staff_user.id"], name=op.f("fk_batch_checker_id_staff_user")
        ),
        sa.ForeignKeyConstraint(["maker_id"], ["staff_user.id"], name=op.f("fk_batch_maker_id_staff_user")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch")),
        sa.UniqueConstraint("reference", name=op.f("uq_batch_reference")),
    )
    op.create_index(op.f("ix_batch_policy_id"), "batch", ["policy_id"], unique=False)

    op.create_table(
        "match_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("snapshot_fingerprint", sa.String(length=128), nullable=False),
        sa.Column("rules_fingerprint", sa.String(length=128), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("imported_at", UtcDateTime(), nullable=False),
        sa.Column("imported_by", sa.Integer(), nullable=False),
        sa.Column("offers", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.ForeignKeyConstraint(
            ["imported_by"], ["staff_user.id"], name=op.f("fk_match_run_imported_by_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_run")),
        sa.UniqueConstraint("run_id", name=op.f("uq_match_run_run_id")),
    )
    op.create_table(
        "bank_return",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("imported_at", UtcDateTime(), nullable=False),
        sa.Column("imported_by", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("paid", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("paid_amount", Money(), nullable=False),
        sa.Column("failed_amount", Money(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_bank_return_batch_id_batch")),
        sa.ForeignKeyConstraint(
            ["imported_by"], ["staff_user.id"], name=op.f("fk_bank_return_imported_by_staff_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_return")),
        sa.UniqueConstraint("file_sha256", name=op.f("uq_bank_return_file_sha256")),
    )
    op.create_index(op.f("ix_bank_return_batch_id"), "bank_return", ["batch_id"], unique=False)

    op.create_table(
        "payee",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("contact_phone", sa.String(length=32), nullable=True),
        sa.Column("bank_name", sa.Text(), nullable=True),
        sa.Column("account_no", sa.String(length=64), nullable=True),
        sa.Column("account_name", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("match_run_id", sa.Integer(), nullable=True),
        sa.Column("supersedes_id", BIG_KEY, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["match_run_id"], ["match_run.id"], name=op.f("fk_payee_match_run_id_match_run")
        ),
        sa.ForeignKeyConstraint(["supersedes_id"], ["payee.id"], name=op.f("fk_payee_supersedes_id_payee")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payee")),
    )
    op.create_index(op.f("ix_payee_match_run_id"), "payee", ["match_run_id"], unique=False)
    op.create_index(op.f("ix_payee_uscc"), "payee", ["uscc"], unique=False)

    op.create_table(
        "offer",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("match_run_id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("amount_before_allocation", Money(), nullable=False),
        sa.Column("payee_id", BIG_KEY, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("hold_reason", sa.Text(), nullable=True),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("deadline", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("released_at", UtcDateTime(), nullable=True),
        sa.Column("notified_at", UtcDateTime(), nullable=True),
        sa.Column("confirmed_at", UtcDateTime(), nullable=True),
        sa.Column("paid_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "state IN ('drafted', 'released', 'notified', 'confirmed', 'in_batch', 'paid', 'declined', 'expired', 'held', 'dropped', 'payment_failed')",
            name=op.f("ck_offer_state"),
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_offer_amount_positive")),
        sa.ForeignKeyConstraint(
            ["match_run_id"], ["match_run.id"], name=op.f("fk_offer_match_run_id_match_run")
        ),
        sa.ForeignKeyConstraint(["payee_id"], ["payee.id"], name=op.f("fk_offer_payee_id_payee")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer")),
        sa.UniqueConstraint("public_id", name=op.f("uq_offer_public_id")),
    )
    op.create_index(op.f("ix_offer_match_run_id"), "offer", ["match_run_id"], unique=False)
    op.create_index("ix_offer_policy_period_state", "offer", ["policy_id", "period", "state"], unique=False)
    op.create_index(
        "ix_offer_waiting",
        "offer",
        ["state", "deadline"],
        unique=False,
        sqlite_where=sa.text("state IN ('released', 'notified')"),
        postgresql_where=sa.text("state IN ('released', 'notified')"),
    )
    op.create_index(
        "uq_offer_live_key",
        "offer",
        ["uscc", "policy_id", "item_id", "period"],
        unique=True,
        sqlite_where=sa.text("state NOT IN ('dropped', 'declined', 'expired')"),
        postgresql_where=sa.text("state NOT IN ('dropped', 'declined', 'expired')"),
    )

    op.create_table(
        "batch_line",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=35), nullable=False),
        sa.Column("offer_id", BIG_KEY, nullable=False),
        sa.Column("payee_id", BIG_KEY, nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("account_name", sa.Text(), nullable=False),
        sa.Column("account_no", sa.String(length=64), nullable=False),
        sa.Column("bank_name", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("bank_reason", sa.Text(), nullable=True),
        sa.Column("bank_return_id", sa.Integer(), nullable=True),
        sa.Column("settled_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'paid', 'failed', 'withdrawn')", name=op.f("ck_batch_line_status")
        ),
        sa.ForeignKeyConstraint(
            ["bank_return_id"], ["bank_return.id"], name=op.f("fk_batch_line_bank_return_id_bank_return")
        ),
        sa.ForeignKeyConstraint(["batch_id"], ["batch.id"], name=op.f("fk_batch_line_batch_id_batch")),
        sa.ForeignKeyConstraint(["offer_id"], ["offer.id"], name=op.f("fk_batch_line_offer_id_offer")),
        sa.ForeignKeyConstraint(["payee_id"], ["payee.id"], name=op.f("fk_batch_line_payee_id_payee")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_line")),
        sa.UniqueConstraint("batch_id", "line_no", name=op.f("uq_batch_line_batch_id_line_no")),
        sa.UniqueConstraint("reference", name=op.f("uq_batch_line_reference")),
    )
    op.create_index(op.f("ix_batch_line_batch_id"), "batch_line", ["batch_id"], unique=False)
    op.create_index(op.f("ix_batch_line_offer_id"), "batch_line", ["offer_id"], unique=False)
    op.create_index(
        "uq_batch_line_live_offer",
        "batch_line",
        ["offer_id"],
        unique=True,
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )

    op.create_table(
        "sms_message",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("offer_id", BIG_KEY, nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(length=32), nullable=True),
        sa.Column("provider_ref", sa.String(length=128), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["offer_id"], ["offer.id"], name=op.f("fk_sms_message_offer_id_offer")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_message")),
        sa.UniqueConstraint("offer_id", "round", "kind", name=op.f("uq_sms_message_offer_id_round_kind")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_sms_message_token_hash")),
    )
    op.create_table(
        "confirmation",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("offer_id", BIG_KEY, nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sms_message_id", BIG_KEY, nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('confirm', 'decline', 'account_wrong')", name=op.f("ck_confirmation_kind")
        ),
        sa.ForeignKeyConstraint(["offer_id"], ["offer.id"], name=op.f("fk_confirmation_offer_id_offer")),
        sa.ForeignKeyConstraint(
            ["sms_message_id"], ["sms_message.id"], name=op.f("fk_confirmation_sms_message_id_sms_message")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_confirmation")),
        sa.UniqueConstraint("offer_id", "round", name=op.f("uq_confirmation_offer_id_round")),
    )
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    for statement in APPEND_ONLY.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_APPEND_ONLY.get(op.get_bind().dialect.name, []):
        op.execute(statement)
    op.drop_table("confirmation")
    op.drop_table("sms_message")
    op.drop_index(
        "uq_batch_line_live_offer",
        table_name="batch_line",
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )
    op.drop_index(op.f("ix_batch_line_offer_id"), table_name="batch_line")
    op.drop_index(op.f("ix_batch_line_batch_id"), table_name="batch_line")

    op.drop_table("batch_line")
    op.drop_index(
        "uq_offer_live_key",
        table_name="offer",
        sqlite_where=sa.text("state NOT IN ('dropped', 'declined', 'expired')"),
        postgresql_where=sa.text("state NOT IN ('dropped', 'declined', 'expired')"),
    )
    op.drop_index("ix_offer_waiting", table_name="offer")
    op.drop_index("ix_offer_policy_period_state", table_name="offer")
    op.drop_index(op.f("ix_offer_match_run_id"), table_name="offer")

    op.drop_table("offer")
    op.drop_index(op.f("ix_payee_uscc"), table_name="payee")
    op.drop_index(op.f("ix_payee_match_run_id"), table_name="payee")

    op.drop_table("payee")
    op.drop_index(op.f("ix_bank_return_batch_id"), table_name="bank_return")

    op.drop_table("bank_return")
    op.drop_table("match_run")
    op.drop_index(op.f("ix_batch_policy_id"), table_name="batch")

    op.drop_table("batch")
    op.drop_table("staff_user")
    op.drop_index(op.f("ix_policy_version_policy_id"), table_name="policy_version")

    op.drop_table("policy_version")
    op.drop_table("audit_head")
    op.drop_index("ix_audit_member_entity_id", table_name="audit_member")
    op.drop_table("audit_member")
    op.drop_index("ix_audit_event_entity", table_name="audit_event")

    op.drop_table("audit_event")
