"""The reports wing (`reports/`) and `zhida report`: working days, the funnel, reminders, SLA, charts, the monthly report."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import matplotlib
import pandas as pd
import psycopg
import pytest
import typer
from openpyxl import load_workbook
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from api.commands.report import report as report_command
from devtools.demo import demo_flow
from payouts.db import make_engine, migrate, transaction
from payouts.models import Confirmation, Offer
from reports import calendar, charts, monthly, sla, timeline
from reports import funnel as funnels
from reports.errors import ReportError
from rules.errors import CalendarError
from tests.reports.timelines import hand_timeline as made

UTC = dt.UTC
T0 = dt.datetime(2025, 10, 9, 1, 0, tzinfo=UTC)  # Thursday 09:00 in Beijing, after the National Day holiday


def at(days: float) -> pd.Timestamp:
    return pd.Timestamp(T0 + dt.timedelta(days=days))


def hand_timeline(*offers: dict[str, object]) -> pd.DataFrame:
    """Offers imported at T0, every other stage unset unless given."""
    return made(*({"imported_at": at(0)} | o for o in offers))


# --- working days ------------------------------------------------------------------------------------


def test_working_days_count_adjusted_working_days_and_skip_holidays() -> None:
    # Saturday 11 October 2025 was worked (调休); Sunday 12 October was not.
    assert calendar.working_days(dt.date(2025, 10, 9), dt.date(2025, 10, 12)) == 2
    # 1-8 October 2025 was the National Day holiday.
    assert calendar.working_days(dt.date(2025, 9, 30), dt.date(2025, 10, 9)) == 1
    # Sunday 28 September 2025 was worked too.
    assert calendar.working_days(dt.date(2025, 9, 26), dt.date(2025, 9, 29)) == 2
    assert calendar.working_days(dt.date(2025, 10, 9), dt.date(2025, 10, 9)) == 0


def test_years_the_calendar_does_not_cover_are_refused_with_the_fix() -> None:
    with pytest.raises(CalendarError, match=r"没有这一年的节假日安排.*2099.*升级 chinese-calendar"):
        calendar.working_days(dt.date(2099, 1, 2), dt.date(2099, 1, 9))


def test_days_to_cash_in_working_and_calendar_days() -> None:
    paid = sla.days_to_cash(
        hand_timeline({"paid_at": at(3.1)}, {"paid_at": at(0.2)}, {"state": "confirmed", "paid_at": pd.NaT})
    )
    assert paid["working_days"].tolist() == [2, 0]
    assert paid["calendar_days"].tolist() == [3, 0]
    assert sla.cash_summary(paid)["on_target"] == 1.0


# --- funnel, reminders, SLA ----------------------------------------------------------------------------


def test_confirmation_rate_by_message_in_sending_order() -> None:
    answers = pd.DataFrame(
        [("reminder_1d", 50, 10, 1), ("notice", 200, 120, 5), ("reminder_3d", 80, 30, 2)],
        columns=["kind", "sent", "confirmed", "declined"],
    )
    got = timeline.confirmation_by_message(answers)
    assert got["label"].tolist() == ["首条通知", "到期前3天提醒", "到期前1天提醒"]
    assert got["rate"].tolist() == [0.6, 30 / 80, 0.2]
    assert got["cumulative"].tolist() == [0.6, 0.75, 0.8]


def test_sla_counts_late_and_overdue_steps_and_lights_them() -> None:
    df = hand_timeline(
        # confirmed Friday 10 Oct, batched Monday 20 Oct: 6 working days against 3 → late
        {
            "released_at": at(0),
            "notified_at": at(0),
            "confirmed_at": at(1),
            "batched_at": at(11),
            "approved_at": at(11),
            "paid_at": at(11),
        },
        # confirmed and waiting since 10 Oct, still unbatched on 24 Oct → open and overdue
        {"released_at": at(0), "notified_at": at(0), "confirmed_at": at(1), "state": "confirmed"},
        # batched the next working day → on time
        {
            "released_at": at(0),
            "notified_at": at(0),
            "confirmed_at": at(1),
            "batched_at": at(2),
            "approved_at": at(2),
            "paid_at": at(2),
        },
        # declined: left the step another way, not counted
        {"released_at": at(0), "notified_at": at(0), "state": "declined"},
    )
    table = sla.sla_table(sla.sla_outcomes(df, at=at(15))).set_index("stage")
    batch = table.loc["batch"]
    assert (batch["on_time"], batch["late"], batch["open_late"]) == (1, 1, 1)
    assert batch["breach_share"] == pytest.approx(2 / 3) and batch["light"] == "red"
    assert table.loc["review", "light"] == "green" and table.loc["review", "breaches"] == 0
    assert "declined" not in set(sla.sla_outcomes(df, at=at(15))["outcome"])


# --- charts --------------------------------------------------------------------------------------------


def test_a_chart_without_data_is_refused(tmp_path: Path) -> None:
    charts.use_cjk_font()
    fig, ax = plt.subplots()
    with pytest.raises(ReportError, match="没有数据"):
        charts.save_figure(fig, "empty", tmp_path)
    ax.bar(["甲", "乙"], [0, 0])
    with pytest.raises(ReportError, match="没有数据"):
        charts.save_figure(fig, "zeros", tmp_path)
    ax.bar(["丙"], [3])
    assert charts.save_figure(fig, "ok", tmp_path).stat().st_size > 1000
    plt.close(fig)


def test_chinese_labels_are_drawn_with_a_cjk_font(tmp_path: Path) -> None:
    charts.use_cjk_font()
    from matplotlib import font_manager

    assert "NotoSansCJK" in font_manager.findfont(charts.FONT)
    fig, ax = plt.subplots()
    ax.bar(["稳岗返还", "扩岗补助"], [1, 2])
    ax.set_title("各事项金额（万元）")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        charts.save_figure(fig, "chinese", tmp_path)
    plt.close(fig)


# --- on the demo database --------------------------------------------------------------------------------


def test_reminders_bring_confirmations_recorded_in_the_database(demo_engine: Engine) -> None:
    with transaction(demo_engine) as s:
        by_message = timeline.confirmation_by_message(timeline.message_answers(s))
        confirmed = s.scalar(
            select(func.count()).select_from(Confirmation).where(Confirmation.kind == "confirm")
        )
    assert by_message["kind"].tolist() == ["notice", "reminder_3d", "reminder_1d"]
    assert by_message["confirmed"].sum() == confirmed
    assert (by_message["confirmed"] > 0).all()


def test_first_payments_took_two_working_days_over_a_worked_saturday(demo_engine: Engine) -> None:
    with transaction(demo_engine) as s:
        paid = sla.days_to_cash(timeline.offer_timeline(s))
    first = paid[paid["paid_at"] < pd.Timestamp("2025-10-31", tz=UTC)]
    assert set(first["working_days"]) == {2} and set(first["calendar_days"]) == {3}
    assert paid["working_days"].max() > sla.TARGET_WORKING_DAYS  # those who confirmed after reminders


def test_report_command_writes_a_self_contained_page_and_its_tables(
    demo: dict[str, str], demo_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZHIDA_DATABASE_URL", demo["ZHIDA_DATABASE_URL"])
    app = typer.Typer()
    app.command("report")(report_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["report", "--month", "2025-11", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    html = tmp_path / "zhida-report-2025-11.html"
    assert str(html) in result.output.replace("\n", "")
    page = html.read_text(encoding="utf-8")
    for heading in (
        "核心指标（与上月比较）",
        "本月到账资金",
        "兑现漏斗",
        "到账用时",
        "办理时限",
        "差一点符合",
    ):
        assert heading in page
    assert page.count("data:image/png;base64,") == 3
    assert "<script" not in page and 'src="http' not in page and "<link" not in page

    start, end = monthly.month_bounds("2025-11")
    with transaction(demo_engine) as s:
        paid = s.scalars(select(Offer.amount).where(Offer.paid_at >= start, Offer.paid_at < end)).all()
        before = s.scalars(
            select(Offer.amount).where(
                Offer.paid_at >= monthly.month_bounds("2025-10")[0], Offer.paid_at < start
            )
        ).all()
    book = load_workbook(tmp_path / "zhida-report-2025-11.xlsx")
    assert book.sheetnames == [
        "核心指标",
        "分部门政策到账",
        "兑现漏斗",
        "快申快享漏斗",
        "到账用时",
        "服务质效",
        "办理时限",
        "月讲评",
        "资金去向晾晒",
        "差一点符合",
    ]
    headline = {row[0]: row[1:] for row in book["核心指标"].iter_rows(min_row=2, values_only=True)}
    assert Decimal(str(headline["到账金额（元）"][0])) == sum(paid, Decimal(0)) > 0
    assert Decimal(str(headline["到账金额（元）"][1])) == sum(before, Decimal(0)) > 0
    by_policy = book["分部门政策到账"].iter_rows(min_row=2, values_only=True)
    assert sum(Decimal(str(r[-1])) for r in by_policy) == sum(paid)


def _per_offer_figures(tl: pd.DataFrame, month: str) -> dict[str, object]:
    """The monthly report's figures as it computed them before counting in the database: from one
    pandas row per offer (`offer_timeline`), kept here as the oracle of the SQL rewrite."""
    start, end = monthly.month_bounds(month)
    tl = tl[tl["imported_at"] < pd.Timestamp(end)].reset_index(drop=True)

    def within(series: pd.Series, a: dt.datetime, b: dt.datetime) -> pd.Series:
        return series.notna() & (series >= pd.Timestamp(a)) & (series < pd.Timestamp(b))

    def figures(m: str) -> dict[str, object]:
        a, b = monthly.month_bounds(m)
        paid = tl[within(tl["paid_at"], a, b)]
        cash = sla.cash_summary(sla.days_to_cash(paid))
        notified = tl[within(tl["notified_at"], a, b)]
        return {
            "paid_amount": sum(paid["amount"], Decimal("0.00")),
            "paid_offers": len(paid),
            "paid_enterprises": paid["uscc"].nunique(),
            "confirmed": int(within(tl["confirmed_at"], a, b).sum()),
            "confirm_rate": notified["confirmed_at"].notna().mean() if len(notified) else None,
            "median_days": cash["median"],
            "on_target": cash["on_target"],
        }

    paid = tl[within(tl["paid_at"], start, end)]
    # The timeline's offers are all of match runs (免申即享): one row per policy and that mode.
    by_policy = (
        paid.assign(mode="免申即享")
        .groupby(["department", "policy_id", "title", "mode"], as_index=False)
        .agg(
            offers=("offer_id", "size"), enterprises=("uscc", "nunique"), amount=("amount", lambda s: sum(s))
        )
    )
    cut = end - dt.timedelta(microseconds=1)
    return {
        "this": figures(month),
        "previous": figures(monthly.previous_month(month)),
        "by_policy": sorted(map(tuple, by_policy.itertuples(index=False))),
        "cash": sla.cash_summary(sla.days_to_cash(paid)),
        "sla": sla.sla_table(sla.sla_outcomes(tl, at=cut, since=start), by_department=True).to_dict(
            "records"
        ),
    }


@pytest.mark.parametrize("month", ["2025-10", "2025-11"])
def test_the_monthly_figures_counted_in_the_database_are_those_of_the_per_offer_rows(
    demo_engine: Engine, month: str
) -> None:
    with transaction(demo_engine) as s:
        expected = _per_offer_figures(timeline.offer_timeline(s), month)
        report = monthly.monthly_report(s, month)
    headline = report.headline.set_index("key")
    for key, value in expected["this"].items():
        got = headline.loc[key, "this_month"]
        assert got == pytest.approx(value) if isinstance(value, float) else got == value, key
        prev = headline.loc[key, "previous_month"]
        want = expected["previous"][key]
        assert prev == pytest.approx(want) if isinstance(want, float) else prev == want, key
    assert sorted(map(tuple, report.paid_by_policy.itertuples(index=False))) == expected["by_policy"]
    assert report.cash == expected["cash"]
    assert report.sla.to_dict("records") == expected["sla"]
    assert expected["this"]["paid_offers"] > 0 and expected["sla"]


def test_a_month_without_activity_gives_a_report_that_says_so(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    migrate(engine)
    with transaction(engine) as s:
        written = monthly.write_report(s, "2025-11", tmp_path / "out")
    engine.dispose()
    page = written.html.read_text(encoding="utf-8")
    assert "本月没有到账的资金" in page and "本月没有到账的要约" in page and "没有可用的匹配结果" in page
    assert "data:image/png" not in page
    assert load_workbook(written.xlsx).sheetnames[0] == "核心指标"


def test_a_month_must_be_written_yyyy_mm() -> None:
    with pytest.raises(ReportError, match="YYYY-MM"):
        monthly.month_bounds("2025-13")
    assert monthly.previous_month("2025-01") == "2024-12"


# --- the same answers on PostgreSQL ----------------------------------------------------------------------


@pytest.fixture
def postgres() -> Iterator[Engine]:
    name = f"zhida_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as e:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({e})")
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({e})")
    admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(f"postgresql://postgres@127.0.0.1:5432/{name}")
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_sqlite_and_postgresql_give_the_same_report_tables(
    postgres: Engine, conformance_run: Path, tmp_path: Path
) -> None:
    sqlite = make_engine(f"sqlite:///{tmp_path / 'zhida.db'}")
    migrate(sqlite)
    results = []
    for engine in (sqlite, postgres):
        with transaction(engine) as s:
            demo_flow(s, conformance_run, tmp_path / engine.dialect.name, seed=3, now=T0)
        with transaction(engine) as s:
            tl = timeline.offer_timeline(s)
            results.append(
                (
                    funnels.plain(funnels.stages(s)),
                    sla.days_to_cash(tl)["working_days"].value_counts().to_dict(),
                    sla.sla_table(sla.sla_outcomes(tl)).to_dict("records"),
                    timeline.message_answers(s).sort_values("kind").to_dict("records"),
                )
            )
    sqlite.dispose()
    assert results[0] == results[1]
    assert results[0][0][-1]["count"] > 0
