"""The 任务 page in a real browser (Playwright + Debian's chromium), against the service on a local port,
whose own worker thread runs the jobs: a match run started on 数据比对 is shown done, at 1366 and 360
px. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.api.browser import live_world, look, signed_in
from tests.api.conftest import World


@pytest.fixture(scope="module")
def live(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with live_world(template, tmp_path_factory.mktemp("live-jobs")) as w:
        yield w


def test_a_match_run_is_run_by_the_services_worker_and_shown_on_the_jobs_page(
    live: World, browser: Browser
) -> None:
    base = live.base  # type: ignore[attr-defined]
    reviewer = signed_in(browser, base, "reviewer", 1366)
    reviewer.goto(f"{base}/console/runs")
    reviewer.click("text=开始匹配")
    # The page refreshes itself until the service's worker thread has run the job.
    expect(reviewer.locator("#run-state")).to_have_text("已完成", timeout=120_000)
    reviewer.click("header nav >> text=任务")
    rows = reviewer.locator("#jobs tbody tr")
    expect(rows.first).to_contain_text("数据比对")
    expect(rows.first).to_contain_text("已完成")
    expect(rows.first).to_contain_text("1 / 3")
    expect(reviewer.locator("#depth")).to_contain_text("已完成")
    look(reviewer, "jobs-1366px")

    small = signed_in(browser, base, "auditor", 360)
    small.goto(f"{base}/console/jobs")
    expect(small.locator("#jobs tbody tr").first).to_contain_text("已完成")
    assert small.evaluate("document.documentElement.scrollWidth") <= 360  # the table scrolls in its card
    look(small, "jobs-360px")
