"""Why an enterprise is, or is not, a candidate: every condition with its text, clause, values and verdict.

The explanation uses the reference evaluation (`rules.reference`) over the enterprise's profile row, the
same semantics the compiled SQL is tested against.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from matcher.profile import build_profile, profile_row
from rules.policy import Item, Policy
from rules.reference import ItemResult, Verdict, evaluate_item, verdicts


@dataclass(frozen=True)
class ItemExplanation:
    policy: Policy
    item: Item
    verdicts: list[Verdict]
    result: ItemResult


def explain(
    con: duckdb.DuckDBPyConnection, policies: list[Policy], as_of: dt.date, uscc: str
) -> list[ItemExplanation] | None:
    """Per active item, the verdict of every condition for one enterprise; None if it has no profile row."""
    out: list[ItemExplanation] = []
    tables: dict[int, str] = {}
    for policy in policies:
        year = policy.assessment_year
        if year not in tables:
            tables[year] = build_profile(con, year, as_of)
        row = profile_row(con, tables[year], uscc)
        if row is None:
            return None
        for item in policy.items:
            result = evaluate_item(policy, item, row)
            out.append(ItemExplanation(policy, item, verdicts(policy, item, row), result))
    return out
