"""帮办代办 in a real browser at 360 px: the agent registers an enterprise's 委托书 and confirms the
apply-free offer of an enterprise that registered no phone; the enterprise's timeline names the agent;
the enterprise revokes the 委托书 on its phone, after which the agent's page offers nothing of it.
Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from api.enterprise_auth import ENTERPRISE_COOKIE
from tests.api.browser import SHOTS, accessibility_problems, live_world, signed_in
from tests.api.conftest import World
from tests.api.test_agency import make_agent, no_phone_offer
from tests.api.test_applications import PDF


def _fits(page) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


def test_an_agent_confirms_for_an_enterprise_without_a_phone_and_it_revokes_at_360px(
    template, browser: Browser, tmp_path
) -> None:
    with live_world(template, tmp_path / "live") as w:
        _run(w, browser, tmp_path)


def _run(w: World, browser: Browser, tmp_path) -> None:  # type: ignore[no-untyped-def]
    base = w.base  # type: ignore[attr-defined]
    make_agent(w)
    offer = no_phone_offer(w)
    desk = signed_in(browser, base, "agent1", width=360, height=740)
    desk.goto(f"{base}/console/agency")
    mandate = tmp_path / "委托书.pdf"
    mandate.write_bytes(PDF)
    desk.fill('input[name="uscc"]', offer.uscc)
    desk.locator('#register input[type="file"]').set_input_files(str(mandate))
    desk.click("#register-mandate")
    expect(desk.locator(".flash")).to_contain_text("已登记企业")
    row = desk.locator(f'li[data-offer="{offer.public_id}"]')
    expect(row).to_contain_text("无联系电话")
    _fits(desk)
    desk.screenshot(path=SHOTS / "agency-1-held-no-phone-360px.png", full_page=True)
    row.locator("button.confirm-for").click()
    expect(desk.locator(".flash")).to_contain_text("已代企业")
    expect(desk.locator(f'li[data-offer="{offer.public_id}"]')).to_have_count(0)
    desk.screenshot(path=SHOTS / "agency-2-confirmed-360px.png", full_page=True)
    wide = signed_in(browser, base, "agent1", width=1366, height=900)
    wide.goto(f"{base}/console/agency/{offer.uscc}/supplied")
    expect(wide.locator("h1")).to_contain_text("代企业")
    wide.screenshot(path=SHOTS / "agency-supplied-1366px.png", full_page=True)
    wide.goto(f"{base}/console/agency")
    _fits(wide)
    wide.screenshot(path=SHOTS / "agency-1366px.png", full_page=True)
    wide.context.close()
    # The enterprise, on its phone: the timeline names the agent, and it revokes the 委托书.
    phone = browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True, java_script_enabled=False
    )
    phone.add_cookies(
        [
            {
                "name": ENTERPRISE_COOKIE,
                "value": w.app.state.enterprise_tokens.session(offer.uscc, "sms"),
                "url": base,
            }
        ]
    )
    page = phone.new_page()
    page.goto(f"{base}/e/offers/{offer.public_id}")
    expect(page.locator("body")).to_contain_text("由帮办代办工作人员 agent1 依贵单位委托书代为办理")
    _fits(page)
    page.screenshot(path=SHOTS / "agency-3-timeline-360px.png", full_page=True)
    page.goto(f"{base}/e")
    page.click("#my-mandates")
    expect(page.locator(".mandate")).to_contain_text("帮办代办工作人员 agent1")
    assert accessibility_problems(page) == []
    page.click(".revoke-mandate")
    expect(page.locator(".flash")).to_contain_text("已撤销委托")
    expect(page.locator('.mandate[data-state="revoked"]')).to_contain_text("撤销")
    _fits(page)
    page.screenshot(path=SHOTS / "agency-4-revoked-360px.png", full_page=True)
    phone.close()
    desk.goto(f"{base}/console/agency")
    expect(desk.locator(f'.mandate[data-uscc="{offer.uscc}"]')).to_have_count(0)
    desk.goto(f"{base}/console/agency/{offer.uscc}/supplied")
    expect(desk.locator("body")).to_contain_text("不存在")
    desk.context.close()
