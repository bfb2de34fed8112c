"""The reference semantics: per-enterprise evaluation with rule-engine, exactly as docs/contracts.md#semantics defines it.

This is the oracle the vectorized matcher is tested against, so it is small and plain:
- a condition that names a NULL field is unknown, whatever the rest of the expression says;
- eligible when every shared and item condition is true; missing data when none is false but some
  are unknown or the amount reads a NULL field (listing the NULL fields of both); a near-miss when
  exactly one is false and none unknown;
- the amount is rounded half-up to the fen, then capped;
- then, over all enterprises: already-paid pairs dropped, exclusive groups, budgets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from rules.expressions import parse
from rules.policy import Condition, Item, Policy

FEN = Decimal("0.01")
Status = Literal["eligible", "near_miss", "missing_data", "ineligible"]
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    """One condition's outcome for one enterprise: True, False or None (unknown), and the fields it read."""

    condition: Condition
    value: bool | None
    missing: tuple[str, ...]
    read: dict[str, Any]


@dataclass(frozen=True)
class ItemResult:
    """One (policy, item, enterprise) before exclusivity and budgets."""

    policy_id: str
    item_id: str
    uscc: str
    status: Status
    failed: tuple[str, ...]
    missing: tuple[str, ...]
    amount: Decimal | None


@dataclass(frozen=True)
class Candidate:
    """An eligible (policy, item, enterprise) after paid-pairs, exclusivity and budget."""

    policy_id: str
    policy_version: int
    item_id: str
    uscc: str
    amount: Decimal
    amount_before_allocation: Decimal


def round_fen(value: Decimal) -> Decimal:
    return value.quantize(FEN, rounding=ROUND_HALF_UP)


def evaluate_condition(condition: Condition, row: Row) -> Verdict:
    expr = parse(condition.rule)
    read = {f: row.get(f) for f in expr.fields}
    missing = tuple(f for f in expr.fields if read[f] is None)
    if missing:
        return Verdict(condition, None, missing, read)
    return Verdict(condition, bool(expr.rule.evaluate(dict(row))), (), read)


def evaluate_amount(item: Item, row: Row) -> tuple[Decimal | None, tuple[str, ...]]:
    """The amount to the fen, capped; or None and the NULL fields it needs."""
    expr = parse(item.formula)
    missing = tuple(f for f in expr.fields if row.get(f) is None)
    if missing:
        return None, missing
    amount = round_fen(Decimal(expr.rule.evaluate(dict(row))))
    if item.cap is not None and amount > item.cap:
        amount = item.cap
    return amount, ()


def verdicts(policy: Policy, item: Item, row: Row) -> list[Verdict]:
    return [evaluate_condition(c, row) for c in (*policy.conditions, *item.conditions)]


def evaluate_item(policy: Policy, item: Item, row: Row) -> ItemResult:
    vs = verdicts(policy, item, row)
    failed = tuple(v.condition.id for v in vs if v.value is False)
    missing = tuple(sorted({f for v in vs for f in v.missing}))
    uscc = str(row["uscc"])

    def result(status: Status, amount: Decimal | None = None, miss: tuple[str, ...] = missing) -> ItemResult:
        return ItemResult(policy.id, item.id, uscc, status, failed, miss, amount)

    if failed:
        return result("near_miss" if len(failed) == 1 and not missing else "ineligible")
    amount, amount_missing = evaluate_amount(item, row)
    if missing or amount is None:
        # Staff need every missing value at once: those of the unknown conditions and of the amount.
        return result("missing_data", miss=tuple(sorted({*missing, *amount_missing})))
    return result("eligible", amount)


def evaluate(policies: Iterable[Policy], rows: Iterable[Row]) -> list[ItemResult]:
    """Every (policy, item, enterprise) result."""
    policies = list(policies)
    return [evaluate_item(p, i, row) for row in rows for p in policies for i in p.items]


@dataclass(frozen=True)
class Payment:
    """A payout already made (outside this system or by it): the pair is not paid again for that period."""

    uscc: str
    policy_id: str
    item_id: str
    period: str


def allocate(
    policies: Sequence[Policy],
    results: Iterable[ItemResult],
    payments: Iterable[Payment] = (),
    rank_values: Mapping[tuple[str, str], Decimal | None] | None = None,
) -> list[Candidate]:
    """From eligible results to candidates: drop paid pairs, keep the best of each exclusive group, fit budgets.

    `rank_values` maps (policy_id, uscc) to the policy's rank_by value, for `allocation: rank`.
    """
    by_id = {p.id: p for p in policies}
    paid = {(x.uscc, x.policy_id, x.item_id, x.period) for x in payments}
    eligible = [
        r
        for r in results
        if r.status == "eligible" and (r.uscc, r.policy_id, r.item_id, by_id[r.policy_id].period) not in paid
    ]

    # Exclusive groups: per enterprise and group, only the highest amount; ties to the smallest (policy, item).
    best: dict[tuple[str, str], ItemResult] = {}
    kept: list[ItemResult] = []
    for r in eligible:
        policy = by_id[r.policy_id]
        group = policy.group_of(policy.item(r.item_id))
        if group is None:
            kept.append(r)
            continue
        key = (r.uscc, group)
        cur = best.get(key)
        assert r.amount is not None
        if cur is None or (-r.amount, r.policy_id, r.item_id) < (
            -(cur.amount or 0),
            cur.policy_id,
            cur.item_id,
        ):
            best[key] = r
    kept.extend(best.values())

    per_policy: dict[str, list[ItemResult]] = defaultdict(list)
    for r in kept:
        per_policy[r.policy_id].append(r)
    out: list[Candidate] = []
    for pid, rs in per_policy.items():
        policy = by_id[pid]
        amounts = {(r.item_id, r.uscc): r.amount or Decimal(0) for r in rs}
        paid_amounts = _fit_budget(policy, rs, amounts, rank_values or {})
        for r in rs:
            key = (r.item_id, r.uscc)
            if key in paid_amounts:
                out.append(Candidate(pid, policy.version, r.item_id, r.uscc, paid_amounts[key], amounts[key]))
    return sorted(out, key=lambda c: (c.policy_id, c.item_id, c.uscc))


def _fit_budget(
    policy: Policy,
    rs: list[ItemResult],
    amounts: dict[tuple[str, str], Decimal],
    rank_values: Mapping[tuple[str, str], Decimal | None],
) -> dict[tuple[str, str], Decimal]:
    total = sum(amounts.values(), Decimal(0))
    if policy.budget is None or policy.allocation == "none" or total <= policy.budget:
        return dict(amounts)
    if policy.allocation == "pro_rata":
        budget_fen, total_fen = int(policy.budget * 100), int(total * 100)
        return {k: Decimal(int(a * 100) * budget_fen // total_fen).scaleb(-2) for k, a in amounts.items()}

    # rank: highest rank_by first, ties by uscc then item_id; pay in full until the first that does not fit.
    def order(r: ItemResult) -> tuple[int, Decimal, str, str]:
        v = rank_values.get((r.policy_id, r.uscc))
        return (v is None, -(v or Decimal(0)), r.uscc, r.item_id)

    out: dict[tuple[str, str], Decimal] = {}
    left = policy.budget
    for r in sorted(rs, key=order):
        a = amounts[(r.item_id, r.uscc)]
        if a > left:
            break
        out[(r.item_id, r.uscc)] = a
        left -= a
    return out


def over_budget(policy: Policy, candidates: Iterable[Candidate]) -> bool:
    """A run of an `allocation: none` policy whose total exceeds the budget cannot be published."""
    total = sum((c.amount for c in candidates if c.policy_id == policy.id), Decimal(0))
    return policy.budget is not None and total > policy.budget
