"""`zhida explain` and `zhida simulate` on the conformance case, as a policy department would use them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
from typer.testing import CliRunner

from api.cli import app
from matcher.simulate import simulate
from matcher.snapshot import load_snapshot
from rules.validate import load_policy, parse_policy_text

CASE = Path(__file__).resolve().parent.parent / "conformance"
AS_OF = dt.date(2025, 9, 30)


def test_explain_shows_each_condition_with_text_values_and_verdict() -> None:
    candidate = "9132080327KH6FHAC6"  # c-gaoxin/mature in the expected candidates
    result = CliRunner().invoke(
        app,
        [
            "explain",
            "--snapshot",
            str(CASE / "snapshot"),
            "--policies",
            str(CASE / "policies"),
            "--uscc",
            candidate,
            "--as-of",
            "2025-09-30",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "有效期内的高新技术企业" in result.output  # the condition's text
    assert "成立满3年" in result.output
    assert "金额：150,000" in result.output
    assert "✓ 满足" in result.output and "✗ 不满足" in result.output


def test_explain_unknown_enterprise_exits_nonzero() -> None:
    result = CliRunner().invoke(
        app,
        [
            "explain",
            "--snapshot",
            str(CASE / "snapshot"),
            "--policies",
            str(CASE / "policies"),
            "--uscc",
            "91320803AYJQJF0DC0",
            "--as-of",
            "2025-09-30",
        ],  # rejected: bad check character
    )
    assert result.exit_code == 1
    assert "没有可用的企业" in result.output


def test_simulate_raising_a_threshold_only_gains() -> None:
    old = load_policy(CASE / "policies" / "c-wenbao.yaml")
    text = (CASE / "policies" / "c-wenbao.yaml").read_text(encoding="utf-8")
    new = parse_policy_text(
        text.replace("layoff_rate <= 0.05", "layoff_rate <= 0.2").replace("version: 1", "version: 2"),
        "new.yaml",
    )
    con = duckdb.connect()
    load_snapshot(CASE / "snapshot", con)
    impact = simulate(con, new, old, AS_OF)
    assert impact.lost == 0
    assert impact.gained > 0
    assert impact.new_enterprises == impact.old_enterprises + impact.gained
    assert impact.delta_amount > 0
    by_size = {k: (o, n) for k, o, n, _, _ in impact.breakdown["size_class"]}
    assert set(by_size) <= {"small", "micro"}  # the policy only reaches small and micro firms
    assert sum(n for _, n in by_size.values()) == impact.new_enterprises


def test_simulate_against_no_policy_counts_everyone_as_gained() -> None:
    new = load_policy(CASE / "policies" / "c-wenbao.yaml")
    con = duckdb.connect()
    load_snapshot(CASE / "snapshot", con)
    impact = simulate(con, new, None, AS_OF)
    assert impact.old_enterprises == 0 and impact.lost == 0
    assert impact.gained == impact.new_enterprises > 0


def test_simulate_command_prints_the_breakdown(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--snapshot",
            str(CASE / "snapshot"),
            "--policy",
            str(CASE / "policies" / "c-yanfa.yaml"),
            "--as-of",
            "2025-09-30",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "对比无此政策" in result.output and "行业门类" in result.output


def test_bench_prints_the_stages_and_the_speedup_and_keeps_its_figures(tmp_path: Path) -> None:
    import json

    args = ["bench", "match", "--enterprises", "3000", "--policies", "12", "--work", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--memory-limit", "2GB"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for label in (
        "匹配（每户每条件一次）",
        "分配（已兑现/就高/预算）",
        "汇总（每事项计数与金额）",
        "写出结果",
    ):
        assert label in result.output
    assert "向量化加速比（匹配 + 分配 + 汇总）" in result.output
    figures = json.loads((tmp_path / "bench-duckdb-3000x12-0.json").read_text(encoding="utf-8"))
    assert figures["engine"] == "duckdb"
    assert all(figures[k] > 0 for k in ("match_s", "allocate_s", "summary_s", "write_s", "peak_rss_gib"))
    # The files it timed are the Contract 4 outputs of that run.
    out = tmp_path / "out-3000x12-0"
    assert {p.name for p in out.iterdir()} >= {"candidates.parquet", "results"}
    ((counted,),) = duckdb.sql(f"SELECT count(*) FROM '{out / 'candidates.parquet'}'").fetchall()
    assert counted > 0


def test_bench_statements_names_the_slowest_tables_and_leaves_the_rest_to_python(tmp_path: Path) -> None:
    from devtools.bench_match import run_bench

    r = run_bench(2000, 12, tmp_path, memory_limit="2GB", sample=20, write=False)
    # Every table of the plan is timed, by name, and the statements fit in their stages.
    assert {"match_keys", "match_items", "verdicts_0", "patterns_0", "allocatable_0", "matches"} <= set(
        r.statements
    )
    assert {"allocated", "match_summary", "candidates"} <= set(r.statements)
    assert all(s >= 0 for s in r.statements.values())
    assert 0 <= r.python_s < r.computed_s + r.views_s
    args = [
        "bench",
        "match",
        "--enterprises",
        "2000",
        "--policies",
        "12",
        "--work",
        str(tmp_path),
        "--no-write",
    ]
    result = CliRunner().invoke(app, [*args, "--statements", "3"], terminal_width=200)
    assert result.exit_code == 0, result.output
    listed = [name for name in r.statements if f"│ {name} " in result.output]
    assert len(listed) == 3 and "其余语句" in result.output and "Python（构建与渲染语句树）" in result.output
