"""Column types the payouts schema needs on both SQLite and PostgreSQL.

`Money` is NUMERIC(18,2) on PostgreSQL. SQLite has no exact decimal type (it would keep money as a
binary float), so there it is an INTEGER count of fen: sums and comparisons in SQL stay exact on both.
`UtcDateTime` is TIMESTAMPTZ on PostgreSQL and text on SQLite; Python always sees aware UTC datetimes.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

FEN = Decimal("0.01")


class Money(TypeDecorator[Decimal]):
    """Yuan as an exact Decimal with two places: NUMERIC(18,2), or integer fen on SQLite."""

    impl = Numeric(18, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        amount = Decimal(value)
        if amount != amount.quantize(FEN):
            raise ValueError(f"金额只能精确到分：{value}")
        if dialect.name == "sqlite":
            return int(amount.scaleb(2))
        return amount.quantize(FEN)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-2).quantize(FEN)
        return Decimal(value).quantize(FEN)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A point in time, stored in UTC and always handed back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            raise ValueError(f"需要带时区的时间：{value!r}")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
