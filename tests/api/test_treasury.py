"""The console pays through the format the payer account asks for: a cost-shared policy's batches, one
per payer, the district's as treasury vouchers, its answer uploaded and reconciled; in a real browser at
360 px and 1366 px (screenshots in artifacts/screenshots/)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

from lxml import etree

from payouts import finance, vouchers
from payouts.db import transaction
from tests import staff
from tests.api.browser import SHOTS, live_world, signed_in
from tests.api.conftest import World, csrf_of

NOW = dt.datetime(2025, 9, 29, 2, 0, tzinfo=dt.UTC)


def share_cost(w: World, policy_id: str) -> None:
    """The finance checker sets the city's and the district's accounts and shares the policy 1:1."""
    with transaction(w.app.state.engine) as s:
        staff.share_cost(s, policy_id, NOW)


def shared_batches(w: World) -> tuple[str, str, Decimal]:
    """c-wenbao's released offers (no confirmation needed) batched once per payer; both references and
    the total the maker saw."""
    share_cost(w, "c-wenbao")
    assert w.bulk("/api/review/release", "release", {"filter": {"policy_id": "c-wenbao"}}).status_code == 200
    ready = w.client.get("/api/batches/ready", headers=w.auth("maker")).json()
    total = Decimal(next(r for r in ready if r["policy_id"] == "c-wenbao")["amount"])
    made = w.make_batch("c-wenbao")
    assert made.status_code == 201, made.text
    group = made.json()["group_ref"]
    listed = w.client.get("/api/batches", headers=w.auth("checker")).json()
    refs = [b["reference"] for b in listed if b["group_ref"] == group]
    city, district = sorted(refs, key=lambda r: next(b["payer_name"] for b in listed if b["reference"] == r))
    return (city, district, total) if "芙蓉" in district else (district, city, total)


def test_the_console_offers_the_payers_format_and_reconciles_the_treasurys_answer(world: World) -> None:
    city, district, total = shared_batches(world)
    both = [
        world.client.get(f"/api/batches/{r}", headers=world.auth("checker")).json() for r in (city, district)
    ]
    assert Decimal(both[0]["total"]) + Decimal(both[1]["total"]) == total
    assert [b["file_format"] for b in both] == ["bank_csv", "treasury"]
    for ref in (city, district):
        assert (
            world.client.post(f"/api/batches/{ref}/approve", headers=world.auth("checker")).status_code == 200
        )
    checker = world.browser("checker")
    page = checker.get(f"/console/batches/{district}").text
    assert "导出国库集中支付电子凭证" in page and "区级财政配套资金" in page and "分担 1/2" in page
    assert "长沙市财政局" in page.split('id="group"')[1]  # the city's batch of the same offers
    assert "导出银行文件" in checker.get(f"/console/batches/{city}").text
    done = checker.post(
        f"/console/batches/{district}/export",
        data={"csrf": csrf_of(page), "format": "treasury"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    file = world.client.get(f"/api/batches/{district}/files/voucher", headers=world.auth("checker"))
    root = etree.fromstring(file.content)
    vouchers.schema().assertValid(root)
    assert sum(Decimal(x) for x in root.xpath("//PayAmt/text()")) == Decimal(both[1]["total"])
    answer = world.client.get(
        f"/demo/bank/{district}/return.xml", params={"fail": 1}, headers=world.auth("checker")
    )
    r = world.client.post(
        f"/api/batches/{district}/return",
        files={"file": ("回单.xml", answer.content, "application/xml")},
        headers=world.auth("checker"),
    )
    assert r.status_code == 200, r.text
    assert (r.json()["failed"], r.json()["pending"]) == (1, 0)
    assert r.json()["paid"] == both[1]["line_count"] - 1


def test_the_finance_checker_keeps_payer_accounts_through_the_api_with_history(world: World) -> None:
    body = {
        "name": "长沙市财政局",
        "account_no": "430001000000000001",
        "bank_name": "国家金库长沙市中心支库",
        "file_format": "treasury",
    }
    refused = world.client.put("/api/finance/payers/city", json=body, headers=world.auth("checker"))
    assert refused.status_code == 422 and "行政区划代码" in refused.json()["detail"]
    for reviewer_or_maker in ("reviewer", "maker", "policy_sci"):
        r = world.client.put("/api/finance/payers/city", json=body, headers=world.auth(reviewer_or_maker))
        assert r.status_code == 403
    for division in ("430100", "430102"):
        r = world.client.put(
            "/api/finance/payers/city", json={**body, "adm_div_code": division}, headers=world.auth("checker")
        )
        assert r.status_code == 200, r.text
    history = world.client.get("/api/finance/payers/city", headers=world.auth("auditor")).json()
    assert [(h["version"], h["adm_div_code"], h["set_by"]) for h in history] == [
        (2, "430102", "checker"),
        (1, "430100", "checker"),
    ]
    part = {
        "payer_code": "city",
        "share": 1,
        "fund_source": "市级财政专项资金",
        "budget_no": "长财预〔2025〕101号",
    }
    r = world.client.put(
        "/api/finance/policies/c-wenbao", json={"parts": [part]}, headers=world.auth("checker")
    )
    assert r.status_code == 200, r.text
    listed = world.client.get("/api/finance/policies/c-wenbao", headers=world.auth("maker")).json()
    assert listed[0]["budget_no"] == "长财预〔2025〕101号"


def test_a_reviewer_cannot_touch_the_finance_configuration(world: World) -> None:
    import pytest

    from payouts.errors import RoleError

    with pytest.raises(RoleError), transaction(world.app.state.engine) as s:
        finance.set_payer_account(
            s,
            "city",
            name="某账户",
            account_no="6222000000000000",
            bank_name="某银行",
            file_format="bank_csv",
            by="reviewer",
            now=NOW,
        )


def test_the_batch_page_of_a_treasury_payer_at_360_and_1366_px(template, browser, tmp_path: Path) -> None:
    with live_world(template, tmp_path / "live") as w:
        _, district, _ = shared_batches(w)
        assert w.client.post(f"/api/batches/{district}/approve", headers=w.auth("checker")).status_code == 200
        for width in (360, 1366):
            page = signed_in(browser, w.base, "checker", width=width)  # type: ignore[attr-defined]
            page.goto(f"{w.base}/console/batches/{district}")  # type: ignore[attr-defined]
            assert re.search("导出国库集中支付电子凭证", page.content())
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{width} px: the page is {overflow} px wider than the window"
            page.locator("section.card").first.screenshot(path=str(SHOTS / f"batch-treasury-{width}.png"))
            if width == 1366:
                page.click("#export")
                assert "已导出国库集中支付电子凭证" in page.content()
                page.locator("section.card").first.screenshot(
                    path=str(SHOTS / f"batch-treasury-exported-{width}.png")
                )
            page.context.close()


def test_the_finance_page_lets_the_checker_set_accounts_and_funding_and_others_only_read(
    world: World,
) -> None:
    checker = world.browser("checker")
    page = checker.get("/console/finance").text
    assert "保存付款账户" in page and "默认付款账户" in page
    account = {
        "code": "furong",
        "name": "长沙市芙蓉区财政局",
        "account_no": "430102000000000002",
        "bank_name": "国家金库长沙市芙蓉区支库",
        "file_format": "treasury",
        "adm_div_code": "430102",
    }
    r = checker.post(
        "/console/finance/payers", data={**account, "csrf": csrf_of(page)}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    page = checker.get("/console/finance").text
    funding = {
        "policy_id": "c-wenbao",
        "payer_1": "furong",
        "share_1": "1",
        "fund_source_1": "区级财政配套资金",
        "budget_no_1": "芙财预〔2025〕7号",
        "budget_amount_1": "5,000,000.005",
    }
    bad = checker.post(
        "/console/finance/policies", data={**funding, "csrf": csrf_of(page)}, follow_redirects=False
    )
    assert bad.status_code == 422 and "指标金额“5,000,000.005”无效" in bad.text
    funding["budget_amount_1"] = "5,000,000.00"
    r = checker.post(
        "/console/finance/policies", data={**funding, "csrf": csrf_of(page)}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    shown = checker.get("/console/finance").text
    table = shown.split('id="funding"')[1]
    assert "芙财预〔2025〕7号" in table and "1/1" in shown
    assert table.count("500万元") == 2  # 指标金额 and, nothing approved yet, the balance
    for who in ("auditor", "maker"):
        other = world.browser(who)
        seen = other.get("/console/finance").text
        assert "芙财预〔2025〕7号" in seen and "保存付款账户" not in seen
        refused = other.post(
            "/console/finance/payers", data={**account, "csrf": csrf_of(seen)}, follow_redirects=False
        )
        assert refused.status_code == 403
    assert world.browser("reviewer").get("/console/finance").status_code == 403


def test_the_finance_page_at_360_and_1366_px(template, browser, tmp_path: Path) -> None:
    with live_world(template, tmp_path / "live") as w:
        share_cost(w, "c-wenbao")
        for width in (360, 1366):
            page = signed_in(browser, w.base, "checker", width=width)  # type: ignore[attr-defined]
            page.goto(f"{w.base}/console/finance")  # type: ignore[attr-defined]
            page.click("#funding-form summary")
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            page.screenshot(path=str(SHOTS / f"finance-{width}.png"), full_page=True)
            assert overflow <= 0, f"{width} px: the page is {overflow} px wider than the window"
            page.context.close()
