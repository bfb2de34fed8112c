"""The match plan: every active policy item as one sqlglot tree over the profile, then allocation.

The plan is dialect-neutral: DuckDB runs it here, and Spark SQL can run the same trees (see
`render`). Stage 1 (`results_query`) evaluates every item's conditions and amount over the profile in
one statement and keeps only the rows that matter (eligible, near-miss, missing data). Stage 2
(`candidates_query`) drops already-paid pairs, applies exclusive groups and budgets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from matcher.compile import amount_sql, condition_sql, numeric_sql
from rules.expressions import parse
from rules.policy import Condition, Item, Policy

TEXT = exp.DataType.build("VARCHAR")
MONEY = exp.DataType.build("DECIMAL(18, 2)")
RANK = exp.DataType.build("DECIMAL(38, 10)")
BIG_INT = exp.DataType.build("INT128")  # exact integer fen products; Spark renders DECIMAL(38, 0)


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table)


def _lit(value: str | None) -> exp.Expression:
    return exp.null() if value is None else exp.Literal.string(value)


def _sum(terms: list[exp.Expression]) -> exp.Expression:
    if not terms:
        return exp.Literal.number(0)
    out = terms[0]
    for t in terms[1:]:
        out = exp.Add(this=out, expression=t)
    return out


def _when(cond: exp.Expression, then: exp.Expression, default: exp.Expression | None = None) -> exp.Case:
    return exp.Case(ifs=[exp.If(this=cond, true=then)], default=default)


def _concat(parts: Sequence[exp.Expression]) -> exp.Expression:
    """Text concatenation of non-NULL parts (`||`; every part is COALESCEd by the callers)."""
    if not parts:
        return exp.Literal.string("")
    out = parts[0]
    for p in parts[1:]:
        out = exp.DPipe(this=out, expression=p, safe=True)
    return out


def _null_fields(fields: list[str]) -> exp.Expression:
    """'a;b': the names of the given fields that are NULL in this row."""
    flags = [
        exp.Coalesce(
            this=_when(exp.Is(this=_col(f), expression=exp.null()), exp.Literal.string(f";{f}")),
            expressions=[exp.Literal.string("")],
        )
        for f in fields
    ]
    return exp.Substring(this=_concat(flags), start=exp.Literal.number(2))


def _value_text(fields: tuple[str, ...]) -> exp.Expression:
    """'field=value; ...' for the fields a condition read."""
    parts: list[exp.Expression] = []
    for n, f in enumerate(fields):
        label = f"{'; ' if n else ''}{f}="
        value = exp.Coalesce(this=exp.cast(_col(f), TEXT), expressions=[exp.Literal.string("NULL")])
        parts += [exp.Literal.string(label), value]
    return _concat(parts)


@dataclass(frozen=True)
class ItemPlan:
    policy: Policy
    item: Item

    @property
    def conditions(self) -> list[Condition]:
        return [*self.policy.conditions, *self.item.conditions]

    def condition_fields(self) -> list[str]:
        return sorted({f for c in self.conditions for f in parse(c.rule).fields})

    def amount_fields(self) -> list[str]:
        return list(parse(self.item.amount).fields)

    def select(self, profile: str) -> exp.Select:
        """One item over the profile: the rows that are eligible, a near-miss or missing data.

        Three levels, so each expression is written once: the conditions (k0..kn, three-valued) and the
        amount; their counts of false and unknown; then the rows worth keeping and what to say of them.
        """
        conds = self.conditions
        fields = sorted({*self.condition_fields(), *self.amount_fields()})
        inner_cols: list[exp.Expr] = [_col("uscc"), *[_col(f) for f in fields if f != "uscc"]]
        inner_cols += [exp.alias_(condition_sql(c.rule), f"k{n}", copy=False) for n, c in enumerate(conds)]
        inner_cols.append(exp.alias_(amount_sql(self.item), "amount", copy=False))
        rank = numeric_sql(self.policy.rank_by) if self.policy.rank_by is not None else exp.null()
        inner_cols.append(exp.alias_(exp.cast(rank, RANK, copy=False), "rank_value", copy=False))
        inner = exp.Select(expressions=inner_cols, from_=exp.From(this=exp.to_table(profile)))

        ks = [_col(f"k{n}") for n in range(len(conds))]
        one, zero = exp.Literal.number(1), exp.Literal.number(0)
        n_false = _sum([_when(exp.Not(this=k), one.copy(), zero.copy()) for k in ks])
        n_unknown = _sum(
            [_when(exp.Is(this=k.copy(), expression=exp.null()), one.copy(), zero.copy()) for k in ks]
        )
        counted = exp.Select(
            expressions=[
                exp.Star(),
                exp.alias_(n_false, "n_false", copy=False),
                exp.alias_(n_unknown, "n_unknown", copy=False),
            ],
            from_=exp.From(this=exp.alias_(exp.Subquery(this=inner), "m", table=True, copy=False)),
        )

        def first_false(value: Callable[[Condition], exp.Expression]) -> exp.Expression:
            if not conds:
                return exp.null()
            return exp.Case(
                ifs=[exp.If(this=exp.Not(this=_col(f"k{n}")), true=value(c)) for n, c in enumerate(conds)]
            )

        status = exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=_col("n_false"), expression=one.copy()),
                    true=exp.Literal.string("near_miss"),
                ),
                exp.If(
                    this=exp.GT(this=_col("n_unknown"), expression=zero.copy()),
                    true=exp.Literal.string("missing_data"),
                ),
                exp.If(
                    this=exp.Is(this=_col("amount"), expression=exp.null()),
                    true=exp.Literal.string("missing_data"),
                ),
            ],
            default=exp.Literal.string("eligible"),
        )
        # Missing data lists the NULL fields of the unknown conditions and of the amount.
        missing = _when(
            exp.EQ(this=status.copy(), expression=exp.Literal.string("missing_data")), _null_fields(fields)
        )
        keep = exp.Or(
            this=exp.EQ(this=_col("n_false"), expression=zero.copy()),
            expression=exp.Paren(
                this=exp.And(
                    this=exp.EQ(this=_col("n_false"), expression=one.copy()),
                    expression=exp.EQ(this=_col("n_unknown"), expression=zero.copy()),
                )
            ),
        )
        group = self.policy.group_of(self.item)
        columns = [
            exp.alias_(_lit(self.policy.id), "policy_id", copy=False),
            exp.alias_(exp.Literal.number(self.policy.version), "policy_version", copy=False),
            exp.alias_(_lit(self.item.id), "item_id", copy=False),
            exp.alias_(_lit(self.policy.period), "period", copy=False),
            exp.alias_(exp.cast(_lit(group), TEXT, copy=False), "grp", copy=False),
            _col("uscc"),
            exp.alias_(status, "status", copy=False),
            exp.alias_(
                exp.cast(first_false(lambda c: exp.Literal.string(c.id)), TEXT, copy=False),
                "condition_id",
                copy=False,
            ),
            exp.alias_(
                exp.cast(first_false(lambda c: _value_text(parse(c.rule).fields)), TEXT, copy=False),
                "value",
                copy=False,
            ),
            exp.alias_(missing, "fields", copy=False),
            exp.alias_(exp.cast(_col("amount"), MONEY, copy=False), "amount", copy=False),
            _col("rank_value"),
        ]
        return exp.Select(
            expressions=columns,
            where=exp.Where(this=keep),
            from_=exp.From(this=exp.alias_(exp.Subquery(this=counted), "c", table=True, copy=False)),
        )


def item_plans(policies: list[Policy]) -> list[ItemPlan]:
    return [ItemPlan(p, i) for p in sorted(policies, key=lambda p: p.id) for i in p.items]


def results_query(plans: list[ItemPlan], profile_for: dict[int, str]) -> exp.Expression:
    """Every item's interesting rows, as one UNION ALL over the profiles of the policies' assessment years."""
    selects = [p.select(profile_for[p.policy.assessment_year]) for p in plans]
    if not selects:
        raise ValueError("no items to match")
    out: exp.Expression = selects[0]
    for s in selects[1:]:
        out = exp.Union(this=out, expression=s, distinct=False)
    return out


def budgets_values(policies: list[Policy]) -> exp.Expression:
    """A VALUES table of (policy_id, budget, allocation) for every policy."""
    rows = [
        exp.Tuple(
            expressions=[
                exp.Literal.string(p.id),
                exp.cast(
                    exp.null() if p.budget is None else exp.Literal.number(format(p.budget, "f")), MONEY
                ),
                exp.Literal.string(p.allocation),
            ]
        )
        for p in policies
    ]
    return exp.Values(
        expressions=rows,
        alias=exp.TableAlias(
            this=exp.to_identifier("b"),
            columns=[exp.to_identifier(c) for c in ("policy_id", "budget", "allocation")],
        ),
    )


# Stage 2, over the stage-1 results (`:results`) and the payments already made (`:payments`).
_CANDIDATES = """
WITH unpaid AS (
  SELECT r.policy_id, r.policy_version, r.item_id, r.uscc, r.grp, r.amount, r.rank_value
  FROM :results AS r
  WHERE r.status = 'eligible'
    AND NOT EXISTS (
      SELECT 1 FROM :payments AS p
      WHERE p.uscc = r.uscc AND p.policy_id = r.policy_id AND p.item_id = r.item_id AND p.period = r.period)
), kept AS (
  SELECT policy_id, policy_version, item_id, uscc, amount, rank_value FROM unpaid WHERE grp IS NULL
  UNION ALL
  SELECT policy_id, policy_version, item_id, uscc, amount, rank_value FROM (
    SELECT u.*,
      ROW_NUMBER() OVER (PARTITION BY u.uscc, u.grp ORDER BY u.amount DESC, u.policy_id, u.item_id) AS grp_rank
    FROM unpaid AS u WHERE u.grp IS NOT NULL
  ) AS g WHERE grp_rank = 1
), totals AS (
  SELECT k.policy_id, SUM(k.amount) AS total, MAX(b.budget) AS budget, MAX(b.allocation) AS allocation
  FROM kept AS k JOIN :budgets ON b.policy_id = k.policy_id
  GROUP BY k.policy_id
), ranked AS (
  SELECT k.policy_id, k.item_id, k.uscc,
    SUM(k.amount) OVER (
      PARTITION BY k.policy_id ORDER BY k.rank_value DESC NULLS LAST, k.uscc, k.item_id
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
  FROM kept AS k JOIN totals AS t ON t.policy_id = k.policy_id
  WHERE t.allocation = 'rank' AND t.total > t.budget
)
SELECT k.policy_id, k.policy_version, k.item_id, k.uscc,
  CASE
    WHEN t.budget IS NULL OR t.allocation <> 'pro_rata' OR t.total <= t.budget THEN k.amount
    ELSE CAST(CAST(
      CAST(k.amount * 100 AS INT128) * CAST(t.budget * 100 AS INT128) // CAST(t.total * 100 AS INT128)
      AS DECIMAL(38, 0)) * 0.01 AS DECIMAL(18, 2))
  END AS amount,
  k.amount AS amount_before_allocation
FROM kept AS k
JOIN totals AS t ON t.policy_id = k.policy_id
LEFT JOIN ranked AS r ON r.policy_id = k.policy_id AND r.item_id = k.item_id AND r.uscc = k.uscc
WHERE r.running IS NULL OR r.running <= t.budget
ORDER BY k.policy_id, k.item_id, k.uscc
"""


def candidates_query(results: str, payments: str, policies: list[Policy]) -> exp.Expression:
    """Candidates after already-paid pairs, exclusive groups and budgets (DESIGN.md, in that order)."""
    tree = sqlglot.parse_one(_CANDIDATES, read="duckdb")
    values: dict[str, exp.Expression] = {
        "results": exp.to_table(results),
        "payments": exp.to_table(payments),
        "budgets": budgets_values(policies),
    }

    def fill(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name in values:
            return values[node.name].copy()
        return node

    return tree.transform(fill)
