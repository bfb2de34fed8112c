"""The match plan: every active policy item as a sqlglot tree over the profile, then allocation.

The plan is dialect-neutral: DuckDB runs it (matcher/duckdb_engine.py) and Spark SQL runs the same trees
(matcher/spark_engine.py). Stage 1 (`results_query`) evaluates every item's conditions over the profile
and keeps only the rows that matter (eligible, near-miss, missing data), narrow and integer-coded.
Stage 2 (`candidates_query`) drops already-paid pairs, applies exclusive groups and budgets. The views
`results_view` and `candidates_view` give them back their texts (Contract 4) when the outputs are written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from matcher.compile import amount_value, condition_sql, numeric_sql
from rules.expressions import parse
from rules.policy import Condition, Item, Policy

TEXT = exp.DataType.build("VARCHAR")
MONEY = exp.DataType.build("DECIMAL(18, 2)")
RANK = exp.DataType.build("DECIMAL(38, 10)")


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


def _null_fields(fields: list[str], table: str) -> exp.Expression:
    """'a;b': the names of the given fields that are NULL in this row."""
    flags = [
        exp.Coalesce(
            this=_when(exp.Is(this=_col(f, table), expression=exp.null()), exp.Literal.string(f";{f}")),
            expressions=[exp.Literal.string("")],
        )
        for f in fields
    ]
    return exp.Substring(this=_concat(flags), start=exp.Literal.number(2))


def _value_text(fields: tuple[str, ...], table: str) -> exp.Expression:
    """'field=value; ...' for the fields a condition read."""
    parts: list[exp.Expression] = []
    for n, f in enumerate(fields):
        label = f"{'; ' if n else ''}{f}="
        value = exp.Coalesce(
            this=exp.cast(_col(f, table), TEXT, copy=False), expressions=[exp.Literal.string("NULL")]
        )
        parts += [exp.Literal.string(label), value]
    return _concat(parts)


def _int(value: exp.Expression) -> exp.Expression:
    return exp.cast(value, "INT", copy=False)


def _any(parts: list[exp.Expression]) -> exp.Expression:
    if not parts:
        return exp.false()
    out = parts[0]
    for p in parts[1:]:
        out = exp.Or(this=out, expression=p)
    return exp.Paren(this=out)


# Status codes of the `matches` table; the `results` view spells them out.
ELIGIBLE, NEAR_MISS, MISSING_DATA = 0, 1, 2
STATUS = {ELIGIBLE: "eligible", NEAR_MISS: "near_miss", MISSING_DATA: "missing_data"}

# The tables and views an engine builds, in this order: enterprise numbers (`rid`) by USCC, the profiles
# keyed by them (`keyed_<year>`), the items, stage 1 into `matches`, stage 2 into `allocated`; then the
# Contract 4 views `results` and `candidates` over them, with the texts, read when the outputs are written.
KEYS, ITEMS, MATCHES, ALLOCATED = "match_keys", "match_items", "matches", "allocated"


def keyed_name(profile: str) -> str:
    return f"keyed_{profile}"


@dataclass(frozen=True)
class ItemPlan:
    policy: Policy
    item: Item
    no: int  # the item's number: its place in (policy_id, item_id) order

    @property
    def conditions(self) -> list[Condition]:
        return [*self.policy.conditions, *self.item.conditions]

    def condition_fields(self) -> list[str]:
        return sorted({f for c in self.conditions for f in parse(c.rule).fields})

    def amount_fields(self) -> list[str]:
        return list(parse(self.item.amount).fields)

    def fields(self) -> list[str]:
        return sorted({*self.condition_fields(), *self.amount_fields()})

    def select(self, profile: str) -> exp.Select:
        """One item over a keyed profile: the rows that are eligible, a near-miss or missing data, narrow.

        (item, rid, status code, number of the failing condition, amount, rank value). Three levels, so
        each expression is written once: the conditions k0..kn (three-valued); their conjunction and the
        count of those that hold; the rows worth keeping (none fails, or exactly one fails and none is
        unknown). The amount and rank value are computed for eligible rows only. Everything but those
        two is logic and arithmetic: a CASE costs DuckDB several times more.
        """
        conds = self.conditions
        passed = sorted({*self.amount_fields(), *self._rank_fields()})
        inner_cols: list[exp.Expr] = [_col("rid"), *[_col(f) for f in passed]]
        inner_cols += [exp.alias_(condition_sql(c.rule), f"k{n}", copy=False) for n, c in enumerate(conds)]
        inner = exp.Select(expressions=inner_cols, from_=exp.From(this=exp.to_table(profile)))

        ks = [_col(f"k{n}") for n in range(len(conds))]
        # every: TRUE when every condition holds, FALSE when one fails, NULL when none fails but one is
        # unknown. trues: how many hold, NULL when one is unknown.
        every: exp.Expr = exp.true()
        if ks:
            every = exp.and_(*[k.copy() for k in ks])
        trues = _sum([_int(k.copy()) for k in ks])
        one_false = exp.EQ(this=_col("trues"), expression=exp.Literal.number(len(conds) - 1))
        keep = exp.Or(
            this=exp.Not(this=exp.Is(this=_col("every"), expression=exp.false())), expression=one_false
        )
        fails = [exp.Paren(this=exp.Sub(this=exp.Literal.number(1), expression=_int(k.copy()))) for k in ks]
        counted = exp.Select(
            expressions=[
                exp.Star(),
                exp.alias_(exp.Paren(this=every), "every", copy=False),
                exp.alias_(trues, "trues", copy=False),
            ],
            from_=exp.From(this=exp.alias_(exp.Subquery(this=inner), "m", table=True, copy=False)),
        )
        every_col = _col("every")
        amount_null = _any([exp.Is(this=_col(f), expression=exp.null()) for f in self.amount_fields()])
        near = _int(exp.Is(this=every_col.copy(), expression=exp.false()))
        missing = exp.Or(
            this=exp.Is(this=every_col.copy(), expression=exp.null()),
            expression=exp.Paren(this=exp.And(this=every_col.copy(), expression=amount_null.copy())),
        )
        status = exp.Add(
            this=near, expression=exp.Mul(this=_int(missing), expression=exp.Literal.number(MISSING_DATA))
        )
        eligible = exp.And(this=every_col.copy(), expression=exp.Not(this=amount_null))
        rank = numeric_sql(self.policy.rank_by) if self.policy.rank_by is not None else None
        # For a near-miss, the number of its one false condition.
        cond = _sum([exp.Mul(this=f, expression=exp.Literal.number(n)) for n, f in enumerate(fails) if n])
        columns = [
            exp.alias_(exp.cast(exp.Literal.number(self.no), "INT", copy=False), "item", copy=False),
            _col("rid"),
            exp.alias_(_int(status), "status", copy=False),
            exp.alias_(_int(cond), "cond", copy=False),
            exp.alias_(
                exp.cast(_when(eligible, amount_value(self.item)), MONEY, copy=False), "amount", copy=False
            ),
            exp.alias_(
                exp.cast(exp.null() if rank is None else _when(eligible.copy(), rank), RANK, copy=False),
                "rank_value",
                copy=False,
            ),
        ]
        return exp.Select(
            expressions=columns,
            from_=exp.From(this=exp.alias_(exp.Subquery(this=counted), "c", table=True, copy=False)),
            where=exp.Where(this=keep),
        )

    def _rank_fields(self) -> list[str]:
        return [] if self.policy.rank_by is None else list(parse(self.policy.rank_by).fields)

    def texts(self, matches: str, profile: str) -> exp.Select:
        """This item's rows of `matches` in Contract 4's words: ids, USCC, status, the failing condition
        and the values it read, the missing fields."""
        conds = self.conditions
        r, p = "r", "p"
        status = exp.Case(
            ifs=[
                exp.If(
                    this=exp.EQ(this=_col("status", r), expression=exp.Literal.number(code)),
                    true=exp.Literal.string(name),
                )
                for code, name in STATUS.items()
            ]
        )
        near = exp.EQ(this=_col("status", r), expression=exp.Literal.number(NEAR_MISS))

        def by_condition(value: Callable[[Condition], exp.Expression]) -> exp.Expression:
            if not conds:
                return exp.null()
            return _when(
                near.copy(),
                exp.Case(
                    ifs=[
                        exp.If(
                            this=exp.EQ(this=_col("cond", r), expression=exp.Literal.number(n)), true=value(c)
                        )
                        for n, c in enumerate(conds)
                    ]
                ),
            )

        group = self.policy.group_of(self.item)
        columns = [
            exp.alias_(_lit(self.policy.id), "policy_id", copy=False),
            exp.alias_(exp.Literal.number(self.policy.version), "policy_version", copy=False),
            exp.alias_(_lit(self.item.id), "item_id", copy=False),
            exp.alias_(_lit(self.policy.period), "period", copy=False),
            exp.alias_(exp.cast(_lit(group), TEXT, copy=False), "grp", copy=False),
            _col("uscc", p),
            exp.alias_(status, "status", copy=False),
            exp.alias_(
                exp.cast(by_condition(lambda c: exp.Literal.string(c.id)), TEXT, copy=False),
                "condition_id",
                copy=False,
            ),
            exp.alias_(
                exp.cast(by_condition(lambda c: _value_text(parse(c.rule).fields, p)), TEXT, copy=False),
                "value",
                copy=False,
            ),
            exp.alias_(
                _when(
                    exp.EQ(this=_col("status", r), expression=exp.Literal.number(MISSING_DATA)),
                    _null_fields(self.fields(), p),
                ),
                "fields",
                copy=False,
            ),
            _col("amount", r),
            _col("rank_value", r),
        ]
        return exp.Select(
            expressions=columns,
            from_=exp.From(this=exp.alias_(exp.to_table(matches), r, table=True)),
            joins=[
                exp.Join(
                    this=exp.alias_(exp.to_table(profile), p, table=True),
                    on=exp.EQ(this=_col("rid", p), expression=_col("rid", r)),
                )
            ],
            where=exp.Where(this=exp.EQ(this=_col("item", r), expression=exp.Literal.number(self.no))),
        )


def item_plans(policies: list[Policy]) -> list[ItemPlan]:
    """Every item of the policies, numbered in (policy_id, item_id) order."""
    pairs = sorted(((p, i) for p in policies for i in p.items), key=lambda pi: (pi[0].id, pi[1].id))
    return [ItemPlan(p, i, n) for n, (p, i) in enumerate(pairs)]


def _union(selects: list[exp.Select]) -> exp.Expression:
    if not selects:
        raise ValueError("no items to match")
    out: exp.Expression = selects[0]
    for s in selects[1:]:
        out = exp.Union(this=out, expression=s, distinct=False)
    return out


def keys_query(profile: str) -> exp.Select:
    """Every enterprise's number (`rid`, in USCC order): the narrow tables hold it instead of the USCC."""
    number = exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[exp.Ordered(this=_col("uscc"))]))
    return exp.select(_col("uscc"), exp.alias_(exp.cast(number, "INT", copy=False), "rid")).from_(profile)


def keyed_query(profile: str, keys: str = KEYS) -> exp.Select:
    """A profile with each enterprise's number in front."""
    return (
        exp.select("k.rid", "p.*")
        .from_(exp.alias_(exp.to_table(profile), "p", table=True))
        .join(exp.alias_(exp.to_table(keys), "k", table=True), on="k.uscc = p.uscc")
    )


def results_query(plans: list[ItemPlan], profile_for: dict[int, str]) -> exp.Expression:
    """Stage 1: every item's interesting rows, narrow, as one UNION ALL over the keyed profiles."""
    return _union([p.select(profile_for[p.policy.assessment_year]) for p in plans])


def results_view(
    plans: list[ItemPlan], profile_for: dict[int, str], matches: str = MATCHES
) -> exp.Expression:
    """The Contract 4 `results`: the narrow matches with their texts."""
    return _union([p.texts(matches, profile_for[p.policy.assessment_year]) for p in plans])


def items_values(plans: list[ItemPlan]) -> exp.Select:
    """A table of every item: its number, ids, version, period, exclusive group, and its policy's budget."""
    policy_no = {pid: n for n, pid in enumerate(sorted({p.policy.id for p in plans}))}
    groups = sorted({g for p in plans if (g := p.policy.group_of(p.item)) is not None})
    group_no = {g: n for n, g in enumerate(groups)}

    def grp_no(p: ItemPlan) -> exp.Expression:
        group = p.policy.group_of(p.item)
        return exp.cast(
            exp.null() if group is None else exp.Literal.number(group_no[group]), "INT", copy=False
        )

    rows = [
        exp.Tuple(
            expressions=[
                exp.Literal.number(p.no),
                exp.Literal.number(policy_no[p.policy.id]),
                grp_no(p),
                exp.Literal.string(p.policy.id),
                exp.Literal.number(p.policy.version),
                exp.Literal.string(p.item.id),
                exp.Literal.string(p.policy.period),
                exp.cast(_lit(p.policy.group_of(p.item)), TEXT, copy=False),
                exp.cast(
                    exp.null()
                    if p.policy.budget is None
                    else exp.Literal.number(format(p.policy.budget, "f")),
                    MONEY,
                    copy=False,
                ),
                exp.Literal.string(p.policy.allocation),
            ]
        )
        for p in plans
    ]
    columns = (
        "item",
        "pol",
        "grp_no",
        "policy_id",
        "policy_version",
        "item_id",
        "period",
        "grp",
        "budget",
        "allocation",
    )
    values = exp.Values(
        expressions=rows,
        alias=exp.TableAlias(this=exp.to_identifier("v"), columns=[exp.to_identifier(c) for c in columns]),
    )
    return exp.select(
        *[
            exp.alias_(exp.cast(_col(c), "INT", copy=False), c)
            if c in ("item", "pol", "policy_version")
            else _col(c)
            for c in columns
        ]
    ).from_(values)


# Stage 2, over the narrow stage-1 rows (`:matches`), the items (`:items`), the enterprise numbers (`:keys`)
# and the payments already made (`:payments`, by USCC and ids). Item numbers follow (policy_id, item_id);
# policies (`pol`) and exclusive groups (`grp_no`) are numbered too, so the joins and windows are on integers.
_CANDIDATES = """
WITH paid AS (
  SELECT DISTINCT i.item, k.rid
  FROM :payments AS p
  JOIN :items AS i ON i.policy_id = p.policy_id AND i.item_id = p.item_id AND i.period = p.period
  JOIN :keys AS k ON k.uscc = p.uscc
), unpaid AS (
  SELECT r.item, r.rid, i.pol, i.grp_no, r.amount, r.rank_value
  FROM :matches AS r JOIN :items AS i ON i.item = r.item
  WHERE r.status = 0 AND NOT EXISTS (SELECT 1 FROM paid WHERE paid.item = r.item AND paid.rid = r.rid)
), kept AS (
  SELECT item, rid, pol, amount, rank_value FROM unpaid WHERE grp_no IS NULL
  UNION ALL
  SELECT item, rid, pol, amount, rank_value FROM (
    SELECT u.*, ROW_NUMBER() OVER (PARTITION BY u.rid, u.grp_no ORDER BY u.amount DESC, u.item) AS grp_rank
    FROM unpaid AS u WHERE u.grp_no IS NOT NULL
  ) AS g WHERE grp_rank = 1
), budgets AS (
  SELECT pol, MAX(budget) AS budget, MAX(allocation) AS allocation FROM :items GROUP BY pol
), totals AS (
  SELECT k.pol, SUM(k.amount) AS total, MAX(b.budget) AS budget, MAX(b.allocation) AS allocation
  FROM kept AS k JOIN budgets AS b ON b.pol = k.pol
  GROUP BY k.pol
), ranked AS (
  SELECT k.item, k.rid,
    SUM(k.amount) OVER (
      PARTITION BY k.pol ORDER BY k.rank_value DESC NULLS LAST, e.uscc, k.item
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
  FROM kept AS k JOIN totals AS t ON t.pol = k.pol JOIN :keys AS e ON e.rid = k.rid
  WHERE t.allocation = 'rank' AND t.total > t.budget
)
SELECT k.item, k.rid,
  CASE
    WHEN t.budget IS NULL OR t.allocation <> 'pro_rata' OR t.total <= t.budget THEN k.amount
    ELSE CAST(CAST(
      CAST(k.amount * 100 AS INT128) * CAST(t.budget * 100 AS INT128) // CAST(t.total * 100 AS INT128)
      AS DECIMAL(38, 0)) * 0.01 AS DECIMAL(18, 2))
  END AS amount,
  k.amount AS amount_before_allocation
FROM kept AS k
JOIN totals AS t ON t.pol = k.pol
LEFT JOIN ranked AS r ON r.item = k.item AND r.rid = k.rid
WHERE r.running IS NULL OR r.running <= t.budget
"""

# The Contract 4 candidates: the allocated rows with their ids and USCC.
_CANDIDATES_VIEW = """
SELECT i.policy_id, i.policy_version, i.item_id, k.uscc, a.amount, a.amount_before_allocation
FROM :allocated AS a JOIN :items AS i ON i.item = a.item JOIN :keys AS k ON k.rid = a.rid
"""

# Per item (every item, also one that kept no row): eligible, candidates, near-miss and missing-data
# counts and the money.
_SUMMARY = """
WITH r AS (
  SELECT item,
    COUNT(*) FILTER (WHERE status = 0) AS eligible,
    COUNT(*) FILTER (WHERE status = 1) AS near_misses,
    COUNT(*) FILTER (WHERE status = 2) AS missing_data
  FROM :matches GROUP BY item
), c AS (
  SELECT item, COUNT(*) AS candidates, SUM(amount) AS amount,
    SUM(amount_before_allocation) AS amount_before_allocation
  FROM :allocated GROUP BY item
)
SELECT i.policy_id, i.item_id, COALESCE(r.eligible, 0) AS eligible, COALESCE(c.candidates, 0) AS candidates,
  COALESCE(r.near_misses, 0) AS near_misses, COALESCE(r.missing_data, 0) AS missing_data,
  CAST(COALESCE(c.amount, 0) AS DECIMAL(18, 2)) AS amount,
  CAST(COALESCE(c.amount_before_allocation, 0) AS DECIMAL(18, 2)) AS amount_before_allocation
FROM :items AS i LEFT JOIN r ON r.item = i.item LEFT JOIN c ON c.item = i.item
ORDER BY i.policy_id, i.item_id
"""

_TABLES = {"matches": MATCHES, "items": ITEMS, "keys": KEYS, "allocated": ALLOCATED, "payments": "payments"}


def _filled(text: str, **tables: str) -> exp.Expression:
    names = _TABLES | tables

    def fill(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name in names:
            return exp.to_table(names[node.name])
        return node

    return sqlglot.parse_one(text, read="duckdb").transform(fill)


def candidates_query(payments: str = "payments") -> exp.Expression:
    """Stage 2: candidates after already-paid pairs, exclusive groups and budgets (DESIGN.md, in that order)."""
    return _filled(_CANDIDATES, payments=payments)


def candidates_view() -> exp.Expression:
    return _filled(_CANDIDATES_VIEW)


def summary_query() -> exp.Expression:
    return _filled(_SUMMARY)
