"""Write a new schema migration: `python -m devtools.migrations "what changed"`.

Alembic compares the tables of `payouts.models` and `portal.models` with a scratch SQLite database at the
latest revision and writes the difference under `payouts/migrations/versions/`; review it (and make it
work on PostgreSQL as well) before committing it.
"""

from __future__ import annotations

import sys
import tempfile

from alembic import command

import portal.models  # noqa: F401  (both register their tables on the metadata autogenerate compares)
from payouts.db import alembic_config, make_engine, migrate


def new_revision(message: str) -> None:
    """Write a migration for what changed in the models (alembic autogenerate).

    Compares the models with a scratch SQLite database at the latest revision; review the file it
    writes under `payouts/migrations/versions/` before committing it.
    """
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/revision.db")
        migrate(engine)
        cfg = alembic_config()
        with engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.revision(cfg, message=message, autogenerate=True)
        engine.dispose()


if __name__ == "__main__":
    new_revision(" ".join(sys.argv[1:]) or "schema change")
