"""Supplying data and public notice in a real browser (Playwright + Debian's chromium), against the service
on a local port. Screenshots go to artifacts/screenshots/.

- An objection filed on the public notice page blocks the batch's approval until staff resolve it.
- An enterprise supplies a missing field with evidence on its phone, the department holding the field
  verifies it, and the next match run makes the enterprise a candidate.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect

from api.routes import batches as batch_routes
from api.routes import notice as notice_routes
from api.routes import now as real_now
from tests.api.browser import live_world, look, signed_in, too_small_to_tap
from tests.api.conftest import World, confirm_offer

MISSING_PREMIUM = "91321302N37DJHMYJR"  # c-wenbao/refund: ui_premium_paid missing (人社)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def live(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with live_world(template, tmp_path_factory.mktemp("live-notice")) as w:
        yield w


def phone(browser: Browser) -> Page:
    return browser.new_context(
        viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True, java_script_enabled=False
    ).new_page()


def test_an_objection_blocks_approval_until_it_is_resolved(
    live: World, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = live.base  # type: ignore[attr-defined]
    for link in live.notify("c-gaoxin")[:2]:
        assert confirm_offer(TestClient(live.app), link).status_code == 200
    r = live.make_batch("c-gaoxin")
    assert r.status_code == 201, r.text
    batch_url = f"{base}/console/batches/{r.json()['reference']}"

    maker = signed_in(browser, base, "maker")
    maker.goto(batch_url)
    maker.fill("input[name=days]", "2")
    maker.click("#open-notice")
    expect(maker.locator(".flash")).to_contain_text("已公示 2 天")

    public = phone(browser)
    public.goto(f"{base}/gongshi")
    public.click(".notice a")
    expect(public.locator("#notice-lines tbody tr")).to_have_count(2)
    assert public.evaluate("document.documentElement.scrollWidth") <= 360
    assert too_small_to_tap(public) == []
    look(public, "notice-0-list-360px")
    public.click("#notice-lines tbody tr:first-child a")  # the line chosen from the list, then the form
    assert too_small_to_tap(public) == []
    public.fill("input[name=name]", "张三")
    public.fill("input[name=contact]", "13900001111")
    public.fill("textarea[name=text]", "该企业已停止经营")
    public.click("#file-objection")
    expect(public.locator("#objection-received")).to_contain_text("异议已收到")
    look(public, "notice-1-objection-360px")

    for module in (batch_routes, notice_routes):  # the notice period has run out
        monkeypatch.setattr(module, "now", lambda: real_now() + dt.timedelta(days=3))
    checker = signed_in(browser, base, "checker")
    checker.goto(batch_url)
    expect(checker.locator("#notice-status")).to_contain_text("公示与异议")
    checker.click("#approve")
    expect(checker.locator("body")).to_contain_text("1 条异议尚未处理")
    look(checker, "notice-2-approval-refused")

    staff = signed_in(browser, base, "policy_sci")
    staff.goto(f"{base}/console/notices")
    staff.click("#notices tbody a")
    staff.fill(".objection input[name=reason]", "经核实该企业已停止经营")
    staff.click(".objection button.uphold")
    expect(staff.locator(".flash")).to_contain_text("已移出批次")
    expect(staff.locator(".objection .state")).to_have_text("异议成立")

    checker.goto(batch_url)
    checker.click("#approve")
    expect(checker.locator("#batch-state")).to_have_text("已复核")
    expect(checker.locator("#totals")).to_contain_text("1 笔")
    look(checker, "notice-3-approved")


def test_an_enterprise_supplies_a_field_staff_verify_and_a_new_run_makes_it_a_candidate(
    live: World, browser: Browser, tmp_path: Path
) -> None:
    base = live.base  # type: ignore[attr-defined]
    ent = phone(browser)
    ent.goto(f"{base}/e/login")  # no candidate, so no payee: the code goes to the run's registered contact
    ent.fill("#uscc", MISSING_PREMIUM)
    ent.click("#send")
    expect(ent.locator("#sent")).to_contain_text("139****9613")
    sent = [m for m in live.app.state.phone.sent if m.kind == "login_code"][-1]
    ent.fill("#code", sent.params["code"])
    ent.click("#verify")
    expect(ent).to_have_url(f"{base}/e")
    ent.goto(f"{base}/e/supplied")
    assert too_small_to_tap(ent) == [] and ent.evaluate("document.documentElement.scrollWidth") <= 360
    look(ent, "supplied-0-asked-360px")
    ent.set_viewport_size({"width": 1366, "height": 768})
    look(ent, "supplied-0-asked-1366px")
    ent.set_viewport_size({"width": 360, "height": 740})
    line = ent.locator('.ent-item[data-field="ui_premium_paid"]')
    expect(ent.locator("form.supply-form", has=line)).to_contain_text("人力资源和社会保障局")
    evidence = tmp_path / "缴费证明.pdf"
    evidence.write_bytes(PDF)
    line.locator("input[name=value]").fill("12345.67")
    form = ent.locator("form.supply-form", has=line)  # one evidence file for the department's fields
    form.locator("input[name=evidence]").set_input_files(evidence)
    form.locator("button[type=submit]").click()
    expect(ent.locator("#supplied-state")).to_have_text("待核实")
    look(ent, "supplied-1-submitted-360px")

    staff = signed_in(browser, base, "reviewer_hr")
    staff.goto(f"{base}/console/supplied")
    staff.click("#supplied tbody a")
    expect(staff.locator("#evidence")).to_contain_text("缴费证明.pdf")
    staff.click("#verify")
    expect(staff.locator(".flash")).to_contain_text("下一次数据比对将采用该值")
    look(staff, "supplied-2-verified")

    reviewer = signed_in(browser, base, "reviewer")
    reviewer.goto(f"{base}/console/runs")
    reviewer.click("text=开始匹配")
    job_id = reviewer.url.rsplit("/", 1)[1]
    deadline = time.monotonic() + 120
    while live.app.state.jobs.get(job_id).state in ("queued", "running"):  # the service's worker runs it
        assert time.monotonic() < deadline, "the match run did not finish"
        time.sleep(0.2)
    job = live.app.state.jobs.get(job_id)
    assert job.state == "done" and job.imported, job
    assert live.app.state.jobs.manifest(job).overrides["count"] == 1

    ent.goto(f"{base}/e")
    expect(ent.locator("#matched")).to_contain_text("小微企业稳岗补贴")
    expect(ent.locator("#missing")).not_to_contain_text("小微企业稳岗补贴")
    look(ent, "supplied-3-matched-360px")
