"""The match plan on Apache Spark (local mode, real JVM) gives what DuckDB and the reference give.

One Spark session for the whole run (tests/matcher/conftest.py). What is proven here:
- the conformance case, through `run_match_spark`, gives the expected files and the same rows as DuckDB;
- the generated demo snapshot is accepted row for row as the DuckDB loader accepts it, and every library
  policy (all eight, whatever their dates) gives the same results and candidates, field for field;
- the differential property test of the matcher (random policies over random profiles) on Spark against
  the rule-engine reference;
- each construct whose meaning differs between the engines' SQL dialects is either rendered in a form equal
  on both (checked on both, against the reference) or refused when the policy is validated;
- ANSI mode: an overflow stops the run with the policy and item named, never a silent NULL.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.generate import generate_snapshot
from matcher.duckdb_engine import connect, execute, match_profiles
from matcher.plan import candidates_query
from matcher.results import RunResults, Slice, export_lists
from matcher.run import run_match
from matcher.snapshot import load_snapshot
from matcher.spark_engine import (
    execute_spark,
    load_snapshot_spark,
    match_profiles_spark,
    parse_conf,
    spark_session,
    spark_sql,
)
from rules.catalog import FIELDS
from rules.errors import MatchError
from rules.expressions import ExpressionProblem, parse
from rules.reference import Payment, allocate, evaluate
from rules.ruleset import library_dir, load_ruleset
from rules.validate import parse_policy_text
from tests.matcher.ratio_cases import stored, with_ratios

CASE = Path(__file__).resolve().parent.parent / "conformance"
AS_OF = dt.date(2025, 9, 30)
SPARK_TYPES = {
    "string": "STRING",
    "integer": "BIGINT",
    "money": "DECIMAL(18,2)",
    "ratio": "DECIMAL(38,12)",
    "date": "DATE",
    "boolean": "BOOLEAN",
}
PROFILE_SCHEMA = ", ".join(f"{f.name} {SPARK_TYPES[f.type]}" for f in FIELDS)
PAYMENTS_SCHEMA = "uscc STRING, policy_id STRING, item_id STRING, period STRING, amount DECIMAL(18,2)"


def _differential() -> ModuleType:
    """The strategies of the DuckDB differential test, so both engines face the same random policies."""
    spec = importlib.util.spec_from_file_location(
        "differential_strategies", Path(__file__).with_name("test_differential.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


D = _differential()


def _dataset(path: Path) -> pa.Table:
    """A Parquet output, single file (DuckDB) or folder of part files (Spark), as one table."""
    return ds.dataset(path, format="parquet").to_table()


def _sorted_rows(table: pa.Table, keys: list[str]) -> list[dict[str, Any]]:
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


def _types(table: pa.Table) -> dict[str, str]:
    """Column types; nullability aside (Spark's split declares its list elements never NULL)."""
    return {f.name: str(f.type).replace(" not null", "") for f in table.schema}


# --- the conformance case, end to end ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The conformance case run by both engines: (duckdb run folder, spark run folder).

    The Spark run goes through the real command (`zhida match --engine spark --compact`), in this process
    so that it reuses the test session; its near misses and missing data are then exported from its compact
    results by `zhida results export` (the Spark Connect test covers the lists Spark writes itself).
    """
    from typer.testing import CliRunner

    from api.cli import app

    duck = tmp_path_factory.mktemp("duck")
    run_match(CASE / "snapshot", CASE / "policies", duck, AS_OF)
    export_lists(duck)
    sparked = tmp_path_factory.mktemp("spark")
    args = ["match", "--engine", "spark", "--compact", "--conf", "spark.sql.shuffle.partitions=2"]
    args += ["--snapshot", str(CASE / "snapshot"), "--policies", str(CASE / "policies")]
    args += ["--as-of", AS_OF.isoformat(), "--out", str(sparked)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "匹配结果" in result.output and "规则指纹" in result.output
    assert not (sparked / "near_misses.parquet").exists()  # --compact: results/ only
    result = CliRunner().invoke(app, ["results", "export", "--run", str(sparked)])
    assert result.exit_code == 0, result.output
    return duck, sparked


def test_conformance_candidates_on_spark_are_the_expected_ones(runs: tuple[Path, Path]) -> None:
    import csv

    with (CASE / "expected" / "candidates.csv").open(encoding="utf-8") as f:
        want = {
            (r["policy_id"], r["item_id"], r["uscc"]): (
                int(r["policy_version"]),
                Decimal(r["amount"]),
                Decimal(r["amount_before_allocation"]),
            )
            for r in csv.DictReader(f)
        }
    got = {
        (r["policy_id"], r["item_id"], r["uscc"]): (
            r["policy_version"],
            r["amount"],
            r["amount_before_allocation"],
        )
        for r in _dataset(runs[1] / "candidates.parquet").to_pylist()
    }
    assert len(want) == 599
    assert got == want


@pytest.mark.parametrize(
    ("output", "keys"),
    [
        ("candidates", ["policy_id", "item_id", "uscc"]),
        ("near_misses", ["policy_id", "item_id", "uscc"]),
        ("missing_data", ["policy_id", "item_id", "uscc"]),
        ("payees", ["uscc"]),
        ("contacts", ["uscc"]),
    ],
)
def test_conformance_outputs_are_identical_on_spark_and_duckdb(
    runs: tuple[Path, Path], output: str, keys: list[str]
) -> None:
    duck, sparked = (_dataset(r / f"{output}.parquet") for r in runs)
    assert _types(sparked) == _types(duck)
    assert _sorted_rows(sparked, keys) == _sorted_rows(duck, keys)


def test_spark_manifest_has_the_duckdb_keys_counts_and_totals(runs: tuple[Path, Path]) -> None:
    duck, sparked = (json.loads((r / "manifest.json").read_text(encoding="utf-8")) for r in runs)
    assert set(duck) <= set(sparked)
    assert sparked["engine"] == "spark"
    for key in ("as_of", "policies", "inactive_policies", "over_budget", "counts", "items", "totals"):
        assert sparked[key] == duck[key], key
    assert sparked["rules"]["fingerprint"] == duck["rules"]["fingerprint"]


def test_a_spark_runs_compact_results_answer_as_duckdbs(runs: tuple[Path, Path], tmp_path: Path) -> None:
    """Every enterprise's standing, a county's slice of an item, and a list exported with --out."""
    from typer.testing import CliRunner

    from api.cli import app

    duck, sparked = (RunResults(r) for r in runs)
    try:
        assert sparked.compact
        enterprises = CASE / "snapshot" / "enterprises.csv"
        usccs = [
            u
            for (u,) in duckdb.sql(
                f"SELECT uscc FROM read_csv('{enterprises}', all_varchar = true)"
            ).fetchall()
        ]
        assert len(usccs) > 100
        for uscc in usccs:
            assert sparked.standing(uscc) == duck.standing(uscc), uscc
        for name, s in (
            ("near_misses", Slice("c-xinban", "opening", region="320812")),
            ("near_misses", Slice(section="I", size="medium")),
            ("missing_data", Slice(section="C", size="small")),
        ):
            assert sparked.count(name, s) == duck.count(name, s) > 0
            assert sparked.page(name, s, limit=1000) == duck.page(name, s, limit=1000)
    finally:
        duck.close()
        sparked.close()
    got = []
    for n, run in enumerate(runs):
        out = tmp_path / f"{n}.parquet"
        args = ["results", "near-misses", "--run", str(run), "--policy", "c-xinban", "--item", "opening"]
        done = CliRunner().invoke(app, [*args, "--out", str(out)])
        assert done.exit_code == 0, done.output
        got.append(_sorted_rows(pq.read_table(out), ["uscc"]))
    assert got[0] == got[1] and got[0]


def test_a_spark_run_folder_is_importable_as_offers(runs: tuple[Path, Path]) -> None:
    from payouts.imports import read_run

    run = read_run(runs[1])
    assert run.candidates.count_rows() == 599
    assert run.manifest.engine == "spark"


# --- the demo snapshot and every library policy ---------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_snapshot(out, 20_000, 7, chunk_size=25_000)
    return out


LIBRARY_COLUMNS = "policy_id, item_id, uscc, status, condition_id, value, fields, amount, rank_value"
ORDER = "ORDER BY policy_id, item_id, uscc"


@dataclass
class Matched:
    """One engine's snapshot report, and its results and candidates rows for every library policy."""

    report: Any
    results: list[tuple[Any, ...]]
    candidates: list[tuple[Any, ...]]


@pytest.fixture(scope="module")
def library() -> list[Any]:
    # All of them, active or not (several assessment years), as a run matches them: apply-free items only.
    policies = [m for p in load_ruleset(library_dir()) if (m := p.matchable()) is not None]
    assert len(policies) >= 30 and len({p.assessment_year for p in policies}) >= 3
    return policies


@pytest.fixture(scope="module")
def demo_duck(demo: Path, library: list[Any]) -> Matched:
    con = connect()
    report = load_snapshot(demo, con)
    execute(con, library, AS_OF)
    results = con.execute(f"SELECT {LIBRARY_COLUMNS} FROM results {ORDER}").fetchall()
    candidates = con.execute(
        f"SELECT policy_id, policy_version, item_id, uscc, amount, amount_before_allocation FROM candidates {ORDER}"
    ).fetchall()
    con.close()
    return Matched(report, results, candidates)


@pytest.fixture(scope="module")
def demo_spark(spark: Any, demo: Path, library: list[Any]) -> Matched:
    report = load_snapshot_spark(spark, str(demo))
    execute_spark(spark, library, AS_OF)
    results = [tuple(r) for r in spark.sql(f"SELECT {LIBRARY_COLUMNS} FROM results {ORDER}").collect()]
    candidates = [
        tuple(r)
        for r in spark.sql(
            f"SELECT policy_id, policy_version, item_id, uscc, amount, amount_before_allocation FROM candidates {ORDER}"
        ).collect()
    ]
    return Matched(report, results, candidates)


def test_spark_accepts_and_rejects_the_demo_snapshot_as_duckdb_does(
    demo_duck: Matched, demo_spark: Matched
) -> None:
    want, got = demo_duck.report, demo_spark.report
    assert got.taken_at == want.taken_at
    for name, table in want.tables.items():
        mine = got.tables[name]
        assert (mine.rows_read, mine.rows_accepted, mine.rejected, mine.nulls) == (
            table.rows_read,
            table.rows_accepted,
            table.rejected,
            table.nulls,
        ), name
    # The deliberate faults of the generator are there to be rejected.
    assert {"bad_uscc", "duplicate_key", "unknown_region", "unknown_industry", "future_date"} <= set(
        got.tables["enterprises"].rejected
    )


def test_every_library_policy_gives_the_same_results_on_both_engines(
    demo_duck: Matched, demo_spark: Matched
) -> None:
    assert len(demo_duck.results) > 10_000
    assert demo_spark.results == demo_duck.results


def test_every_library_policy_gives_the_same_candidates_on_both_engines(
    demo_duck: Matched, demo_spark: Matched
) -> None:
    assert {p for p, *_ in demo_duck.candidates} >= {
        "yanfa-shandong-2025",
        "shenggui-heilongjiang",
    }  # pro_rata, rank
    assert demo_spark.candidates == demo_duck.candidates


# --- the differential property test on Spark ----------------------------------------------------------------------


def _profile_view(spark: Any, rows: list[dict[str, object]], name: str) -> str:
    spark.createDataFrame(
        [tuple(stored(r[f.name]) if f.type == "ratio" else r[f.name] for f in FIELDS) for r in rows],  # type: ignore[arg-type]
        PROFILE_SCHEMA,
    ).createOrReplaceTempView(name)
    return name


def _results(spark: Any) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in spark.sql(
            "SELECT policy_id, item_id, uscc, status, condition_id, fields, amount FROM results"
        ).collect()
    ]


def _check_against_reference(
    spark: Any,
    policies: list[Any],
    rows: list[dict[str, object]],
    paid: list[tuple[str, str, str, str]],
    context: str,
) -> None:
    spark.createDataFrame([(*p, Decimal(1)) for p in paid], PAYMENTS_SCHEMA).createOrReplaceTempView("paid_t")
    match_profiles_spark(spark, policies, {2024: _profile_view(spark, rows, "profile_t")}, payments="paid_t")
    ref = evaluate(policies, rows)
    got = _results(spark)
    assert {(p, i, u, c) for p, i, u, s, c, _, _ in got if s == "near_miss"} == {
        (r.policy_id, r.item_id, r.uscc, r.failed[0]) for r in ref if r.status == "near_miss"
    }, context
    assert {(p, i, u, tuple(f.split(";"))) for p, i, u, s, _, f, _ in got if s == "missing_data"} == {
        (r.policy_id, r.item_id, r.uscc, r.missing) for r in ref if r.status == "missing_data"
    }, context
    assert {(p, i, u): a for p, i, u, s, _, _, a in got if s == "eligible"} == {
        (r.policy_id, r.item_id, r.uscc): r.amount for r in ref if r.status == "eligible"
    }, context
    want = {
        (c.policy_id, c.item_id, c.uscc): (c.amount, c.amount_before_allocation)
        for c in allocate(policies, ref, [Payment(*p) for p in paid], D._rank_values(policies, rows))
    }
    cands = spark.sql(
        "SELECT policy_id, item_id, uscc, amount, amount_before_allocation FROM candidates"
    ).collect()
    assert {(p, i, u): (a, b) for p, i, u, a, b in cands} == want, context


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(data=st.data())
def test_spark_plan_equals_reference_on_random_policies(spark: Any, data: st.DataObject) -> None:
    group = data.draw(st.sampled_from([None, "g"]))
    texts = [
        data.draw(D.policy_text(f"p{n}", group if n < 2 else None))
        for n in range(data.draw(st.integers(1, 3)))
    ]
    policies = [parse_policy_text(t, f"p{n}.yaml") for n, t in enumerate(texts)]
    rows = [data.draw(D.profile_row(n)) for n in range(data.draw(st.integers(1, 25)))]
    paid = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from([r["uscc"] for r in rows]),
                st.sampled_from([p.id for p in policies]),
                st.sampled_from(["i0", "i1"]),
                st.sampled_from(["2025", "2024"]),
            ),
            max_size=4,
        )
    )
    _check_against_reference(spark, policies, rows, paid, "\n---\n".join(texts))


# --- constructs where the dialects differ -------------------------------------------------------------------------

# Each rule is one item's only condition; each is rendered differently by DuckDB and Spark SQL (regex
# engine, string functions, NULL ordering, integer division, date arithmetic, decimal literal types).
DIALECT_RULES = {
    "regex_anchored_alternation": 'region_code =~ "3208(0[34]|12)"',  # re.match: anchored at the start only
    "regex_escaped_dot_and_chinese": 'name =~~ "科技\\\\.?有限"',
    "regex_negated_search": 'name !~~ "^淮安"',
    "regex_bounded_repeat": 'industry_code =~ "[A-Z][0-9]{3,4}"',
    "slice_of_chinese_text": 'name[:2] == "淮安"',
    "open_slice": 'industry_code[1:] == "3911"',
    "length_in_characters": "name.length >= 8",
    "substring_test": '"科技" in name',
    "text_ordering_by_code_point": 'status < "在"',
    "date_literal": 'reg_date >= d"2020-01-01"',
    "date_parts": "reg_date.month == 2 and reg_date.day == 29",
    "date_minus_duration": 'reg_date - t"P30D" < d"2020-01-01"',
    "integer_arithmetic": "employees * 2 + 1 >= 21",
    "max_of_integer_and_literal": "$max([employees, 10]) >= 20",
    "abs_of_decimal": "$abs(revenue - 1000) <= 500",
    "division_by_power_of_ten": "revenue / 10000 >= 2000",
    "ratio_against_decimal_literal": "layoff_rate <= 0.055",  # cross-multiplied on both
    "ratio_as_text": "layoff_rate >= 0.001",  # near-miss values: 0.0005, 0.333333333333, 0
    "ratio_of_money_as_text": "rd_ratio > 0.001 and rd_ratio < 1",  # 20000.00002, 0.000000026973
    "ternary": "(employees >= 10 ? revenue : 0) >= 1000",
    "negative_numbers": "-employees >= -20",
    "null_comparison": "size_class == null",
}
DIALECT_AMOUNTS = {
    "half_fen_rounds_up": "ui_premium_paid * 0.5",
    "many_decimals": "revenue * 0.000001 + 0.005",
    "min_of_decimal_and_integer": "$min([rd_expense * 0.1, 1000000])",
}


def _policy(pid: str, items: dict[str, tuple[str, str]], **extra: Any) -> Any:
    doc = {
        "id": pid,
        "version": 1,
        "title": "方言用例",
        "department": "测试局",
        "source": {"document": "测试"},
        "valid_from": "2025-01-01",
        "valid_to": "2025-12-31",
        "assessment_year": 2024,
        "period": "2025",
        **extra,
        "items": [
            {
                "id": item,
                "title": item,
                "amount": amount,
                "conditions": [{"id": f"{item}_c", "text": item, "rule": rule}],
            }
            for item, (rule, amount) in items.items()
        ],
    }
    return parse_policy_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), f"{pid}.yaml")


def _dialect_rows() -> list[dict[str, object]]:
    names = [
        "淮安科技.有限公司",
        "淮安市机械厂",
        "江苏科技有限公司",
        "科技",
        "",
        "淮",
        None,
        "南京淮安科技有限责任公司",
    ]
    regions = ["320803", "320804", "320812", "3208121", "330100", None, "320830", "320803"]
    industries = ["C3911", "C391", "I6513", "F52", None, "C39111", "M7320", "J6620"]
    statuses = ["存续", "在业", "吊销", "注销", None, "迁出", "存续", "在业"]
    dates = [
        dt.date(2019, 12, 31),
        dt.date(2020, 1, 1),
        dt.date(2020, 1, 30),
        dt.date(2020, 1, 31),
        dt.date(2024, 2, 29),
        None,
        dt.date(2021, 6, 15),
        dt.date(2001, 2, 28),
    ]
    rows = []
    for n in range(8):
        row: dict[str, object] = {f.name: None for f in FIELDS}
        row |= {
            "uscc": f"U{n:04d}",
            "name": names[n],
            "region_code": regions[n],
            "industry_code": industries[n],
            "status": statuses[n],
            "reg_date": dates[n],
            "employees": [0, 9, 10, 20, 300, None, 1000, 5][n],
            "revenue": [
                Decimal(x) if x else None
                for x in (
                    "0",
                    "500.00",
                    "1499.99",
                    "1500.00",
                    "20000000.00",
                    None,
                    "19999999.99",
                    "123456789.01",
                )
            ][n],
            "rd_expense": [
                Decimal(x) if x else None
                for x in ("0.05", "10000000.01", None, "99.95", "0.00", "1.00", "10000005.00", "3.33")
            ][n],
            "ui_premium_paid": [
                Decimal(x) if x else None
                for x in ("0.01", "0.03", "12345.67", None, "0.05", "1.11", "99999.99", "0.00")
            ][n],
            "insured_start": [0, 1000, 1000, 2000, None, 5, 10, 3][n],
            "insured_end": [0, 945, 944, 1999, None, 0, 8, 2][n],
            "size_class": ["small", None, "micro", "large", "medium", None, "small", "micro"][n],
        }
        rows.append(with_ratios(row))
    return rows


def test_constructs_that_differ_between_dialects_agree_on_spark_duckdb_and_reference(spark: Any) -> None:
    items = {name: (rule, "1000") for name, rule in DIALECT_RULES.items()}
    items |= {name: ("employees >= 0", amount) for name, amount in DIALECT_AMOUNTS.items()}
    policies = [
        _policy("d-cases", items),
        # NULL ordering: rank_by NULL sorts last on both (DuckDB NULLS LAST, Spark DESC NULLS LAST), ties by uscc.
        _policy(
            "d-rank",
            {"r": ("employees >= 0", "5000")},
            budget="20000.00",
            allocation="rank",
            rank_by="new_graduate_hires",
        ),
        # Integer division of fen products beyond 64 bits: INT128 on DuckDB, DECIMAL(38,0) on Spark.
        _policy(
            "d-prorata",
            {"p": ("revenue >= 0", "revenue * 1000")},
            budget="99999999999.99",
            allocation="pro_rata",
        ),
    ]
    rows = _dialect_rows()
    for n, row in enumerate(rows):
        row["new_graduate_hires"] = [3, None, 3, 1, None, 2, 7, 0][n]
    _check_against_reference(spark, policies, rows, [], "dialect cases")
    con = duckdb.connect()
    D._load_profile(con, rows)
    con.execute(
        "CREATE TABLE paid_t (uscc VARCHAR, policy_id VARCHAR, item_id VARCHAR, period VARCHAR, amount DECIMAL(18,2))"
    )
    match_profiles(con, policies, {2024: "profile_t"}, payments="paid_t")
    columns = "policy_id, item_id, uscc, status, condition_id, value, fields, amount, rank_value"
    want = con.execute(f"SELECT {columns} FROM results ORDER BY ALL").fetchall()
    got = [
        tuple(r)
        for r in spark.sql(f"SELECT {columns} FROM results ORDER BY policy_id, item_id, uscc").collect()
    ]
    assert got == want
    want_c = con.execute(
        "SELECT policy_id, policy_version, item_id, uscc, amount, amount_before_allocation FROM candidates ORDER BY ALL"
    ).fetchall()
    got_c = [
        tuple(r)
        for r in spark.sql(
            "SELECT policy_id, policy_version, item_id, uscc, amount, amount_before_allocation FROM candidates ORDER BY policy_id, item_id, uscc"
        ).collect()
    ]
    assert got_c == want_c
    # Every case was decided for some enterprise, and the pro-rata products did pass 2^63 fen.
    assert {i for _, i, *_ in got} >= set(items)
    assert max(r[5] for r in got_c if r[0] == "d-prorata") * 100 * Decimal("99999999999.99") * 100 > 2**63


def test_pro_rata_renders_exact_integers_on_spark() -> None:
    sql = spark_sql(candidates_query())
    assert "INT128" not in sql and "DECIMAL(38, 0)" in sql and " DIV " in sql


@pytest.mark.parametrize(
    ("rule", "construct"),
    [
        ('name =~ "\\\\d+"', "\\d (Unicode-aware in some engines only)"),
        ('name =~ "(?i)abc"', "inline flags (?i)"),
        ('name =~ "[[:alpha:]]"', "POSIX classes"),
        ("revenue / 3 > 1", "division by 3 (no finite decimal)"),
        ("revenue / employees > 1", "division by a field"),
        ("employees // 2 > 1", "integer division //"),
        ("employees % 2 == 0", "modulo %"),
        ('d"2025-01-01" - reg_date > t"P1D"', "date minus date"),
    ],
)
def test_constructs_that_cannot_be_equal_on_both_engines_are_refused_at_validation(
    rule: str, construct: str
) -> None:
    with pytest.raises(ExpressionProblem):
        parse(rule)


# --- ANSI mode and the session ---------------------------------------------------------------------------------------


def test_an_overflowing_amount_stops_the_run_naming_policy_and_item(spark: Any) -> None:
    policies = [
        _policy(
            "d-overflow",
            {"fine": ("employees >= 0", "1000"), "huge": ("employees >= 0", "revenue * 100000000")},
        )
    ]
    rows = _dialect_rows()
    spark.createDataFrame([], PAYMENTS_SCHEMA).createOrReplaceTempView("paid_t")
    with pytest.raises(MatchError) as err:
        match_profiles_spark(
            spark, policies, {2024: _profile_view(spark, rows, "profile_t")}, payments="paid_t"
        )
    assert "d-overflow" in str(err.value) and "huge" in str(err.value)


def test_ansi_mode_cannot_be_switched_off() -> None:
    with pytest.raises(MatchError, match=r"spark\.sql\.ansi\.enabled"):
        spark_session(conf={"spark.sql.ansi.enabled": "false"})


def test_conf_pairs_must_be_key_equals_value() -> None:
    assert parse_conf(["spark.executor.memory=8g", "a.b = c"]) == {"spark.executor.memory": "8g", "a.b": "c"}
    with pytest.raises(MatchError):
        parse_conf(["spark.executor.memory"])


def test_catalog_tables_named_by_a_mapping_file_load_like_the_folder(spark: Any, tmp_path: Path) -> None:
    tables = {}
    for name in (
        "enterprises",
        "annual_reports",
        "tax",
        "social_insurance",
        "credit",
        "certifications",
        "bank_accounts",
    ):
        path = CASE / "snapshot" / f"{name}.parquet"
        frame = (
            spark.read.options(header=True, escape='"').csv(str(path.with_suffix(".csv")))
            if not path.exists()
            else spark.read.parquet(str(path))
        )
        frame.createOrReplaceTempView(f"ods_{name}")
        tables[name] = f"ods_{name}"
    mapping = tmp_path / "tables.yaml"
    mapping.write_text(yaml.safe_dump({"tables": tables}), encoding="utf-8")
    from_catalog = load_snapshot_spark(spark, str(mapping))
    from_folder = load_snapshot(CASE / "snapshot", duckdb.connect())
    for name in tables:
        a, b = from_catalog.tables[name], from_folder.tables[name]
        assert (a.rows_read, a.rows_accepted, a.rejected) == (b.rows_read, b.rows_accepted, b.rejected), name
    assert from_catalog.tables["payments"].rows_read == 0  # optional, not mapped
