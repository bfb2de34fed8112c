"""Who a policy is for, as far as its conditions say: regions, industry sections and size classes.

The policy supermarket (政策超市) filters policies by region, industry and size. Contract 1 has no
separate scope fields, so the scope is read from the conditions themselves: simple comparisons of
`region_code`, `industry_section`, `industry_code` and `size_class` with constants, combined with `and`,
`or` and `not`. Anything else (a condition on revenue, a comparison between two fields) does not restrict
the scope. The reading errs on the side of "may apply": a policy is never hidden from an enterprise that
could be eligible, while a policy shown may still turn out not to match (the match run decides).

- `region_code =~ "^43"` restricts to codes starting with 43 (湖南省); `not region_code =~ "^3702"` (or
  `region_code !~ "^3702"`) excludes 青岛市; `region_code == "430102"` and `region_code in [...]` too.
- `industry_section in ["B", "C"]`, `industry_code =~ "^C39"` (section C) and their negations.
- `size_class in [...]`, `size_class == "..."`, `size_class != "..."` and their negations.

A policy's scope is the union over its items of (shared conditions and the item's conditions).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rules.expressions import parse
from rules.policy import Condition, Policy

SECTIONS = frozenset("ABCDEFGHIJKLMNOPQRST")
"""The industry sections (门类) of GB/T 4754-2017."""

SIZES = frozenset({"large", "medium", "small", "micro"})
"""The size classes of the field catalog."""

_REGION_REGEX = re.compile(r"\^\(?([0-9]{1,6}(?:\|[0-9]{1,6})*)\)?")
_REGION_CLASS = re.compile(r"\^([0-9]{0,5})\[([0-9]+)\]")  # ^32080[34]: 320803 or 320804, exactly
_INDUSTRY_REGEX = re.compile(r"\^\(?([A-T][0-9]{0,4}(?:\|[A-T][0-9]{0,4})*)\)?")


@dataclass(frozen=True)
class Scope:
    """Where a policy may apply. `None` means "not restricted"; an empty set means "nowhere".

    `regions` are GB/T 2260 code prefixes (`"43"`, `"4301"`, `"430102"`); a region whose code starts with
    one of `regions_excluded` is out, whatever `regions` says.
    """

    regions: frozenset[str] | None = None
    regions_excluded: frozenset[str] = frozenset()
    sections: frozenset[str] | None = None
    sizes: frozenset[str] | None = None

    def admits_region(self, code: str) -> bool:
        """Whether the policy may apply somewhere in region `code` (a 2-, 4- or 6-digit prefix)."""
        if any(code.startswith(e) for e in self.regions_excluded):
            return False
        return self.regions is None or any(code.startswith(p) or p.startswith(code) for p in self.regions)


ANYWHERE = Scope()


def _minimal(prefixes: set[str]) -> frozenset[str]:
    """The prefixes without those that a shorter one covers: {43, 4301} is {43}."""
    return frozenset(p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes))


def _meet_prefixes(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None or b is None:
        return b if a is None else a
    return _minimal(
        {x for x in a for y in b if x.startswith(y)} | {y for x in a for y in b if y.startswith(x)}
    )


def _join_prefixes(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return None if a is None or b is None else _minimal(set(a | b))


def _meet_sets(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None or b is None:
        return b if a is None else a
    return a & b


def _join_sets(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return None if a is None or b is None else a | b


def meet(a: Scope, b: Scope) -> Scope:
    """Both must hold (`and`)."""
    return Scope(
        _meet_prefixes(a.regions, b.regions),
        a.regions_excluded | b.regions_excluded,
        _meet_sets(a.sections, b.sections),
        _meet_sets(a.sizes, b.sizes),
    )


def join(a: Scope, b: Scope) -> Scope:
    """Either may hold (`or`, or two items of one policy)."""
    return Scope(
        _join_prefixes(a.regions, b.regions),
        a.regions_excluded & b.regions_excluded,
        _join_sets(a.sections, b.sections),
        _join_sets(a.sizes, b.sizes),
    )


def _name(node: Any) -> str:
    return type(node).__name__


def _symbol_and_strings(node: Any) -> tuple[str, list[str]] | None:
    """(field, constants) of `field == "x"`, `"x" == field` and `field in ["x", "y"]`; None otherwise."""
    kind = _name(node)
    if kind == "ContainsExpression":
        field, container = node.member, node.container
        if _name(field) != "SymbolExpression" or _name(container) != "ArrayExpression":
            return None
        values = container.value
    elif kind in ("ComparisonExpression", "FuzzyComparisonExpression"):
        field, value = node.left, node.right
        if _name(field) != "SymbolExpression":
            field, value = value, field
        if _name(field) != "SymbolExpression":
            return None
        values = (value,)
    else:
        return None
    if field.scope is not None or not all(_name(v) == "StringExpression" for v in values):
        return None
    return str(field.name), [str(v.value) for v in values]


def _expand_class(pattern: str) -> str:
    """`^32080[34]` as the alternatives it means, `^(320803|320804)`; other patterns as they are."""
    m = _REGION_CLASS.fullmatch(pattern)
    return "^(" + "|".join(m.group(1) + c for c in m.group(2)) + ")" if m else pattern


def _leaf(field: str, values: list[str], regex: bool) -> Scope | None:
    """The scope of `field` equal to (or, with `regex`, matching) one of `values`; None if not a scope field."""
    if field == "region_code":
        if not regex:
            return Scope(regions=frozenset(values))
        found = [_REGION_REGEX.fullmatch(_expand_class(v)) for v in values]
        return (
            Scope(regions=frozenset(p for m in found if m for p in m.group(1).split("|")))
            if all(found)
            else None
        )
    if field in ("industry_section", "industry_code"):
        if not regex:
            return Scope(sections=frozenset(v[:1] for v in values if v[:1] in SECTIONS))
        found = [_INDUSTRY_REGEX.fullmatch(v) for v in values]
        return (
            Scope(sections=frozenset(p[:1] for m in found if m for p in m.group(1).split("|")))
            if all(found)
            else None
        )
    if field == "size_class" and not regex:
        return Scope(sizes=frozenset(values) & SIZES)
    return None


def _negate(scope: Scope) -> Scope:
    """The complement of a leaf scope (one dimension only); ANYWHERE where the complement is not a scope."""
    if scope.regions is not None:
        return Scope(regions_excluded=scope.regions)
    if scope.sections is not None:
        return Scope(sections=SECTIONS - scope.sections)
    if scope.sizes is not None:
        return Scope(sizes=SIZES - scope.sizes)
    return ANYWHERE


def _scope_of(node: Any, negated: bool = False) -> Scope:
    kind = _name(node)
    if kind == "LogicExpression":
        left, right = _scope_of(node.left, negated), _scope_of(node.right, negated)
        # De Morgan: under `not`, `and` becomes `or`.
        return meet(left, right) if (node.type == "and") != negated else join(left, right)
    if kind == "UnaryExpression" and node.type == "not":
        return _scope_of(node.right, not negated)
    pair = _symbol_and_strings(node)
    if pair is None:
        return ANYWHERE
    op = getattr(node, "type", None)
    if op not in (None, "eq", "ne", "eq_fzm", "ne_fzm"):
        return ANYWHERE
    leaf = _leaf(pair[0], pair[1], regex=op in ("eq_fzm", "ne_fzm"))
    if leaf is None:
        return ANYWHERE
    if op in ("ne", "ne_fzm"):
        negated = not negated
    if not negated:
        return leaf
    # A negated `or` of several values would need a join of negations; only single leaves are negated.
    return _negate(leaf)


def condition_scope(condition: Condition) -> Scope:
    """What one condition says about region, industry and size."""
    return _scope_of(parse(condition.rule).root)


def _all(conditions: Iterable[Condition]) -> Scope:
    scope = ANYWHERE
    for condition in conditions:
        scope = meet(scope, condition_scope(condition))
    return scope


def policy_scope(policy: Policy) -> Scope:
    """Where a policy may apply: the union over its items of the shared and the item's conditions."""
    shared = _all(policy.conditions)
    # A policy without items (权益, 资质) is scoped by its shared conditions alone.
    scopes = [meet(shared, _all(item.conditions)) for item in policy.items] or [shared]
    result = scopes[0]
    for scope in scopes[1:]:
        result = join(result, scope)
    # "Any size" and "any section" are no restriction at all.
    return Scope(
        result.regions,
        result.regions_excluded,
        None if result.sections == SECTIONS else result.sections,
        None if result.sizes == SIZES else result.sizes,
    )
