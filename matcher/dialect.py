"""The Spark SQL the Spark engine runs: sqlglot's Spark dialect where Spark would mean something else.

The plan, the profile and the snapshot rules are sqlglot trees written once; DuckDB runs them as
`tree.sql("duckdb")`, Spark as `tree.sql(dialect=ZhidaSpark)`. This dialect is sqlglot's Spark with the
few renderings the engine needs, in its generator's tables:

- `TYPE_MAPPING`: Spark has no 128-bit integer; exact integer fen products are DECIMAL(38, 0) there.
- `TRANSFORMS[exp.Try]`: Spark has no TRY(): its decimal products widen up to 38 digits, so only the
  TRY_CASTs inside can fail, and they give NULL; the expression is rendered without it.
- `TRANSFORMS[exp.Cast]`: a ratio field (DOUBLE) cast to text is spelled as DuckDB spells it (Java
  writes 5.0E-4 where DuckDB writes 0.0005), so near-miss values read the same on both engines.

Anything else sqlglot cannot express in Spark is an error, not a warning: what this dialect renders is
what the engine runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ErrorLevel
from sqlglot.generators.spark import SparkGenerator

from rules.catalog import CATALOG

# The casts `double_text` makes itself: to TEXT, which Spark spells STRING like VARCHAR, but which the
# Cast transform (on VARCHAR) leaves alone.
_TEXT = exp.DataType.build("TEXT")


def double_text(value: exp.Expr) -> exp.Expr:
    """A DOUBLE as text the way DuckDB writes it: Java (Spark) switches to 5.0E-4 notation outside
    [1e-3, 1e7), DuckDB only outside [1e-4, 1e16) and as 1e-05; the same digits, spelled DuckDB's way."""
    magnitude = exp.Abs(this=value.copy())
    java_plain = exp.and_(
        exp.GTE(this=magnitude.copy(), expression=exp.Literal.number("0.001")),
        exp.LT(this=magnitude.copy(), expression=exp.Literal.number("10000000")),
    )
    duckdb_plain = exp.and_(
        exp.GTE(this=magnitude.copy(), expression=exp.Literal.number("0.0001")),
        exp.LT(this=magnitude.copy(), expression=exp.Literal.number("10000000000000000")),
    )
    # The decimal takes Java's digits of the double (Spark converts through Double.toString).
    digits = exp.func(
        "REGEXP_REPLACE",
        exp.cast(exp.cast(value.copy(), "DECIMAL(38, 20)"), _TEXT),
        exp.Literal.string("0+$"),
        exp.Literal.string(""),
    )
    spelled = exp.func("REGEXP_REPLACE", digits, exp.Literal.string("\\.$"), exp.Literal.string(".0"))
    # Elsewhere both use exponents: Java 1.0E-5 and 1.5E20, DuckDB 1e-05 and 1.5e+20.
    scientific: exp.Expr = exp.cast(value.copy(), _TEXT)
    for pattern, replacement in (
        ("\\.0E", "E"),
        ("E([0-9])", "E+$1"),
        ("E([+-])([0-9])$", "E$10$2"),
        ("E", "e"),
    ):
        scientific = exp.func(
            "REGEXP_REPLACE", scientific, exp.Literal.string(pattern), exp.Literal.string(replacement)
        )
    return exp.Case(
        ifs=[
            exp.If(this=java_plain, true=exp.cast(value.copy(), _TEXT)),
            exp.If(this=duckdb_plain, true=spelled),
        ],
        default=scientific,
    )


def _is_ratio_field(node: exp.Expr) -> bool:
    return isinstance(node, exp.Column) and node.name in CATALOG and CATALOG[node.name].type == "ratio"


def _cast(generator: ZhidaSparkGenerator, cast: exp.Cast) -> str:
    if cast.to.is_type(exp.DataType.Type.VARCHAR) and _is_ratio_field(cast.this):
        return generator.sql(double_text(cast.this))
    return generator.cast_sql(cast)


class ZhidaSparkGenerator(SparkGenerator):
    """Spark's generator with the engine's renderings; unsupported constructs raise."""

    TYPE_MAPPING: ClassVar[dict[exp.DType, str]] = {
        **SparkGenerator.TYPE_MAPPING,
        exp.DataType.Type.INT128: "DECIMAL(38, 0)",
    }
    TRANSFORMS: ClassVar[dict[type[exp.Expr], Callable[..., str]]] = {
        **SparkGenerator.TRANSFORMS,
        exp.Try: lambda self, e: self.sql(e, "this"),
        exp.Cast: _cast,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("unsupported_level", ErrorLevel.RAISE)
        super().__init__(*args, **kwargs)


class ZhidaSpark(Spark):
    """The Spark SQL dialect of the Spark engine: `tree.sql(dialect=ZhidaSpark)`."""

    Generator = ZhidaSparkGenerator
