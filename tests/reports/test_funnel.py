"""The one funnel (`reports.funnel`): its stages add up, and paid is counted the same way by the console
and the API, `zhida offers status`, and the monthly report."""

from __future__ import annotations

import datetime as dt

import pytest
import typer
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from api.commands.offers import status
from api.routes.reports import funnel_of
from payouts.db import transaction
from payouts.models import Offer, OfferState
from reports import funnel as funnels
from reports.monthly import monthly_report

STAGES = ["matched", "released", "sms", "confirmed", "batched", "approved", "paid"]


def test_stages_add_up_from_matched_to_paid(demo_engine: Engine) -> None:
    with transaction(demo_engine) as s:
        stages = funnels.stages(s)
        states = funnels.by_state(s)
    assert [st.stage for st in stages] == STAGES
    counts = [st.count for st in stages]
    amounts = [st.amount for st in stages]
    assert counts == sorted(counts, reverse=True) and amounts == sorted(amounts, reverse=True)
    # Every matched offer is in exactly one current state: the states add up to the top of the funnel.
    assert sum(st.count for st in states) == stages[0].count
    assert sum((st.amount for st in states), start=stages[0].amount * 0) == stages[0].amount
    # Paid is a state no offer leaves: the paid stage is the `paid` state, offers and money.
    paid_state = next(st for st in states if st.stage == OfferState.PAID.value)
    assert (stages[-1].count, stages[-1].amount) == (paid_state.count, paid_state.amount) != (0, 0)


def test_a_stage_counts_only_what_was_reached_by_the_cut(demo_engine: Engine) -> None:
    with transaction(demo_engine) as s:
        first = s.scalar(select(func.min(Offer.paid_at)))
        before = funnels.stages(s, at=first - dt.timedelta(seconds=1))
        at_first = funnels.stages(s, at=first)
        paid_then = s.scalar(select(func.count()).where(Offer.paid_at <= first))
    assert before[-1].count == 0 and at_first[-1].count == paid_then > 0


def test_paid_is_the_same_in_the_console_the_cli_and_the_monthly_report(
    demo: dict[str, str], demo_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with transaction(demo_engine) as s:
        paid = s.scalar(select(func.count()).where(Offer.state == OfferState.PAID.value))
        console = {st.stage: st.count for st in funnel_of(s, None, None, None).stages}
        report = monthly_report(s, "2025-12").funnel.set_index("stage")["offers"].to_dict()
    monkeypatch.setenv("ZHIDA_DATABASE_URL", demo["ZHIDA_DATABASE_URL"])
    app = typer.Typer()
    app.command("status")(status)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["status"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    cli_paid = next(line for line in result.output.splitlines() if "已到账" in line)
    assert f"{paid:,}" in cli_paid
    assert console["paid"] == report["paid"] == paid > 0
    assert list(console) == list(report) == STAGES
