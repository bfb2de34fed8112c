"""The reference semantics of docs/contracts.md#semantics, checked against independent computations.

Rounding is checked against integer arithmetic, NULL handling against a truth table written here in
plain Python, and the allocation steps (paid pairs, exclusive groups, budgets) against the properties
that define them.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rules.policy import Policy
from rules.reference import Candidate, ItemResult, Payment, allocate, evaluate, evaluate_item, round_fen
from rules.validate import parse_policy_text

FAST = settings(deadline=None, database=None, max_examples=150)


def policy(
    policy_id: str = "p",
    *,
    items: str = "  - {id: a, title: 事项, amount: revenue}\n",
    conditions: str = "",
    extra: str = "",
) -> Policy:
    """A small valid policy; `items`, `conditions` and `extra` are YAML fragments."""
    text = (
        f"id: {policy_id}\nversion: 1\ntitle: 测试政策\ndepartment: 测试局\nsource: {{document: 测试〔2025〕1号}}\n"
        'valid_from: 2025-01-01\nvalid_to: 2025-12-31\nassessment_year: 2024\nperiod: "2025"\n'
        f"{extra}conditions: [{conditions}]\nitems:\n{items}"
    )
    return parse_policy_text(text, f"{policy_id}.yaml")


def half_up_to_fen(value: Decimal) -> Decimal:
    """Round half away from zero to 0.01, in integers only: the independent twin of `round_fen`."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    n = int("".join(map(str, digits)) or "0")
    if exponent >= 0:
        fen = n * 10**exponent * 100
    else:
        denominator = 10**-exponent
        fen, rest = divmod(n * 100, denominator)
        if 2 * rest >= denominator:
            fen += 1
    return Decimal(-fen if sign else fen).scaleb(-2)


# --- rounding and caps --------------------------------------------------------------------------------------

six_places = st.decimals(
    min_value=-(10**12), max_value=10**12, places=6, allow_nan=False, allow_infinity=False
)
exact_halves = st.integers(-(10**14), 10**14).map(lambda k: Decimal(10 * k + 5).scaleb(-3))  # x.xx5


@FAST
@given(st.one_of(six_places, exact_halves))
def test_round_fen_is_half_up_to_the_fen(value: Decimal) -> None:
    rounded = round_fen(value)
    assert rounded == half_up_to_fen(value)
    assert rounded.as_tuple().exponent == -2


def test_round_fen_known_values() -> None:
    cases = {"0.005": "0.01", "0.004999": "0.00", "2.675": "2.68", "-2.675": "-2.68", "-0.015": "-0.02"}
    for value, expected in cases.items():
        assert round_fen(Decimal(value)) == Decimal(expected), value


caps = st.one_of(st.none(), st.decimals(min_value=0, max_value=10**9, places=2))


@FAST
@given(
    value=st.one_of(six_places, exact_halves).filter(lambda d: abs(d) < 10**12),
    cap=caps,
    factor=st.sampled_from(["1", "0.6", "0.35", "1.5"]),
)
def test_amount_is_rounded_half_up_then_capped(value: Decimal, cap: Decimal | None, factor: str) -> None:
    cap_yaml = "" if cap is None else f", cap: {cap}"
    p = policy(items=f"  - {{id: a, title: 事项, amount: revenue * {factor}{cap_yaml}}}\n")
    result = evaluate_item(p, p.items[0], {"uscc": "U1", "revenue": value})
    expected = half_up_to_fen(value * Decimal(factor))
    if cap is not None:
        expected = min(expected, cap)
    assert result.status == "eligible"
    assert result.amount == expected


def test_cap_applies_to_the_rounded_amount() -> None:
    p = policy(items="  - {id: a, title: 事项, amount: revenue, cap: 100.00}\n")
    amounts = {
        v: evaluate_item(p, p.items[0], {"uscc": "U", "revenue": Decimal(v)}).amount
        for v in ("99.994", "99.995", "100.004", "250")
    }
    assert amounts == {
        "99.994": Decimal("99.99"),
        "99.995": Decimal("100.00"),
        "100.004": Decimal("100.00"),
        "250": Decimal("100.00"),
    }


# --- NULL: missing data is not "no" -------------------------------------------------------------------------

# Conditions and their meaning in plain Python, over non-NULL values.
NULL_POLICY_CONDITIONS = {
    "big_or_any": ("employees > 10 or true", ("employees",), lambda r: True),
    "revenue_or_staff": (
        "revenue >= 1000000 or employees >= 50",
        ("employees", "revenue"),
        lambda r: r["revenue"] >= 1000000 or r["employees"] >= 50,
    ),
    "honest": ("not serious_dishonest", ("serious_dishonest",), lambda r: not r["serious_dishonest"]),
    "no_arrears_and_staff": (
        "not ui_arrears and employees < 300",
        ("employees", "ui_arrears"),
        lambda r: not r["ui_arrears"] and r["employees"] < 300,
    ),
}
SHARED = ("big_or_any", "revenue_or_staff")
ITEM = ("honest", "no_arrears_and_staff")


def _conditions_yaml(ids: tuple[str, ...]) -> str:
    return ", ".join(f'{{id: {c}, text: 条件, rule: "{NULL_POLICY_CONDITIONS[c][0]}"}}' for c in ids)


NULL_POLICY = policy(
    "nulls",
    conditions=_conditions_yaml(SHARED),
    items=f"  - id: grant\n    title: 补助\n    conditions: [{_conditions_yaml(ITEM)}]\n"
    "    amount: tax_paid * 0.5 + rd_expense * 0.1\n",
)


def or_null(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


rows = st.fixed_dictionaries(
    {
        "uscc": st.just("91430100MA4L000001"),
        "employees": or_null(st.integers(0, 400)),
        "revenue": or_null(st.decimals(min_value=0, max_value=3_000_000, places=2)),
        "serious_dishonest": or_null(st.booleans()),
        "ui_arrears": or_null(st.booleans()),
        "tax_paid": or_null(st.decimals(min_value=0, max_value=1_000_000, places=2)),
        "rd_expense": or_null(st.decimals(min_value=0, max_value=1_000_000, places=2)),
    }
)


def expected_result(row: Mapping[str, Any]) -> tuple[str, tuple[str, ...], tuple[str, ...], Decimal | None]:
    """(status, failed condition ids, missing fields, amount), straight from the words of Contract 1."""
    failed: list[str] = []
    missing: set[str] = set()
    for cid in (*SHARED, *ITEM):
        _rule, fields, holds = NULL_POLICY_CONDITIONS[cid]
        nulls = {f for f in fields if row[f] is None}
        if nulls:
            missing |= nulls  # unknown, whatever the rest of the expression says
        elif not holds(row):
            failed.append(cid)
    if failed:
        status = "near_miss" if len(failed) == 1 and not missing else "ineligible"
        return status, tuple(failed), tuple(sorted(missing)), None
    # Staff get every missing value at once: those of the unknown conditions and those of the amount.
    amount_nulls = {f for f in ("rd_expense", "tax_paid") if row[f] is None}
    if missing or amount_nulls:
        return "missing_data", (), tuple(sorted(missing | amount_nulls)), None
    return (
        "eligible",
        (),
        (),
        half_up_to_fen(row["tax_paid"] * Decimal("0.5") + row["rd_expense"] * Decimal("0.1")),
    )


@FAST
@given(rows)
def test_null_fields_make_conditions_unknown_and_the_enterprise_missing_data(row: dict[str, Any]) -> None:
    result = evaluate_item(NULL_POLICY, NULL_POLICY.items[0], row)
    assert (result.status, result.failed, result.missing, result.amount) == expected_result(row)


def full_row(**values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "uscc": "91430100MA4L000001",
        "employees": 20,
        "revenue": Decimal("2000000"),
        "serious_dishonest": False,
        "ui_arrears": False,
        "tax_paid": Decimal("1000"),
        "rd_expense": Decimal("100"),
    }
    row.update(values)
    return row


def result_of(row: dict[str, Any]) -> ItemResult:
    return evaluate_item(NULL_POLICY, NULL_POLICY.items[0], row)


def test_a_condition_that_names_a_null_field_is_unknown_even_when_the_rest_makes_it_true() -> None:
    result = result_of(full_row(employees=None))  # `employees > 10 or true` cannot be decided
    assert (result.status, result.missing) == ("missing_data", ("employees",))


def test_near_miss_is_one_false_condition_and_no_unknown_one() -> None:
    near = result_of(full_row(serious_dishonest=True))
    assert (near.status, near.failed, near.missing) == ("near_miss", ("honest",), ())
    with_unknown = result_of(full_row(serious_dishonest=True, revenue=None, employees=60))
    assert (with_unknown.status, with_unknown.failed) == ("ineligible", ("honest",))
    two_false = result_of(full_row(serious_dishonest=True, ui_arrears=True))
    assert (two_false.status, two_false.failed) == ("ineligible", ("honest", "no_arrears_and_staff"))


def test_an_eligible_enterprise_whose_amount_reads_null_is_missing_data_with_those_fields() -> None:
    result = result_of(full_row(tax_paid=None))
    assert (result.status, result.missing, result.amount) == ("missing_data", ("tax_paid",), None)
    both = result_of(full_row(employees=None, tax_paid=None))
    assert (both.status, both.missing) == ("missing_data", ("employees", "tax_paid"))
    assert result_of(full_row()).amount == Decimal("510.00")


# --- allocation ----------------------------------------------------------------------------------------------

USCCS = [f"91430100MA4L{n:06d}" for n in range(8)]


def eligible(policy_id: str, item_id: str, uscc: str, amount: Decimal) -> ItemResult:
    return ItemResult(policy_id, item_id, uscc, "eligible", (), (), amount)


money = st.decimals(min_value=Decimal("0.01"), max_value=1_000_000, places=2)
pairs = st.dictionaries(st.tuples(st.sampled_from(USCCS), st.sampled_from(["a", "b"])), money, min_size=1)
TWO_ITEMS = "  - {id: a, title: 甲, amount: revenue}\n  - {id: b, title: 乙, amount: revenue}\n"
UNLIMITED = policy(items=TWO_ITEMS)  # no budget, no group: only paid pairs can drop a pair


def fen(value: Decimal) -> int:
    return int(value * 100)


@FAST
@given(amounts=pairs, budget=st.decimals(min_value=0, max_value=3_000_000, places=2))
def test_pro_rata_never_exceeds_the_budget_and_pays_each_its_floor_share(
    amounts: dict[tuple[str, str], Decimal], budget: Decimal
) -> None:
    p = policy(items=TWO_ITEMS, extra=f"budget: {budget}\nallocation: pro_rata\n")
    results = [eligible("p", item, uscc, a) for (uscc, item), a in amounts.items()]
    paid = {(c.uscc, c.item_id): c.amount for c in allocate([p], results)}
    total = sum(amounts.values(), Decimal(0))
    assert paid.keys() == amounts.keys()
    if total > budget:
        assert sum(paid.values(), Decimal(0)) <= budget
    for key, amount in amounts.items():
        expected = amount if total <= budget else Decimal(fen(amount) * fen(budget) // fen(total)).scaleb(-2)
        assert paid[key] == expected


@FAST
@given(
    amounts=pairs,
    ranks=st.dictionaries(st.sampled_from(USCCS), st.integers(0, 3).map(Decimal)),
    budget=st.decimals(min_value=0, max_value=3_000_000, places=2),
)
def test_rank_pays_in_full_highest_first_and_stops_at_the_first_that_does_not_fit(
    amounts: dict[tuple[str, str], Decimal], ranks: dict[str, Decimal], budget: Decimal
) -> None:
    ranks = {u: ranks.get(u, Decimal(0)) for u in USCCS}
    p = policy(items=TWO_ITEMS, extra=f"budget: {budget}\nallocation: rank\nrank_by: employees\n")
    results = [eligible("p", item, uscc, a) for (uscc, item), a in amounts.items()]
    candidates = allocate([p], results, rank_values={("p", u): r for u, r in ranks.items()})
    order = sorted(amounts, key=lambda k: (-ranks[k[0]], k[0], k[1]))  # ties by uscc, then item_id
    paid = [(c.uscc, c.item_id) for c in candidates]
    assert all(c.amount == c.amount_before_allocation for c in candidates)  # in full
    assert set(paid) == set(order[: len(paid)])  # a prefix of the ranking
    spent = sum((c.amount for c in candidates), Decimal(0))
    assert spent <= budget
    if len(paid) < len(order):
        assert amounts[order[len(paid)]] > budget - spent  # stopped at the first that no longer fits


def test_rank_stops_even_when_a_later_smaller_pair_would_fit() -> None:
    p = policy(items=TWO_ITEMS, extra="budget: 100\nallocation: rank\nrank_by: employees\n")
    results = [
        eligible("p", "a", USCCS[0], Decimal(60)),
        eligible("p", "a", USCCS[1], Decimal(50)),
        eligible("p", "a", USCCS[2], Decimal(10)),
    ]
    ranks = {("p", USCCS[0]): Decimal(3), ("p", USCCS[1]): Decimal(2), ("p", USCCS[2]): Decimal(1)}
    assert [c.uscc for c in allocate([p], results, rank_values=ranks)] == [USCCS[0]]


GROUPED = [
    policy("p1", items=TWO_ITEMS, extra="exclusive_group: g\n"),
    policy("p2", items="  - {id: a, title: 甲, amount: revenue}\n", extra="exclusive_group: g\n"),
    policy(
        "p3",
        items="  - {id: x, title: 甲, amount: revenue, exclusive_group: g}\n  - {id: y, title: 乙, amount: revenue}\n",
    ),
]
IN_GROUP = [("p1", "a"), ("p1", "b"), ("p2", "a"), ("p3", "x")]


@FAST
@given(
    st.dictionaries(
        st.tuples(st.sampled_from(USCCS[:3]), st.sampled_from([*IN_GROUP, ("p3", "y")])),
        st.sampled_from([Decimal(100), Decimal(200), Decimal(300)]),  # few values, many ties
        min_size=1,
    )
)
def test_exclusive_group_keeps_the_highest_amount_ties_to_the_smallest_policy_and_item(
    amounts: dict[tuple[str, tuple[str, str]], Decimal],
) -> None:
    results = [eligible(pid, item, uscc, a) for (uscc, (pid, item)), a in amounts.items()]
    kept = {(c.uscc, c.policy_id, c.item_id) for c in allocate(GROUPED, results)}
    for uscc in USCCS[:3]:
        group = [(-a, pair) for (u, pair), a in amounts.items() if u == uscc and pair in IN_GROUP]
        expected = {(uscc, *min(group)[1])} if group else set()
        assert {k for k in kept if k[0] == uscc and k[1:] in IN_GROUP} == expected
        if (uscc, ("p3", "y")) in amounts:  # outside the group: always kept
            assert (uscc, "p3", "y") in kept


@FAST
@given(
    st.dictionaries(st.tuples(st.sampled_from(USCCS), st.sampled_from(["a", "b"])), money, min_size=1),
    st.lists(
        st.tuples(
            st.sampled_from(USCCS), st.sampled_from(["a", "b"]), st.sampled_from(["2025", "2024", "2025-H1"])
        )
    ),
)
def test_pairs_already_paid_for_the_period_are_dropped_and_other_periods_are_not(
    amounts: dict[tuple[str, str], Decimal], paid: list[tuple[str, str, str]]
) -> None:
    payments = [Payment(uscc, "p", item, period) for uscc, item, period in paid]
    results = [eligible("p", item, uscc, a) for (uscc, item), a in amounts.items()]
    kept = {(c.uscc, c.item_id) for c in allocate([UNLIMITED], results, payments)}
    already = {(uscc, item) for uscc, item, period in paid if period == "2025"}
    assert kept == set(amounts) - already


def test_a_payment_under_another_policy_or_item_does_not_drop_the_pair() -> None:
    results = [eligible("p", "a", USCCS[0], Decimal(10))]
    payments = [Payment(USCCS[0], "other", "a", "2025"), Payment(USCCS[0], "p", "b", "2025")]
    assert [c.item_id for c in allocate([UNLIMITED], results, payments)] == ["a"]


def test_paid_pairs_are_dropped_before_exclusive_groups_are_settled() -> None:
    results = [eligible("p1", "a", USCCS[0], Decimal(300)), eligible("p2", "a", USCCS[0], Decimal(100))]
    payments = [Payment(USCCS[0], "p1", "a", "2025")]
    assert [(c.policy_id, c.amount) for c in allocate(GROUPED, results, payments)] == [("p2", Decimal(100))]


def test_budget_is_shared_only_by_the_pairs_that_survive_exclusivity() -> None:
    budgeted = policy(
        "p2",
        items="  - {id: a, title: 甲, amount: revenue}\n",
        extra="exclusive_group: g\nbudget: 100\nallocation: pro_rata\n",
    )
    policies = [GROUPED[0], budgeted]
    results = [
        eligible("p1", "a", USCCS[0], Decimal(500)),  # beats p2 for USCCS[0]
        eligible("p2", "a", USCCS[0], Decimal(100)),
        eligible("p2", "a", USCCS[1], Decimal(100)),
    ]
    got = {(c.policy_id, c.uscc): c.amount for c in allocate(policies, results)}
    assert got == {("p1", USCCS[0]): Decimal(500), ("p2", USCCS[1]): Decimal(100)}


def test_capped_amounts_decide_exclusive_groups() -> None:
    capped = policy(
        "p1", items="  - {id: a, title: 甲, amount: revenue, cap: 500}\n", extra="exclusive_group: g\n"
    )
    other = policy(
        "p2", items="  - {id: a, title: 甲, amount: revenue * 0.6}\n", extra="exclusive_group: g\n"
    )
    row = {"uscc": USCCS[0], "revenue": Decimal(1000)}
    candidates = allocate([capped, other], evaluate([capped, other], [row]))
    assert [(c.policy_id, c.amount) for c in candidates] == [("p2", Decimal("600.00"))]


def test_allocation_none_keeps_amounts_over_budget() -> None:
    p = policy(items=TWO_ITEMS, extra="budget: 10\nallocation: none\n")
    results = [eligible("p", "a", u, Decimal(8)) for u in USCCS[:3]]
    candidates: list[Candidate] = allocate([p], results)
    assert [c.amount for c in candidates] == [Decimal(8)] * 3


def test_only_eligible_results_become_candidates() -> None:
    p = policy(conditions="{id: staff, text: 人数, rule: employees >= 10}")
    rows = [
        {"uscc": USCCS[0], "employees": 10, "revenue": Decimal("1.005")},
        {"uscc": USCCS[1], "employees": 9, "revenue": Decimal(5)},
        {"uscc": USCCS[2], "employees": None, "revenue": Decimal(5)},
    ]
    results = evaluate([p], rows)
    assert [r.status for r in results] == ["eligible", "near_miss", "missing_data"]
    assert [(c.uscc, c.amount) for c in allocate([p], results)] == [(USCCS[0], Decimal("1.01"))]
