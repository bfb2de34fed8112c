"""The screens in a real browser: Playwright drives Debian's chromium against the service running on a
local port. Screenshots go to artifacts/screenshots/.

- An enterprise opens its SMS link on a 360 px wide phone and confirms.
- A policy user uploads a broken file, sees the error at its line, uploads a good one and publishes.
- A maker assembles a batch and a different checker approves it.
- A reviewer's bulk release: nothing ticked is refused; all matching the filter is confirmed after a
  page that shows its count, total and policies.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, expect

from tests.api.browser import SHOTS, live_world, look, sign_in, too_small_to_tap
from tests.api.conftest import POLICIES, World, confirm_offer


@pytest.fixture(scope="module")
def live(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    """A world served by uvicorn on a local port (links in SMS point at it)."""
    with live_world(template, tmp_path_factory.mktemp("live")) as w:
        yield w


def test_an_enterprise_confirms_on_a_360px_phone(live: World, browser: Browser) -> None:
    links = live.notify("c-gaoxin")
    phone = browser.new_context(
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        java_script_enabled=False,  # the page works without JavaScript
        user_agent="Mozilla/5.0 (Linux; Android 13; Phone) AppleWebKit/537.36 Mobile Safari/537.36",
    )
    page = phone.new_page()
    page.goto(live.base + links[0])  # type: ignore[attr-defined]
    expect(page.locator("h1")).to_contain_text("高新技术企业奖励")
    expect(page.locator("#account")).to_contain_text("****")
    button = page.locator("#confirm")
    expect(button).to_have_text("确认领取")
    box = button.bounding_box()
    assert box is not None and box["width"] >= 300 and box["height"] >= 48  # one large button
    assert box["y"] + box["height"] <= 740  # above the fold: no scrolling to confirm
    assert too_small_to_tap(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the phone
    look(page, "confirm-1-offer-360px")
    button.click()
    expect(page.locator("#receipt")).to_contain_text("已确认领取")
    expect(page.locator("#when")).to_contain_text("年")
    expect(page.locator("body")).to_contain_text("个工作日内")
    look(page, "confirm-2-receipt-360px")
    page.goto(live.base + links[0])  # type: ignore[attr-defined]
    expect(page.locator("h1")).to_have_text("链接无效或已失效")
    expect(page.locator("#service a[href^='tel:']")).to_have_text("12345")  # whom to call, and a way on
    expect(page.locator("#sign-in")).to_have_attribute("href", "/e/login")
    look(page, "confirm-3-used-link-360px")
    phone.close()


def test_a_policy_user_fixes_a_broken_file_and_publishes(
    live: World, browser: Browser, tmp_path: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    base = live.base  # type: ignore[attr-defined]
    sign_in(page, base, "policy_sci")
    page.goto(f"{base}/console/policies")
    good = (POLICIES / "c-gaoxin.yaml").read_bytes().replace(b"version: 1", b"version: 2")
    good = good.replace(b"amount: 30000", b"amount: 50000")
    broken = tmp_path / "c-gaoxin.yaml"
    broken.write_bytes(good.replace(b"rule: age_years >= 3", b"rule: age_yaers >= 3"))
    page.set_input_files("input[name=file]", broken)
    page.click("text=上传并校验")
    bad_line = page.locator(".line.bad#L23")
    expect(bad_line).to_contain_text("age_yaers")
    expect(page.locator('.problem[data-line="23"]')).to_contain_text("age_years")
    bad_line.scroll_into_view_if_needed()
    look(page, "policy-1-error-at-line")
    fixed = tmp_path / "fixed" / "c-gaoxin.yaml"
    fixed.parent.mkdir()
    fixed.write_bytes(good)
    page.set_input_files("input[name=file]", fixed)
    page.click("text=上传并校验")
    expect(page.locator(".flash")).to_contain_text("校验通过")
    page.click("button:has-text('测算')")
    expect(page.locator("#impact")).to_contain_text("新增")
    look(page, "policy-2-impact")
    page.click("text=发布第 2 版")
    expect(page.locator(".flash")).to_contain_text("已发布 高新技术企业奖励（示例） 第 2 版")
    look(page, "policy-3-published")
    context.close()


def test_a_maker_assembles_and_a_different_checker_approves(live: World, browser: Browser) -> None:
    base = live.base  # type: ignore[attr-defined]
    links = live.notify("c-kexing")
    enterprise = TestClient(live.app)
    for link in links[:2]:
        assert confirm_offer(enterprise, link).status_code == 200
    maker = browser.new_context(viewport={"width": 1280, "height": 900})
    page = maker.new_page()
    sign_in(page, base, "maker")
    page.goto(f"{base}/console/batches")
    row = page.locator("#ready tr", has_text="科技型中小企业奖励（示例）")  # titles, not ids
    row.locator("text=制单").click()
    expect(page.locator(".flash")).to_contain_text("待另一位复核人员复核")
    expect(page.locator("#approve")).to_have_count(0)  # the maker cannot approve their own batch
    batch_url = page.url
    look(page, "batch-1-maker")
    maker.close()
    checker = browser.new_context(viewport={"width": 1280, "height": 900})
    page = checker.new_page()
    sign_in(page, base, "checker")
    page.goto(batch_url)
    expect(page.locator("#totals")).to_contain_text("2 笔")
    expect(page.locator("#lines tbody tr")).to_have_count(2)
    look(page, "batch-2-checker-before")
    page.click("#approve")
    expect(page.locator("#batch-state")).to_have_text("已复核")
    page.click("#export")
    expect(page.locator("#totals")).to_contain_text("sha256")
    look(page, "batch-3-approved-exported")
    checker.close()


@pytest.mark.parametrize("width", [1366, 360])
def test_a_reviewer_releases_what_the_filter_matches_after_seeing_it(
    live: World, browser: Browser, width: int
) -> None:
    base = live.base  # type: ignore[attr-defined]
    pid = "c-yanfa" if width == 1366 else "c-jiuye"
    drafted = live.offers(pid, "drafted")
    others = {p: live.offers(p, "drafted") for p in ("c-gaoxin", "c-wenbao")}
    context = browser.new_context(viewport={"width": width, "height": 900 if width > 400 else 740})
    page = context.new_page()
    sign_in(page, base, "reviewer")
    page.goto(f"{base}/console/review?policy_id={pid}&state=drafted")
    look(page, f"review-1-queue-{width}px")
    page.click("button[value=release]")  # nothing ticked
    expect(page.locator(".flash")).to_contain_text("没有选择要约")
    page.check("#scope-matching")
    page.click("button[value=release]")
    expect(page.locator("h1")).to_have_text("请确认：发布")
    expect(page.locator("p.summary")).to_contain_text(f"{len(drafted):,}")
    expect(page.locator("#preview tbody tr")).to_have_count(1)
    look(page, f"review-2-confirm-{width}px")
    assert live.offers(pid, "drafted") == drafted  # the preview changed nothing
    page.click("#confirm-action")
    expect(page.locator(".flash")).to_contain_text(f"已发布 {len(drafted):,} 条")
    look(page, f"review-3-done-{width}px")
    context.close()
    assert live.offers(pid, "drafted") == []
    assert {p: live.offers(p, "drafted") for p in others} == others


def teardown_module() -> None:
    if SHOTS.exists() and not any(SHOTS.iterdir()):
        shutil.rmtree(SHOTS)
