"""The working-day calendar as the reports use it: China days of columns of times (pandas) and in SQL,
and working days between many dates at once (`WorkCalendar`). The calendar itself, the official
holiday schedule with its adjusted working days, is `rules.workdays`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Date, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from rules.formats import CHINA
from rules.workdays import is_working_day


def china_days(stamps: pd.Series) -> pd.Series:
    """The calendar days in China (UTC+8) of a column of UTC times, as midnight timestamps."""
    return stamps.dt.tz_convert(CHINA).dt.tz_localize(None).dt.normalize()


class china_day(FunctionElement[dt.date]):
    """SQL: the calendar day in China (UTC+8) of a UTC time column, so reports group by day in the
    database (PostgreSQL `timestamptz AT TIME ZONE`, SQLite `date(…, '+8 hours')` on its UTC text)."""

    type = Date()
    inherit_cache = True
    name = "china_day"


@compiles(china_day, "postgresql")
def _china_day_pg(element: china_day, compiler: SQLCompiler, **kw: object) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'Asia/Shanghai' AS DATE)"


@compiles(china_day, "sqlite")
def _china_day_sqlite(element: china_day, compiler: SQLCompiler, **kw: object) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, '+8 hours')"


class china_month(FunctionElement[str]):
    """SQL: the month in China (UTC+8) of a UTC time column, as text `YYYY-MM`."""

    type = String()
    inherit_cache = True
    name = "china_month"


@compiles(china_month, "postgresql")
def _china_month_pg(element: china_month, compiler: SQLCompiler, **kw: object) -> str:
    return f"to_char(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM')"


@compiles(china_month, "sqlite")
def _china_month_sqlite(element: china_month, compiler: SQLCompiler, **kw: object) -> str:
    return f"strftime('%Y-%m', {compiler.process(element.clauses, **kw)}, '+8 hours')"


def as_day(value: object) -> dt.date | None:
    """A `china_day` result as a date (SQLite hands back text)."""
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


@dataclass(frozen=True)
class WorkCalendar:
    """Working days between dates by the official schedule (调休 included), for `first` to `last`."""

    first: dt.date
    last: dt.date
    ordinal: pd.Series = field(repr=False)  # day → working days from `first` up to and including it

    @classmethod
    def covering(cls, first: dt.date, last: dt.date) -> WorkCalendar:
        """A calendar for [first, last]; refuses years `chinese-calendar` has no schedule for."""
        days = pd.date_range(first, last, freq="D")
        flags = [is_working_day(d.date()) for d in days]
        return cls(first, last, pd.Series(pd.Series(flags, dtype="int64").cumsum().to_numpy(), index=days))

    def between(self, start: dt.date, end: dt.date) -> int:
        """Working days after `start` up to and including `end` (0 when done the same day)."""
        return int(self.ordinal[pd.Timestamp(end)] - self.ordinal[pd.Timestamp(start)])

    def spans(self, start: pd.Series, end: pd.Series) -> pd.Series:
        """`between` for columns of days (midnight timestamps, see `china_days`)."""
        begin = self.ordinal.reindex(start.to_numpy()).to_numpy()
        finish = self.ordinal.reindex(end.to_numpy()).to_numpy()
        return pd.Series(finish - begin, index=start.index, dtype="int64")


def working_days(start: dt.date, end: dt.date) -> int:
    """Working days after `start` up to and including `end`, adjusted working days included."""
    return WorkCalendar.covering(min(start, end), max(start, end)).between(start, end)


def calendar_for(days: Iterable[pd.Series]) -> WorkCalendar | None:
    """A calendar covering every day in the given columns (None when they are all empty)."""
    known = [d.dropna() for d in days]
    known = [d for d in known if len(d)]
    if not known:
        return None
    return WorkCalendar.covering(min(d.min() for d in known).date(), max(d.max() for d in known).date())
