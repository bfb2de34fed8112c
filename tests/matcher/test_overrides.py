"""Verified overrides in a match run: a missing value supplied and verified turns a missing-data pair into a
candidate, the manifest says which overrides were applied, and the snapshot's files are never touched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from matcher.results import RunResults
from matcher.run import run_match
from rules.errors import MatchError

CASE = Path(__file__).resolve().parent.parent / "conformance"
AS_OF = dt.date(2025, 9, 30)
NO_PREMIUM = "91321302N37DJHMYJR"  # c-wenbao/refund: ui_premium_paid is NULL in social_insurance 2024
NO_CREDIT = "9132080382J9AR2NCK"  # c-wenbao/refund: no credit row at all
OVERRIDES = [
    {
        "id": "ov-premium",
        "uscc": NO_PREMIUM,
        "table": "social_insurance",
        "column": "ui_premium_paid",
        "year": 2024,
        "value": "12345.67",
    },
    {
        "id": "ov-honest",
        "uscc": NO_CREDIT,
        "table": "credit",
        "column": "serious_dishonest",
        "year": None,
        "value": "false",
    },
]


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _pairs(out: Path, name: str) -> set[tuple[str, str, str]]:
    if name == "candidates":
        source = f"'{out / name}.parquet'"
    else:  # kept compact (Contract 4 format 3): read on demand
        results = RunResults(out)
        rows = results.cursor().execute(f"SELECT policy_id, item_id, uscc FROM ({results.list_sql(name)})")
        return {tuple(r) for r in rows.fetchall()}
    rows = duckdb.sql(f"SELECT policy_id, item_id, uscc FROM {source}").fetchall()
    return {tuple(r) for r in rows}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str], dict[str, str]]:
    root = tmp_path_factory.mktemp("overrides")
    before = _digests(CASE / "snapshot")
    plain = run_match(CASE / "snapshot", CASE / "policies", root / "plain", AS_OF).out
    file = root / "overrides.json"
    file.write_text(json.dumps(OVERRIDES), encoding="utf-8")
    with_overrides = run_match(CASE / "snapshot", CASE / "policies", root / "over", AS_OF, overrides=file).out
    return plain, with_overrides, before, _digests(CASE / "snapshot")


def test_an_override_turns_a_missing_data_pair_into_a_candidate(runs) -> None:
    plain, over, _, _ = runs
    for uscc in (NO_PREMIUM, NO_CREDIT):
        pair = ("c-wenbao", "refund", uscc)
        assert pair in _pairs(plain, "missing_data") and pair not in _pairs(plain, "candidates")
        assert pair in _pairs(over, "candidates") and pair not in _pairs(over, "missing_data")
    amount = duckdb.sql(
        f"SELECT amount FROM '{over / 'candidates.parquet'}' WHERE uscc = '{NO_PREMIUM}' AND policy_id = 'c-wenbao'"
    ).fetchall()
    assert [str(a) for (a,) in amount] == ["6172.84"]  # 12,345.67 × 50 %, half-up to the fen


def test_the_manifest_lists_each_override_with_old_and_new_values(runs) -> None:
    plain, over, _, _ = runs
    assert json.loads((plain / "manifest.json").read_text())["overrides"] == {
        "count": 0,
        "applied": [],
        "skipped": [],
    }
    marked = json.loads((over / "manifest.json").read_text())["overrides"]
    assert marked["count"] == 2
    premium, honest = marked["applied"]
    assert premium == {
        "id": "ov-premium",
        "uscc": NO_PREMIUM,
        "table": "social_insurance",
        "column": "ui_premium_paid",
        "year": 2024,
        "old": None,
        "new": "12345.67",
        "inserted_row": False,
    }
    assert (honest["id"], honest["old"], honest["new"], honest["inserted_row"]) == (
        "ov-honest",
        None,
        "false",
        True,
    )


def test_the_snapshot_files_are_never_rewritten(runs) -> None:
    _, _, before, after = runs
    assert before == after


def test_the_other_results_are_unchanged(runs) -> None:
    plain, over, _, _ = runs
    changed = {("c-wenbao", "refund", NO_PREMIUM), ("c-wenbao", "refund", NO_CREDIT)}
    assert _pairs(over, "candidates") - changed == _pairs(plain, "candidates")


def test_a_bad_override_is_refused_by_name(tmp_path: Path) -> None:
    bad = [dict(OVERRIDES[0], column="layoff_rate")]
    with pytest.raises(MatchError, match="layoff_rate"):
        run_match(CASE / "snapshot", CASE / "policies", tmp_path / "a", AS_OF, overrides=bad)
    wrong_type = [dict(OVERRIDES[0], value="很多")]
    with pytest.raises(MatchError, match="ov-premium"):
        run_match(CASE / "snapshot", CASE / "policies", tmp_path / "b", AS_OF, overrides=wrong_type)
    no_year = [dict(OVERRIDES[0], year=None)]
    with pytest.raises(MatchError, match="年度"):
        run_match(CASE / "snapshot", CASE / "policies", tmp_path / "c", AS_OF, overrides=no_year)


def test_an_unknown_enterprise_is_skipped_with_the_reason(tmp_path: Path) -> None:
    ghost = [dict(OVERRIDES[1], uscc="91320000000000000X", id="ov-ghost")]
    result = run_match(CASE / "snapshot", CASE / "policies", tmp_path / "g", AS_OF, overrides=ghost)
    assert result.manifest.overrides["count"] == 0
    assert result.manifest.overrides["skipped"][0]["id"] == "ov-ghost"


def test_a_value_the_registry_now_delivers_wins_over_an_old_override(tmp_path: Path) -> None:
    stale = [
        dict(OVERRIDES[0], uscc="9132080382J9AR2NCK", id="ov-stale")
    ]  # premium 88,123.21 in the snapshot
    result = run_match(CASE / "snapshot", CASE / "policies", tmp_path / "s", AS_OF, overrides=stale)
    (skipped,) = result.manifest.overrides["skipped"]
    assert skipped["id"] == "ov-stale" and "88123.21" in skipped["reason"]
    assert result.manifest.overrides["count"] == 0
