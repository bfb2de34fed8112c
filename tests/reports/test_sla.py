"""The one SLA (`reports.sla`): working days by the official calendar (holidays off, 调休 weekends
worked), the same limits for the console's lights and the monthly report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from api.settings import Settings, SlaSettings
from payouts import imports, offers
from reports import monthly, sla
from reports.calendar import working_days
from reports.errors import ReportError
from rules.errors import CalendarError
from rules.formats import CHINA
from rules.workdays import working_days_before
from tests.reports.timelines import hand_timeline


def beijing(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CHINA)


def paid_offer(confirmed: dt.datetime, paid: dt.datetime) -> pd.DataFrame:
    """One offer confirmed when imported, then batched, approved and paid the same day `paid`."""
    stamps = dict.fromkeys(("imported_at", "released_at", "notified_at", "confirmed_at"), confirmed)
    return hand_timeline(stamps | dict.fromkeys(("batched_at", "approved_at", "paid_at"), paid))


def test_the_national_day_week_is_not_five_working_days() -> None:
    # Confirmed Tuesday 30 September 2025, paid Thursday 9 October: 1-8 October was the holiday.
    assert working_days(dt.date(2025, 9, 30), dt.date(2025, 10, 9)) == 1
    outcomes = sla.sla_outcomes(paid_offer(beijing(2025, 9, 30, 10), beijing(2025, 10, 9, 15)))
    batch = outcomes.set_index("stage").loc["batch"]
    # Limit 2: Monday to Friday would count 7 days and call it late.
    assert (batch["working_days"], batch["outcome"]) == (1, "on_time")


def test_an_adjusted_working_saturday_counts() -> None:
    # Confirmed Thursday 9 October 2025, batched Monday 13 October: 10, 11 (调休 Saturday), 13.
    assert working_days(dt.date(2025, 10, 9), dt.date(2025, 10, 13)) == 3
    outcomes = sla.sla_outcomes(paid_offer(beijing(2025, 10, 9, 10), beijing(2025, 10, 13, 15)))
    batch = outcomes.set_index("stage").loc["batch"]
    # Limit 2: Monday to Friday would count 2 days and call it on time.
    assert (batch["working_days"], batch["outcome"]) == (3, "late")


def test_the_console_lights_count_back_over_the_holiday_and_the_worked_sunday() -> None:
    # 5 working days before Thursday 9 October 2025, 10:00: 30 Sep, 29 Sep, Sunday 28 Sep (调休), 26, 25.
    before = working_days_before(beijing(2025, 10, 9, 10), 5)
    assert before == beijing(2025, 9, 25, 10).astimezone(dt.UTC)


@pytest.mark.parametrize(
    ("now", "light"),
    [
        # 1 working day after 30 September over the National Day week (Monday to Friday would say 7: red).
        ((2025, 10, 9, 10), "green"),
        # 4 working days: 9, 10, Saturday 11 (调休), 13 October: yellow from limit 5 - warn 1.
        ((2025, 10, 14, 10), "yellow"),
        # 5 working days have passed by Wednesday 15 October, 10:00.
        ((2025, 10, 15, 10, 1), "red"),
    ],
)
def test_the_console_payment_light_counts_by_the_official_calendar(
    tx, small_run: Path, now: tuple[int, ...], light: str
) -> None:
    confirmed = beijing(2025, 9, 30, 10)  # `gaoxin` needs no 意愿确认: its offer is confirmed at release
    with tx() as s:
        imports.import_run(s, small_run, "rev", confirmed)
        offers.release(s, "rev", confirmed)
    with tx() as s:
        rows = sla.lights(s, Settings().sla(), beijing(*now), {"gaoxin"})
    payment = next(r for r in rows if r.stage == "payment" and r.policy_id is None)
    assert {"green": payment.green, "yellow": payment.yellow, "red": payment.red}[light] == payment.total == 1


def test_payment_steps_add_up_to_the_payment_limit_the_console_shows() -> None:
    limits = Settings().sla()
    assert limits == SlaSettings().sla() == sla.DEFAULT  # the console's lights and `zhida report`
    steps = {st.id: st.days for st in limits.stages}
    assert steps["batch"] + steps["approve"] + steps["pay"] == limits.payment_days == 5
    with pytest.raises(ReportError, match="ZHIDA_SLA_PAYMENT_DAYS"):
        sla.Sla(payment_days=3)


def test_a_year_without_a_schedule_is_refused_by_reports_and_weekdays_for_the_live_lights() -> None:
    with pytest.raises(CalendarError, match="升级 chinese-calendar"):
        working_days_before(beijing(2099, 1, 9, 10), 2)
    assert working_days_before(beijing(2099, 1, 9, 10), 2, strict=False) == beijing(
        2099, 1, 7, 10
    ).astimezone(dt.UTC)


def test_the_report_of_the_running_month_judges_open_work_now_not_at_month_end(tx, small_run: Path) -> None:
    # Confirmed at release on Thursday 4 December 2025 (`gaoxin` needs no 意愿确认), not yet in a batch.
    confirmed = beijing(2025, 12, 4, 10)
    with tx() as s:
        imports.import_run(s, small_run, "rev", confirmed)
        offers.release(s, "rev", confirmed)
    with tx() as s:
        today = monthly.month_lights(s, "2025-12", now=beijing(2025, 12, 5, 10))
        later = monthly.month_lights(s, "2025-12", now=beijing(2026, 1, 9, 10))
    batch = today.set_index("stage").loc["batch"]
    # Minutes or a day after import, nothing is late; judged at 31 December the same work is overdue.
    assert (batch["open"], batch["open_late"], batch["light"]) == (batch["open"], 0, "green")
    assert batch["open"] > 0
    assert later.set_index("stage").loc["batch", "open_late"] == batch["open"]


def test_a_policy_with_its_own_time_limit_is_judged_by_it(tx, small_run: Path) -> None:
    confirmed = beijing(2025, 9, 30, 10)
    with tx() as s:
        imports.import_run(s, small_run, "rev", confirmed)
        offers.release(s, "rev", confirmed)
    now = beijing(2025, 10, 15, 10, 1)  # 5 working days after 30 September: red by the SLA's 5
    with tx() as s:
        default = sla.lights(s, sla.DEFAULT, now, {"gaoxin"})
        own = sla.Sla(policies={"gaoxin": {"payment_days": 10}})
        longer = sla.lights(s, own, now, {"gaoxin"})
        outcomes = sla.step_outcomes(s, at=now, sla=own)

    def payment(rows: list[sla.Light]) -> sla.Light:
        return next(r for r in rows if r.stage == "payment" and r.policy_id == "gaoxin")

    assert payment(default).red == payment(default).total > 0
    assert payment(longer).red == 0 and payment(longer).green == payment(longer).total
    assert payment(longer).limit == "10 个工作日"
    batch = outcomes[(outcomes.stage == "batch") & (outcomes.policy_id == "gaoxin")]
    assert set(batch["outcome"]) == {"open_late"} and set(batch["days"]) == {2}  # batch keeps its 2
    pay = sla.Sla(policies={"gaoxin": {"payment_days": 10}}).for_policy("gaoxin")
    assert pay.bank_days == 7


def test_a_policys_own_limit_travels_from_its_run_to_the_lights(tx, tmp_path: Path) -> None:
    from tests.payouts.conftest import payee, policy, write_run

    # `payment_limit_days: 10` in the YAML is `payment_days` in the run's manifest (matcher.run).
    gaoxin = policy("gaoxin", budget=None, confirmation="none") | {"payment_days": 10}
    run = write_run(tmp_path / "run", [gaoxin], [("gaoxin", "main", 1, "100.00")], [payee(1)])
    confirmed = beijing(2025, 9, 30, 10)
    with tx() as s:
        imports.import_run(s, run, "rev", confirmed)
        offers.release(s, "rev", confirmed)
    with tx() as s:
        assert sla.DEFAULT.with_policies(s).for_policy("gaoxin").payment_days == 10
        rows = sla.lights(s, Settings().sla(), beijing(2025, 10, 15, 10, 1), {"gaoxin"})
    payment = next(r for r in rows if r.stage == "payment" and r.policy_id == "gaoxin")
    assert (payment.green, payment.red, payment.limit) == (1, 0, "10 个工作日")
