"""The compact results (Contract 4, format 3) answer exactly what the materialised rows said.

On random policies over random profiles (the differential test's strategies), the plan runs, the old
materialised rows are computed from its `results` and `candidates` views (the oracle), the compact form is
written, and every on-demand answer must equal the oracle: the export (as sets, values and fields
included), each enterprise's standing, an item's page in a region, counts by condition.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest.mock import patch

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher.duckdb_engine import match_profiles
from matcher.plan import _value_text, value_text
from matcher.results import RunResults, Slice, write_compact
from rules.catalog import CATALOG
from rules.errors import MatchError
from rules.validate import parse_policy_text
from tests.matcher.test_differential import _load_profile, policy_text, profile_row


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def _oracle(con: duckdb.DuckDBPyConnection) -> tuple[set, set, set]:  # type: ignore[type-arg]
    near = set(
        con.execute(
            "SELECT policy_id, item_id, uscc, condition_id, value FROM results WHERE status = 'near_miss'"
        ).fetchall()
    )
    missing = {
        (p, i, u, tuple(f.split(";")))
        for p, i, u, f in con.execute(
            "SELECT policy_id, item_id, uscc, fields FROM results WHERE status = 'missing_data'"
        ).fetchall()
    }
    candidates = set(
        con.execute(
            "SELECT policy_id, item_id, uscc, amount, amount_before_allocation FROM candidates"
        ).fetchall()
    )
    return near, missing, candidates


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
def test_on_demand_answers_equal_the_materialised_rows(
    con: duckdb.DuckDBPyConnection, data: st.DataObject
) -> None:
    texts = [
        data.draw(policy_text(f"p{n}", "g" if n < 2 else None)) for n in range(data.draw(st.integers(1, 3)))
    ]
    policies = [parse_policy_text(t, f"p{n}.yaml") for n, t in enumerate(texts)]
    rows = [data.draw(profile_row(n)) for n in range(data.draw(st.integers(1, 25)))]
    paid = data.draw(
        st.lists(st.sampled_from([(r["uscc"], p.id) for r in rows for p in policies]), max_size=3)
    )
    con.execute(
        "CREATE OR REPLACE TABLE paid_t (uscc VARCHAR, policy_id VARCHAR, item_id VARCHAR, period VARCHAR, "
        "amount DECIMAL(18,2))"
    )
    for uscc, pid in paid:
        con.execute("INSERT INTO paid_t VALUES (?, ?, 'i0', '2025', 1)", [uscc, pid])
    with patch("matcher.plan.BITS", data.draw(st.sampled_from([5, 8, 62]))):
        match_profiles(con, policies, {2024: _load_profile(con, rows)}, payments="paid_t")
    near, missing, candidates = _oracle(con)
    context = "\n---\n".join(texts)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        write_compact(con, out)
        results = RunResults(out)
        try:
            results.export("near_misses", out / "nm.parquet")
            results.export("missing_data", out / "md.parquet")
            got_near = set(duckdb.sql(f"SELECT * FROM read_parquet('{out / 'nm.parquet'}')").fetchall())
            got_missing = {
                (p, i, u, tuple(f))
                for p, i, u, f in duckdb.sql(f"SELECT * FROM read_parquet('{out / 'md.parquet'}')").fetchall()
            }
            assert got_near == near, context
            assert got_missing == missing, context

            # Each enterprise's standing: its candidates, near misses and missing data, nothing else.
            for row in rows:
                u = row["uscc"]
                want = sorted(
                    [
                        (p, i, "candidate", None, None, (), format(a, "f"), format(b, "f"))
                        for p, i, uu, a, b in candidates
                        if uu == u
                    ]
                    + [(p, i, "near_miss", c, v, (), None, None) for p, i, uu, c, v in near if uu == u]
                    + [
                        (p, i, "missing_data", None, None, f, None, None)
                        for p, i, uu, f in missing
                        if uu == u
                    ]
                )
                got = sorted(
                    (
                        r.policy_id,
                        r.item_id,
                        r.status,
                        r.condition_id,
                        r.value,
                        r.fields,
                        r.amount,
                        r.amount_before_allocation,
                    )
                    for r in results.standing(u)
                )
                assert got == want, context

            # An item's near misses in one region, paged; counts by condition.
            region = {r["uscc"]: r["region_code"] for r in rows}
            for p, i, *_ in sorted(near)[:3]:
                prefix = data.draw(st.sampled_from(["", "3208", "320803", "33"]))
                want_page = sorted(
                    (pp, ii, u, c, v)
                    for pp, ii, u, c, v in near
                    if (pp, ii) == (p, i)
                    and (region[u] or "").startswith(prefix)
                    and (prefix == "" or region[u])
                )
                s = Slice(policy_id=p, item_id=i, region=prefix or None)
                assert results.count("near_misses", s) == len(want_page), context
                assert results.page("near_misses", s, limit=2) == want_page[:2], context
                assert results.page("near_misses", s, offset=2, limit=5) == want_page[2:7], context
                # Narrowed by the failing condition too.
                c = want_page[0][3] if want_page else None
                by_condition = [r for r in want_page if r[3] == c]
                assert results.page("near_misses", Slice(p, i, region=prefix or None, condition_id=c)) == (
                    by_condition if c else want_page
                ), context
            # An item's missing data, paged: the fields as a list.
            for p, i, *_ in sorted(missing)[:2]:
                want_missing = sorted((pp, ii, u, list(f)) for pp, ii, u, f in missing if (pp, ii) == (p, i))
                s = Slice(policy_id=p, item_id=i)
                assert results.page("missing_data", s, limit=3) == want_missing[:3], context
                assert results.page("missing_data", s, offset=1, limit=50) == want_missing[1:51], context
            for c in {c for *_, c, _ in near}:
                assert results.count("near_misses", Slice(condition_id=c)) == sum(
                    1 for r in near if r[3] == c
                )
        finally:
            results.close()


# --- the command, on the conformance case -------------------------------------------------------------


CASE = Path(__file__).resolve().parent.parent / "conformance"


# How a profile stores each catalog type (matcher.profile; a ratio as matcher.ratios keeps it).
_STORED = {
    "string": ("VARCHAR", st.text(max_size=6)),
    "integer": ("BIGINT", st.integers(-(2**63), 2**63 - 1)),
    "money": ("DECIMAL(18, 2)", st.decimals(-(10**16) + 1, 10**16 - 1, places=2)),
    "ratio": ("DECIMAL(38, 12)", st.decimals(-(10**6), 10**6, places=12)),
    "date": ("DATE", st.dates()),
    "boolean": ("BOOLEAN", st.booleans()),
}


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_standings_value_text_is_the_one_the_lists_write(data: st.DataObject) -> None:
    # A standing formats the values a near miss read in Python; the lists (and their exports) cast them in
    # SQL. Every catalog type, NULL, and values on the edges of their stored types give the same text.
    fields = data.draw(st.lists(st.sampled_from(sorted(CATALOG)), min_size=1, max_size=4, unique=True))
    row = {f: data.draw(st.none() | _STORED[CATALOG[f].type][1]) for f in fields}
    columns = ", ".join(f"CAST(? AS {_STORED[CATALOG[f].type][0]}) AS {f}" for f in fields)
    con = duckdb.connect()
    stored = con.sql(f"SELECT {columns}", params=[row[f] for f in fields]).to_arrow_table().to_pylist()[0]
    ((want,),) = con.execute(
        f"SELECT {_value_text(tuple(fields), 'p').sql('duckdb')} FROM (SELECT {columns}) p",
        [row[f] for f in fields],
    ).fetchall()
    assert value_text(fields, stored) == want


@pytest.fixture(scope="module")
def case_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import datetime as dt

    from matcher.run import run_match

    out = tmp_path_factory.mktemp("case")
    run_match(CASE / "snapshot", CASE / "policies", out, dt.date(2025, 9, 30))
    return out


def _expected(name: str) -> list[dict[str, str]]:
    import csv

    with (CASE / "expected" / f"{name}.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_an_items_near_misses_in_one_county_are_exported_exactly(case_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    out = tmp_path / "xinban.parquet"
    args = ["results", "near-misses", "--run", str(case_run), "--policy", "c-xinban", "--item", "opening"]
    done = CliRunner().invoke(app, [*args, "--region", "320812", "--out", str(out)])
    assert done.exit_code == 0, done.output
    region = dict(
        duckdb.sql(
            f"SELECT uscc, region_code FROM read_parquet('{case_run / 'contacts.parquet'}')"
        ).fetchall()
    )
    want = {
        (r["uscc"], r["condition_id"])
        for r in _expected("near_misses")
        if (r["policy_id"], r["item_id"]) == ("c-xinban", "opening")
        and str(region[r["uscc"]]).startswith("320812")
    }
    got = set(duckdb.sql(f"SELECT uscc, condition_id FROM read_parquet('{out}')").fetchall())
    assert got == want and want


def test_a_whole_list_is_exported_partitioned_by_item(case_run: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    out = tmp_path / "by-item"
    done = CliRunner().invoke(
        app, ["results", "missing-data", "--run", str(case_run), "--out", str(out), "--by-item"]
    )
    assert done.exit_code == 0, done.output
    got = duckdb.sql(
        f"SELECT policy_id, item_id, uscc FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()
    assert set(got) == {(r["policy_id"], r["item_id"], r["uscc"]) for r in _expected("missing_data")}
    assert (out / "policy_id=c-wenbao" / "item_id=refund").is_dir()


def test_an_old_run_folder_is_read_as_it_is_and_refuses_what_it_cannot_answer(
    case_run: Path, tmp_path: Path
) -> None:
    """A folder of format 2 keeps its two files: the same functions read them; by size class they cannot."""
    import shutil

    from matcher.results import export_lists

    old = tmp_path / "old"
    shutil.copytree(case_run, old)
    export_lists(old)
    shutil.rmtree(old / "results")
    results = RunResults(old)
    try:
        assert not results.compact
        assert results.count("near_misses") == len(_expected("near_misses"))
        with pytest.raises(MatchError, match="旧格式"):
            results.count("near_misses", Slice(size="small"))
    finally:
        results.close()


def test_export_leaves_the_lists_spark_wrote_row_by_row_alone(case_run: Path, tmp_path: Path) -> None:
    import shutil

    from matcher.results import export_lists

    run = tmp_path / "run"
    shutil.copytree(case_run, run)
    (run / "near_misses.parquet").mkdir()  # as `zhida match --engine spark` without --compact writes it
    with pytest.raises(MatchError, match="已存在"):
        export_lists(run)
    assert export_lists(run, tmp_path / "elsewhere")["near_misses"] == len(_expected("near_misses"))


def test_results_written_out_of_order_in_part_files_answer_as_the_sorted_ones(
    case_run: Path, tmp_path: Path
) -> None:
    """Spark writes the statuses, the allocations and the paid pairs as folders of part files, not
    necessarily in order: read so, every standing, page and count is the same as off the sorted files."""
    import random
    import shutil

    import pyarrow.parquet as pq

    run = tmp_path / "run"
    shutil.copytree(case_run, run)
    rng = random.Random(0)
    for name in ("statuses", "allocated", "paid"):
        path = run / "results" / f"{name}.parquet"
        table = pq.read_table(path)
        assert table.num_rows > 1, name
        order = list(range(table.num_rows))
        rng.shuffle(order)
        table = table.take(order)
        path.unlink()
        path.mkdir()
        third = table.num_rows // 3 + 1
        for n in range(3):
            pq.write_table(table.slice(n * third, third), path / f"part-{n:05d}.parquet")
    sorted_, shuffled = RunResults(case_run), RunResults(run)
    try:
        enterprises = CASE / "snapshot" / "enterprises.csv"
        usccs = [
            u
            for (u,) in duckdb.sql(
                f"SELECT uscc FROM read_csv('{enterprises}', all_varchar = true)"
            ).fetchall()
        ]
        assert any(r.status == "candidate" for u in usccs for r in sorted_.standing(u))
        for uscc in usccs:
            assert shuffled.standing(uscc) == sorted_.standing(uscc), uscc
        for name, s in (
            ("near_misses", Slice("c-xinban", "opening", region="320812")),
            ("missing_data", Slice("c-wenbao", "refund")),
            ("near_misses", Slice(region="3208")),
        ):
            assert shuffled.page(name, s, limit=500) == sorted_.page(name, s, limit=500)  # type: ignore[arg-type]
            assert shuffled.count(name, s) == sorted_.count(name, s)  # type: ignore[arg-type]
        assert shuffled.item_counts() == sorted_.item_counts()
    finally:
        sorted_.close()
        shuffled.close()
