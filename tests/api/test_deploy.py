"""The deployment files in deploy/ stay true to the code: every command a unit runs parses, and every
setting the example file names is one the service or payouts reads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer

from api.cli import app
from api.settings import Settings
from payouts.db import PayoutSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def zhida_args(unit: Path) -> list[str]:
    """The arguments after `zhida` in a unit's ExecStart (also inside `sh -c '…'`), dates filled in."""
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    words = shlex.split(line.removeprefix("ExecStart="))
    if words[:2] == ["/bin/sh", "-c"]:
        words = shlex.split(re.sub(r"\$\(date[^)]*\)", "2025-10-08", words[2]).removeprefix("exec "))
    at = next(i for i, w in enumerate(words) if w.endswith("/zhida"))
    return words[at + 1 :]


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_every_unit_runs_a_command_and_options_that_exist(unit: Path) -> None:
    command: Any = typer.main.get_command(app)
    args = zhida_args(unit)
    ctx = command.context_class(command, info_name="zhida")
    while hasattr(command, "get_command"):  # down the groups (`zhida db migrate`) to the command
        name = args.pop(0)
        found = command.get_command(ctx, name)
        assert found is not None, f"{unit.name}: no command {name}"
        command, ctx = found, found.context_class(found, info_name=name, parent=ctx)
    command.make_context(command.name or "", args)  # raises on an unknown option or a bad value


def test_the_example_settings_are_settings_the_service_reads() -> None:
    known = {f"ZHIDA_{name.upper()}" for name in Settings.model_fields}
    known |= {f"ZHIDA_{name.upper()}" for name in PayoutSettings.__dataclass_fields__}
    named = [
        line.split("=", 1)[0]
        for line in (DEPLOY / "zhida.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert named and not set(named) - known, f"unknown settings: {sorted(set(named) - known)}"


def test_the_proxy_overwrites_forwarded_for_and_keeps_metrics_in() -> None:
    conf = (DEPLOY / "nginx" / "zhida.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in conf  # never $proxy_add_x_forwarded_for
    assert "$proxy_add_x_forwarded_for" not in conf
    metrics = conf.split("location = /metrics", 1)[1].split("}", 1)[0]
    assert "deny all;" in metrics
