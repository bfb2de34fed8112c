"""The Spark SQL the Spark engine runs: sqlglot's Spark dialect where Spark would mean something else.

The plan, the profile and the snapshot rules are sqlglot trees written once; DuckDB runs them as
`tree.sql("duckdb")`, Spark as `tree.sql(dialect=ZhidaSpark)`. This dialect is sqlglot's Spark with the
few renderings the engine needs, in its generator's tables:

- `TYPE_MAPPING`: Spark has no 128-bit integer; exact integer fen products are DECIMAL(38, 0) there.
- `TRANSFORMS[exp.Try]`: Spark has no TRY(): its decimal products widen up to 38 digits, so only the
  TRY_CASTs inside can fail, and they give NULL; the expression is rendered without it.

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


class ZhidaSparkGenerator(SparkGenerator):
    """Spark's generator with the engine's renderings; unsupported constructs raise."""

    TYPE_MAPPING: ClassVar[dict[exp.DType, str]] = {
        **SparkGenerator.TYPE_MAPPING,
        exp.DataType.Type.INT128: "DECIMAL(38, 0)",
    }
    TRANSFORMS: ClassVar[dict[type[exp.Expr], Callable[..., str]]] = {
        **SparkGenerator.TRANSFORMS,
        exp.Try: lambda self, e: self.sql(e, "this"),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("unsupported_level", ErrorLevel.RAISE)
        super().__init__(*args, **kwargs)


class ZhidaSpark(Spark):
    """The Spark SQL dialect of the Spark engine: `tree.sql(dialect=ZhidaSpark)`."""

    Generator = ZhidaSparkGenerator
