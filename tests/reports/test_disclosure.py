"""Public 晾晒 (`reports.disclosure`): where the money went, by policy, county and month, with the 应享尽享
rate, and the open-data export without any personal data."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pandas as pd
from sqlalchemy import Engine, func, select

from payouts.db import transaction
from payouts.models import Offer, Payee
from reports import disclosure, funnel, monthly


def test_the_open_data_export_holds_no_personal_data(demo_engine: Engine) -> None:
    with transaction(demo_engine) as s:
        d = disclosure.figures(s)
        payees = s.execute(select(Payee.uscc, Payee.name, Payee.contact_phone, Payee.account_no)).all()
    exports = disclosure.open_data_csv(d) + disclosure.open_data_json(d)
    assert len(payees) > 10 and d.totals["paid"].sum() > 0
    for uscc, name, phone, account in payees:
        for secret in (uscc, name, phone, account):
            assert not secret or secret not in exports, secret
    doc = json.loads(disclosure.open_data_json(d))
    assert set(doc["totals"][0]) == set(disclosure.TOTAL_COLUMNS)
    assert set(doc["by_month"][0]) == set(disclosure.MONTH_COLUMNS)
    header = disclosure.open_data_csv(d).splitlines()[0]
    assert header.lstrip("\ufeff").split(",")[:3] == ["政策代码", "政策名称", "主管部门"]


def test_the_figures_add_up_and_rate_paid_over_eligible(demo_engine: Engine) -> None:
    with transaction(demo_engine) as s:
        d = disclosure.figures(s)
        paid_total = s.scalar(select(func.sum(Offer.amount)).where(Offer.paid_at.is_not(None)))
        stages = {st.stage: st for st in funnel.stages(s)}
    totals = d.totals[d.totals["county_code"] == ""]
    counties = d.totals[d.totals["county_code"] != ""]
    assert sum(totals["paid_amount"], Decimal(0)) == paid_total == stages["paid"].amount
    assert sum(d.by_month["paid_amount"], Decimal(0)) == paid_total
    for _, t in totals.iterrows():  # the counties of a policy add up to it (a USCC has one county)
        mine = counties[counties["policy_id"] == t["policy_id"]]
        assert (mine["eligible"].sum(), mine["paid"].sum()) == (t["eligible"], t["paid"])
        assert t["rate"] == Decimal(int(t["paid"])) / Decimal(int(t["eligible"]))
    assert all(0 <= r <= 1 for r in d.totals["rate"])
    assert disclosure.rate_text(Decimal("0.049999")) == "4.9%"  # truncated, never rounded up


def test_the_monthly_report_shows_the_same_figures(demo_engine: Engine) -> None:
    with transaction(demo_engine) as s:
        report = monthly.monthly_report(s, "2025-11")
        cut = monthly.judged_at("2025-11")
        public = disclosure.table(disclosure.figures(s, at=cut))
    pd.testing.assert_frame_equal(report.disclosure.reset_index(drop=True), public.reset_index(drop=True))
    assert dt.datetime(2025, 11, 30, 16, tzinfo=dt.UTC) > cut
