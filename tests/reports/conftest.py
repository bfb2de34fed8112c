"""The report tests run on the notebooks' demo data and the conformance run (fixtures shared from
tests/notebooks), and on the payouts test databases, SQLite and PostgreSQL (tests/payouts)."""

import pytest
from sqlalchemy import Engine

from payouts.db import make_engine
from tests.notebooks.conftest import conformance_run, demo, runner  # noqa: F401  (fixtures)
from tests.payouts.conftest import backend, engine, small_run, tx  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def demo_engine(demo: dict[str, str]) -> Engine:  # noqa: F811  (the fixture above)
    """The notebooks' demo database: a month of payouts with reminders, late answers and slow checkers."""
    return make_engine(demo["ZHIDA_DATABASE_URL"])
