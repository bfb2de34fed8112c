"""The 督办 list, the ratings by department and policy, and the monthly report in a real browser (Playwright
+ Debian's chromium) at 1366 px and 360 px; axe-core checks every page. Screenshots go to
artifacts/screenshots/supervision-*.png.

- A city-wide reviewer follows the dashboard's link to the 督办 list three weeks on, when the drafted
  offers are past their 初核 limit: every department's overdue work, who answers for it, since when.
- The head of a department reads the list on a phone: only their department's lines, nothing wider
  than the screen.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from api.routes import now as real_now
from api.routes import reports as report_routes
from tests.api.browser import live_world, look, signed_in
from tests.api.conftest import HR, SCI, World
from tests.api.test_supervision import _rating


@pytest.fixture(scope="module")
def live(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with live_world(template, tmp_path_factory.mktemp("live-supervision")) as w:
        _rating(w, SCI, "c-gaoxin", 1, "到账前没有任何通知，不知道钱从哪里来", days_ago=20)
        _rating(w, SCI, "c-gaoxin", 5, None, days_ago=1)
        _rating(w, HR, "c-jiuye", 4, "办理很快", days_ago=2)
        yield w


def fits(page: Page) -> bool:
    """Nothing but the tables' own scrolling boxes is wider than the window."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_the_supervision_list_from_the_dashboard_and_a_department_head_on_a_phone(
    live: World, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = live.base  # type: ignore[attr-defined]
    monkeypatch.setattr(report_routes, "now", lambda: real_now() + dt.timedelta(days=21))
    page = signed_in(browser, base, "reviewer", 1366, 768)
    page.goto(f"{base}/console")
    page.click("#to-supervision")
    expect(page.locator("h1")).to_have_text("督办清单")
    rows = page.locator("#supervision tbody tr")
    assert rows.count() >= 2
    departments = {rows.nth(i).locator("td").first.inner_text() for i in range(rows.count())}
    assert {SCI, HR} <= departments
    expect(rows.first).to_contain_text("初核发布")
    expect(rows.first).to_contain_text("未发出提醒")
    expect(page.locator("#supervision-summary")).to_contain_text("项超时")
    assert fits(page)
    look(page, "supervision-list-1366")

    phone = signed_in(browser, base, "maker_hr", 360, 740)
    phone.goto(f"{base}/console/reports/supervision")
    mine = phone.locator("#supervision tbody tr")
    assert mine.count() >= 1
    assert {mine.nth(i).locator("td").first.inner_text() for i in range(mine.count())} == {HR}
    assert fits(phone)
    look(phone, "supervision-list-360")
    phone.goto(f"{base}/console")
    assert fits(phone)
    look(phone, "supervision-dashboard-360")


def test_the_ratings_by_department_and_policy_at_both_widths(live: World, browser: Browser) -> None:
    base = live.base  # type: ignore[attr-defined]
    page = signed_in(browser, base, "policy_sci", 1366, 768)
    page.goto(f"{base}/console/ratings")
    expect(page.locator("#rating-summary tbody tr")).to_have_count(1)
    expect(page.locator("#ratings tbody tr.overdue")).to_contain_text("已超期")
    look(page, "supervision-ratings-1366")
    phone = signed_in(browser, base, "auditor", 360, 740)
    phone.goto(f"{base}/console/ratings")
    expect(phone.locator("#rating-summary tbody tr")).to_have_count(2)
    assert phone.locator("form[action$='/answer']").count() == 0
    assert fits(phone)
    look(phone, "supervision-ratings-360")


def test_the_monthly_report_page_at_both_widths(live: World, browser: Browser) -> None:
    base = live.base  # type: ignore[attr-defined]
    month = real_now().astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m")
    for width, height in ((1366, 768), (360, 740)):
        page = signed_in(browser, base, "auditor", width, height)
        page.goto(f"{base}/api/reports/monthly?month={month}&format=html")
        expect(page.locator("#service")).to_contain_text("快申快享")
        expect(page.locator("#ranking")).to_contain_text("满意及以上")
        look(page, f"supervision-monthly-{width}")
