"""Impact simulation for policy departments: what a new version changes, before it is published.

Runs the plan for the new version and for the old one (or none) over the same profile and compares:
enterprises gained and lost, money, and the breakdown by prefecture, industry section and size class.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import duckdb

from matcher.duckdb_engine import match_profiles
from matcher.profile import build_profile
from rules.policy import Policy

DIMENSIONS = {
    "region": "SUBSTRING(p.region_code, 1, 4) || '00'",
    "industry_section": "p.industry_section",
    "size_class": "p.size_class",
}


@dataclass(frozen=True)
class Impact:
    """Enterprises and money under the old and the new version, and who moves."""

    old_enterprises: int
    new_enterprises: int
    gained: int
    lost: int
    old_amount: Decimal
    new_amount: Decimal
    breakdown: dict[
        str, list[tuple[str | None, int, int, Decimal, Decimal]]
    ]  # key, old n, new n, old ¥, new ¥

    @property
    def delta_amount(self) -> Decimal:
        return self.new_amount - self.old_amount


def _candidates_into(con: duckdb.DuckDBPyConnection, policy: Policy | None, profile: str, table: str) -> None:
    if policy is None:
        con.execute(f"CREATE OR REPLACE TABLE {table} (uscc VARCHAR, amount DECIMAL(18, 2))")
        return
    match_profiles(con, [policy], {policy.assessment_year: profile})
    con.execute(
        f"CREATE OR REPLACE TABLE {table} AS SELECT uscc, sum(amount) AS amount FROM candidates GROUP BY uscc"
    )


def simulate(con: duckdb.DuckDBPyConnection, new: Policy, old: Policy | None, as_of: dt.date) -> Impact:
    """Compare `new` against `old` (None: against no policy) on the snapshot loaded in `con`."""
    profile = build_profile(con, new.assessment_year, as_of)
    _candidates_into(con, new, profile, "sim_new")
    old_profile = (
        profile
        if old is None or old.assessment_year == new.assessment_year
        else build_profile(con, old.assessment_year, as_of)
    )
    _candidates_into(con, old, old_profile, "sim_old")
    (old_n, new_n, gained, lost, old_amount, new_amount) = con.execute(
        """
        SELECT count(o.uscc), count(n.uscc),
          count(*) FILTER (WHERE o.uscc IS NULL), count(*) FILTER (WHERE n.uscc IS NULL),
          coalesce(sum(o.amount), 0), coalesce(sum(n.amount), 0)
        FROM sim_old o FULL JOIN sim_new n ON n.uscc = o.uscc
        """
    ).fetchall()[0]
    breakdown = {}
    for name, key in DIMENSIONS.items():
        breakdown[name] = con.execute(
            f"""
            SELECT {key} AS k, count(o.uscc), count(n.uscc), coalesce(sum(o.amount), 0), coalesce(sum(n.amount), 0)
            FROM sim_old o FULL JOIN sim_new n ON n.uscc = o.uscc
            JOIN {profile} p ON p.uscc = coalesce(n.uscc, o.uscc)
            GROUP BY k ORDER BY k NULLS LAST
            """
        ).fetchall()
    return Impact(old_n, new_n, gained, lost, old_amount, new_amount, breakdown)
