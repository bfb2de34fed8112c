"""The match plan: every active policy item as a sqlglot tree over the profile, then allocation.

The plan is dialect-neutral: DuckDB runs it (matcher/duckdb_engine.py) and Spark SQL runs the same trees
(matcher/spark_engine.py). Stage 1 evaluates each distinct condition once per enterprise for a block of items
(`Block.select`: two bit sets per enterprise, false and unknown), then keeps every item's eligible rows
with their amounts (`matches_query`). Stage 2 (`candidates_query`) drops already-paid pairs, applies
exclusive groups and budgets. Near-miss and missing-data rows are never stored: the views
`statuses_view`, `results_view` (with the texts, Contract 4) and `counts_view` read them off the bits
when the outputs are written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from matcher.compile import amount_value, condition_sql, numeric_sql
from rules.errors import MatchError
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


# Status codes of a verdict row; the `results` view spells them out.
ELIGIBLE, NEAR_MISS, MISSING_DATA = 0, 1, 2
STATUS = {ELIGIBLE: "eligible", NEAR_MISS: "near_miss", MISSING_DATA: "missing_data"}

# The tables and views an engine builds, in this order: enterprise numbers (`rid`) by USCC, the profiles
# keyed by them (`keyed_<year>`), the items, the verdict bits of every block of items (`verdicts_<n>`),
# the eligible rows with their amounts (`matches`, stage 1), stage 2 into `allocated`; then the views
# `statuses` (every eligible, near-miss and missing-data row, narrow), `results` and `candidates`
# (Contract 4, with the texts) and `item_counts`, read when the outputs are written.
KEYS, ITEMS, MATCHES, ALLOCATED = "match_keys", "match_items", "matches", "allocated"
STATUS_ROWS, COUNTS = "statuses", "item_counts"

# Conditions per block: one bit each in a BIGINT, below the sign bit.
BITS = 62

_INT = exp.DataType.build("INT")
_BIGINT = exp.DataType.build("BIGINT")


def keyed_name(profile: str) -> str:
    return f"keyed_{profile}"


def _n(value: int) -> exp.Expression:
    return exp.Literal.number(value)


def _masked(bits: str, mask: int) -> exp.Expression:
    return exp.Paren(this=exp.BitwiseAnd(this=_col(bits), expression=_n(mask)))


@dataclass(frozen=True)
class ItemPlan:
    """One item of one policy, numbered in (policy_id, item_id) order, with the bit of each of its
    conditions in its block's verdicts."""

    policy: Policy
    item: Item
    no: int
    block: int
    bits: tuple[int, ...]

    @property
    def conditions(self) -> list[Condition]:
        return [*self.policy.conditions, *self.item.conditions]

    @property
    def table(self) -> str:
        return verdicts_name(self.block)

    def amount_fields(self) -> list[str]:
        return list(parse(self.item.amount).fields)

    def rank_fields(self) -> list[str]:
        return [] if self.policy.rank_by is None else list(parse(self.policy.rank_by).fields)

    def fields(self) -> list[str]:
        return sorted({*(f for c in self.conditions for f in parse(c.rule).fields), *self.amount_fields()})

    @property
    def mask(self) -> int:
        return sum(1 << b for b in self.bits)

    def _amount_present(self) -> exp.Expression:
        return exp.Not(this=_any([exp.Is(this=_col(f), expression=exp.null()) for f in self.amount_fields()]))

    def _amount(self) -> exp.Expression:
        return exp.cast(amount_value(self.item), MONEY, copy=False)

    def _rank(self) -> exp.Expression:
        rank = exp.null() if self.policy.rank_by is None else numeric_sql(self.policy.rank_by)
        return exp.cast(rank, RANK, copy=False)

    def eligible(self) -> exp.Select:
        """Stage 1: the item's eligible rows (no condition false or unknown, the amount's fields present)
        with the amount and the rank value: (item, rid, amount, rank_value)."""
        none = exp.EQ(
            this=exp.BitwiseAnd(
                this=exp.Paren(this=exp.BitwiseOr(this=_col("f"), expression=_col("u"))),
                expression=_n(self.mask),
            ),
            expression=_n(0),
        )
        return exp.Select(
            expressions=[
                exp.alias_(exp.cast(_n(self.no), _INT, copy=False), "item", copy=False),
                _col("rid"),
                exp.alias_(self._amount(), "amount", copy=False),
                exp.alias_(self._rank(), "rank_value", copy=False),
            ],
            from_=exp.From(this=exp.to_table(self.table)),
            where=exp.Where(this=exp.and_(none, self._amount_present(), copy=False)),
        )

    def verdicts(self) -> exp.Select:
        """Every row of the item that is eligible, a near-miss or missing data: (item, rid, code, cond,
        amount, rank_value). A near-miss has exactly one condition false and none unknown; `cond` is the
        number of that condition. Missing data: none false, but one unknown or an amount field absent."""
        false, unknown = _masked("f", self.mask), _masked("u", self.mask)
        zero = _n(0)
        code = exp.Case(
            ifs=[
                exp.If(
                    this=exp.and_(
                        exp.EQ(this=false.copy(), expression=zero.copy()),
                        exp.EQ(this=unknown.copy(), expression=zero.copy()),
                        self._amount_present(),
                        copy=False,
                    ),
                    true=_n(ELIGIBLE),
                ),
                exp.If(this=exp.EQ(this=false.copy(), expression=zero.copy()), true=_n(MISSING_DATA)),
                exp.If(
                    this=exp.and_(
                        exp.EQ(this=unknown.copy(), expression=zero.copy()),
                        # a single bit: x & (x - 1) = 0
                        exp.EQ(
                            this=exp.BitwiseAnd(
                                this=false.copy(),
                                expression=exp.Paren(this=exp.Sub(this=false.copy(), expression=_n(1))),
                            ),
                            expression=zero.copy(),
                        ),
                        copy=False,
                    ),
                    true=_n(NEAR_MISS),
                ),
            ]
        )
        cond = exp.Case(
            this=false.copy(),
            ifs=[exp.If(this=_n(1 << b), true=_n(n)) for n, b in enumerate(self.bits)],
        )
        coded = exp.Select(
            expressions=[
                _col("rid"),
                *[_col(f) for f in sorted({*self.amount_fields(), *self.rank_fields()})],
                exp.alias_(exp.cast(code, _INT, copy=False), "code", copy=False),
                exp.alias_(exp.cast(cond, _INT, copy=False), "cond", copy=False),
            ],
            from_=exp.From(this=exp.to_table(self.table)),
        )
        is_eligible = exp.EQ(this=_col("code"), expression=_n(ELIGIBLE))
        return exp.Select(
            expressions=[
                exp.alias_(exp.cast(_n(self.no), _INT, copy=False), "item", copy=False),
                _col("rid"),
                _col("code"),
                _col("cond"),
                exp.alias_(
                    exp.cast(_when(is_eligible, self._amount()), MONEY, copy=False), "amount", copy=False
                ),
                exp.alias_(
                    exp.cast(_when(is_eligible.copy(), self._rank()), RANK, copy=False),
                    "rank_value",
                    copy=False,
                ),
            ],
            from_=exp.From(this=exp.alias_(exp.Subquery(this=coded), "v", table=True, copy=False)),
            where=exp.Where(this=exp.Not(this=exp.Is(this=_col("code"), expression=exp.null()))),
        )

    def counts(self) -> exp.Select:
        """The item's eligible, near-miss and missing-data counts, from its verdict rows."""

        def count(code: int, name: str) -> exp.Expr:
            counted = exp.Filter(
                this=exp.Count(this=exp.Star()),
                expression=exp.Where(this=exp.EQ(this=_col("code"), expression=_n(code))),
            )
            return exp.alias_(counted, name, copy=False)

        return exp.Select(
            expressions=[
                exp.alias_(exp.cast(_n(self.no), _INT, copy=False), "item", copy=False),
                count(ELIGIBLE, "eligible"),
                count(NEAR_MISS, "near_misses"),
                count(MISSING_DATA, "missing_data"),
            ],
            from_=exp.From(this=exp.alias_(exp.Subquery(this=self.verdicts()), "r", table=True, copy=False)),
        )

    def texts(self, profile: str) -> exp.Select:
        """This item's verdict rows in Contract 4's words: ids, USCC, status, the failing condition and
        the values it read, the missing fields, the amount."""
        conds = self.conditions
        r, p = "r", "p"
        status = exp.Case(
            ifs=[
                exp.If(this=exp.EQ(this=_col("code", r), expression=_n(code)), true=exp.Literal.string(name))
                for code, name in STATUS.items()
            ]
        )
        near = exp.EQ(this=_col("code", r), expression=_n(NEAR_MISS))

        def by_condition(value: Callable[[Condition], exp.Expression]) -> exp.Expression:
            if not conds:
                return exp.null()
            return _when(
                near.copy(),
                exp.Case(
                    ifs=[
                        exp.If(this=exp.EQ(this=_col("cond", r), expression=_n(n)), true=value(c))
                        for n, c in enumerate(conds)
                    ]
                ),
            )

        group = self.policy.group_of(self.item)
        columns = [
            exp.alias_(_lit(self.policy.id), "policy_id", copy=False),
            exp.alias_(_n(self.policy.version), "policy_version", copy=False),
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
                    exp.EQ(this=_col("code", r), expression=_n(MISSING_DATA)),
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
            from_=exp.From(this=exp.alias_(exp.Subquery(this=self.verdicts()), r, table=True, copy=False)),
            joins=[
                exp.Join(
                    this=exp.alias_(exp.to_table(profile), p, table=True),
                    on=exp.EQ(this=_col("rid", p), expression=_col("rid", r)),
                )
            ],
        )


def verdicts_name(block: int) -> str:
    return f"verdicts_{block}"


@dataclass(frozen=True)
class Block:
    """Items of one assessment year whose distinct conditions fit in `BITS`: each condition is evaluated
    once per enterprise for all of them, into two bit sets, `f` (false) and `u` (unknown)."""

    no: int
    year: int
    rules: tuple[str, ...]  # the rule of each bit
    items: tuple[ItemPlan, ...]

    @property
    def table(self) -> str:
        return verdicts_name(self.no)

    def select(self, profile: str) -> exp.Select:
        """(rid, the fields the items' amounts and ranks read, f, u) for every enterprise of the profile."""
        carried = sorted({f for i in self.items for f in (*i.amount_fields(), *i.rank_fields())})
        inner = exp.Select(
            expressions=[
                _col("rid"),
                *[_col(f) for f in carried],
                *[exp.alias_(condition_sql(r), f"k{b}", copy=False) for b, r in enumerate(self.rules)],
            ],
            from_=exp.From(this=exp.to_table(profile)),
        )

        def bits(test: Callable[[exp.Expression], exp.Expression]) -> exp.Expression:
            terms: list[exp.Expression] = [
                exp.Mul(this=exp.cast(test(_col(f"k{b}")), _BIGINT, copy=False), expression=_n(1 << b))
                for b in range(len(self.rules))
            ]
            return exp.cast(_sum(terms), _BIGINT, copy=False)

        return exp.Select(
            expressions=[
                _col("rid"),
                *[_col(f) for f in carried],
                exp.alias_(bits(lambda k: exp.Is(this=k, expression=exp.false())), "f", copy=False),
                exp.alias_(bits(lambda k: exp.Is(this=k, expression=exp.null())), "u", copy=False),
            ],
            from_=exp.From(this=exp.alias_(exp.Subquery(this=inner), "k", table=True, copy=False)),
        )


def item_plans(policies: list[Policy]) -> list[ItemPlan]:
    """Every item of the policies, numbered in (policy_id, item_id) order, packed into blocks.

    Items of one assessment year go, in that order, into a block until its distinct conditions would
    exceed `BITS`; a rule that appears twice in one item takes two bits, so each condition of an item
    has its own bit and a near-miss counts conditions, not texts.
    """
    pairs = sorted(((p, i) for p in policies for i in p.items), key=lambda pi: (pi[0].id, pi[1].id))
    plans: list[ItemPlan] = []
    block = -1
    for year in sorted({p.assessment_year for p, _ in pairs}):
        slots: dict[tuple[str, int], int] = {}
        for no, (policy, item) in enumerate(pairs):
            if policy.assessment_year != year:
                continue
            seen: dict[str, int] = {}
            keys = []
            for c in [*policy.conditions, *item.conditions]:
                keys.append((c.rule, seen.get(c.rule, 0)))
                seen[c.rule] = seen.get(c.rule, 0) + 1
            if len(keys) > BITS:
                raise MatchError(
                    f"政策 {policy.id} 事项 {item.id} 有 {len(keys)} 个条件，超过 {BITS} 个的上限"
                )
            if not slots or len(slots.keys() | set(keys)) > BITS:
                slots, block = {}, block + 1
            for k in keys:
                slots.setdefault(k, len(slots))
            plans.append(ItemPlan(policy, item, no, block, tuple(slots[k] for k in keys)))
    return sorted(plans, key=lambda p: p.no)


def blocks(plans: list[ItemPlan]) -> list[Block]:
    """The blocks of the plans, each with the rule of every bit."""
    out = []
    for no in sorted({p.block for p in plans}):
        members = tuple(p for p in plans if p.block == no)
        rules: dict[int, str] = {}
        for p in members:
            for b, c in zip(p.bits, p.conditions, strict=True):
                rules[b] = c.rule
        out.append(
            Block(no, members[0].policy.assessment_year, tuple(rules[b] for b in range(len(rules))), members)
        )
    return out


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


def matches_query(plans: list[ItemPlan]) -> exp.Expression:
    """Stage 1 over the verdict tables: every item's eligible rows, as one UNION ALL."""
    return _union([p.eligible() for p in plans])


def statuses_view(plans: list[ItemPlan]) -> exp.Expression:
    """Every item's eligible, near-miss and missing-data rows, narrow (item, rid, code, cond, amount, rank)."""
    return _union([p.verdicts() for p in plans])


def counts_view(plans: list[ItemPlan]) -> exp.Expression:
    """Per item: eligible, near-miss and missing-data counts."""
    return _union([p.counts() for p in plans])


def results_view(plans: list[ItemPlan], profile_for: dict[int, str]) -> exp.Expression:
    """The Contract 4 `results`: the verdict rows with their texts."""
    return _union([p.texts(profile_for[p.policy.assessment_year]) for p in plans])


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
  WHERE NOT EXISTS (SELECT 1 FROM paid WHERE paid.item = r.item AND paid.rid = r.rid)
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
WITH c AS (
  SELECT item, COUNT(*) AS candidates, SUM(amount) AS amount,
    SUM(amount_before_allocation) AS amount_before_allocation
  FROM :allocated GROUP BY item
)
SELECT i.policy_id, i.item_id, r.eligible, COALESCE(c.candidates, 0) AS candidates,
  r.near_misses, r.missing_data,
  CAST(COALESCE(c.amount, 0) AS DECIMAL(18, 2)) AS amount,
  CAST(COALESCE(c.amount_before_allocation, 0) AS DECIMAL(18, 2)) AS amount_before_allocation
FROM :items AS i JOIN :counts AS r ON r.item = i.item LEFT JOIN c ON c.item = i.item
ORDER BY i.policy_id, i.item_id
"""

_TABLES = {
    "counts": COUNTS,
    "matches": MATCHES,
    "items": ITEMS,
    "keys": KEYS,
    "allocated": ALLOCATED,
    "payments": "payments",
}


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
