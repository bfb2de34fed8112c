"""The compiled SQL equals the rule-engine reference, on random policies over random profiles.

Hypothesis builds policies from the catalog's fields (every supported operator, NULLs, values on and
around the literals' boundaries, half-fen amounts, caps, budgets, exclusive groups, payments) and
profiles with NULLs anywhere, packed into one block of condition bits or many, a rule repeated within an
item. DuckDB runs the compiled plan; `rules.reference` evaluates enterprise by
enterprise; eligibility, near-misses, missing data, amounts and final candidates must agree fen for fen.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from matcher.duckdb_engine import match_profiles
from rules.catalog import FIELDS
from rules.errors import MatchError
from rules.expressions import parse
from rules.reference import Payment, allocate, evaluate
from rules.validate import parse_policy_text
from tests.matcher.ratio_cases import PLANT, RATIO_BOUNDS, planted_counts, planted_money, stored, with_ratios

ARROW_TYPES = {
    "string": pa.string(),
    "integer": pa.int64(),
    "money": pa.decimal128(18, 2),
    "ratio": pa.decimal128(38, 12),
    "date": pa.date32(),
    "boolean": pa.bool_(),
}

INT_BOUNDS = [0, 1, 2, 10, 20, 30, 300, 1000]
MONEY_BOUNDS = [Decimal(x) for x in ("0", "0.01", "0.5", "1000", "2000000", "20000000", "12345.67")]
NAMES = ["淮安科技有限公司", "淮安市机械厂", "江苏测试企业", "科技", "", "淮"]
REGIONS = ["320803", "320804", "320812", "320830", "330100"]
INDUSTRIES = ["C3911", "C1311", "I6513", "F5211", "M7320", "J6620"]
STATUSES = ["存续", "在业", "吊销", "注销"]
RATINGS = ["A", "B", "M", "C", "D"]
SIZES = ["large", "medium", "small", "micro", "not_applicable"]
DATES = [dt.date(2019, 12, 31), dt.date(2020, 1, 1), dt.date(2021, 6, 15), dt.date(2024, 2, 29)]

INTS = [f.name for f in FIELDS if f.type == "integer"]
MONEYS = [f.name for f in FIELDS if f.type == "money"]
RATIOS = [f.name for f in FIELDS if f.type == "ratio"]
BOOLS = [f.name for f in FIELDS if f.type == "boolean"]


def maybe(strategy: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.none(), strategy, strategy, strategy)


def near(values: list[Decimal]) -> st.SearchStrategy[Decimal]:
    """A boundary, or one fen either side of it."""
    return st.builds(
        lambda v, d: v + d, st.sampled_from(values), st.sampled_from([Decimal("-0.01"), 0, Decimal("0.01")])
    )


POOLS = {
    "name": NAMES,
    "region_code": REGIONS,
    "industry_code": INDUSTRIES,
    "industry_section": ["C", "I", "F", "M", "J"],
    "status": STATUSES,
    "credit_rating": RATINGS,
    "size_class": SIZES,
}


def field_values(name: str, type_: str) -> st.SearchStrategy[object]:
    if type_ == "integer":
        return st.builds(lambda v, d: max(v + d, 0), st.sampled_from(INT_BOUNDS), st.integers(-1, 1))
    if type_ == "money":
        return st.one_of(near(MONEY_BOUNDS), st.decimals("0", "30000000", places=2))
    if type_ == "date":
        return st.sampled_from(DATES)
    if type_ == "boolean":
        return st.booleans()
    return st.sampled_from(POOLS[name])


def _planted(drawn: tuple[dict[str, object], Any, Any]) -> dict[str, object]:
    """A row whose ratios follow from their inputs (`ratio_cases.with_ratios`), the inputs planted on or
    one fen (person) around a threshold when a plant is drawn."""
    row, rd, layoff = drawn
    if rd is not None:
        bound, m, offset, on_numerator = rd
        row["rd_expense"], row["revenue"] = planted_money(bound, m, offset, on_numerator)
    if layoff is not None:
        bound, m, offset, _ = layoff
        row["insured_start"], row["insured_end"] = planted_counts(bound, m, offset)
    return with_ratios(row)


# Built once: a strategy made anew for every row costs more to validate than the match costs to run.
ROW = st.tuples(
    st.fixed_dictionaries(
        {
            f.name: maybe(field_values(f.name, f.type))
            for f in FIELDS
            if f.name != "uscc" and f.type != "ratio"
        }
    ),
    st.one_of(st.none(), PLANT),
    st.one_of(st.none(), PLANT),
).map(_planted)


def profile_row(n: int) -> st.SearchStrategy[dict[str, object]]:
    """One enterprise's profile: any field NULL or a value on or around the rules' literals."""
    return ROW.map(lambda row: {"uscc": f"U{n:04d}", **row})


OPS = ["<", "<=", ">", ">=", "==", "!="]


@st.composite
def atom(draw: st.DrawFn) -> str:
    kind = draw(
        st.sampled_from(["int", "money", "ratio", "bool", "in", "regex", "slice", "date", "text", "arith"])
    )
    op = draw(st.sampled_from(OPS))
    if kind == "int":
        return f"{draw(st.sampled_from(INTS))} {op} {draw(st.sampled_from(INT_BOUNDS))}"
    if kind == "money":
        return f"{draw(st.sampled_from(MONEYS))} {op} {draw(st.sampled_from(MONEY_BOUNDS))}"
    if kind == "ratio":
        if draw(st.booleans()):
            return f"{draw(st.sampled_from(RATIOS))} {op} {draw(st.sampled_from(RATIO_BOUNDS))}"
        # arithmetic on ratios: exact fractions all the way (matcher.compile.quotient)
        return draw(
            st.sampled_from(
                [
                    f"rd_ratio * 100 {op} 5",
                    f"rd_ratio / 2 {op} 0.025",
                    f"rd_ratio + layoff_rate {op} 0.075",
                    f"rd_ratio - layoff_rate {op} 0",
                    f"$max([rd_ratio, layoff_rate]) {op} 0.055",
                    f"$min([rd_ratio, 0.05, layoff_rate]) {op} 0.02",
                    f"$abs(rd_ratio - 0.05) {op} 0.005",
                    f"-layoff_rate {op} -0.055",
                    f"(employees >= 10 ? rd_ratio : layoff_rate) {op} 0.05",
                    f"rd_ratio {op} layoff_rate",
                    f"rd_ratio * revenue {op} 1000",
                    "rd_ratio in [0.05, 0.025]",
                ]
            )
        )
    if kind == "bool":
        return draw(st.sampled_from(["", "not "])) + draw(st.sampled_from(BOOLS))
    if kind == "in":
        field, pool = draw(
            st.sampled_from([("size_class", SIZES), ("credit_rating", RATINGS), ("status", STATUSES)])
        )
        values = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
        return f"{field} in [{', '.join(repr(v).replace(chr(39), chr(34)) for v in values)}]"
    if kind == "regex":
        return draw(
            st.sampled_from(
                [
                    'region_code =~ "32080[34]"',
                    'region_code !~ "3208"',
                    'industry_code =~ "C(39|13)"',
                    'name =~~ "科技"',
                    'name !~~ "^淮安"',
                ]
            )
        )
    if kind == "slice":
        return draw(
            st.sampled_from(
                [
                    'name[:2] == "淮安"',
                    'industry_code[1:3] == "39"',
                    'region_code[:4] != "3208"',
                    "name.length >= 4",
                    '"科技" in name',
                    'status < "在"',
                ]
            )
        )
    if kind == "date":
        return draw(
            st.sampled_from(
                [
                    'reg_date >= d"2020-01-01"',
                    'reg_date < d"2021-06-15"',
                    "reg_date.year >= 2021",
                    'reg_date == d"2024-02-29"',
                    # date ± duration, each planted on one of DATES' boundary days
                    'reg_date + t"P365D" <= d"2020-12-31"',
                    'reg_date - t"P1D" == d"2019-12-31"',
                    't"P1D" + reg_date > d"2024-03-01"',
                    'reg_date + t"P366D" >= d"2025-03-01"',
                    'reg_date + (t"P1D" + t"PT12H") < d"2021-06-16"',
                    # first recognition and the current certificate, as the library's policies ask
                    "high_tech_first_date.year == 2024",
                    'srdi_little_giant_cert_date >= d"2021-06-15" and srdi_little_giant_first_date < d"2020-01-01"',
                    "tech_sme_cert_date > tech_sme_first_date",
                ]
            )
        )
    if kind == "text":
        return draw(
            st.sampled_from(
                ['status == "存续" or status == "在业"', 'credit_rating != "D"', "size_class == null"]
            )
        )
    # arithmetic on exact numbers
    a, b = draw(st.sampled_from(MONEYS)), draw(st.sampled_from(INTS))
    return draw(
        st.sampled_from(
            [
                f"{a} / 10000 {op} 2000",
                f"{a} - {draw(st.sampled_from(MONEYS))} {op} 0",
                f"$abs({a} - 1000) {op} 500",
                f"{b} * 2 + 1 {op} 21",
                f"$max([{b}, 10]) {op} 20",
                f"({b} >= 10 ? {a} : 0) {op} 1000",
                f"-{b} {op} -20",
            ]
        )
    )


@st.composite
def rule(draw: st.DrawFn) -> str:
    parts = draw(st.lists(atom(), min_size=1, max_size=3))
    out = parts[0]
    for p in parts[1:]:
        out = f"({out}) {draw(st.sampled_from(['and', 'or']))} ({p})"
    return ("not " if draw(st.booleans()) and len(parts) == 1 else "") + out


AMOUNTS = [
    "ui_premium_paid * 0.6",
    "ui_premium_paid * 0.5",
    "new_graduate_hires * 1500",
    "$min([rd_expense * 0.1, 1000000])",
    "employees >= 10 ? 8000 : 3000",
    "revenue / 10000 * 0.5",
    "reg_capital * 0.001 + 0.005",
    "30000",
    "tax_paid * 0.015",
]


def _yaml_list(conds: list[str], indent: str) -> str:
    return "".join(
        f"{indent}- id: c{n}\n{indent}  text: 条件{n}\n{indent}  rule: '{c}'\n" for n, c in enumerate(conds)
    )


@st.composite
def policy_text(draw: st.DrawFn, pid: str, group: str | None) -> str:
    shared = draw(st.lists(rule(), min_size=0, max_size=2))
    allocation = draw(st.sampled_from(["none", "none", "pro_rata", "rank"]))
    budget = (
        draw(st.sampled_from(["20000.00", "150000.00", "3000000.00"]))
        if allocation != "none" or draw(st.booleans())
        else None
    )
    lines = [
        f"id: {pid}",
        "version: 1",
        "title: 测试政策",
        "department: 测试局",
        "source: {document: 测试}",
        "valid_from: 2025-01-01",
        "valid_to: 2025-12-31",
        "assessment_year: 2024",
        'period: "2025"',
        f"allocation: {allocation}",
    ]
    if budget:
        lines.append(f"budget: {budget}")
    if allocation == "rank":
        lines.append(
            f"rank_by: {draw(st.sampled_from(['new_graduate_hires', 'employees * 2', 'ui_premium_paid']))}"
        )
    if group:
        lines.append(f"exclusive_group: {group}")
    text = "\n".join(lines) + "\n"
    if shared:
        text += "conditions:\n" + _yaml_list(shared, "  ")
    text += "items:\n"
    for n in range(draw(st.integers(1, 2))):
        conds = draw(st.lists(rule(), min_size=0 if shared else 1, max_size=2))
        if shared and draw(st.booleans()):  # the same rule twice in one item: two conditions, two bits
            conds.append(shared[0])
        text += f"  - id: i{n}\n    title: 事项{n}\n    amount: '{draw(st.sampled_from(AMOUNTS))}'\n"
        cap = draw(st.sampled_from([None, "5000.00", "100000.00"]))
        if cap:
            text += f"    cap: {cap}\n"
        if conds:
            text += "    conditions:\n" + _yaml_list(
                [c.replace("c", "c", 1) for c in conds], "      "
            ).replace("id: c", f"id: i{n}c")
    return text


def _load_profile(con: duckdb.DuckDBPyConnection, rows: list[dict[str, object]]) -> str:
    columns = {
        f.name: pa.array(
            [stored(r[f.name]) if f.type == "ratio" else r[f.name] for r in rows], ARROW_TYPES[f.type]
        )  # type: ignore[arg-type]
        for f in FIELDS
    }
    con.register("profile_rows", pa.table(columns))
    con.execute("CREATE OR REPLACE TABLE profile_t AS SELECT * FROM profile_rows")
    con.unregister("profile_rows")
    return "profile_t"


def _rank_values(policies, rows):  # type: ignore[no-untyped-def]
    out = {}
    for p in policies:
        if p.rank_by is None:
            continue
        expr = parse(p.rank_by)
        for row in rows:
            if any(row[f] is None for f in expr.fields):
                out[(p.id, row["uscc"])] = None
            else:
                out[(p.id, row["uscc"])] = Decimal(expr.rule.evaluate(dict(row)))
    return out


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


# 300 examples here without exclusive groups and 300 with them (test_differential_groups.py): two files,
# so that the suite's workers run the halves side by side. Each example is one to three policies over up to
# 25 profiles with values drawn on and around the literals' boundaries; tests/matcher/test_ratios.py adds
# cases drawn from registry tables and test_spark.py the same property on Spark. A longer run, after a
# change to the compiler: ZHIDA_DIFFERENTIAL_EXAMPLES=5000 pytest tests/matcher/test_differential*.py
EXAMPLES = settings(
    max_examples=int(os.environ.get("ZHIDA_DIFFERENTIAL_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@EXAMPLES
@given(data=st.data())
def test_compiled_sql_equals_reference(con: duckdb.DuckDBPyConnection, data: st.DataObject) -> None:
    check_compiled_sql_equals_reference(con, data, group=None)


def check_compiled_sql_equals_reference(
    con: duckdb.DuckDBPyConnection, data: st.DataObject, group: str | None
) -> None:
    """One drawn case: policies (the first two in `group`, if any), profiles and payments; the compiled
    plan's results equal the reference's, status by status, amount by amount."""
    texts = [
        data.draw(policy_text(f"p{n}", group if n < 2 else None)) for n in range(data.draw(st.integers(1, 3)))
    ]
    policies = [parse_policy_text(t, f"p{n}.yaml") for n, t in enumerate(texts)]
    rows = [data.draw(profile_row(n)) for n in range(data.draw(st.integers(1, 25)))]
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
    con.execute(
        "CREATE OR REPLACE TABLE paid_t (uscc VARCHAR, policy_id VARCHAR, item_id VARCHAR, period VARCHAR, amount DECIMAL(18,2))"
    )
    if paid:
        con.executemany("INSERT INTO paid_t VALUES (?, ?, ?, ?, 1)", paid)
    # Few bits per block split the items into many blocks; 62 keeps them in one.
    with patch("matcher.plan.BITS", data.draw(st.sampled_from([5, 8, 62]))):
        match_profiles(con, policies, {2024: _load_profile(con, rows)}, payments="paid_t")

    ref = evaluate(policies, rows)
    want_near = {(r.policy_id, r.item_id, r.uscc, r.failed[0]) for r in ref if r.status == "near_miss"}
    want_missing = {(r.policy_id, r.item_id, r.uscc, r.missing) for r in ref if r.status == "missing_data"}
    want_eligible = {(r.policy_id, r.item_id, r.uscc): r.amount for r in ref if r.status == "eligible"}
    got = con.execute(
        "SELECT policy_id, item_id, uscc, status, condition_id, fields, amount FROM results"
    ).fetchall()
    got_near = {(p, i, u, c) for p, i, u, s, c, _, _ in got if s == "near_miss"}
    got_missing = {(p, i, u, tuple(f.split(";"))) for p, i, u, s, _, f, _ in got if s == "missing_data"}
    got_eligible = {(p, i, u): a for p, i, u, s, _, _, a in got if s == "eligible"}
    context = "\n---\n".join(texts)
    assert got_near == want_near, context
    assert got_missing == want_missing, context
    assert got_eligible == want_eligible, context

    payments = [Payment(u, p, i, period) for u, p, i, period in paid]
    want = {
        (c.policy_id, c.item_id, c.uscc): (c.amount, c.amount_before_allocation)
        for c in allocate(policies, ref, payments, _rank_values(policies, rows))
    }
    cands = con.execute(
        "SELECT policy_id, item_id, uscc, amount, amount_before_allocation FROM candidates"
    ).fetchall()
    assert {(p, i, u): (a, b) for p, i, u, a, b in cands} == want, context

    # The per-item counts and money that `zhida match` prints and the manifest keeps.
    def count(key: tuple[str, str], status: str) -> int:
        return sum(1 for r in ref if (r.policy_id, r.item_id) == key and r.status == status)

    want_summary = {}
    for policy in policies:
        for item in policy.items:
            key = (policy.id, item.id)
            payable = [v for k, v in want.items() if k[:2] == key]
            want_summary[key] = (
                count(key, "eligible"),
                len(payable),
                count(key, "near_miss"),
                count(key, "missing_data"),
                sum((a for a, _ in payable), Decimal(0)),
                sum((b for _, b in payable), Decimal(0)),
            )
    summary = con.execute(
        "SELECT policy_id, item_id, eligible, candidates, near_misses, missing_data, amount,"
        " amount_before_allocation FROM match_summary"
    ).fetchall()
    assert {(p, i): tuple(rest) for p, i, *rest in summary} == want_summary, context


def test_pro_rata_rounds_a_negative_share_down_as_the_reference_does(con: duckdb.DuckDBPyConnection) -> None:
    # An amount expression can go below zero (money fields cannot: the snapshot refuses them). The
    # engines' integer division truncates towards zero; the reference floors. They must agree.
    text = (
        "id: p0\nversion: 1\ntitle: 测试政策\ndepartment: 测试局\nsource: {document: 测试}\n"
        'valid_from: 2025-01-01\nvalid_to: 2025-12-31\nassessment_year: 2024\nperiod: "2025"\n'
        "allocation: pro_rata\nbudget: 1000.00\nitems:\n"
        "  - id: i0\n    title: 事项0\n    amount: 'revenue - 1000'\n"
    )
    policies = [parse_policy_text(text, "p0.yaml")]
    base = dict.fromkeys((f.name for f in FIELDS), None)
    revenues = ["999.99", "2000.00", "5000.00", "1000.01"]
    rows = [base | {"uscc": f"U{n:04d}", "revenue": Decimal(r)} for n, r in enumerate(revenues)]
    con.execute(
        "CREATE OR REPLACE TABLE paid_t (uscc VARCHAR, policy_id VARCHAR, item_id VARCHAR, period VARCHAR)"
    )
    match_profiles(con, policies, {2024: _load_profile(con, rows)}, payments="paid_t")
    want = {c.uscc: c.amount for c in allocate(policies, evaluate(policies, rows), [], {})}
    got = dict(con.execute("SELECT uscc, amount FROM candidates").fetchall())
    assert got == want and want["U0000"] == Decimal("-0.01")


def _overflow_case(con: duckdb.DuckDBPyConnection, employees: int, budget: str = "") -> None:
    """Item `huge` pays revenue × 10^8: on a revenue of 10^9 that is 10^17 yuan, more than DECIMAL(18, 2)
    holds; the enterprise with it has `employees` employees (eligible from 0). `budget`: the policy's
    budget lines, if any (its items are then allocated in stage 2)."""
    text = (
        "id: p-overflow\nversion: 1\ntitle: 测试政策\ndepartment: 测试局\nsource: {document: 测试}\n"
        f'valid_from: 2025-01-01\nvalid_to: 2025-12-31\nassessment_year: 2024\nperiod: "2025"\n{budget}items:\n'
        "  - id: fine\n    title: 事项0\n    amount: '1000'\n"
        "    conditions: [{id: c0, text: 有职工, rule: employees >= 0}]\n"
        "  - id: huge\n    title: 事项1\n    amount: 'revenue * 100000000'\n"
        "    conditions: [{id: c1, text: 有职工, rule: employees >= 0}]\n"
    )
    base = dict.fromkeys((f.name for f in FIELDS), None)
    rows = [
        base | {"uscc": "U0000", "revenue": Decimal("1000000000.00"), "employees": employees},
        base | {"uscc": "U0001", "revenue": Decimal("12.34"), "employees": 3},
    ]
    con.execute(
        "CREATE OR REPLACE TABLE paid_t (uscc VARCHAR, policy_id VARCHAR, item_id VARCHAR, period VARCHAR)"
    )
    match_profiles(
        con, [parse_policy_text(text, "p.yaml")], {2024: _load_profile(con, rows)}, payments="paid_t"
    )


def test_an_amount_too_big_for_an_eligible_enterprise_stops_the_run_naming_policy_and_item(
    con: duckdb.DuckDBPyConnection,
) -> None:
    with pytest.raises(MatchError, match="p-overflow 事项 huge"):
        _overflow_case(con, employees=5)


def test_an_amount_too_big_for_a_budgeted_item_stops_the_run_naming_policy_and_item(
    con: duckdb.DuckDBPyConnection,
) -> None:
    with pytest.raises(MatchError, match="p-overflow 事项 huge"):
        _overflow_case(con, employees=5, budget="budget: 1000000\nallocation: pro_rata\n")


def test_an_amount_too_big_where_no_item_is_eligible_is_never_computed(
    con: duckdb.DuckDBPyConnection,
) -> None:
    _overflow_case(con, employees=-1)
    summary = con.execute("SELECT item_id, candidates, amount FROM match_summary ORDER BY item_id").fetchall()
    assert summary == [("fine", 1, Decimal("1000.00")), ("huge", 1, Decimal("1234000000.00"))]
