"""The portal's tests run on the real databases of tests/payouts (their fixtures are shared from there)."""

from tests.payouts.conftest import backend, engine, ex, fresh, notified, settings, small_run, t0, tx  # noqa: F401
