"""Importing a match run folder (Contract 4) as offers."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from payouts import audit
from payouts.errors import RunImportError
from payouts.imports import import_run
from payouts.models import Offer, Payee
from payouts.offers import drop


def test_import_creates_one_drafted_offer_per_candidate_and_holds_those_without_account(
    tx, small_run, t0
) -> None:
    with tx() as s:
        r = import_run(s, small_run, "rev", t0)
    assert (r.offers, r.held, r.skipped) == (7, 1, 0)
    assert r.amount == Decimal("59000.50")
    with tx() as s:
        offers = s.scalars(select(Offer)).all()
        held = [o for o in offers if o.state == "held"]
        assert [o.hold_reason for o in held] == ["无对公账户"]
        assert {o.state for o in offers} == {"drafted", "held"}
        # Public ids are random, not a sequence: no two share a prefix in a tiny sample.
        assert len({o.public_id[:6] for o in offers}) == len(offers)
        payee = s.get(Payee, held[0].payee_id)
        assert payee.account_no is None and payee.source == "snapshot"
        assert audit.verify(s).ok


def test_the_same_run_cannot_be_imported_twice(tx, small_run, t0) -> None:
    with tx() as s:
        import_run(s, small_run, "rev", t0)
    with pytest.raises(RunImportError, match="已经导入过"), tx() as s:
        import_run(s, small_run, "rev", t0)


def test_a_later_run_skips_pairs_that_already_have_a_live_offer(tx, ex, tmp_path: Path, t0) -> None:
    policies = [ex.policy("wengang")]
    payees = [ex.payee(1), ex.payee(2)]
    first = ex.write_run(tmp_path / "a", policies, [("wengang", "main", 1, "100.00")], payees)
    second = ex.write_run(
        tmp_path / "b", policies, [("wengang", "main", 1, "100.00"), ("wengang", "main", 2, "200.00")], payees
    )
    with tx() as s:
        import_run(s, first, "rev", t0)
    with tx() as s:
        r = import_run(s, second, "rev", t0)
    assert (r.offers, r.skipped) == (1, 1)


def test_a_dropped_offer_no_longer_blocks_its_pair(tx, ex, tmp_path: Path, t0) -> None:
    policies = [ex.policy("wengang")]
    first = ex.write_run(tmp_path / "a", policies, [("wengang", "main", 1, "100.00")], [ex.payee(1)])
    again = ex.write_run(tmp_path / "b", policies, [("wengang", "main", 1, "100.00")], [ex.payee(1)])
    with tx() as s:
        import_run(s, first, "rev", t0)
        drop(s, [s.scalar(select(Offer.public_id))], "数据有误，待重新比对", "rev", t0)
    with tx() as s:
        assert import_run(s, again, "rev", t0).offers == 1


def test_a_run_over_budget_is_refused(tx, ex, tmp_path: Path, t0) -> None:
    run = ex.write_run(
        tmp_path / "r",
        [ex.policy("wengang")],
        [("wengang", "main", 1, "100.00")],
        [ex.payee(1)],
        over_budget=("wengang",),
    )
    with pytest.raises(RunImportError, match="超出预算"), tx() as s:
        import_run(s, run, "rev", t0)


def test_a_bad_run_is_refused_with_every_problem_listed(tx, ex, tmp_path: Path, t0) -> None:
    run = ex.write_run(
        tmp_path / "r",
        [ex.policy("wengang")],
        [("wengang", "main", 1, "100.00"), ("wengang", "main", 1, "100.00"), ("wengang", "other", 9, "5.00")],
        [ex.payee(1)],
    )
    with pytest.raises(RunImportError) as e, tx() as s:
        import_run(s, run, "rev", t0)
    message = str(e.value)
    assert "wengang/other 不在 manifest.json 中" in message
    assert "1 家候选企业不在 payees 中" in message
    with tx() as s:
        assert s.scalar(select(Offer.id)) is None


def test_a_manifest_missing_keys_is_refused_naming_them_with_the_other_problems(
    tx, ex, tmp_path: Path, t0
) -> None:
    run = ex.write_run(
        tmp_path / "r", [ex.policy("wengang")], [("wengang", "main", 1, "100.00")], [ex.payee(1)]
    )
    (run / "payees.parquet").unlink()
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    del manifest["as_of"]
    del manifest["policies"][0]["confirmation"]
    (run / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(RunImportError) as e, tx() as s:
        import_run(s, run, "rev", t0)
    message = str(e.value)
    assert "manifest.json 缺少 as_of" in message
    assert "manifest.json 政策 wengang 缺少 confirmation" in message
    assert "缺少 payees.parquet" in message


def test_a_run_folder_of_a_later_format_is_refused(tx, ex, tmp_path: Path, t0) -> None:
    run = ex.write_run(
        tmp_path / "r", [ex.policy("wengang")], [("wengang", "main", 1, "100.00")], [ex.payee(1)]
    )
    manifest = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    (run / "manifest.json").write_text(json.dumps(manifest | {"format": 99}), encoding="utf-8")
    with pytest.raises(RunImportError, match="格式版本为 99"), tx() as s:
        import_run(s, run, "rev", t0)
    with tx() as s:
        assert s.scalar(select(Offer.id)) is None


def test_spark_part_files_are_read_as_one_table(tx, ex, tmp_path: Path, t0) -> None:
    candidates = [("wengang", "main", n, f"{n}00.00") for n in range(1, 8)]
    run = ex.write_run(
        tmp_path / "r", [ex.policy("wengang")], candidates, [ex.payee(n) for n in range(1, 8)], parts=3
    )
    with tx() as s:
        assert import_run(s, run, "rev", t0).offers == 7


def test_only_staff_allowed_to_import_may_import(tx, small_run, t0) -> None:
    with pytest.raises(Exception, match="无权"), tx() as s:
        import_run(s, small_run, "maker", t0)


def test_a_published_policy_version_cannot_change_between_runs(tx, ex, tmp_path: Path, t0) -> None:
    a = ex.write_run(
        tmp_path / "a",
        [ex.policy("wengang", budget="100.00")],
        [("wengang", "main", 1, "50.00")],
        [ex.payee(1)],
    )
    b = ex.write_run(
        tmp_path / "b",
        [ex.policy("wengang", budget="900.00")],
        [("wengang", "main", 2, "50.00")],
        [ex.payee(2)],
    )
    with tx() as s:
        import_run(s, a, "rev", t0)
    with pytest.raises(RunImportError, match="不能改动：budget"), tx() as s:
        import_run(s, b, "rev", t0)


def test_offers_carry_the_enterprises_industry_and_size_and_bad_ones_are_refused(tx, small_run, t0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = small_run / "payees.parquet"
    payees = pq.read_table(path)
    n = payees.num_rows
    good = payees.append_column("industry_section", pa.array(["C"] * n)).append_column(
        "size_class", pa.array(["micro"] * (n - 1) + [None])
    )
    pq.write_table(good.append_column("extra", pa.array(["ignored"] * n)), path)
    with tx() as s:
        import_run(s, small_run, "rev", t0)
        keys = set(s.execute(select(Offer.industry_section, Offer.size_class)).all())
    assert keys <= {("C", "micro"), ("C", None)} and ("C", "micro") in keys

    bad = payees.append_column("industry_section", pa.array(["CC"] * n)).append_column(
        "size_class", pa.array(["huge"] * n)
    )
    pq.write_table(bad, path)
    with tx() as s, pytest.raises(RunImportError) as refused:
        import_run(s, small_run, "rev", t0)
    assert "payees 的 industry_section 应为 一个大写字母" in str(refused.value)
    assert "payees 的 size_class 应为 large、medium、small、micro、not_applicable 或空值，却有 'huge'" in str(refused.value)
