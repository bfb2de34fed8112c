"""The policy supermarket in a real browser (Playwright, Debian's chromium), as a visitor on a 360 px phone
with JavaScript off: search by a two-character word, narrow by a filter, open a policy's page.
Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from payouts.db import transaction
from rules.ruleset import library_dir
from tests.api.browser import look, served, too_small_to_tap
from tests.api.conftest import World, copy_world
from tests.ports import free_port

NOW = dt.datetime(2025, 9, 29, 2, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def market(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    """The world with the policy library published, served by uvicorn on a local port."""
    port = free_port()
    w = copy_world(template, tmp_path_factory.mktemp("market-live"), public_url=f"http://127.0.0.1:{port}")
    with transaction(w.app.state.engine) as s:
        w.app.state.store.seed(library_dir(), s, "system", NOW)
    with served(w, port):
        yield w


def fits_the_phone(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the phone


def test_a_visitor_finds_a_policy_by_a_two_character_word_and_opens_it(
    market: World, browser: Browser
) -> None:
    phone = browser.new_context(
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        java_script_enabled=False,  # a GET form and links: works without JavaScript
        user_agent="Mozilla/5.0 (Linux; Android 13; Phone) AppleWebKit/537.36 Mobile Safari/537.36",
    )
    page = phone.new_page()
    page.goto(market.base + "/policies")  # type: ignore[attr-defined]  # no login
    page.fill("#q", "稳岗")
    page.click("#search")
    expect(page.locator("#count")).to_contain_text("稳岗")
    hits = page.locator(".hit h2")
    expect(hits.first).to_contain_text("稳岗")
    expect(page.locator(".hits")).to_contain_text("2025年失业保险稳岗返还")
    expect(page.locator(".hits")).not_to_contain_text("高新技术企业")
    fits_the_phone(page)
    look(page, "market-1-search-360px")

    page.click("summary:has-text('筛选与排序')")  # <details>: opens without script
    page.select_option("select[name=size]", "large")
    page.click("button:has-text('应用筛选')")
    expect(page.locator(".hits")).to_contain_text("2025年失业保险稳岗返还")
    expect(page.locator(".hits")).not_to_contain_text("小微企业稳岗补贴")  # small and micro only
    fits_the_phone(page)

    page.click('text="2025年失业保险稳岗返还"')  # exactly: the provinces' own rounds have longer titles
    expect(page.locator("#title")).to_have_text("2025年失业保险稳岗返还")
    expect(page.locator("#payment")).to_contain_text("免申即享：无需申请")
    expect(page.locator("#conditions")).to_contain_text("参保企业足额缴纳失业保险费12个月以上")
    expect(page.locator("#conditions")).to_contain_text("（条款：一）")
    expect(page.locator("#item-sme")).to_contain_text("上年度实缴失业保险费 × 0.6")
    expect(page.locator("#facts")).to_contain_text("2025年1月1日 至 2025年12月31日")
    expect(page.locator("#source a")).to_have_attribute(
        "href", "https://jlsi.jl.gov.cn/lys/zcfgjjd/sybx/202506/t20250604_9247043.html"
    )
    fits_the_phone(page)
    look(page, "market-2-policy-360px")
    page.click("text=返回政策超市")
    expect(page.locator("#q")).to_have_value("")
    phone.close()


@pytest.mark.parametrize("width", [360, 1366])
def test_a_relief_says_it_pays_nothing_on_the_list_and_on_its_page(
    market: World, browser: Browser, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.goto(market.base + "/policies?q=残疾人就业保障金")  # type: ignore[attr-defined]
    hit = page.locator(".hit", has_text="小微企业免征残疾人就业保障金")
    expect(hit.locator(".money")).to_have_text("直接享受，不涉及资金拨付")
    look(page, f"market-5-relief-list-{width}px")
    hit.locator("h2 a").click()
    expect(page.locator("#facts")).to_contain_text("符合条件即按规定直接享受，不涉及资金拨付")
    expect(page.locator("#item-exempt")).to_contain_text("按规定直接享受，不涉及资金拨付")
    expect(page.locator("#conditions")).to_contain_text("（条款：二）")
    expect(page.locator("#payment")).to_contain_text("不涉及资金拨付")
    expect(page.locator("#payment")).not_to_contain_text("对公账户")
    if width == 360:
        fits_the_phone(page)
    look(page, f"market-6-relief-policy-{width}px")
    context.close()


@pytest.mark.parametrize("width", [360, 1366])
def test_the_filter_panel_lays_out_its_controls_and_its_checkbox_on_a_phone_and_a_desktop(
    market: World, browser: Browser, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 740 if width == 360 else 768})
    page = context.new_page()
    page.goto(market.base + "/policies?q=稳岗")  # type: ignore[attr-defined]  # a search the filters narrow
    page.click("summary:has-text('筛选与排序')")
    toggle = page.locator("label.toggle")
    box = toggle.bounding_box()
    # The receipt's 64 px round tick once styled this label too: a green disc with the text squeezed in.
    assert box is not None and box["width"] > 200 and 44 <= box["height"] < 64
    assert toggle.evaluate("e => getComputedStyle(e).backgroundColor") == "rgba(0, 0, 0, 0)"
    assert too_small_to_tap(page) == []
    selects = [page.locator(f"select[name={n}]").bounding_box() for n in ("category", "department", "size")]
    assert all(b is not None and b["height"] >= 44 for b in selects)
    if width == 1366:  # three columns side by side on a wide screen
        assert selects[0]["y"] == selects[1]["y"]  # type: ignore[index]
    else:
        fits_the_phone(page)
    page.check("input[name=open]")
    page.select_option("select[name=size]", "large")
    look(page, f"market-3-filters-{width}px")
    page.click("button:has-text('应用筛选')")
    expect(page.locator(".hits")).to_contain_text("2025年失业保险稳岗返还")
    expect(page.locator("input[name=open]")).to_be_checked()
    context.close()


@pytest.mark.parametrize("width", [360, 1366])
def test_an_applied_for_award_and_a_qualification_say_how_they_are_delivered(
    market: World, browser: Browser, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    page.goto(market.base + "/policies?q=首台套")  # type: ignore[attr-defined]
    award = page.locator(".hit", has_text="首台套首批次首版次产品销售奖励")
    expect(award.locator(".way")).to_have_text("快申快享")
    expect(award.locator(".money")).to_contain_text("单户最高 10,000,000.00 元")
    qualification = page.locator(".hit", has_text="首台套首批次首版次认定")
    expect(qualification.locator(".way")).to_have_text("资质")
    expect(qualification.locator(".money")).to_have_text("资质类事项，不发放资金")
    if width == 360:
        fits_the_phone(page)
    look(page, f"market-7-apply-list-{width}px")

    award.locator("h2 a").click()
    expect(page.locator("#payment")).to_contain_text("快申快享：在线申请")
    expect(page.locator("#guide")).to_contain_text(
        "四川省经济和信息化厅、四川省财政厅（四川省经济和信息化厅牵头）"
    )
    expect(page.locator("#guide")).to_contain_text("60 个工作日")
    expect(page.locator("#item-award")).to_contain_text("金额由审核部门核定，每户最高 10,000,000.00 元")
    expect(page.locator("#item-award .asked")).to_contain_text("上传：认定后第一年度产品销售合同")
    expect(page.locator("#item-award .asked")).to_contain_text("上传：销售发票（选交）")
    expect(page.locator("#apply-award")).to_have_text("申请（快申快享）")
    expect(page.locator("#note")).to_contain_text("申请时自动预审并填入")
    if width == 360:
        fits_the_phone(page)
    look(page, f"market-8-apply-policy-{width}px")

    page.goto(market.base + "/policies/zizhi-zhuanjingtexin-sichuan-2024")  # type: ignore[attr-defined]
    expect(page.locator("#payment")).to_contain_text("资质类事项，不发放资金")
    expect(page.locator("#guide")).to_contain_text("028-86264044")
    expect(page.locator("#note")).to_contain_text("不进行数据比对")
    expect(page.locator("#facts")).not_to_contain_text("单户金额")
    if width == 360:
        fits_the_phone(page)
    look(page, f"market-9-qualification-{width}px")
    context.close()
