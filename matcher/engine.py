"""The engine driver: the match written once, over a small interface that DuckDB and Spark implement.

The plan (`matcher.plan`) and the profile (`matcher.profile.profile_query`) are sqlglot trees; what an
engine does with them is in `Engine`: make a table or view of a tree, load the plan's small data tables,
fetch a few rows, number the enterprises, and say which item made a failed statement fail; and for
a run, load and validate the snapshot and write the run folder. The order of
the work (profiles, verdict blocks, `matches`, allocation, the per-item counts and money, the views) is
here, once: `execute`, `match_profiles`, `item_summary`. `matcher.duckdb_engine.DuckDBEngine` and
`matcher.spark_engine.SparkEngine` are the two engines; `matcher.run.run_match` drives either.
"""

from __future__ import annotations

import datetime as dt
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from sqlglot import exp

from matcher.overrides import OverrideSource
from matcher.plan import (
    ALLOCATED,
    MATCHES,
    PAID,
    STATUS_COUNTS,
    SUMMARY,
    TOTALS,
    ItemPlan,
    Rows,
    blocks,
    candidates_query,
    conditions_rows,
    item_plans,
    items_rows,
    matches_query,
    paid_query,
    status_counts_query,
    summary_query,
    totals_query,
    unpriced_error,
    unpriced_query,
    views,
)
from matcher.profile import profile_query, profile_table_name
from matcher.snapshot import SnapshotReport
from rules.errors import MatchError
from rules.policy import Policy

Step = Callable[[str], None]


# Each enterprise's industry section and size class, from the profile of the run's latest assessment year:
# the payees carry them so that the review queue can filter offers by them (`match_profiles` makes this view).
PAYEE_KEYS = "payee_keys"


def run_profile_name(year: int) -> str:
    """The view of one assessment year's profile with each enterprise's `rid` (`match_profiles` makes it)."""
    return f"run_profile_{year}"


# The order of the outputs looked up by enterprise (`k` is `match_keys`): by USCC. Where the engine numbers
# the enterprises in USCC order (DuckDB), `rid` gives the same order and sorts much faster than the text.
BY_USCC = "k.uscc"
BY_RID = "k.rid"

# Contract 4's outputs (and payees, contacts) over the plan's views: (query, order), the same on both engines,
# except that DuckDB writes the candidates in the same order with `write_candidates`.
# The near-miss and missing-data rows are written as they are computed, in no order: Contract 4 compares
# them as sets and only the candidates must be byte-identical, and sorting them is most of a run's cost and
# memory (docs/performance.md#writing-the-run-folder). Their content is the same on every run; read them
# with an ORDER BY.
OUTPUT_QUERIES: dict[str, tuple[str, str | None]] = {
    "candidates": (
        "SELECT policy_id, policy_version, item_id, uscc, amount, amount_before_allocation FROM candidates",
        "policy_id, item_id, uscc",
    ),
    "near_misses": (
        "SELECT policy_id, item_id, uscc, condition_id, value FROM results WHERE status = 'near_miss'",
        None,
    ),
    "missing_data": (
        "SELECT policy_id, item_id, uscc, string_split(fields, ';') AS fields FROM results "
        "WHERE status = 'missing_data'",
        None,
    ),
    "payees": (
        "SELECT e.uscc, e.name, e.contact_phone, b.bank_name, b.account_no, b.account_name, "
        "pk.industry_section, pk.size_class, e.region_code "
        "FROM enterprises e JOIN match_keys k ON k.uscc = e.uscc LEFT JOIN bank_accounts b ON b.uscc = e.uscc "
        f"LEFT JOIN {PAYEE_KEYS} pk ON pk.rid = k.rid "
        "WHERE k.rid IN (SELECT rid FROM {payable})",
        BY_USCC,
    ),
    "contacts": (
        "SELECT e.uscc, e.name, e.contact_phone, e.region_code FROM enterprises e "
        "JOIN match_keys k ON k.uscc = e.uscc WHERE k.rid IN (SELECT rid FROM result_rids)",
        BY_USCC,
    ),
}


# The outputs kept compact (`matcher.results`): a DuckDB run exports them from the compact form when asked
# (`zhida match` without --compact); a Spark run writes them row by row off its views unless --compact.
LISTS = ("near_misses", "missing_data")


def ordered_query(name: str, payable: str = "payable", *, by_rid: bool = False) -> str:
    """An output's query with its ORDER BY, if it has one; the payees of the enterprises in `payable` (a
    table with their `rid`; by default the candidates themselves). `by_rid`: the engine numbers the
    enterprises in USCC order, so the outputs in USCC order are sorted by `rid`."""
    query, order = OUTPUT_QUERIES[name]
    query = query.format(payable=payable)
    if order == BY_USCC and by_rid:
        order = BY_RID
    return query if order is None else f"{query} ORDER BY {order}"


class Engine(ABC):
    """What differs between the engines that run the plan; `statements` collects seconds per table made."""

    name: str

    def __init__(self) -> None:
        self.statements: dict[str, float] = {}

    @abstractmethod
    def create(self, name: str, tree: exp.Expr, *, view: bool = False, ordered: bool = False) -> None:
        """Make the table (materialised now) or view `name` of the rows of `tree`; `ordered`: stored in the
        order `tree` gives them (a projection of a table keeps its order), where the engine can."""

    @abstractmethod
    def load_rows(self, table: Rows) -> None:
        """Make the plan's data table `table.name` from its rows."""

    @abstractmethod
    def fetch(self, tree: exp.Expr) -> list[tuple[Any, ...]]:
        """The rows of a small query (counts, the per-item summary), on the driver."""

    @abstractmethod
    def number(self, profiles: Mapping[int, str]) -> dict[int, str]:
        """Make `match_keys` (each enterprise's `rid`) and return, per year, the profile with `rid` in front."""

    @abstractmethod
    def load_snapshot(self, location: str) -> SnapshotReport:
        """Load and validate the snapshot at `location` (`matcher.snapshot_rules`): one table of accepted rows
        per table name."""

    def apply_overrides(self, source: OverrideSource) -> dict[str, Any] | None:
        """Apply verified values over the loaded tables (`matcher.overrides`); what was applied, if anything."""
        if source is not None:
            raise MatchError(f"{self.name} 引擎不支持核实值覆盖（--overrides）；请使用 duckdb 引擎")
        return None

    @abstractmethod
    def write_outputs(self, out: str) -> None:
        """Write the Parquet outputs (`OUTPUT_QUERIES`) under the run folder `out`."""

    @abstractmethod
    def write_text(self, location: str, text: str) -> None:
        """Write a small text file (manifest.json) of the run folder."""

    def describe(self) -> dict[str, Any]:
        """What the manifest says of the engine beyond its name."""
        return {}

    def build_profile(self, assessment_year: int, as_of: dt.date) -> str:
        """Make the profile of one year (the `profile_query` tree); return its name."""
        name = profile_table_name(assessment_year)
        self.create(name, profile_query(assessment_year, as_of))
        return name

    def create_matches(self, plans: list[ItemPlan]) -> None:
        """Stage 1: the stored eligible rows (`matches`) of every item."""
        self.create(MATCHES, matches_query(plans))

    @contextmanager
    def guard(self, stage: str, plans: list[ItemPlan], keyed: Mapping[int, str]) -> Iterator[None]:
        """Translate the engine's failure in `stage` (match, allocate, summary) into a MatchError naming the
        policy and item at fault, where it can tell."""
        yield

    def timed(self, name: str, started: float) -> None:
        self.statements[name] = self.statements.get(name, 0.0) + time.perf_counter() - started


def execute(
    engine: Engine, policies: list[Policy], as_of: dt.date, step: Step = lambda _: None
) -> dict[str, float]:
    """Build the profiles of every assessment year, then run the plan (`match_profiles`); seconds per stage."""
    t = time.perf_counter()
    profiles = {}
    for year in sorted({p.assessment_year for p in policies}):
        step(f"画像 {year}")
        profiles[year] = engine.build_profile(year, as_of)
    timings = {"profile": time.perf_counter() - t}
    timings |= match_profiles(engine, policies, profiles, step=step)
    return timings


def match_profiles(
    engine: Engine,
    policies: list[Policy],
    profiles: Mapping[int, str],
    payments: str = "payments",
    step: Step = lambda _: None,
) -> dict[str, float]:
    """Run the plan over existing profiles (one per assessment year); return the seconds of each stage
    (match, allocate, summary, views).

    Builds the items and their conditions, per block the verdict table (`verdicts_<n>`), its bit patterns
    (`patterns_<n>`) and the rows eligible for a budgeted or grouped item (`allocatable_<n>`), then
    `matches` (stage 1) off those, `allocated` (stage 2), the per-item counts and money off the patterns
    (`match_summary`), and the views over them all (`matcher.plan`: Contract 4's `results` and
    `candidates` among them).
    """
    t = time.perf_counter()
    step("匹配")
    plans = item_plans(policies)
    keyed = engine.number(profiles)
    for rows in (items_rows(plans), conditions_rows(plans)):
        t0 = time.perf_counter()
        engine.load_rows(rows)
        engine.timed(rows.name, t0)
    with engine.guard("match", plans, keyed):
        for block in blocks(plans):
            # In the profile's order: the candidates writer then reads each item's rows in `rid` order.
            engine.create(block.table, block.select(keyed[block.year]), ordered=True)
            engine.create(block.patterns, block.patterns_select())
            engine.create(block.allocatable, block.allocatable_select())
        engine.create_matches(plans)
    timings = {"match": time.perf_counter() - t}
    t = time.perf_counter()
    step("分配")
    with engine.guard("allocate", plans, keyed):
        engine.create(PAID, paid_query(payments))
        engine.create(ALLOCATED, candidates_query())
    timings["allocate"] = time.perf_counter() - t
    t = time.perf_counter()
    step("汇总")
    with engine.guard("summary", plans, keyed):
        engine.create(STATUS_COUNTS, status_counts_query(plans))
        engine.create(TOTALS, totals_query(plans))
        if unpriced := engine.fetch(unpriced_query()):
            raise unpriced_error(*unpriced[0])
        engine.create(SUMMARY, summary_query())
    timings["summary"] = time.perf_counter() - t
    t = time.perf_counter()
    for name, tree in views(plans, keyed).items():  # after the patterns: the statuses read them
        engine.create(name, tree, view=True)
    for year, keyed_profile in keyed.items():  # the compact results keep the values conditions read
        engine.create(run_profile_name(year), exp.select("*").from_(keyed_profile), view=True)
    latest = keyed[max(keyed)]  # with `rid`: the payee keys are joined on it, not on the text
    engine.create(
        PAYEE_KEYS, exp.select("rid", "uscc", "industry_section", "size_class").from_(latest), view=True
    )
    timings["views"] = time.perf_counter() - t
    return timings


SUMMARY_KEYS = (
    "policy_id",
    "item_id",
    "eligible",
    "candidates",
    "near_misses",
    "missing_data",
    "amount",
    "amount_before_allocation",
)


def item_summary(engine: Engine) -> list[dict[str, Any]]:
    """Per item: eligible (after allocation), candidates, near-miss and missing-data counts and the money."""
    tree = exp.select(*SUMMARY_KEYS).from_(SUMMARY).order_by("policy_id", "item_id")
    cent = Decimal("0.01")
    return [
        {
            "policy_id": r[0],
            "item_id": r[1],
            **{k: int(v) for k, v in zip(SUMMARY_KEYS[2:6], r[2:6], strict=True)},
            "amount": Decimal(r[6]).quantize(cent),
            "amount_before_allocation": Decimal(r[7]).quantize(cent),
        }
        for r in engine.fetch(tree)
    ]
