"""The enterprise's own pages in a real browser (Playwright with Debian's chromium, no JavaScript, a
360 px phone): sign in with the code the demo phone received, see a near miss with its values, follow
an offer. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import re

from playwright.sync_api import Browser, expect

from tests.api.browser import look, too_small_to_tap
from tests.api.conftest import World
from tests.api.test_browser import live  # noqa: F401  (fixture)

A = "913208038HQ7FMGPQ2"  # near miss of c-wenbao on the layoff rate (63.8% against ≤ 5%), offer of c-gaoxin


def test_an_enterprise_signs_in_by_sms_code_and_sees_its_near_miss(live: World, browser: Browser) -> None:  # noqa: F811
    base = live.base  # type: ignore[attr-defined]
    phone = browser.new_context(
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        java_script_enabled=False,
    )
    page = phone.new_page()
    page.goto(f"{base}/e")
    expect(page.locator("h1")).to_have_text("企业登录")  # not signed in: sent to the sign-in page
    page.fill("#uscc", A)
    page.click("#send")
    expect(page.locator("#sent")).to_contain_text("139****5777")
    assert too_small_to_tap(page) == []
    look(page, "enterprise-1-code-sent-360px")
    inbox = phone.new_page()
    inbox.goto(f"{base}/demo/phone")
    text = inbox.locator("#sms tr", has_text="13999235777").first.inner_text()
    code = re.search(r"验证码 (\d{6})", text)
    assert code, text
    inbox.close()
    page.fill("#code", code.group(1))
    page.click("#verify")
    expect(page.locator(".flash")).to_contain_text("登录成功")
    near = page.locator('.near-miss[data-policy="c-wenbao"]')
    expect(near).to_contain_text("裁员率不高于5%")
    expect(near.locator(".ent-compare")).to_have_text("裁员率为63.8%，本事项要求裁员率不高于5%。")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert too_small_to_tap(page) == []
    look(page, "enterprise-2-my-policies-360px")
    page.set_viewport_size({"width": 1366, "height": 768})  # the same page on a desktop: one readable column
    look(page, "enterprise-2-my-policies-1366px")
    page.set_viewport_size({"width": 360, "height": 740})
    page.locator("#matched a", has_text="查看进度").first.click()
    expect(page.locator("#state")).to_have_text("审核中")
    expect(page.locator('#steps li[data-step="matched"]')).to_have_class(re.compile("step-done"))
    assert too_small_to_tap(page) == []
    expect(page.locator("#service a[href^='tel:']")).to_have_text("12345")
    look(page, "enterprise-3-timeline-360px")
    page.click("text=退出")
    expect(page.locator("h1")).to_have_text("企业登录")
    phone.close()
