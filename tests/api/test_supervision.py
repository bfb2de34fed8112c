"""The 督办 list in the API: overdue work by policy and step, for the user's department only."""

from __future__ import annotations

import datetime as dt

import pytest

from api.routes import now as real_now
from api.routes import reports as report_routes
from tests.api.conftest import HR, World


def test_the_supervision_list_shows_overdue_work_of_the_users_department(
    shared: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shared.client.get("/api/reports/supervision", headers=shared.auth("reviewer")).json() == []
    # Three weeks on, the template's drafted offers are past their 2 working days of 初核.
    monkeypatch.setattr(report_routes, "now", lambda: real_now() + dt.timedelta(days=21))
    everyone = shared.client.get("/api/reports/supervision", headers=shared.auth("reviewer"))
    assert everyone.status_code == 200, everyone.text
    rows = everyone.json()
    assert rows and {r["step"] for r in rows} == {"初核发布"}
    assert all(r["responsible"] and r["done"] == ["未发出提醒"] for r in rows)
    mine = shared.client.get("/api/reports/supervision", headers=shared.auth("reviewer_hr")).json()
    assert mine and {r["department"] for r in mine} == {HR} and len(mine) < len(rows)
