"""`zhida match` against a hand-written DuckDB script doing the same work, side by side (issue 29).

The snapshot is the synthetic one of `devtools.bench_match` (9 tables, 8 of them with rows at scale:
`payments` holds a few hundred); the policies are seven of the bundled library, copied as they are into
the work folder (`POLICIES`). The hand-written script (`handwritten`) is what a careful analyst would
write in DuckDB for exactly those seven policies, without zhida's machinery:

- validation: each file read once into a temporary table with one flag per Contract 2 rule (USCC check
  characters as one SQL expression, regions and industries against the shipped code lists, the fixed
  lists of statuses, ratings and certificate types, dates, negative values, years), duplicate keys by
  GROUP BY, orphans against the accepted enterprises; the rejected rows counted per rule; the accepted
  rows kept;
- profile: only the fields the seven policies read, plus the industry section and size class the payees
  carry (the size class is `matcher.sizeclass`'s expression: the national thresholds per industry are
  data, not something to retype);
- match: every condition of every item as SQL, unknown when a field it reads is NULL; eligible, near
  miss (one false condition, none unknown) and missing data (none false, some field NULL) per Contract
  4, the paid pairs of `payments` dropped;
- outputs: candidates (sorted), near misses with the values read, missing data with the fields,
  payees and contacts, as Parquet.

`run` runs both alternately, `rounds` times each, and checks that they agree (candidates, and the keys
of near misses and missing data, as sets), so that the ratio compares equal work.
"""

from __future__ import annotations

import datetime as dt
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from sqlglot import exp

from devtools.bench_match import synthetic_snapshot
from matcher.codes import (
    USCC_ALPHABET,
    USCC_WEIGHTS,
    industry_leaf_codes,
    known_industry_codes,
    known_region_codes,
)
from matcher.duckdb_engine import connect
from matcher.run import run_match
from matcher.sizeclass import size_class_expr
from rules import DATA_DIR
from rules.catalog import CERT_TYPES, CREDIT_RATINGS, STATUSES

AS_OF = dt.date(2025, 9, 30)
YEAR = 2024
POLICIES = (
    "canbaojin-2025",
    "jiangfei-shiye-2025",
    "kuogang-2025",
    "liushui-liangfei-2025",
    "xiaowei-suodeshui-2025",
    "xiaojuren-fuzhou",
    "zhuanjingtexin-shaanxi",
)
"""Seven policies of the bundled library, active on `AS_OF`, none of them budgeted or grouped."""


@dataclass(frozen=True)
class Condition:
    """A condition as the analyst writes it: its id, the fields it reads, and SQL over the profile `p`."""

    id: str
    fields: tuple[str, ...]
    sql: str


@dataclass(frozen=True)
class Item:
    """An item with every condition it must pass (the policy's and its own) and its amount in SQL."""

    policy: str
    version: int
    period: str
    id: str
    conditions: tuple[Condition, ...]
    amount: str
    amount_fields: tuple[str, ...] = ()


_STAFF_30 = Condition("small_staff", ("employees",), "p.employees <= 30")
_STAFF_300 = Condition("staff", ("employees",), "p.employees <= 300")
_ASSETS = Condition("assets", ("total_assets",), "p.total_assets <= 50000000")
ITEMS: tuple[Item, ...] = (
    Item("canbaojin-2025", 1, "2025", "exempt", (_STAFF_30,), "0"),
    Item(
        "jiangfei-shiye-2025",
        1,
        "2025",
        "rate",
        (Condition("insured", ("ui_premium_paid",), "p.ui_premium_paid > 0"),),
        "0",
    ),
    Item(
        "kuogang-2025",
        2,
        "2025",
        "per_hire",
        (
            Condition("no_local_rules", ("region_code",), "NOT starts_with(p.region_code, '37')"),
            Condition("hired", ("new_graduate_hires",), "p.new_graduate_hires >= 1"),
            Condition("insurance_normal", ("ui_arrears",), "NOT p.ui_arrears"),
        ),
        "p.new_graduate_hires * 1500",
        ("new_graduate_hires",),
    ),
    Item("liushui-liangfei-2025", 1, "2025", "halved", (_STAFF_300, _ASSETS), "0"),
    Item("xiaowei-suodeshui-2025", 1, "2025", "relief", (_STAFF_300, _ASSETS), "0"),
    Item(
        "xiaojuren-fuzhou",
        1,
        "once",
        "award",
        (
            Condition("fuzhou", ("region_code",), "starts_with(p.region_code, '3501')"),
            Condition("little_giant", ("is_little_giant",), "p.is_little_giant"),
        ),
        "250000",
    ),
    Item(
        "zhuanjingtexin-shaanxi",
        1,
        "once",
        "award",
        (
            Condition("shaanxi", ("region_code",), "starts_with(p.region_code, '61')"),
            Condition("srdi", ("is_srdi",), "p.is_srdi"),
        ),
        "200000",
    ),
)


def _strings(values: list[str] | tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _uscc_ok(c: str) -> str:
    """GB 32100 as one SQL expression over the column `c`."""
    total = " + ".join(
        f"(strpos('{USCC_ALPHABET}', substr({c}, {i + 1}, 1)) - 1) * {w}" for i, w in enumerate(USCC_WEIGHTS)
    )
    return (
        f"(regexp_full_match({c}, '[0-9]{{8}}[{USCC_ALPHABET}]{{10}}') AND "
        f"substr('{USCC_ALPHABET}', (31 - ({total}) % 31) % 31 + 1, 1) = substr({c}, 18, 1))"
    )


# Per table: (key, rules as (rule, SQL meaning broken, over the file's columns)). Parquet columns arrive in
# the contract's types, so there is nothing to cast.
def _table_rules(day: dt.date) -> dict[str, tuple[tuple[str, ...], list[tuple[str, str]]]]:
    d = f"DATE '{day.isoformat()}'"
    year = ("year_out_of_range", f"year < 1990 OR year > {day.year}")
    industry_ok = (
        "regexp_full_match(industry_code, '[A-Z]([0-9]{2,4})?') AND (industry_code IN (SELECT code FROM "
        "known_industries) OR substr(industry_code, 1, 1) IN (SELECT code FROM industry_leaves) OR "
        "substr(industry_code, 1, 3) IN (SELECT code FROM industry_leaves) OR substr(industry_code, 1, 4) "
        "IN (SELECT code FROM industry_leaves))"
    )
    return {
        "enterprises": (
            ("uscc",),
            [
                ("missing_key", "uscc IS NULL"),
                ("negative_money", "reg_capital < 0"),
                ("future_date", f"reg_date > {d}"),
                ("unknown_status", f"status NOT IN ({_strings(STATUSES)})"),
                ("bad_uscc", f"NOT {_uscc_ok('uscc')}"),
                ("unknown_region", "region_code NOT IN (SELECT code FROM known_regions)"),
                ("unknown_industry", f"NOT ({industry_ok})"),
            ],
        ),
        "annual_reports": (
            ("uscc", "year"),
            [
                ("missing_key", "uscc IS NULL OR year IS NULL"),
                ("negative_money", "revenue < 0 OR total_assets < 0"),
                ("negative_count", "employees < 0"),
                year,
            ],
        ),
        "tax": (
            ("uscc", "year"),
            [
                ("missing_key", "uscc IS NULL OR year IS NULL"),
                ("negative_money", "tax_paid < 0 OR rd_expense < 0"),
                year,
                ("unknown_credit_rating", f"credit_rating NOT IN ({_strings(CREDIT_RATINGS)})"),
            ],
        ),
        "social_insurance": (
            ("uscc", "year"),
            [
                ("missing_key", "uscc IS NULL OR year IS NULL"),
                ("negative_money", "ui_premium_paid < 0"),
                ("negative_count", "insured_start < 0 OR insured_end < 0 OR new_graduate_hires < 0"),
                year,
            ],
        ),
        "credit": (("uscc",), [("missing_key", "uscc IS NULL")]),
        "certifications": (
            ("uscc", "cert_type", "cert_date"),
            [
                ("missing_key", "uscc IS NULL OR cert_type IS NULL OR cert_date IS NULL"),
                ("unknown_cert_type", f"cert_type NOT IN ({_strings(CERT_TYPES)})"),
                ("future_date", f"cert_date > {d}"),
                ("expiry_before_cert", "expiry_date < cert_date"),
            ],
        ),
        "stats_listing": (("uscc", "year"), [("missing_key", "uscc IS NULL OR year IS NULL"), year]),
        "bank_accounts": (("uscc",), [("missing_key", "uscc IS NULL")]),
        "payments": (
            ("uscc", "policy_id", "item_id", "period"),
            [
                ("missing_key", "uscc IS NULL OR policy_id IS NULL OR item_id IS NULL OR period IS NULL"),
                ("negative_money", "amount < 0"),
            ],
        ),
    }


def _validate(con: duckdb.DuckDBPyConnection, snapshot: Path, day: dt.date) -> dict[str, dict[str, int]]:
    """Load every table once, flag every rule, count the rejected rows per rule, keep the accepted ones."""
    con.execute("CREATE TEMP TABLE known_regions AS SELECT unnest(?) AS code", [known_region_codes()])
    con.execute("CREATE TEMP TABLE known_industries AS SELECT unnest(?) AS code", [known_industry_codes()])
    con.execute("CREATE TEMP TABLE industry_leaves AS SELECT unnest(?) AS code", [industry_leaf_codes()])
    rejected: dict[str, dict[str, int]] = {}
    for table, (key, rules) in _table_rules(day).items():
        flags = ", ".join(f'coalesce({sql}, false) AS "{rule}"' for rule, sql in rules)
        orphan = (
            ", false AS orphan"
            if table == "enterprises"
            else ", uscc IS NOT NULL AND uscc NOT IN (SELECT uscc FROM enterprises) AS orphan"
        )
        keys = ", ".join(key)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE s AS SELECT *, {flags}{orphan} "
            f"FROM read_parquet('{snapshot / (table + '.parquet')}')"
        )
        present = " AND ".join(f"{k} IS NOT NULL" for k in key)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE d AS SELECT {keys}, true AS duplicate_key FROM s WHERE {present} "
            "GROUP BY ALL HAVING count(*) > 1"
        )
        names = [rule for rule, _ in rules] + ["duplicate_key", "orphan"]
        anyof = " OR ".join(f'"{n}"' for n in names)
        on = " AND ".join(f"s.{k} = d.{k}" for k in key)
        counts = con.execute(
            "SELECT "
            + ", ".join(f'count(*) FILTER (WHERE "{n}")' for n in names)
            + f" FROM (SELECT s.*, coalesce(d.duplicate_key, false) AS duplicate_key FROM s LEFT JOIN d ON {on}) "
            f"WHERE {anyof}"
        ).fetchone()
        assert counts is not None
        rejected[table] = {n: int(c) for n, c in zip(names, counts, strict=True) if c}
        columns = [
            r[0]
            for r in con.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{snapshot / (table + '.parquet')}')"
            ).fetchall()
        ]
        ok = " AND ".join(f'NOT s."{rule}"' for rule, _ in rules) + " AND NOT s.orphan"
        con.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT {', '.join('s.' + c for c in columns)} "
            f"FROM s ANTI JOIN d ON {on} WHERE {ok}"
        )
    con.execute("DROP TABLE s")
    con.execute("DROP TABLE d")
    return rejected


def _profile(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> None:
    """The fields the seven policies read, and the payees' industry section and size class."""
    d = f"DATE '{as_of.isoformat()}'"
    size = size_class_expr(
        exp.column("industry_code", "e"),
        exp.column("employees", "a"),
        exp.column("revenue", "a"),
        exp.column("total_assets", "a"),
    ).sql("duckdb")
    con.execute(
        f"""
        CREATE TABLE profile AS
        SELECT e.uscc, e.region_code, substr(e.industry_code, 1, 1) AS industry_section, {size} AS size_class,
          a.employees, a.total_assets, s.ui_premium_paid, s.ui_arrears, s.new_graduate_hires,
          coalesce(c.is_little_giant, false) AS is_little_giant, coalesce(c.is_srdi, false) AS is_srdi
        FROM enterprises e
        LEFT JOIN annual_reports a ON a.uscc = e.uscc AND a.year = {YEAR}
        LEFT JOIN social_insurance s ON s.uscc = e.uscc AND s.year = {YEAR}
        LEFT JOIN (
          SELECT uscc,
            bool_or(cert_type = 'srdi_little_giant' AND (expiry_date IS NULL OR expiry_date >= {d})) AS is_little_giant,
            bool_or(cert_type = 'srdi' AND (expiry_date IS NULL OR expiry_date >= {d})) AS is_srdi
          FROM certifications WHERE cert_date <= {d} GROUP BY uscc
        ) c ON c.uscc = e.uscc
        """
    )


def _verdict(c: Condition) -> str:
    """Unknown when a field the condition reads is NULL, whatever the rest says; else its truth."""
    nulls = " OR ".join(f"p.{f} IS NULL" for f in c.fields)
    return f"CASE WHEN {nulls} THEN NULL ELSE ({c.sql}) END"


def _match_and_write(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """Per item: eligible, near miss, missing data; paid pairs dropped; the run folder's Parquet files."""
    selects = []
    for item in ITEMS:
        # Each verdict once per enterprise (k0, k1, ...), then counted and read by the outer query.
        verdicts = ", ".join(f"{_verdict(c)} AS k{n}" for n, c in enumerate(item.conditions))
        ks = [f"k{n}" for n in range(len(item.conditions))]
        false = " + ".join(f"CAST({k} IS FALSE AS INTEGER)" for k in ks)
        unknown = " + ".join(f"CAST({k} IS NULL AS INTEGER)" for k in ks)
        amount_null = " OR ".join(f"p.{f} IS NULL" for f in item.amount_fields) or "false"
        which = (
            "CASE "
            + " ".join(f"WHEN {k} IS FALSE THEN '{c.id}'" for k, c in zip(ks, item.conditions, strict=True))
            + " END"
        )
        value = (
            "CASE "
            + " ".join(
                f"WHEN {k} IS FALSE THEN "
                + " || '; ' || ".join(f"'{f}=' || coalesce(CAST(p.{f} AS VARCHAR), 'NULL')" for f in c.fields)
                for k, c in zip(ks, item.conditions, strict=True)
            )
            + " END"
        )
        reads = sorted({f for c in item.conditions for f in c.fields} | set(item.amount_fields))
        fields = (
            "list_filter(["
            + ", ".join(f"CASE WHEN p.{f} IS NULL THEN '{f}' END" for f in reads)
            + "], lambda x: x IS NOT NULL)"
        )
        selects.append(
            f"""SELECT '{item.policy}' AS policy_id, {item.version} AS policy_version, '{item.period}' AS period,
              '{item.id}' AS item_id, p.uscc,
              CASE WHEN f = 0 AND u = 0 AND NOT an THEN 'eligible' WHEN f = 1 AND u = 0 THEN 'near_miss'
                   WHEN f = 0 THEN 'missing_data' END AS status,
              CASE WHEN f = 0 AND u = 0 AND NOT an THEN CAST(ROUND({item.amount}, 2) AS DECIMAL(18, 2)) END AS amount,
              CASE WHEN f = 1 AND u = 0 THEN {which} END AS condition_id,
              CASE WHEN f = 1 AND u = 0 THEN {value} END AS value,
              CASE WHEN f = 0 AND (u > 0 OR an) THEN {fields} END AS fields
            FROM (SELECT *, {false} AS f, {unknown} AS u, {amount_null} AS an
                  FROM (SELECT p.*, {verdicts} FROM profile p) p) p
            WHERE f = 0 OR (f = 1 AND u = 0)"""
        )
    con.execute("CREATE TABLE results AS " + " UNION ALL ".join(selects))
    con.execute(
        """CREATE TABLE candidates AS
        SELECT r.policy_id, CAST(r.policy_version AS INTEGER) AS policy_version, r.item_id, r.uscc,
          r.amount, r.amount AS amount_before_allocation
        FROM results r ANTI JOIN payments pay
          ON pay.uscc = r.uscc AND pay.policy_id = r.policy_id AND pay.item_id = r.item_id AND pay.period = r.period
        WHERE r.status = 'eligible'"""
    )
    copies = {
        "candidates": "SELECT * FROM candidates ORDER BY policy_id, item_id, uscc",
        "near_misses": "SELECT policy_id, item_id, uscc, condition_id, value FROM results WHERE status = 'near_miss'",
        "missing_data": "SELECT policy_id, item_id, uscc, fields FROM results WHERE status = 'missing_data'",
        "payees": "SELECT e.uscc, e.name, e.contact_phone, b.bank_name, b.account_no, b.account_name, "
        "p.industry_section, p.size_class FROM enterprises e JOIN profile p ON p.uscc = e.uscc "
        "LEFT JOIN bank_accounts b ON b.uscc = e.uscc "
        "WHERE e.uscc IN (SELECT uscc FROM candidates) ORDER BY e.uscc",
        "contacts": "SELECT uscc, name, contact_phone, region_code FROM enterprises "
        "WHERE uscc IN (SELECT uscc FROM results) ORDER BY uscc",
    }
    for name, query in copies.items():
        con.execute(f"COPY ({query}) TO '{out / (name + '.parquet')}' (FORMAT parquet, COMPRESSION zstd)")


def handwritten(
    snapshot: Path, out: Path, as_of: dt.date = AS_OF, timings: dict[str, float] | None = None
) -> dict[str, dict[str, int]]:
    """The hand-written run: validate, profile, match, write under `out`; the rejected rows per table and
    rule. `timings` receives the seconds of each step (load, profile, match + write)."""
    out.mkdir(parents=True, exist_ok=True)
    con = connect(temp_dir=out / ".spill")
    con.execute("SET enable_progress_bar = false")
    seconds = timings if timings is not None else {}
    try:
        t = time.perf_counter()
        rejected = _validate(con, snapshot, as_of)
        seconds["load"] = time.perf_counter() - t
        t = time.perf_counter()
        _profile(con, as_of)
        seconds["profile"] = time.perf_counter() - t
        t = time.perf_counter()
        _match_and_write(con, out)
        seconds["match + write"] = time.perf_counter() - t
    finally:
        con.close()
    return rejected


def policies_folder(work: Path) -> Path:
    """The seven policies, copied from the bundled library into `work/policies-7`."""
    folder = work / "policies-7"
    folder.mkdir(parents=True, exist_ok=True)
    for name in POLICIES:
        shutil.copyfile(DATA_DIR / "policies" / f"{name}.yaml", folder / f"{name}.yaml")
    return folder


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Round:
    """One run of one side: wall and CPU seconds, and for `zhida match` its stages (load, profile, ...)."""

    side: str
    wall_s: float
    cpu_s: float
    stages: dict[str, float] = field(default_factory=dict)


def agree(con: duckdb.DuckDBPyConnection, zhida: Path, hand: Path) -> dict[str, int]:
    """Rows in one side's output and not the other's, per file: candidates whole, near misses and missing
    data by their keys (and the failing condition). All zero when both did the same work."""
    checks = {
        "candidates": "policy_id, item_id, uscc, amount, amount_before_allocation",
        "near_misses": "policy_id, item_id, uscc, condition_id",
        "missing_data": "policy_id, item_id, uscc, list_sort(fields)",
        "payees": "uscc",
        "contacts": "uscc",
    }
    out = {}
    for name, cols in checks.items():
        a, b = (
            f"read_parquet('{zhida / (name + '.parquet')}')",
            f"read_parquet('{hand / (name + '.parquet')}')",
        )
        row = con.execute(
            f"SELECT (SELECT count(*) FROM (SELECT {cols} FROM {a} EXCEPT ALL SELECT {cols} FROM {b})) + "
            f"(SELECT count(*) FROM (SELECT {cols} FROM {b} EXCEPT ALL SELECT {cols} FROM {a}))"
        ).fetchone()
        assert row is not None
        out[name] = int(row[0])
    return out


def run(
    enterprises: int,
    work: Path,
    *,
    rounds: int = 3,
    seed: int = 0,
    say: Callable[[str], None] = lambda _: None,
) -> tuple[list[Round], dict[str, int]]:
    """Both sides alternately, `rounds` times each (the hand-written first); the rounds and the disagreement
    counts of the last pair (`agree`)."""
    snapshot = synthetic_snapshot(work, enterprises, seed, say)
    policies = policies_folder(work)
    done: list[Round] = []
    zhida_out, hand_out = work / "out-zhida", work / "out-handwritten"
    for n in range(rounds):
        for side in ("handwritten", "zhida"):
            out = hand_out if side == "handwritten" else zhida_out
            shutil.rmtree(out, ignore_errors=True)
            say(f"第 {n + 1} 轮：{'手写 DuckDB' if side == 'handwritten' else 'zhida match'}")
            wall, cpu = time.perf_counter(), _cpu_s()
            stages: dict[str, float] = {}
            if side == "handwritten":
                handwritten(snapshot, out, timings=stages)
            else:
                con = connect(temp_dir=out / ".spill")
                con.execute("SET enable_progress_bar = false")
                try:
                    result = run_match(snapshot, policies, out, AS_OF, con=con)
                finally:
                    con.close()
                stages = result.timings
            done.append(Round(side, time.perf_counter() - wall, _cpu_s() - cpu, stages))
    con = duckdb.connect()
    try:
        diff = agree(con, zhida_out, hand_out)
    finally:
        con.close()
    return done, diff
