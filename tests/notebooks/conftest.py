"""Fixtures for the notebook and report tests: the conformance run, and the notebooks' demo data.

The demo data (a 5,000-enterprise snapshot, its match run and a payouts database with a month of
history) is built once per test session by `notebooks/execute.py`, the same code `make figures` uses.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from matcher.run import run_match

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "conformance"
AS_OF = dt.date(2025, 9, 30)
DEMO_ENTERPRISES = 5_000


def notebook_runner() -> ModuleType:
    """`notebooks/execute.py` as a module (the notebooks folder is not a package)."""
    spec = importlib.util.spec_from_file_location("notebook_execute", ROOT / "notebooks" / "execute.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def runner() -> ModuleType:
    return notebook_runner()


@pytest.fixture(scope="session")
def conformance_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The conformance case matched into a run folder (its expected outputs are known exactly)."""
    out = tmp_path_factory.mktemp("conformance") / "run"
    run_match(CASE / "snapshot", CASE / "policies", out, AS_OF)
    return out


@pytest.fixture(scope="session")
def demo(runner: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """ZHIDA_SNAPSHOT, ZHIDA_RUN and ZHIDA_DATABASE_URL of the notebooks' demo data, built once."""
    return runner.build_demo(tmp_path_factory.mktemp("demo"), DEMO_ENTERPRISES)
