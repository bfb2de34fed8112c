"""The `zhida` command starts at once: its help loads no engine or database code, and a command that
needs a password says how to give it when there is no terminal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from api.cli import COMMANDS, app

HEAVY = (
    "duckdb",
    "pyarrow",
    "pyspark",
    "rule_engine",
    "sqlalchemy",
    "alembic",
    "matcher.plan",
    "payouts.models",
)


def test_help_lists_every_command_without_loading_engines_or_the_database() -> None:
    probe = (
        "import sys; from typer.testing import CliRunner; from api.cli import app; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules)); print(r.output)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded, _, listing = out.partition("\n")
    assert loaded == "[]"
    assert all(name in listing for name in COMMANDS)


# Commands that keep the payouts going: their help and their simple uses (list, verify, add a user) load
# no data-frame or matching engine; those load when a command that needs them runs.
PAYOUT_COMMANDS = ("offers", "sms", "batch", "audit", "users", "report", "db", "worker")
ENGINES = ("duckdb", "pyarrow", "pandas", "pyspark", "rule_engine", "sqlglot")


@pytest.mark.parametrize("name", PAYOUT_COMMANDS)
def test_a_payout_commands_help_loads_no_engine(name: str) -> None:
    probe = (
        "import sys; from typer.testing import CliRunner; from api.cli import app; "
        f"r = CliRunner().invoke(app, [{name!r}, '--help']); assert r.exit_code == 0, r.output; "
        f"print(sorted(m for m in {ENGINES!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_listed_command_loads_and_answers_help() -> None:
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_adding_a_user_without_a_terminal_says_to_use_password_stdin() -> None:
    result = CliRunner().invoke(app, ["users", "add", "zhao", "--role", "reviewer"])
    assert result.exit_code == 2
    assert "--password-stdin" in result.output


# What `serve` writes into os.environ for its workers (the shared secret key, the demo's defaults).
SERVE_SETS = tuple(
    f"ZHIDA_{k}"
    for k in (
        "SECRET_KEY",
        "DATABASE_URL",
        "DATA_DIR",
        "SNAPSHOTS_ROOT",
        "AS_OF",
        "PUBLIC_URL",
        "DEMO_PHONE",
        "WORKER",
    )
)


def _unset_until_the_end(monkeypatch: pytest.MonkeyPatch, *keys: str) -> None:
    """Unset `keys` for the test and remove whatever the code under test sets in them afterwards (a bare
    `delenv` of an unset key records nothing, so a value set later would leak into the next test)."""
    for key in keys:
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)


def test_workers_of_a_development_service_share_one_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without ZHIDA_SECRET_KEY each process would make its own, and one worker would refuse the CSRF
    # tokens, enterprise sessions and sign-in codes another worker issued.
    from api.commands.serve import share_secret_key
    from api.settings import Settings

    _unset_until_the_end(monkeypatch, "ZHIDA_SECRET_KEY")
    share_secret_key(os.environ)
    first, second = Settings(), Settings()  # as two worker processes read the environment
    assert first.secret_key.get_secret_value() == second.secret_key.get_secret_value()
    given = os.environ["ZHIDA_SECRET_KEY"]
    share_secret_key(os.environ)
    assert os.environ["ZHIDA_SECRET_KEY"] == given  # a key that is set is kept


def test_several_workers_refuse_the_demo_and_production_without_redis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _unset_until_the_end(monkeypatch, *SERVE_SETS)
    runner = CliRunner()
    result = runner.invoke(app, ["serve", "--workers", "2", "--demo"])
    assert result.exit_code == 2 and "演示手机" in result.output
    for key, value in {
        "ZHIDA_ENV": "production",
        "ZHIDA_SECRET_KEY": "k" * 40,
        "ZHIDA_AUDIT_KEY": "a" * 64,
        "ZHIDA_LINK_KEY": "l" * 40,
        "ZHIDA_AUDIT_CHECKPOINT_DIR": "/tmp",
        "ZHIDA_DATABASE_URL": "postgresql://zhida@127.0.0.1/zhida",
        "ZHIDA_COOKIE_SECURE": "true",
        "ZHIDA_PUBLIC_URL": "https://zd.example.gov.cn",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("ZHIDA_REDIS_URL", raising=False)
    result = runner.invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 2 and "ZHIDA_REDIS_URL" in result.output
