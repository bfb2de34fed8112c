"""The auditor's log, the reviewer's industry and size filters and the lights on the front page, in a real
browser (Playwright + Debian's chromium) at 1366 px (and the log at 360 px). Screenshots go to
artifacts/screenshots/console-audit-*.png, console-review-industry-1366.png, console-dashboard-1366.png.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from rules import formats
from tests.api.browser import SHOTS, live_world, signed_in
from tests.api.conftest import World


@pytest.fixture(scope="module")
def live(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with live_world(template, tmp_path_factory.mktemp("live-audit")) as w:
        public_id = w.offers("c-wenbao", "drafted")[0]
        held = w.bulk("/api/review/hold", "hold", {"offers": [public_id], "reason": "核实经营地址"})
        assert held.status_code == 200, held.text
        yield w


def fits(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_the_auditor_searches_the_log_by_action_and_day_and_exports_it(live: World, browser: Browser) -> None:
    base = live.base  # type: ignore[attr-defined]
    page = signed_in(browser, base, "auditor", 1366, 768)
    page.goto(f"{base}/console/audit")
    expect(page.locator("#verify")).to_contain_text("哈希链完整")
    page.select_option("select[name=action]", label="暂缓")
    today = dt.datetime.now(formats.CHINA).date().isoformat()
    page.fill("input[name=date_from]", today)
    page.fill("input[name=date_to]", today)
    page.click("#audit-filters button[type=submit]")
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first.inner_text()
    assert "暂缓" in row and "待初核" in row and "核实经营地址" in row
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", row)
    assert not re.search(r"\b(hold|drafted|held|system)\b", page.locator("#events").inner_text())
    assert fits(page)
    page.screenshot(path=SHOTS / "console-audit-1366.png", full_page=True)
    with page.expect_download() as got:
        page.click("#export")
    data = open(got.value.path(), "rb").read()
    assert data.startswith(b"\xef\xbb\xbf") and "暂缓" in data.decode("utf-8-sig")

    small = signed_in(browser, base, "auditor", 360, 740)
    small.goto(f"{base}/console/audit?action=hold")
    assert fits(small)
    small.screenshot(path=SHOTS / "console-audit-360.png", full_page=True)


def test_the_reviewer_filters_by_industry_and_size_from_lists(live: World, browser: Browser) -> None:
    base = live.base  # type: ignore[attr-defined]
    page = signed_in(browser, base, "reviewer", 1366, 768)
    page.goto(f"{base}/console/review")
    page.select_option("select[name=industry]", "C")
    page.select_option("select[name=size_class]", label="小型企业")
    page.click("#filters button[type=submit]")
    assert "industry=C" in page.url and "size_class=small" in page.url
    cells = page.locator("#queue tbody tr td:nth-child(3)").all_inner_texts()
    assert cells and all("制造业" in c and "小型" in c for c in cells)
    assert fits(page)
    page.screenshot(path=SHOTS / "console-review-industry-1366.png", full_page=True)


def test_a_light_on_the_front_page_opens_the_offers_it_counts(live: World, browser: Browser) -> None:
    base = live.base  # type: ignore[attr-defined]
    page = signed_in(browser, base, "reviewer", 1366, 768)
    page.goto(f"{base}/console")
    green = page.locator("a.light.green").first
    count = int(green.inner_text().replace(",", ""))
    page.screenshot(path=SHOTS / "console-dashboard-1366.png", full_page=True)
    green.click()
    expect(page.locator("#light-filter")).to_contain_text("绿灯")
    expect(page.locator("section h2").last).to_contain_text(f"{count:,} 条")


def test_a_runs_near_misses_are_narrowed_by_item_and_condition_from_lists(
    live: World, browser: Browser
) -> None:
    base = live.base  # type: ignore[attr-defined]
    page = signed_in(browser, base, "reviewer", 1366, 768)
    page.goto(f"{base}/console/runs/{live.job_id}?name=near_misses")
    condition = page.locator("select[name=condition_id] option").nth(1)
    text = condition.inner_text()
    page.select_option("select[name=condition_id]", label=text)
    page.click("form.inline button[type=submit]")
    cells = page.locator("#list tbody tr td:nth-child(4)").all_inner_texts()
    assert cells and set(cells) == {text}  # the condition's text, never its id
    assert fits(page)
    page.screenshot(path=SHOTS / "console-run-1366.png", full_page=True)
