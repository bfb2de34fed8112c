"""Alembic environment for the payouts schema; `payouts.db.migrate` passes the connection in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

from payouts.db import make_engine

# The tables the models of payouts and portal register, for autogenerate (devtools.migrations imports
# both); applying the hand-checked migrations needs none of them.
target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the connection `payouts.db.migrate` provides, or the configured URL."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("payouts migrations run online only: use payouts.db.migrate(url)")
run_migrations_online()
