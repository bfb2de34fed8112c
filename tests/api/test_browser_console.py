"""The reviewer's queue, the batch page and the public notice in a real browser (Playwright + Debian's
chromium) at 1366 px and 360 px. Screenshots go to artifacts/screenshots/console-*.png.

- The reviewer filters the queue from lists, ticks a page, switches to "all matching" and sees the
  confirmation step with the count and total before anything moves.
- The batch page shows its totals on top and one page of lines; the public notice finds a line by search.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.api.browser import live_world, look, signed_in
from tests.api.conftest import World

WIDTHS = {"1366": {"width": 1366, "height": 768}, "360": {"width": 360, "height": 740}}


@pytest.fixture(scope="module")
def live(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with live_world(template, tmp_path_factory.mktemp("live-console")) as w:
        yield w


def fits(page: Page) -> bool:
    """Nothing but the tables' own scrolling boxes is wider than the window."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_the_reviewer_filters_ticks_and_confirms_all_matching(live: World, browser: Browser) -> None:
    base = live.base  # type: ignore[attr-defined]
    page = signed_in(browser, base, "reviewer", 1366, 768)
    page.goto(f"{base}/console/review")
    page.select_option("select[name=policy_id]", label="科技型中小企业奖励（示例）")
    page.select_option("select[name=state]", "drafted")
    page.select_option("select[name=sort]", "amount_desc")
    page.select_option("select[name=size]", "20")
    page.click("#filters button[type=submit]")
    total = int(re.sub(r"\D", "", page.locator("section h2").last.inner_text().split("条")[0]))
    assert total > 0
    page.check("#tick-page")
    expect(page.locator("#ticked-count")).to_have_text(str(min(total, 20)))
    assert fits(page)
    look(page, "console-review-1366")
    page.check("#scope-matching")
    page.click("button[value=release]")
    expect(page.locator("h1")).to_have_text("请确认：发布")
    expect(page.locator("p.summary")).to_contain_text(f"{total:,}")
    look(page, "console-review-confirm-1366")
    page.click("#confirm-action")
    expect(page.locator(".flash")).to_contain_text(f"已发布 {total:,} 条")

    small = signed_in(browser, base, "reviewer", 360, 740)
    small.goto(f"{base}/console/review?size=20")
    assert fits(small)
    look(small, "console-review-360")


def test_the_batch_page_and_the_public_notice_of_a_large_batch(live: World, browser: Browser) -> None:
    base = live.base  # type: ignore[attr-defined]
    assert (
        live.bulk("/api/review/release", "release", {"filter": {"policy_id": "c-wenbao"}}).status_code == 200
    )
    made = live.make_batch("c-wenbao")
    assert made.status_code == 201, made.text
    ref = made.json()["reference"]
    r = live.client.post("/api/notices", json={"batch": ref, "days": 3}, headers=live.auth("maker"))
    assert r.status_code == 201, r.text
    notice = r.json()
    for width in WIDTHS:
        page = signed_in(browser, base, "checker", **WIDTHS[width])
        page.goto(f"{base}/console/batches/{ref}?size=20")
        expect(page.locator("#line-totals")).to_contain_text("待复核")
        expect(page.locator("#lines tbody tr")).to_have_count(min(20, made.json()["line_count"]))
        assert fits(page)
        look(page, f"console-batch-{width}")

        public = browser.new_context(viewport=WIDTHS[width], java_script_enabled=False).new_page()
        public.goto(f"{base}/gongshi/{notice['id']}")
        one = notice["lines"][-1]
        public.fill("#notice-q", one["name"])
        public.click("form.search button")
        expect(public.locator("#notice-lines tbody tr").first).to_contain_text(one["name"])
        public.click("#notice-lines tbody tr:first-child a")
        expect(public.locator("#objection-line")).to_contain_text(one["name"])
        assert fits(public)
        look(public, f"console-gongshi-{width}")
