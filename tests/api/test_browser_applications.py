"""The enterprise's application (快申快享) in a real browser on a 360 px phone, without JavaScript: from the
policy page to a submitted application. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import datetime as dt

from playwright.sync_api import Browser, expect

from api.auth import set_password
from api.enterprise_auth import ENTERPRISE_COOKIE
from payouts import users
from payouts.db import transaction
from tests.api.browser import SHOTS, accessibility_problems, signed_in
from tests.api.conftest import PASSWORD, World
from tests.api.test_applications import PDF, A, B, publish
from tests.api.test_browser import live  # noqa: F401  (fixture)


def test_an_enterprise_applies_with_prefilled_data_and_submits_on_a_360px_phone(
    live: World,  # noqa: F811
    browser: Browser,
    tmp_path,
) -> None:
    base = live.base  # type: ignore[attr-defined]
    publish(live)
    phone = browser.new_context(
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        java_script_enabled=False,
    )
    phone.add_cookies(
        [
            {
                "name": ENTERPRISE_COOKIE,
                "value": live.app.state.enterprise_tokens.session(A, "sms"),
                "url": base,
            }
        ]
    )
    page = phone.new_page()
    page.goto(f"{base}/policies/ks-chuangxin")
    page.click("#apply-voucher")
    expect(page.locator("#guide")).to_contain_text("提交后 20 个工作日内办结")
    page.screenshot(path=SHOTS / "apply-1-guide-360px.png", full_page=True)
    page.click("#open")
    rd = page.locator('[data-field="rd_expense"]')
    expect(rd.locator(".prefilled")).to_have_text("不需再填")
    expect(rd).to_contain_text("来源：税务局，2025年9月30日")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=SHOTS / "apply-2-prefilled-360px.png", full_page=True)
    assert accessibility_problems(page) == []
    page.fill('input[name="a_projects"]', "3")
    page.select_option('select[name="a_area"]', "电子信息")
    page.click("#save")
    expect(page.locator(".flash")).to_contain_text("草稿已保存")
    expect(page.locator('input[name="a_projects"]')).to_have_value("3")
    contract = tmp_path / "技术服务合同.pdf"
    contract.write_bytes(PDF)
    material = page.locator('[data-material="contract"]')
    material.locator('input[type="file"]').set_input_files(str(contract))
    material.locator("button").click()
    expect(page.locator('[data-material="contract"] .uploaded')).to_contain_text("技术服务合同.pdf")
    page.click("#submit")
    expect(page.locator(".flash")).to_contain_text("申请已提交")
    expect(page.locator("#state")).to_have_text("审核中")
    expect(page.locator("#clock")).to_contain_text("承诺时限 20 个工作日")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=SHOTS / "apply-3-submitted-360px.png", full_page=True)
    page.goto(f"{base}/e/applications")
    expect(page.locator('#applications [data-state="submitted"]')).to_contain_text("科技创新券补助")
    phone.close()
    # The lead department's queue and review page on a desktop.
    desk = signed_in(browser, base, "policy_sci", width=1366, height=900)
    desk.goto(f"{base}/console/applications")
    row = desk.locator('#applications tr[data-state="submitted"]')
    expect(row).to_have_attribute("data-light", "green")
    expect(row).to_contain_text("待市财政局")
    desk.screenshot(path=SHOTS / "apply-4-queue-1366px.png", full_page=True)
    row.locator("a").click()
    expect(desk.locator('#data tr[data-field="rd_expense"]')).to_contain_text("税务局，2025年9月30日")
    expect(desk.locator("#decide")).to_be_visible()
    desk.screenshot(path=SHOTS / "apply-5-review-1366px.png", full_page=True)
    assert accessibility_problems(desk) == []
    desk.context.close()


def test_an_agent_applies_for_an_enterprise_on_the_console(live: World, browser: Browser, tmp_path) -> None:  # noqa: F811
    base = live.base  # type: ignore[attr-defined]
    publish(live)
    now = dt.datetime.now(dt.UTC)
    with transaction(live.app.state.engine) as s:
        users.create_user(s, "agent1", "agent", now=now)
        set_password(s, "agent1", PASSWORD, "system", now)
    desk = signed_in(browser, base, "agent1", width=1366, height=900)
    desk.goto(f"{base}/console/agency")
    mandate = tmp_path / "委托书.pdf"
    mandate.write_bytes(PDF)
    desk.fill('input[name="uscc"]', B)
    desk.set_input_files('#register input[type="file"]', str(mandate))
    desk.click("#register-mandate")
    expect(desk.locator(f'.mandate[data-uscc="{B}"]')).to_contain_text("委托书.pdf")
    desk.screenshot(path=SHOTS / "apply-6-agency-1366px.png", full_page=True)
    desk.locator(f'.mandate[data-uscc="{B}"] button', has_text="代为申请").first.click()
    expect(desk.locator('[data-field="rd_expense"] .prefilled')).to_have_text("不需再填")
    assert desk.evaluate("document.documentElement.scrollWidth") <= 1366
    desk.screenshot(path=SHOTS / "apply-7-agent-form-1366px.png", full_page=True)
    desk.context.close()
