"""The `zhida` command starts at once: its help loads no engine or database code, and a command that
needs a password says how to give it when there is no terminal."""

from __future__ import annotations

import subprocess
import sys

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
