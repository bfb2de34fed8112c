"""The security suite: each test reproduces one attack on the service or its data and shows it fails.

It runs against the same real service as tests/api, and the real databases of tests/payouts (their
fixtures are shared from there).
"""

from tests.api.conftest import shared, template, world  # noqa: F401  (fixtures)
from tests.payouts.conftest import backend, engine, notified, small_run, t0, tx  # noqa: F401  (fixtures)
