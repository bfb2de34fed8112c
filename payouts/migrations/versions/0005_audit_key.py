"""Keyed audit chain: each event says which hash it carries, and `audit_head` only moves forward.

Events written before this revision keep their plain SHA-256 hashes (`chain` 1); new ones carry an
HMAC-SHA256 under the audit key (`chain` 2, see `payouts.audit`). Nothing already written is changed:
the first keyed event's HMAC covers the last plain hash, and `verify` refuses a plain event after a
keyed one.

On PostgreSQL `audit_head` may only move forward, to an event that is stored with that hash, and never
be deleted or truncated: the service's role (which owns nothing, `payouts.db.grant_app_role`) needs
UPDATE on it to append, but cannot set the head back or disable the trigger. The owner can; signed
checkpoints outside the database (`payouts.checkpoints`) catch that.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 02:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

HEAD_FORWARD_ONLY = [
    """
    CREATE FUNCTION audit_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'audit_head: % refused', TG_OP;
      END IF;
      IF NEW.id <> OLD.id OR NEW.seq < OLD.seq OR (NEW.seq > 0 AND NOT EXISTS (
          SELECT 1 FROM audit_event WHERE seq = NEW.seq AND hash = NEW.hash)) THEN
        RAISE EXCEPTION 'audit_head only moves forward to a stored event: seq % refused', NEW.seq;
      END IF;
      RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head "
    "FOR EACH ROW EXECUTE FUNCTION audit_head_forward_only()",
    "CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
]


def upgrade() -> None:
    op.add_column("audit_event", sa.Column("chain", sa.SmallInteger(), server_default="1", nullable=False))
    if op.get_bind().dialect.name == "postgresql":
        for statement in HEAD_FORWARD_ONLY:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_head_no_truncate ON audit_head")
        op.execute("DROP TRIGGER audit_head_forward_only ON audit_head")
        op.execute("DROP FUNCTION audit_head_forward_only()")
    # Not batch mode on SQLite: copying the table would lose its append-only triggers (SQLite >= 3.35
    # drops a column in place).
    op.drop_column("audit_event", "chain")
