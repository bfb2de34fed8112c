"""The official working-day calendar: the State Council's holiday schedule with its adjusted working
days (调休上班, e.g. Saturday 11 October 2025), from the `chinese-calendar` package.

Every working-day count in zhida goes through these functions: the SLA and its lights, the monthly
report, public notice periods counted in working days, the clock of an application (快申快享).
`reports.calendar` adds what the reports need on top (columns of days, SQL). A year the package has no
schedule for is refused with the fix (`strict`, the default: nothing must guess); the console's live
lights pass `strict=False` and count Monday to Friday for such a year, so an outdated package dims the
lights' precision instead of breaking the page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import chinese_calendar

from rules.errors import CalendarError
from rules.formats import CHINA


def china_date(t: dt.datetime) -> dt.date:
    """The calendar day in China (UTC+8) of a point in time."""
    return t.astimezone(CHINA).date()


def is_working_day(day: dt.date, *, strict: bool = True) -> bool:
    """Whether `day` is worked by the official schedule (holidays off, 调休 weekends worked).

    A year `chinese-calendar` does not cover raises CalendarError, or with `strict=False` falls back to
    Monday to Friday.
    """
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as e:
        if not strict:
            return day.weekday() < 5
        raise CalendarError(
            f"chinese-calendar {chinese_calendar.__version__} 没有这一年的节假日安排（{e}），"
            "无法按工作日计算：请升级 chinese-calendar（pip install -U chinese-calendar）"
        ) from e


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
