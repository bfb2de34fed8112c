"""The clock of an application (快申快享): working days by the official calendar, stopped during 补正."""

from __future__ import annotations

import datetime as dt

from reports.sla import light_for
from rules.workdays import working_day_after, working_days_running

CHINA = dt.timezone(dt.timedelta(hours=8))


def at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=CHINA).astimezone(dt.UTC)


def test_the_clock_counts_official_working_days_across_national_day() -> None:
    # Submitted Friday 26 September 2025; 国庆 1–8 October is off, Sunday 28 September and Saturday
    # 11 October are worked (调休). By Tuesday 14 October: 28/9, 29/9, 30/9, 9/10, 10/10, 11/10, 13/10, 14/10.
    assert working_days_running(at("2025-09-26"), at("2025-10-14")) == 8


def test_the_clock_stops_while_the_enterprise_corrects() -> None:
    # Returned Monday 29 September, submitted again Friday 10 October: 30/9, 9/10 and 10/10 do not count.
    pause = (at("2025-09-29", 15), at("2025-10-10", 16))
    assert working_days_running(at("2025-09-26"), at("2025-10-14"), [pause]) == 5
    # Still correcting: the clock stands at the day of the return.
    assert working_days_running(at("2025-09-26"), at("2025-10-14"), [(at("2025-09-29"), None)]) == 2


def test_a_return_and_a_new_submission_on_the_same_day_cost_nothing() -> None:
    same_day = (at("2025-09-29", 9), at("2025-09-29", 17))
    assert working_days_running(at("2025-09-26"), at("2025-10-14"), [same_day]) == 8


def test_the_last_day_of_a_time_limit_skips_holidays_and_counts_adjusted_working_days() -> None:
    # 5 working days after Friday 26 September 2025: 28/9 (调休), 29/9, 30/9, 9/10, 10/10.
    assert working_day_after(dt.date(2025, 9, 26), 5) == dt.date(2025, 10, 10)


def test_lights_turn_yellow_near_the_limit_and_red_past_it() -> None:
    assert [light_for(used, 20, 3)[0] for used in (10, 16, 17, 20, 21)] == [
        "green",
        "green",
        "yellow",
        "yellow",
        "red",
    ]
