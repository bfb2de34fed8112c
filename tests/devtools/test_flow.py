"""`zhida bench flow`: every stage of the payout flow runs on the same offers, end to end."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from api.cli import app
from devtools.flow import STAGES, Stage, run_flow, totals


def test_every_stage_runs_on_the_offers_the_one_before_left(tmp_path: Path) -> None:
    seen: list[Stage] = []
    stages = run_flow(1000, tmp_path, None, report=seen.append)
    assert [s.name for s in stages] == list(STAGES) and seen == stages
    rows = {s.name: s.rows for s in stages}
    assert rows["match"] == rows["import"] > 0
    assert 0 < rows["sms"] < rows["release"] <= rows["import"]
    assert rows["confirm"] == rows["sms"]  # every enterprise told confirms
    # Every confirmed offer is paid: straight-confirmed ones plus the answered ones, in batches that
    # are approved and exported whole.
    assert rows["batch"] == rows["approve"] == rows["export"] > rows["confirm"]
    assert len(list((tmp_path / "bank").glob("*.xml"))) >= 2
    # The bank's return files settle every exported line, paid or failed.
    assert rows["bank"] == rows["reconcile"] == rows["export"]
    untimed = {"confirm", "bank"}
    seconds, peak = totals(stages)
    assert seconds == sum(s.seconds for s in stages if s.name not in untimed)
    assert peak >= max(s.peak_bytes for s in stages if s.name not in untimed) > 50 * 2**20


def test_the_benchmark_refuses_to_recreate_a_database_not_named_for_it(tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/zhida"
    result = CliRunner().invoke(app, ["bench", "flow", "-n", "100", "--work", str(tmp_path), "--url", url])
    assert result.exit_code != 0
    assert "zhida_bench" in str(result.exception) + result.output
