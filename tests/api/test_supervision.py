"""Supervision in the API and the console: the 督办 list (overdue work by policy and step, for the user's
department only), the monthly report's figures with 快申快享 beside apply-free, and the ratings by
department and policy."""

from __future__ import annotations

import datetime as dt
import re
import secrets

import pytest

from api.routes import now as real_now
from api.routes import reports as report_routes
from payouts.db import transaction
from portal.models import Rating
from tests.api.conftest import HR, SCI, World


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


def test_the_supervision_page_lists_overdue_work_and_a_department_sees_its_own_only(
    shared: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_routes, "now", lambda: real_now() + dt.timedelta(days=21))
    everyone = shared.browser("reviewer").get("/console/reports/supervision")
    assert everyone.status_code == 200, everyone.text
    assert (
        'id="supervision"' in everyone.text and "初核发布" in everyone.text and "未发出提醒" in everyone.text
    )
    assert HR in everyone.text and SCI in everyone.text
    mine = shared.browser("maker_hr").get("/console/reports/supervision").text
    assert HR in mine and SCI not in mine.split('id="supervision"')[1]
    # The administrators, who move no money, have no 督办 list.
    assert shared.browser("sysadmin").get("/console/reports/supervision").status_code == 403
    dashboard = shared.browser("reviewer").get("/console").text
    assert 'href="/console/reports/supervision"' in dashboard


def test_the_monthly_report_in_the_api_shows_both_modes_side_by_side_for_city_wide_users(
    shared: World,
) -> None:
    month = real_now().astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    r = shared.client.get("/api/reports/monthly", params={"month": month}, headers=shared.auth("auditor"))
    assert r.status_code == 200, r.text
    body = r.json()
    service = {row["key"]: row for row in body["service"]}
    assert set(service) >= {"decision_days", "payment_days", "satisfied_share", "answered_in_time"}
    assert set(service["decided"]) == {"key", "metric", "apply_free", "apply"}
    # The world's run was imported this month: its departments' review steps are timed and ranked.
    assert {r["department"] for r in body["ranking"]} >= {SCI, HR}
    assert [s["stage"] for s in body["applications"]] == [
        "submitted",
        "accepted",
        "batched",
        "approved",
        "paid",
    ]
    assert {"ratings", "satisfied_share", "poor_late"} <= set(body["ranking"][0])
    page = shared.client.get(
        "/api/reports/monthly", params={"month": month, "format": "html"}, headers=shared.auth("auditor")
    )
    assert (
        page.headers["content-type"].startswith("text/html") and "服务质效：免申即享与快申快享" in page.text
    )
    book = shared.client.get(
        "/api/reports/monthly", params={"month": month, "format": "xlsx"}, headers=shared.auth("auditor")
    )
    assert book.content[:2] == b"PK"
    # It compares every department: a user of one department is refused, as is a malformed month.
    refused = shared.client.get(
        "/api/reports/monthly", params={"month": month}, headers=shared.auth("maker_hr")
    )
    assert refused.status_code == 403
    bad = shared.client.get(
        "/api/reports/monthly", params={"month": "2025-13"}, headers=shared.auth("auditor")
    )
    assert bad.status_code == 400 and "YYYY-MM" in bad.text


def test_the_funnel_api_counts_the_applications_arm(shared: World) -> None:
    body = shared.client.get("/api/reports/funnel", headers=shared.auth("reviewer")).json()
    assert [s["label"] for s in body["applications"]] == [
        "提交申请",
        "审核通过",
        "已组批",
        "已复核",
        "已到账",
    ]
    run = shared.client.get(
        "/api/reports/funnel", params={"run_id": shared.run_id}, headers=shared.auth("reviewer")
    ).json()
    assert run["applications"] == []  # applications belong to no match run


def _rating(
    w: World, department: str, policy_id: str, score: int, comment: str | None, days_ago: int
) -> None:
    with transaction(w.app.state.engine) as s:
        s.add(
            Rating(
                public_id=secrets.token_hex(8),
                uscc=f"91430100MA4L{secrets.randbelow(10**4):04d}0X",
                subject="offer",
                subject_id=secrets.token_hex(8),
                policy_id=policy_id,
                item_id="main",
                department=department,
                score=score,
                comment=comment,
                rated_at=real_now() - dt.timedelta(days=days_ago),
            )
        )


def test_the_ratings_page_counts_by_department_and_policy_and_only_the_rated_department_answers(
    world: World,
) -> None:
    _rating(world, SCI, "c-gaoxin", 1, "到账太慢", days_ago=20)  # past its 5 working days
    _rating(world, SCI, "c-gaoxin", 5, None, days_ago=1)
    _rating(world, HR, "c-jiuye", 4, None, days_ago=1)
    city = world.browser("maker").get("/console/ratings")
    assert city.status_code == 200, city.text
    summary = city.text.split('id="rating-summary"')[1].split("</table>")[0]
    assert SCI in summary and HR in summary and "c-gaoxin" not in summary  # titles, not ids
    rows = {m.group(1) for m in re.finditer(r'<tr data-department="([^"]+)"', summary)}
    assert rows == {SCI, HR}
    assert '<span class="light red">1</span>' in summary  # SCI's poor rating, unanswered past its day
    assert "/answer" not in city.text  # finance staff read, the rated department answers
    own = world.browser("policy_sci").get("/console/ratings").text
    assert "/answer" in own and HR not in own.split('id="rating-summary"')[1]
    assert "到账太慢" not in world.browser("policy_hr").get("/console/ratings").text
