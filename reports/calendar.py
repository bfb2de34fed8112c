"""The official working-day calendar: the State Council's holiday schedule with its adjusted working
days (调休上班, e.g. Saturday 11 October 2025), from the `chinese-calendar` package.

Every working-day count in zhida (the SLA lights on the console, the monthly report, the notebooks) goes
through this module. A year the package has no schedule for is refused with the fix (`strict`, the
default: reports must not guess); the console's live lights pass `strict=False` and count Monday to
Friday for such a year, so an outdated package dims the lights' precision instead of breaking the page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import chinese_calendar
import pandas as pd
from sqlalchemy import Date, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from reports.errors import ReportError
from rules.formats import CHINA


def china_date(t: dt.datetime | pd.Timestamp) -> dt.date:
    """The calendar day in China (UTC+8) of a point in time."""
    return t.astimezone(CHINA).date()


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


def is_working_day(day: dt.date, *, strict: bool = True) -> bool:
    """Whether `day` is worked by the official schedule (holidays off, 调休 weekends worked).

    A year `chinese-calendar` does not cover raises ReportError, or with `strict=False` falls back to
    Monday to Friday.
    """
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as e:
        if not strict:
            return day.weekday() < 5
        raise ReportError(
            f"chinese-calendar {chinese_calendar.__version__} 没有这一年的节假日安排（{e}），"
            "无法按工作日计算：请升级 chinese-calendar（pip install -U chinese-calendar）"
        ) from e


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


def working_days_before(now: dt.datetime, days: int, *, strict: bool = True) -> dt.datetime:
    """The moment `days` working days before `now` (same clock time in China, official calendar).

    Something started before it has been waiting more than `days` working days.
    """
    local = now.astimezone(CHINA)
    left = max(days, 0)
    while left:
        local -= dt.timedelta(days=1)
        if is_working_day(local.date(), strict=strict):
            left -= 1
    return local.astimezone(dt.UTC)


def working_days_after(start: dt.datetime, days: int, *, strict: bool = True) -> dt.datetime:
    """The moment `days` working days after `start` (same clock time in China, official calendar): the
    deadline of a step started at `start` with a limit of `days` working days."""
    local = start.astimezone(CHINA)
    left = max(days, 0)
    while left:
        local += dt.timedelta(days=1)
        if is_working_day(local.date(), strict=strict):
            left -= 1
    return local.astimezone(dt.UTC)


def working_days_running(
    start: dt.datetime,
    end: dt.datetime,
    pauses: Iterable[tuple[dt.datetime, dt.datetime | None]] = (),
    *,
    strict: bool = True,
) -> int:
    """Working days a clock ran from `start` to `end` (China days, as `working_days`: after the day it
    started, up to and including the day it ended), except the days it was stopped: a pause stops it after
    the day it began, up to and including the day it ended (a pause still open runs to `end`).

    The clock of an application (快申快享): it stops while the enterprise corrects (补正), so a return and
    a new submission on the same day cost nothing, and a correction over 国庆 costs no working day.
    """
    first, last = china_date(start), china_date(end)
    stopped = [(china_date(a), china_date(b) if b is not None else last) for a, b in pauses]
    day, used = first, 0
    while day < last:
        day += dt.timedelta(days=1)
        if any(a < day <= b for a, b in stopped):
            continue
        used += is_working_day(day, strict=strict)
    return used


def working_day_after(day: dt.date, days: int, *, strict: bool = True) -> dt.date:
    """The day `days` working days after `day` (the day itself when `days` ≤ 0): a time limit's last day."""
    left = days
    while left > 0:
        day += dt.timedelta(days=1)
        left -= is_working_day(day, strict=strict)
    return day
