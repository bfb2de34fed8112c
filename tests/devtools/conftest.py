"""The devtools' tests that carry a flow through payouts run on the real databases of tests/payouts."""

from tests.payouts.conftest import backend, engine, t0, tx  # noqa: F401
