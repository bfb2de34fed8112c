"""The match-run questions of `matcher.analysis`, checked against the conformance case's known outputs."""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from matcher import analysis
from rules.catalog import CATALOG
from rules.errors import MatchError
from tests.notebooks.conftest import CASE


def expected(name: str) -> list[dict[str, str]]:
    with (CASE / "expected" / f"{name}.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run(conformance_run: Path) -> analysis.RunData:
    return analysis.open_run(conformance_run)


def test_item_coverage_counts_candidates_and_money_per_item(run: analysis.RunData) -> None:
    want: dict[tuple[str, str], list[Decimal]] = {}
    for row in expected("candidates"):
        want.setdefault((row["policy_id"], row["item_id"]), []).append(Decimal(row["amount"]))
    got = analysis.item_coverage(run).set_index(["policy_id", "item_id"])
    for key, amounts in want.items():
        assert got.loc[key, "candidates"] == len(amounts)
        assert got.loc[key, "amount"] == sum(amounts)
        assert isinstance(got.loc[key, "amount"], Decimal)
    assert got["share"].max() <= 1


def test_blockers_name_the_single_condition_that_blocks_most(run: analysis.RunData) -> None:
    counts = Counter((r["policy_id"], r["item_id"], r["condition_id"]) for r in expected("near_misses"))
    got = analysis.blockers(run)
    assert {(r.policy_id, r.item_id, r.condition_id): r.near_misses for r in got.itertuples()} == counts
    top = got[got["top"]].set_index(["policy_id", "item_id"])["condition_id"].to_dict()
    assert top[("c-wenbao", "refund")] == "layoff"
    assert top[("c-jiuye", "per_hire")] == "hires"
    assert got.loc[got["condition_id"] == "layoff", "text"].iloc[0] == "裁员率不高于5%"


def test_distance_is_the_gap_to_the_threshold_missed(run: analysis.RunData) -> None:
    d = analysis.distances(run)
    layoff = d[(d["policy_id"] == "c-wenbao") & (d["condition_id"] == "layoff")]
    assert len(layoff) == 300
    assert (layoff["threshold"] == "<= 0.05").all()
    assert ((layoff["value"] - 0.05 - layoff["gap"]).abs() < 1e-9).all()
    assert (layoff["gap"] > 0).all()
    hires = d[d["condition_id"] == "hires"]
    assert set(hires["threshold"]) == {">= 2"} and (hires["value"] < 2).all()


def test_thresholds_are_read_from_either_side_of_a_comparison() -> None:
    rule = "layoff_rate <= 0.055 or (insured_start <= 30 and 0.2 >= layoff_rate)"
    found = [(t.field, t.op, t.value) for t in analysis.thresholds(rule)]
    assert found == [
        ("layoff_rate", "<=", Decimal("0.055")),
        ("insured_start", "<=", Decimal("30")),
        ("layoff_rate", "<=", Decimal("0.2")),
    ]


def test_sweep_gains_exactly_the_near_misses_the_new_threshold_lets_in(run: analysis.RunData) -> None:
    d = analysis.distances(run)
    layoff = d[(d["policy_id"] == "c-wenbao") & (d["condition_id"] == "layoff")]
    let_in = set(layoff.loc[layoff["value"] <= 0.08, "uscc"])
    # Not gained: pairs paid before for this period, and those whose amount reads a missing premium
    # (they become missing data, not candidates).
    left_out = set(
        run.query(
            f"SELECT uscc FROM payments WHERE policy_id = 'c-wenbao' AND period = '2025H2' "
            f"UNION SELECT uscc FROM {run.profile(2024)} WHERE ui_premium_paid IS NULL"
        )["uscc"]
    )
    sweep = analysis.sweep(run, "c-wenbao", "layoff", "layoff_rate", ["0.05", "0.08"]).set_index("threshold")
    assert sweep.loc[Decimal("0.05"), "gained"] == 0 and sweep.loc[Decimal("0.05"), "lost"] == 0
    assert sweep.loc[Decimal("0.08"), "gained"] == len(let_in - left_out) > 0
    assert sweep.loc[Decimal("0.08"), "lost"] == 0
    assert sweep.loc[Decimal("0.08"), "delta_amount"] > 0


def test_with_threshold_refuses_a_comparison_that_is_not_there(run: analysis.RunData) -> None:
    policy = run.policies["c-wenbao"]
    changed = analysis.with_threshold(policy, "layoff", "layoff_rate", Decimal("0.05"), Decimal("0.06"))
    assert next(c.rule for c in changed.conditions if c.id == "layoff") == "layoff_rate <= 0.06"
    with pytest.raises(MatchError, match=r"没有 layoff_rate 与 0\.07"):
        analysis.with_threshold(policy, "layoff", "layoff_rate", Decimal("0.07"), Decimal("0.08"))


def test_missing_fields_are_counted_and_owned_by_their_department(run: analysis.RunData) -> None:
    want = Counter(f for r in expected("missing_data") for f in r["fields"].split(";"))
    got = analysis.missing_fields(run).set_index("field")
    assert got["pairs"].to_dict() == want
    for name in want:
        assert got.loc[name, "department"] == CATALOG[name].department
    by_dept = analysis.missing_by_department(run).set_index("department")
    assert by_dept.loc["市场监督管理局（企业年报）", "pairs"] == sum(
        1 for r in expected("missing_data") if "size_class" in r["fields"].split(";")
    )


def test_money_held_back_counts_only_computable_amounts(run: analysis.RunData) -> None:
    held = analysis.money_held_back(run).set_index(["policy_id", "item_id"])
    refund = held.loc[("c-wenbao", "refund")]
    assert refund["pairs"] == sum(1 for r in expected("missing_data") if r["policy_id"] == "c-wenbao")
    assert Decimal(0) < refund["amount"] <= Decimal("20000.00") * refund["pairs"]


def test_concentration_is_the_share_of_the_top_tenth() -> None:
    amounts = [Decimal(100)] + [Decimal(10)] * 9
    assert analysis.top_share(amounts) == Decimal(100) / Decimal(190)
    assert analysis.top_share([]) == 0


def test_coverage_by_region_labels_prefectures(run: analysis.RunData) -> None:
    regions = analysis.coverage_by(run, "region")
    assert "淮安市" in set(regions["label"])
    assert regions["recipients"].sum() == len({r["uscc"] for r in expected("candidates")})
    with pytest.raises(MatchError, match="未知维度"):
        analysis.coverage_by(run, "colour")


def test_quality_tables_repeat_the_snapshot_report(run: analysis.RunData) -> None:
    report = run.snapshot
    nulls = analysis.null_rates(report)
    for t in report.tables.values():
        for column, n in t.nulls.items():
            assert nulls[(nulls["table"] == t.name) & (nulls["column"] == column)]["nulls"].item() == n
    rejected = analysis.rejections(report)
    assert rejected["rows"].sum() == sum(sum(t.rejected.values()) for t in report.tables.values()) > 0
    assert analysis.table_quality(report)["rows_rejected"].sum() == report.rejected_total


def test_a_snapshot_other_than_the_runs_is_refused(conformance_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "snapshot"
    shutil.copytree(CASE / "snapshot", other)
    (other / "payments.parquet").unlink()
    with pytest.raises(MatchError, match="指纹"):
        _ = analysis.open_run(conformance_run, snapshot=other).snapshot


def test_a_folder_without_manifest_is_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(MatchError, match=r"manifest\.json"):
        analysis.open_run(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({}), encoding="utf-8")
    with pytest.raises(MatchError, match=r"candidates\.parquet"):
        analysis.open_run(tmp_path)
