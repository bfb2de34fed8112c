"""The public confirmation page: what the enterprise sees, CSRF, rate limits, reuse and expiry of links,
and that unknown, expired and used links are indistinguishable.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.app import JsonFormatter
from payouts import sms
from payouts.db import transaction
from payouts.models import Payee, PolicyVersion, SmsMessage
from tests.api.conftest import World, confirm_offer, copy_world, csrf_of


def state_of(w: World, public_id: str) -> str:
    return w.client.get(f"/api/offers/{public_id}", headers=w.auth("reviewer")).json()["state"]


def offer_of(w: World, path: str) -> str:
    """The public id of the offer behind a link (as staff find it: the only one notified for that phone)."""
    phone = next(m.phone for m in w.app.state.phone.sent if m.params["link"].endswith(path))
    found = w.client.get("/api/offers?policy_id=c-gaoxin&limit=500", headers=w.auth("reviewer")).json()[
        "offers"
    ]
    by_uscc = {o["uscc"]: o["public_id"] for o in found}
    with transaction(w.app.state.engine) as s:
        uscc = s.scalar(select(Payee.uscc).where(Payee.contact_phone == phone))
    return by_uscc[uscc]


@pytest.fixture
def link(world: World) -> str:
    return world.notify("c-gaoxin")[0]


def test_the_page_shows_policy_amount_conditions_and_the_masked_account(world: World, link: str) -> None:
    page = TestClient(world.app).get(link)
    assert page.status_code == 200
    html = page.text
    offer = world.client.get(f"/api/offers/{offer_of(world, link)}", headers=world.auth("reviewer")).json()
    assert "高新技术企业奖励（示例）" in html
    assert "市科学技术局" in html
    assert f"{float(offer['amount']):,.2f}" in html
    assert "确认领取" in html and "放弃" in html and "账户信息有误" in html
    last4 = offer["account_masked"][-4:]
    assert f"****{last4}" in html
    full = offer["account_masked"].replace(" ", "")
    assert full not in html or "*" in full  # never the whole number
    assert "<script" not in html  # works without JavaScript
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_the_sms_the_page_the_receipt_and_a_used_link_give_the_department_and_a_phone(
    world: World, link: str
) -> None:
    sent = next(m for m in world.app.state.phone.sent if m.params["link"].endswith(link))
    assert sent.text.startswith("【惠企直达】市科学技术局：") and "咨询12345" in sent.text  # the deployment's
    with transaction(world.app.state.engine) as s:  # a policy that names its own service phone
        s.execute(
            update(PolicyVersion)
            .where(PolicyVersion.policy_id == "c-gaoxin")
            .values(service_phone="0731-8888")
        )
    browser = TestClient(world.app)
    page = browser.get(link).text
    assert 'href="tel:0731-8888"' in page and "市科学技术局咨询电话" in page
    receipt = confirm_offer(browser, link).text
    assert 'href="tel:0731-8888"' in receipt and 'href="/e/login"' in receipt
    used = browser.get(link)  # the link is used up: the neutral page still says whom to call, and a way on
    assert used.status_code == 404 and 'href="tel:12345"' in used.text and 'href="/e/login"' in used.text


def test_confirming_gives_a_receipt_and_confirms_the_offer(world: World, link: str) -> None:
    public_id = offer_of(world, link)
    r = confirm_offer(TestClient(world.app), link)
    assert r.status_code == 200
    assert "已确认领取" in r.text and "接下来" in r.text and "个工作日内" in r.text
    assert state_of(world, public_id) == "confirmed"


def test_a_confirm_without_its_csrf_token_is_refused_and_changes_nothing(world: World, link: str) -> None:
    browser = TestClient(world.app)
    page = browser.get(link)
    public_id = offer_of(world, link)
    assert browser.post(f"{link}/confirm", data={}).status_code == 403
    assert browser.post(f"{link}/confirm", data={"csrf": "0" * 40}).status_code == 403
    # A token lifted from another browser's page does not work without that browser's nonce cookie.
    stranger = TestClient(world.app)
    assert stranger.post(f"{link}/confirm", data={"csrf": csrf_of(page.text)}).status_code == 403
    assert state_of(world, public_id) == "notified"


def test_a_used_link_gives_the_neutral_page_and_a_second_click_the_same_receipt(
    world: World, link: str
) -> None:
    browser = TestClient(world.app)
    page = browser.get(link)
    first = browser.post(f"{link}/confirm", data={"csrf": csrf_of(page.text)})
    again = browser.post(f"{link}/confirm", data={"csrf": csrf_of(page.text)})  # a double click
    assert first.status_code == again.status_code == 200
    assert "已确认领取" in again.text
    reopened = browser.get(link)
    unknown = browser.get("/c/AAAAAAAAAAAAAAAAAAAAAA")
    assert reopened.status_code == unknown.status_code == 404
    assert reopened.text == unknown.text
    other_answer = browser.post(f"{link}/decline", data={"csrf": csrf_of(page.text), "sure": "yes"})
    assert other_answer.status_code == 404 and other_answer.text == unknown.text


def test_an_expired_link_looks_exactly_like_an_unknown_one(world: World, link: str) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    with transaction(world.app.state.engine) as s:
        assert sms.expire_overdue(s, later) > 0
    browser = TestClient(world.app)
    expired, unknown = browser.get(link), browser.get("/c/" + "B" * 22)
    malformed = browser.get("/c/not a token")
    assert expired.status_code == unknown.status_code == malformed.status_code == 404
    assert expired.text == unknown.text == malformed.text
    assert "链接无效或已失效" in expired.text


def test_a_link_past_its_deadline_cannot_confirm_even_before_the_sweep(world: World, link: str) -> None:
    with transaction(world.app.state.engine) as s:
        s.execute(update(SmsMessage).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    assert TestClient(world.app).get(link).status_code == 404


def test_declining_asks_once_more_then_declines(world: World, link: str) -> None:
    browser = TestClient(world.app)
    public_id = offer_of(world, link)
    page = browser.get(link)
    ask = browser.post(f"{link}/decline", data={"csrf": csrf_of(page.text)})
    assert ask.status_code == 200 and "确定放弃" in ask.text
    assert state_of(world, public_id) == "notified"
    done = browser.post(
        f"{link}/decline", data={"csrf": csrf_of(ask.text), "sure": "yes", "reason": "不需要"}
    )
    assert "已放弃" in done.text
    assert state_of(world, public_id) == "declined"


def test_a_wrong_account_report_holds_the_offer_for_staff(world: World, link: str) -> None:
    browser = TestClient(world.app)
    public_id = offer_of(world, link)
    page = browser.get(link)
    ask = browser.post(f"{link}/account-wrong", data={"csrf": csrf_of(page.text)})
    done = browser.post(
        f"{link}/account-wrong", data={"csrf": csrf_of(ask.text), "sure": "yes", "note": "已换开户行"}
    )
    assert "已收到您的反映" in done.text
    offer = world.client.get(f"/api/offers/{public_id}", headers=world.auth("reviewer")).json()
    assert offer["state"] == "held" and offer["hold_reason"] == "企业反映对公账户有误"


def test_requests_per_link_are_limited(template, tmp_path) -> None:  # type: ignore[no-untyped-def]
    w = copy_world(template, tmp_path / "limited", confirm_token_limit=3, confirm_ip_limit=1000)
    path = w.notify("c-gaoxin")[0]
    browser = TestClient(w.app)
    assert [browser.get(path).status_code for _ in range(3)] == [200, 200, 200]
    blocked = browser.get(path)
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert blocked.headers["cache-control"] == "no-store"
    # Another link from the same phone network is not affected.
    assert (
        browser.get(w.app.state.phone.sent[-1].params["link"].removeprefix("http://testserver")).status_code
        == 200
    )


def test_requests_per_ip_are_limited_whatever_the_token(template, tmp_path) -> None:  # type: ignore[no-untyped-def]
    w = copy_world(template, tmp_path / "limited", confirm_ip_limit=5, confirm_token_limit=1000)
    browser = TestClient(w.app)
    codes = [browser.get(f"/c/{'C' * 21}{chr(65 + i)}").status_code for i in range(7)]
    assert codes == [404] * 5 + [429, 429]


class Captured(logging.Handler):
    """Keeps the formatted lines of the service's own (JSON) log."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(JsonFormatter().format(record))


def test_link_tokens_never_reach_the_log(world: World, link: str) -> None:
    token = link.rsplit("/", 1)[-1]
    captured = Captured()
    logging.getLogger("zhida").addHandler(captured)
    try:
        confirm_offer(TestClient(world.app), link)
    finally:
        logging.getLogger("zhida").removeHandler(captured)
    requests = [json.loads(line) for line in captured.lines if '"msg": "request"' in line]
    assert [r["path"] for r in requests] == ["/c/<token>", "/c/<token>/confirm"]
    assert all(r["request_id"] != "-" for r in requests)
    assert not any(token in line for line in captured.lines)
