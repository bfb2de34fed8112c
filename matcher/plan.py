"""The match plan: every active policy item as a sqlglot tree over the profile, then allocation.

The plan is dialect-neutral: DuckDB runs it (matcher/duckdb_engine.py) and Spark SQL runs the same trees
(matcher/spark_engine.py). Stage 1 evaluates each distinct condition once per enterprise for a block of items
(`Block.select`: per enterprise, the bits of the false conditions and of the NULL fields), then keeps every
item's eligible rows with their amounts (`matches_query`). Stage 2 (`candidates_query`) drops already-paid
pairs, applies exclusive groups and budgets. Near-miss and missing-data rows are never stored: the views
`statuses_view` and `results_view` (with the texts, Contract 4) read them off the bits, with the items'
masks, when the outputs are written; they are the same few statements whatever the number of items.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlglot
from sqlglot import exp

from matcher.compile import amount_value, bare_condition_sql, numeric_sql
from matcher.ratios import RATIOS
from rules.catalog import CATALOG
from rules.errors import MatchError
from rules.expressions import parse
from rules.policy import Condition, Item, Policy
from rules.validate import MAX_CONDITIONS

TEXT = exp.DataType.build("VARCHAR")
MONEY = exp.DataType.build("DECIMAL(18, 2)")
RANK = exp.DataType.build("DECIMAL(38, 10)")


@functools.cache
def _template(text: str) -> exp.Expr:
    """A SQL text parsed once; never modified (`transform` and `copy` give new trees)."""
    return sqlglot.parse_one(text, read="duckdb")


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table)


def _sum(terms: Sequence[exp.Expression]) -> exp.Expression:
    if not terms:
        return exp.Literal.number(0)
    out = terms[0]
    for t in terms[1:]:
        out = exp.Add(this=out, expression=t)
    return out


def _when(cond: exp.Expr, then: exp.Expression, default: exp.Expression | None = None) -> exp.Case:
    return exp.Case(ifs=[exp.If(this=cond, true=then)], default=default)


def _concat(parts: Sequence[exp.Expression]) -> exp.Expression:
    """Text concatenation of non-NULL parts (`||`; every part is COALESCEd by the callers)."""
    if not parts:
        return exp.Literal.string("")
    out = parts[0]
    for p in parts[1:]:
        out = exp.DPipe(this=out, expression=p, safe=True)
    return out


def field_text(field: str, table: str) -> exp.Expression:
    """A field's value as text; a ratio (DECIMAL(38, 12), `matcher.ratios`) without its trailing zeros,
    so 5% reads 0.05 on both engines."""
    text: exp.Expr = exp.cast(_col(field, table), TEXT, copy=False)
    if field in RATIOS:
        for pattern in ("0+$", "\\.$"):
            text = exp.func("REGEXP_REPLACE", text, exp.Literal.string(pattern), exp.Literal.string(""))
    assert isinstance(text, exp.Expression)
    return text


def _value_text(fields: tuple[str, ...], table: str) -> exp.Expression:
    """'field=value; ...' for the fields a condition read."""
    parts: list[exp.Expression] = []
    for n, f in enumerate(fields):
        label = f"{'; ' if n else ''}{f}="
        value = exp.Coalesce(this=field_text(f, table), expressions=[exp.Literal.string("NULL")])
        parts += [exp.Literal.string(label), value]
    return _concat(parts)


def value_text(fields: Sequence[str], row: dict[str, Any]) -> str:
    """`_value_text`'s text in Python, over a profile row read into Python (a standing's few values, where
    a query per enterprise would cost more than the rest of it): each value as the casts write it, a bool
    `true`, a date ISO, a decimal with its scale's digits (a ratio without its trailing zeros), NULL."""
    return "; ".join(f"{f}={_python_text(f, row.get(f))}" for f in fields)


def _python_text(field: str, value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        text = format(value, "f")
        return text.rstrip("0").removesuffix(".") if field in RATIOS else text
    if isinstance(value, str | int | datetime.date):
        return str(value)
    raise TypeError(f"no text for {field}={value!r} ({type(value).__name__})")


# Status codes of a verdict row (`statuses.code`; eligible is 0); the `results` view spells them out.
NEAR_MISS, MISSING_DATA = 1, 2

# The tables and views an engine builds, in this order: enterprise numbers (`rid`) by USCC, the profiles
# keyed by them (`keyed_<year>`), the items and their conditions, the bits of every block of items
# (`verdicts_<n>`), the eligible rows of the items stage 2 needs (`matches`, stage 1), the already-paid
# pairs (`match_paid`) and stage 2 into `allocated`. Views: `open_matches` (the other items' eligible
# rows, read off the bits), `eligible` (both), `payable` (allocated and unpaid open rows), `statuses`
# (every eligible, near-miss and missing-data row, narrow), and Contract 4's `results` and `candidates`
# with the texts. The per-item counts and money come off the distinct bit patterns of every block with
# their enterprises and amounts (`patterns_<n>`), into the tables `status_counts`, `item_totals` and
# `match_summary`.
KEYS, ITEMS, MATCHES, ALLOCATED = "match_keys", "match_items", "matches", "allocated"
STATUS_COUNTS = "status_counts"
CONDITIONS, STATUS_ROWS, PAID, SUMMARY = "match_conditions", "statuses", "match_paid", "match_summary"
RESULT_RIDS = "result_rids"
OPEN, ELIGIBLE, PAYABLE, TOTALS = "open_matches", "eligible", "payable", "item_totals"

# Conditions per block: one bit each in a BIGINT, below the sign bit (the most an item may have).
BITS = MAX_CONDITIONS

# Fields as bits, for the absent amount fields (`a`) and the missing-data lists.
FIELD_BIT = {name: n for n, name in enumerate(sorted(CATALOG))}
assert len(FIELD_BIT) <= BITS

_INT = exp.DataType.build("INT")
_BIGINT = exp.DataType.build("BIGINT")


def keyed_name(profile: str) -> str:
    return f"keyed_{profile}"


def _n(value: int) -> exp.Expression:
    return exp.Literal.number(value)


def _field_mask(fields: Iterable[str]) -> int:
    return sum(1 << FIELD_BIT[f] for f in set(fields))


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
        return list(parse(self.item.formula).fields)

    def rank_fields(self) -> list[str]:
        return [] if self.policy.rank_by is None else list(parse(self.policy.rank_by).fields)

    def fields(self) -> list[str]:
        return sorted({*(f for c in self.conditions for f in parse(c.rule).fields), *self.amount_fields()})

    @property
    def group(self) -> str | None:
        """Its exclusive group, if any."""
        return self.policy.group_of(self.item)

    @property
    def allocated(self) -> bool:
        """Whether stage 2 needs its eligible rows stored: its policy has a budget (totals, pro rata, rank)
        or it is in an exclusive group. The other items' rows only lose already-paid pairs: they are read
        off the bits (`open_matches`) when they are counted or written, never stored."""
        return self.policy.budget is not None or self.group is not None

    @property
    def mask(self) -> int:
        """The bits of its conditions in the block's `f`."""
        return sum(1 << b for b in self.bits)

    @property
    def conditions_mask(self) -> int:
        """The bits, in the block's `n`, of the fields its conditions read: one NULL makes one unknown."""
        return _field_mask(f for c in self.conditions for f in parse(c.rule).fields)

    @property
    def fields_mask(self) -> int:
        """The bits, in the block's `n`, of every field it reads (conditions and amount): one NULL makes
        the item missing data unless a condition is false."""
        return _field_mask(self.fields())

    def _amount(self) -> exp.Expression:
        return exp.cast(amount_value(self.item), MONEY, copy=False)

    @property
    def fixed(self) -> bool:
        """An item stage 2 does not need whose amount reads no field: its total is its count times it."""
        return not self.allocated and not self.amount_fields()

    @property
    def priced(self) -> bool:
        """An item stage 2 does not need whose amount reads fields: its total comes off the patterns'
        sums of its amount (`Block.patterns_select`)."""
        return not self.allocated and bool(self.amount_fields())

    @property
    def amount_key(self) -> tuple[str, str]:
        """What its amount depends on: items with the same key have the same amount on every row."""
        return (self.item.formula, str(self.item.cap))

    def _rank(self) -> exp.Expression:
        rank = exp.null() if self.policy.rank_by is None else numeric_sql(self.policy.rank_by)
        return exp.cast(rank, RANK, copy=False)

    def eligible(self, source: str | None = None) -> exp.Select:
        """Stage 1: the item's eligible rows (no condition false, no field it reads NULL) with the amount
        and the rank value: (item, rid, amount, rank_value), off its verdict table or `source`, rows of
        it (`Block.allocatable_select`)."""
        return exp.Select(
            expressions=[
                exp.alias_(exp.cast(_n(self.no), _INT, copy=False), "item", copy=False),
                _col("rid"),
                exp.alias_(self._amount(), "amount", copy=False),
                exp.alias_(self._rank(), "rank_value", copy=False),
            ],
            from_=exp.From(this=exp.table_(source or self.table)),
            where=exp.Where(
                this=exp.and_(
                    exp.EQ(this=_masked("f", self.mask), expression=_n(0)),
                    exp.EQ(this=_masked("n", self.fields_mask), expression=_n(0)),
                    copy=False,
                )
            ),
        )


def verdicts_name(block: int) -> str:
    return f"verdicts_{block}"


def patterns_name(block: int) -> str:
    return f"patterns_{block}"


def allocatable_name(block: int) -> str:
    return f"allocatable_{block}"


def amount_groups(plans: Iterable[ItemPlan]) -> list[ItemPlan]:
    """The first `priced` item of each distinct amount (`amount_key`) among one block's plans: the block's
    amount groups, numbered in this order."""
    first: dict[tuple[str, str], ItemPlan] = {}
    for p in plans:
        if p.priced:
            first.setdefault(p.amount_key, p)
    return list(first.values())


@dataclass(frozen=True)
class Block:
    """Items of one assessment year whose distinct conditions fit in `BITS`: each condition is evaluated
    once per enterprise for all of them, into a bit set `f` (the false ones); a second, `n`, has the bit
    (`FIELD_BIT`) of every field the items read that is NULL. A condition is unknown exactly when a field
    it names is NULL (`condition_sql`), so an item's unknown conditions are `n & cmask`. The verdicts are
    computed without the NULL guard (`bare_condition_sql`), so the bit of an unknown condition in `f` is
    meaningless: eligibility needs no NULL field anyway, and the statuses read the patterns' `kf`, `f`
    with those bits cleared."""

    no: int
    year: int
    rules: tuple[str, ...]  # the rule of each bit
    items: tuple[ItemPlan, ...]

    @property
    def table(self) -> str:
        return verdicts_name(self.no)

    @property
    def patterns(self) -> str:
        return patterns_name(self.no)

    @property
    def allocatable(self) -> str:
        return allocatable_name(self.no)

    def allocatable_select(self) -> exp.Expr:
        """The verdict rows whose (f, n) pattern is eligible for one of the block's items stage 2 needs
        (`ItemPlan.allocated`), off its patterns: stage 1 filters these per item instead of every
        enterprise (at 1M x 200, 57 budgeted items had 37,622 eligible rows in all)."""
        members = _members([p for p in self.items if p.allocated]) or "NULL"
        return _template(
            _ALLOCATABLE.format(
                verdicts=self.table, patterns=self.patterns, items=ITEMS, block=self.no, members=members
            )
        ).copy()

    def patterns_select(self) -> exp.Select:
        """Per distinct (f, n) of the block: its enterprises (`cnt`) and, per amount group (`amount_groups`),
        the sum of that amount over them (`s<j>`) and the number of rows it was computed for (`c<j>`).

        An item is eligible on a whole pattern or on none of it, and there none of its fields is NULL, so
        its total is the sum of its group's `s<j>` over its eligible patterns, and only those are read. So
        an amount is computed only on the rows where an item of its group is eligible (at 1,000 items a
        block had 87 groups, and most rows are eligible for few of them), in TRY() and with TRY_CAST: a
        value that does not fit is NULL there, and `c<j>` short of `cnt` on an eligible pattern tells it
        (`item_totals.unpriced`, `unpriced_error`)."""
        sums: list[exp.Expr] = []
        for j, p in enumerate(amount_groups(self.items)):
            masks = sorted(
                {(i.mask, i.fields_mask) for i in self.items if i.priced and i.amount_key == p.amount_key}
            )
            eligible = exp.or_(
                *(
                    exp.and_(
                        exp.EQ(this=_masked("f", mask), expression=_n(0)),
                        exp.EQ(this=_masked("n", fmask), expression=_n(0)),
                        copy=False,
                    )
                    for mask, fmask in masks
                ),
                copy=False,
            )
            value = p._amount().transform(
                lambda n: exp.TryCast(this=n.this, to=n.to) if isinstance(n, exp.Cast) else n
            )
            amount = exp.Try(this=_when(eligible, value))
            sums.append(exp.alias_(exp.Sum(this=amount), f"s{j}", copy=False))
            sums.append(exp.alias_(exp.Count(this=amount.copy()), f"c{j}", copy=False))
        return exp.Select(
            expressions=[
                _col("f"),
                _col("n"),
                exp.alias_(self._known_false(), "kf", copy=False),
                exp.alias_(exp.Count(this=exp.Star()), "cnt", copy=False),
                *sums,
            ],
            from_=exp.From(this=exp.table_(self.table)),
            group=exp.Group(expressions=[_col("f"), _col("n")]),
        )

    def _known_false(self) -> exp.Expression:
        """`kf`: the bits of `f` whose condition reads no NULL field (`n`), the conditions known false."""
        bits: dict[int, int] = {}  # field mask -> the bits of the conditions that read those fields
        for b, rule in enumerate(self.rules):
            if mask := _field_mask(parse(rule).fields):
                bits[mask] = bits.get(mask, 0) | 1 << b
        unknown = [
            _when(exp.NEQ(this=_masked("n", mask), expression=_n(0)), _n(b), _n(0))
            for mask, b in bits.items()
        ]
        if not unknown:
            return _col("f")
        return exp.BitwiseAnd(
            this=_col("f"),
            expression=exp.BitwiseNot(this=exp.Paren(this=exp.cast(_sum(unknown), _BIGINT, copy=False))),
        )

    def select(self, profile: str) -> exp.Select:
        """(rid, the fields the items' amounts and ranks read, f, n) for every enterprise of the profile."""
        carried = sorted({f for i in self.items for f in (*i.amount_fields(), *i.rank_fields())})
        read = sorted({f for r in self.rules for f in parse(r).fields} | set(carried))
        inner = exp.Select(
            expressions=[
                _col("rid"),
                *[_col(f) for f in read],
                *[exp.alias_(bare_condition_sql(r), f"k{b}", copy=False) for b, r in enumerate(self.rules)],
            ],
            from_=exp.From(this=exp.to_table(profile)),
        )
        # CASE WHEN ... THEN bit ELSE 0: a third of the time of CAST(... AS BIGINT) * bit on DuckDB.
        false = [_when(exp.Not(this=_col(f"k{b}")), _n(1 << b), _n(0)) for b in range(len(self.rules))]
        null = [
            _when(exp.Is(this=_col(f), expression=exp.null()), _n(1 << FIELD_BIT[f]), _n(0)) for f in read
        ]
        return exp.Select(
            expressions=[
                _col("rid"),
                *[_col(f) for f in carried],
                exp.alias_(exp.cast(_sum(false), _BIGINT, copy=False), "f", copy=False),
                exp.alias_(exp.cast(_sum(null), _BIGINT, copy=False), "n", copy=False),
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


def _union(selects: Sequence[exp.Expr]) -> exp.Expr:
    if not selects:
        raise ValueError("no items to match")
    out: exp.Expr = selects[0]
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


def _eligible_rows(plans: list[ItemPlan], rows: list[exp.Select]) -> exp.Expr:
    """The eligible rows of some items, as one UNION ALL; no rows, same columns, if there are none."""
    return _union(rows) if rows else plans[0].eligible().where(exp.false())


# The rows of a block's verdict table whose pattern is eligible for one of the items `members`.
_ALLOCATABLE = """
SELECT v.* FROM {verdicts} AS v JOIN (
  SELECT DISTINCT p.f, p.n FROM {patterns} AS p JOIN {items} AS i ON i.block = {block}
  WHERE i.item IN ({members}) AND (p.f & i.mask) = 0 AND (p.n & i.fmask) = 0
) AS e ON e.f = v.f AND e.n = v.n
"""


def matches_query(plans: list[ItemPlan]) -> exp.Expr:
    """Stage 1: the eligible rows of the plans' items that stage 2 needs (`ItemPlan.allocated`), off the
    blocks' `allocatable_<n>` tables (`Block.allocatable_select`), which must exist."""
    return _eligible_rows(plans, [p.eligible(allocatable_name(p.block)) for p in plans if p.allocated])


def open_query(plans: list[ItemPlan]) -> exp.Expr:
    """The eligible rows of the items stage 2 does not need (no budget, no exclusive group): a view."""
    return _eligible_rows(plans, [p.eligible() for p in plans if not p.allocated])


# Every enterprise's eligible, near-miss and missing-data rows for the items of one block, read off its
# bits. A row's status is a function of the enterprise's (f, n) pattern and the item, so it is worked out
# once per pattern (`patterns_<n>`, a few thousand) and item, with the failing condition and the missing
# fields, and joined to the enterprises on (f, n). `_STATUS_PAIRS` are the (pattern, item) pairs with a row:
# `fbits` are the item's false conditions, `ubits` the NULL fields its conditions read (some condition is
# unknown), `nbits` every NULL field it reads. Kept: none false (eligible, or missing data when a field is
# NULL), or exactly one false (`fbits & (fbits - 1)` clears the lowest bit) and none unknown (a near-miss).
# Logic, not CASE: cheaper.
_STATUS_PAIRS = """
SELECT * FROM (
  SELECT i.item, p.f, p.n, p.kf & i.mask AS fbits, p.n & i.cmask AS ubits, p.n & i.fmask AS nbits
  FROM {patterns} AS p CROSS JOIN {items} AS i WHERE i.block = {block}
) AS b
WHERE b.fbits = 0 OR (b.ubits = 0 AND (b.fbits & (b.fbits - 1)) = 0)
"""

_STATUSES = """
SELECT s.item, v.rid, s.code, s.condition_id, s.shape, s.fields
FROM {verdicts} AS v JOIN (
  SELECT b.item, b.f, b.n, c.condition_id, c.shape, :fields AS fields,
    CAST(b.fbits <> 0 AS INT) * {near} + CAST(b.fbits = 0 AND b.nbits <> 0 AS INT) * {missing} AS code
  FROM ({pairs}) AS b
  LEFT JOIN {conditions} AS c ON c.item = b.item AND c.bit = b.fbits
) AS s ON s.f = v.f AND s.n = v.n
"""


def _status_pairs(block: int) -> str:
    return _STATUS_PAIRS.format(patterns=patterns_name(block), items=ITEMS, block=block)


def _put(tree: exp.Expr, name: str, value: exp.Expression) -> exp.Expr:
    """A copy of `tree` with a copy of `value` in place of the placeholder `:name`."""
    return tree.transform(lambda n: value.copy() if isinstance(n, exp.Placeholder) and n.name == name else n)


def _missing_fields(fields: list[str]) -> exp.Expression:
    """'a;b': the names of the fields whose bit is in `nbits` (CONCAT_WS skips the NULLs on both
    engines)."""
    names = [
        _when(
            exp.NEQ(
                this=exp.Paren(
                    this=exp.BitwiseAnd(this=_col("nbits", "b"), expression=_n(1 << FIELD_BIT[f]))
                ),
                expression=_n(0),
            ),
            exp.Literal.string(f),
        )
        for f in fields
    ]
    return exp.ConcatWs(expressions=[exp.Literal.string(";"), *names], safe=True, coalesce=True)


def statuses_view(plans: list[ItemPlan]) -> exp.Expr:
    """Every item's eligible, near-miss and missing-data rows, narrow: (item, rid, code, condition_id,
    shape, fields); a near-miss has its one false condition and the shape of its value text
    (`_shapes`), missing data its NULL fields ('a;b'). Reads the blocks' patterns (`Block.patterns`)."""
    selects = []
    for block in sorted({p.block for p in plans}):
        fields = sorted({f for p in plans if p.block == block for f in p.fields()})
        missing = _missing_fields(fields) if fields else exp.null()
        text = _STATUSES.format(
            missing=MISSING_DATA,
            near=NEAR_MISS,
            verdicts=verdicts_name(block),
            pairs=_status_pairs(block),
            conditions=CONDITIONS,
        )
        selects.append(_put(_template(text), "fields", missing))
    return _union(selects)


# The enterprises with any status row, off the patterns: the distinct (f, n) of the block's status pairs,
# then the verdict rows with one of them. Reading `statuses` for this joined every row (at 10M x 1000,
# 4 billion) to find 10 million enterprises.
_RESULT_RIDS = """
SELECT v.rid
FROM {verdicts} AS v JOIN (SELECT DISTINCT f, n FROM ({pairs}) AS b) AS s ON s.f = v.f AND s.n = v.n
"""


def result_rids_view(plans: list[ItemPlan]) -> exp.Expr:
    """The numbers (`rid`) of the enterprises with a row in `statuses`, once per block."""
    selects = [
        _template(_RESULT_RIDS.format(verdicts=verdicts_name(block), pairs=_status_pairs(block))).copy()
        for block in sorted({p.block for p in plans})
    ]
    return _union(selects)


# The per-item counts of one block's statuses (as `_STATUSES` codes them: the two must agree), off its
# distinct bit patterns: enterprises share few (f, n) patterns (about 15,000 per million), so the items are
# crossed with the patterns and their counts instead of with every enterprise (filtering `_STATUSES` over
# the patterns, to state the codes once, is slower).
_STATUS_COUNTS = """
SELECT item,
  SUM(cnt) FILTER (WHERE fbits = 0 AND nbits = 0) AS eligible,
  SUM(cnt) FILTER (WHERE fbits <> 0 AND ubits = 0 AND (fbits & (fbits - 1)) = 0) AS near_misses,
  SUM(cnt) FILTER (WHERE fbits = 0 AND nbits <> 0) AS missing_data
FROM (
  SELECT i.item, v.cnt, v.kf & i.mask AS fbits, v.n & i.cmask AS ubits, v.n & i.fmask AS nbits
  FROM {patterns} AS v CROSS JOIN {items} AS i WHERE i.block = {block}
) AS b
GROUP BY item
"""


def status_counts_query(plans: list[ItemPlan]) -> exp.Expr:
    """Per item with any: its eligible (before paid pairs and allocation), near-miss and missing-data counts,
    off the blocks' patterns: the table `status_counts`."""
    return _union(
        [
            _template(_STATUS_COUNTS.format(patterns=patterns_name(block), items=ITEMS, block=block)).copy()
            for block in sorted({p.block for p in plans})
        ]
    )


def _shapes(plans: list[ItemPlan]) -> list[tuple[str, ...]]:
    """The distinct lists of fields a condition reads: a near-miss shows their values."""
    return sorted({parse(c.rule).fields for p in plans for c in p.conditions})


@dataclass(frozen=True)
class Rows:
    """A small table of the plan that is data, not a query (the items, their conditions): its name, its
    columns' types and its rows, which each engine loads natively. As a VALUES list, DuckDB took 40 ms to
    bind a few hundred rows."""

    name: str
    types: dict[str, exp.DataType]
    rows: list[tuple[object, ...]]


def conditions_rows(plans: list[ItemPlan]) -> Rows:
    """Every condition of every item: (item, bit, condition_id, shape, fields): `fields` are the fields it
    reads, ';'-joined, whose values a near miss shows."""
    shape_no = {s: n for n, s in enumerate(_shapes(plans))}
    rows: list[tuple[object, ...]] = [
        (p.no, 1 << b, c.id, shape_no[parse(c.rule).fields], ";".join(parse(c.rule).fields))
        for p in plans
        for b, c in zip(p.bits, p.conditions, strict=True)
    ]
    types = {"item": _INT, "bit": _BIGINT, "condition_id": TEXT, "shape": _INT, "fields": TEXT}
    return Rows(CONDITIONS, types, rows)


# The Contract 4 `results` of the items of one assessment year: the near-miss and missing-data rows of the
# statuses with their ids, the USCC, the failing condition and the values it read, the missing fields; and
# the eligible rows of `matches` with their amounts.
_RESULTS = """
SELECT s.item, s.rid, i.policy_id, i.policy_version, i.item_id, i.period, i.grp, p.uscc,
  'near_miss' AS status, s.condition_id, :value AS value, NULL AS fields,
  CAST(NULL AS DECIMAL(18, 2)) AS amount, CAST(NULL AS DECIMAL(38, 10)) AS rank_value
FROM {statuses} AS s
JOIN {items} AS i ON i.item = s.item
JOIN {profile} AS p ON p.rid = s.rid
WHERE s.code = {near} AND i.year = {year}
UNION ALL
SELECT s.item, s.rid, i.policy_id, i.policy_version, i.item_id, i.period, i.grp, p.uscc,
  'missing_data' AS status, NULL AS condition_id, NULL AS value, s.fields,
  CAST(NULL AS DECIMAL(18, 2)) AS amount, CAST(NULL AS DECIMAL(38, 10)) AS rank_value
FROM {statuses} AS s
JOIN {items} AS i ON i.item = s.item
JOIN {profile} AS p ON p.rid = s.rid
WHERE s.code = {missing} AND i.year = {year}
UNION ALL
SELECT m.item, m.rid, i.policy_id, i.policy_version, i.item_id, i.period, i.grp, p.uscc,
  'eligible' AS status, NULL AS condition_id, NULL AS value, NULL AS fields, m.amount, m.rank_value
FROM {eligible} AS m
JOIN {items} AS i ON i.item = m.item
JOIN {profile} AS p ON p.rid = m.rid
WHERE i.year = {year}
"""


def results_view(plans: list[ItemPlan], profile_for: dict[int, str]) -> exp.Expr:
    """The Contract 4 `results`: every verdict row with its texts."""
    shapes = _shapes(plans)
    value: exp.Expression = exp.null()
    if shapes:  # items without conditions have no near-misses
        value = exp.Case(
            this=_col("shape", "s"),
            ifs=[exp.If(this=_n(n), true=_value_text(fields, "p")) for n, fields in enumerate(shapes)],
        )
    selects = []
    for year in sorted({p.policy.assessment_year for p in plans}):
        text = _RESULTS.format(
            near=NEAR_MISS,
            missing=MISSING_DATA,
            statuses=STATUS_ROWS,
            items=ITEMS,
            profile=profile_for[year],
            eligible=ELIGIBLE,
            year=year,
        )
        selects.append(_put(_template(text), "value", value))
    return _union(selects)


def items_rows(plans: list[ItemPlan]) -> Rows:
    """Every item: its number, ids, version, period, exclusive group, its policy's budget, its amount group
    if `priced`, its block and year, and its bit masks: its conditions in `f` (`mask`), the fields its
    conditions read (`cmask`) and all the fields it reads (`fmask`) in `n`."""
    policy_no = {pid: n for n, pid in enumerate(sorted({p.policy.id for p in plans}))}
    amount_group: dict[int, int] = {}
    for block in {p.block for p in plans}:
        members = [p for p in plans if p.block == block]
        index = {g.amount_key: j for j, g in enumerate(amount_groups(members))}
        amount_group |= {p.no: index[p.amount_key] for p in members if p.priced}
    groups = sorted({p.group for p in plans if p.group is not None})
    group_no = {g: n for n, g in enumerate(groups)}
    rows: list[tuple[object, ...]] = [
        (
            p.no,
            policy_no[p.policy.id],
            None if p.group is None else group_no[p.group],
            p.policy.id,
            p.policy.version,
            p.item.id,
            p.policy.period,
            p.group,
            p.policy.budget,
            p.policy.allocation,
            amount_group.get(p.no),
            p.block,
            p.policy.assessment_year,
            p.mask,
            p.conditions_mask,
            p.fields_mask,
            ";".join(p.fields()),
            p._amount().sql("duckdb"),
            payable_item_query(p).sql("duckdb"),
            None if p.allocated else p.eligible().sql("duckdb"),
        )
        for p in plans
    ]
    types = {
        "item": _INT,
        "pol": _INT,
        "grp_no": _INT,
        "policy_id": TEXT,
        "policy_version": _INT,
        "item_id": TEXT,
        "period": TEXT,
        "grp": TEXT,
        "budget": MONEY,
        "allocation": TEXT,
        "amount_group": _INT,
        "block": _INT,
        "year": _INT,
        "mask": _BIGINT,
        "cmask": _BIGINT,
        "fmask": _BIGINT,
        "fields": TEXT,  # every field it reads, ';'-joined (the compact results keep them in the profile)
        "amount_sql": TEXT,  # its amount over a profile row, DuckDB SQL (the compact results' standings)
        "payable_sql": TEXT,  # its rows of `payable`, DuckDB SQL (the candidates writer reads them per item)
        "eligible_sql": TEXT,  # an open item's eligible rows (its payable rows where none was paid before)
    }
    return Rows(ITEMS, types, rows)


# Stage 2, over the narrow stage-1 rows (`:matches`), the items (`:items`), the enterprise numbers (`:keys`)
# and the payments already made (`:payments`, by USCC and ids). Item numbers follow (policy_id, item_id);
# policies (`pol`) and exclusive groups (`grp_no`) are numbered too, so the joins and windows are on integers.
_PAID = """
SELECT DISTINCT i.item, k.rid
FROM :payments AS p
JOIN :items AS i ON i.policy_id = p.policy_id AND i.item_id = p.item_id AND i.period = p.period
JOIN :keys AS k ON k.uscc = p.uscc
"""

_CANDIDATES = """
WITH unpaid AS (
  SELECT r.item, r.rid, i.pol, i.grp_no, r.amount, r.rank_value
  FROM :matches AS r JOIN :items AS i ON i.item = r.item
  LEFT JOIN :paid AS paid ON paid.item = r.item AND paid.rid = r.rid
  WHERE paid.rid IS NULL
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
  -- mode: how the policy's rows are paid; 'none' (as matched) unless over a pro_rata or rank budget
  SELECT k.pol, SUM(k.amount) AS total, MAX(b.budget) AS budget,
    CASE WHEN MAX(b.budget) IS NOT NULL AND SUM(k.amount) > MAX(b.budget) AND MAX(b.allocation) <> 'none'
      THEN MAX(b.allocation) ELSE 'none' END AS mode
  FROM kept AS k JOIN budgets AS b ON b.pol = k.pol
  GROUP BY k.pol
)
SELECT k.item, k.rid, k.amount, k.amount AS amount_before_allocation
FROM kept AS k JOIN totals AS t ON t.pol = k.pol
WHERE t.mode = 'none'
UNION ALL
-- amount * budget / total rounded down to the fen (towards minus infinity, as the reference), on integer
-- fen: `//` truncates towards zero on both engines, so the floor remainder is subtracted first.
SELECT item, rid,
  CAST(CAST((share - (share % total_fen + total_fen) % total_fen) // total_fen AS DECIMAL(38, 0)) * 0.01
    AS DECIMAL(18, 2)) AS amount,
  amount AS amount_before_allocation
FROM (
  SELECT k.item, k.rid, k.amount,
    CAST(k.amount * 100 AS INT128) * CAST(t.budget * 100 AS INT128) AS share,
    CAST(t.total * 100 AS INT128) AS total_fen
  FROM kept AS k JOIN totals AS t ON t.pol = k.pol
  WHERE t.mode = 'pro_rata'
) AS p
UNION ALL
-- rank: the rows whose running total, in rank order, stays within the budget
SELECT item, rid, amount, amount AS amount_before_allocation
FROM (
  SELECT k.item, k.rid, k.amount, t.budget,
    SUM(k.amount) OVER (
      PARTITION BY k.pol ORDER BY k.rank_value DESC NULLS LAST, e.uscc, k.item
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running
  FROM kept AS k JOIN totals AS t ON t.pol = k.pol JOIN :keys AS e ON e.rid = k.rid
  WHERE t.mode = 'rank'
) AS r
WHERE running <= budget
"""

# The open items' eligible rows not already paid. The pairs paid are distinct, so the LEFT JOIN keeps each
# row once; a NOT EXISTS would make DuckDB group every open row by (item, rid) first (decorrelation), in
# memory. Over `open` in the `payable` view; over one item's `ItemPlan.eligible` in `payable_item_query`.
_UNPAID = """
SELECT o.item, o.rid, o.amount, o.amount AS amount_before_allocation
FROM :open AS o LEFT JOIN :paid AS paid ON paid.item = o.item AND paid.rid = o.rid
WHERE paid.rid IS NULL
"""

_ALLOCATED_ROWS = "SELECT item, rid, amount, amount_before_allocation FROM :allocated"

# Every candidate: the allocated rows and the open items' unpaid ones.
_PAYABLE = f"{_ALLOCATED_ROWS} UNION ALL{_UNPAID}"

# One item's rows of `payable`, read without planning the view's branches of every item (0.4-0.5 s at
# 1,000 items): an allocated item's stored rows (below), or an open item's unpaid eligible rows (`_UNPAID`).
# The candidates writer reads them item by item (`matcher.duckdb_engine.write_candidates`).
_PAYABLE_ALLOCATED_ITEM = _ALLOCATED_ROWS + " WHERE item = {item}"

# The Contract 4 candidates: the payable rows with their ids and USCC (DuckDB writes them itself, item by
# item: `matcher.duckdb_engine.write_candidates`).
_CANDIDATES_VIEW = """
SELECT i.policy_id, i.policy_version, i.item_id, k.uscc, a.amount, a.amount_before_allocation
FROM :payable AS a JOIN :items AS i ON i.item = a.item JOIN :keys AS k ON k.rid = a.rid
"""

# Per item (every item, also one that kept no row): eligible, candidates, near-miss and missing-data
# counts and the money.
_SUMMARY = """
SELECT i.policy_id, i.item_id, CAST(COALESCE(r.eligible, 0) AS BIGINT) AS eligible,
  CAST(COALESCE(c.candidates, 0) AS BIGINT) AS candidates,
  CAST(COALESCE(r.near_misses, 0) AS BIGINT) AS near_misses,
  CAST(COALESCE(r.missing_data, 0) AS BIGINT) AS missing_data,
  CAST(COALESCE(c.amount, 0) AS DECIMAL(18, 2)) AS amount,
  CAST(COALESCE(c.amount_before_allocation, 0) AS DECIMAL(18, 2)) AS amount_before_allocation
FROM :items AS i LEFT JOIN :status_counts AS r ON r.item = i.item LEFT JOIN :totals AS c ON c.item = i.item
ORDER BY i.policy_id, i.item_id
"""

# Every item's candidates and money (and `unpriced`, its eligible rows whose amount did not fit), the sum
# of these parts per item:
_TOTALS = """
SELECT item, SUM(candidates) AS candidates, SUM(amount) AS amount,
  SUM(amount_before_allocation) AS amount_before_allocation, SUM(unpriced) AS unpriced
FROM parts AS t
GROUP BY item
"""
# the allocated rows of the items stage 2 needs;
_ALLOCATED_TOTALS = """
SELECT item, COUNT(*) AS candidates, SUM(amount) AS amount,
  SUM(amount_before_allocation) AS amount_before_allocation, 0 AS unpriced
FROM :allocated GROUP BY item
"""
# the eligible count of a `fixed` item, times its amount (`item_amount`, a CASE on the item);
_FIXED_TOTALS = """
SELECT item, candidates, candidates * amount AS amount, candidates * amount AS amount_before_allocation,
  0 AS unpriced
FROM (
  SELECT r.item, CAST(r.eligible AS BIGINT) AS candidates, item_amount AS amount
  FROM :status_counts AS r WHERE r.item IN ({members})
) AS x
"""
# the sums of a `priced` item's amount group over its eligible patterns of one block (`amounts`: the
# block's patterns, one row per amount group `grp`, with its `s` and `c`);
_PRICED_TOTALS = """
SELECT i.item, SUM(p.cnt) AS candidates, SUM(p.s) AS amount, SUM(p.s) AS amount_before_allocation,
  SUM(p.cnt - p.c) AS unpriced
FROM amounts AS p JOIN {items} AS i ON i.amount_group = p.grp
WHERE i.block = {block} AND (p.f & i.mask) = 0 AND (p.n & i.fmask) = 0
GROUP BY i.item
"""
# less, for the open items of one block, their eligible rows already paid (few: the paid pairs joined to
# their bits; `item_amount` is each item's amount, a CASE on the item).
_PAID_TOTALS = """
SELECT item, -COUNT(*) AS candidates, -SUM(amount) AS amount, -SUM(amount) AS amount_before_allocation,
  0 AS unpriced
FROM (
  SELECT pd.item, item_amount AS amount
  FROM {paid} AS pd JOIN {items} AS i ON i.item = pd.item JOIN {verdicts} AS v ON v.rid = pd.rid
  WHERE (v.f & i.mask) = 0 AND (v.n & i.fmask) = 0 AND pd.item IN ({members})
) AS x
GROUP BY item
"""


def _subquery(tree: exp.Expr, name: str, by: exp.Expr) -> exp.Expr:
    """`tree` (a template: copied) with the table `name` replaced by the subquery `by` (not copied)."""

    def fill(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and node.name == name:
            return exp.alias_(exp.Subquery(this=by), node.alias or name, table=True, copy=False)
        return node

    return tree.copy().transform(fill, copy=False)


def _priced_totals(block: Block) -> exp.Expr | None:
    groups = amount_groups(block.items)
    if not groups:
        return None
    amounts = _union(
        [
            exp.select(
                "f",
                "n",
                "cnt",
                exp.alias_(exp.cast(_n(j), _INT), "grp"),
                exp.alias_(f"s{j}", "s"),
                exp.alias_(f"c{j}", "c"),
            ).from_(block.patterns)
            for j in range(len(groups))
        ]
    )
    return _subquery(_template(_PRICED_TOTALS.format(items=ITEMS, block=block.no)), "amounts", amounts)


def _with_amounts(tree: exp.Expr, item: exp.Column, plans: list[ItemPlan]) -> exp.Expr:
    """`tree` with the column `item_amount` replaced by the amount of each of the plans' items, a CASE on
    the column `item`."""
    amount = exp.Case(this=item, ifs=[exp.If(this=_n(p.no), true=p._amount()) for p in plans])
    return tree.transform(lambda n: amount if isinstance(n, exp.Column) and n.name == "item_amount" else n)


def _members(plans: list[ItemPlan]) -> str:
    return ", ".join(str(p.no) for p in plans)


def _fixed_totals(plans: list[ItemPlan]) -> exp.Expr | None:
    fixed = [p for p in plans if p.fixed]
    if not fixed:
        return None
    tree = _filled(_FIXED_TOTALS.replace("{members}", _members(fixed)))
    return _with_amounts(tree, _col("item", "r"), fixed)


def _paid_totals(block: Block) -> exp.Expr | None:
    opened = [p for p in block.items if not p.allocated]
    if not opened:
        return None
    text = _PAID_TOTALS.format(paid=PAID, items=ITEMS, verdicts=block.table, members=_members(opened))
    return _with_amounts(_template(text), _col("item", "pd"), opened)


def totals_query(plans: list[ItemPlan]) -> exp.Expr:
    """Every item's candidates (after paid pairs and allocation), their amount before and after allocation,
    and `unpriced`: over the blocks' `patterns_<n>` and `status_counts` (`status_counts_query`), which must
    exist."""
    parts = [t for t in (_filled(_ALLOCATED_TOTALS), _fixed_totals(plans)) if t is not None]
    for block in blocks(plans):
        parts += [t for t in (_priced_totals(block), _paid_totals(block)) if t is not None]
    return _subquery(_template(_TOTALS), "parts", _union(parts))


def summary_query() -> exp.Expr:
    """Per item: eligible, candidates, near-miss and missing-data counts and the money, off the tables
    `status_counts` and `item_totals`."""
    return _filled(_SUMMARY)


# The first item whose amount did not fit DECIMAL(18, 2) on an eligible row.
_UNPRICED = """
SELECT i.policy_id, i.item_id FROM :totals AS t JOIN :items AS i ON i.item = t.item
WHERE t.unpriced > 0 ORDER BY i.policy_id, i.item_id LIMIT 1
"""


def unpriced_query() -> exp.Expression:
    return _filled(_UNPRICED)


def unpriced_error(policy_id: str, item_id: str) -> MatchError:
    return MatchError(
        f"政策 {policy_id} 事项 {item_id} 的金额在某些符合条件的企业上超出 DECIMAL(18,2)（整数部分最多 16 位）："
        "请检查金额公式与画像中的数值"
    )


_TABLES = {
    "statuses": STATUS_ROWS,
    "matches": MATCHES,
    "items": ITEMS,
    "keys": KEYS,
    "allocated": ALLOCATED,
    "payments": "payments",
    "paid": PAID,
    "open": OPEN,
    "payable": PAYABLE,
    "totals": TOTALS,
    "status_counts": STATUS_COUNTS,
}


def _filled(text: str, **tables: str) -> exp.Expression:
    names = _TABLES | tables

    def fill(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name in names:
            return exp.to_table(names[node.name])
        return node

    return _template(text).transform(fill)


def paid_query(payments: str = "payments") -> exp.Expression:
    """The (item, rid) pairs already paid for the same item and period."""
    return _filled(_PAID, payments=payments)


def candidates_query() -> exp.Expression:
    """Stage 2: the stored rows after already-paid pairs, exclusive groups and budgets (docs/contracts.md#allocation, in that
    order)."""
    return _filled(_CANDIDATES)


def eligible_view() -> exp.Expr:
    """Every eligible row: stored and open."""
    return _union([exp.select("*").from_(MATCHES), exp.select("*").from_(OPEN)])


def payable_view() -> exp.Expression:
    return _filled(_PAYABLE)


def payable_item_query(p: ItemPlan) -> exp.Expr:
    """The item's rows of `payable` (item, rid, amount, amount_before_allocation), in no order."""
    if p.allocated:
        return _filled(_PAYABLE_ALLOCATED_ITEM.format(item=p.no))
    return _subquery(_filled(_UNPAID, open="eligible"), "eligible", p.eligible())


def views(plans: list[ItemPlan], profile_for: dict[int, str]) -> dict[str, exp.Expr]:
    """The views over the stage 1 and 2 tables, by name, in the order they must be created."""
    return {
        OPEN: open_query(plans),
        ELIGIBLE: eligible_view(),
        PAYABLE: payable_view(),
        STATUS_ROWS: statuses_view(plans),
        RESULT_RIDS: result_rids_view(plans),
        "results": results_view(plans, profile_for),
        "candidates": candidates_view(),
    }


def candidates_view() -> exp.Expression:
    return _filled(_CANDIDATES_VIEW)
