"""The rating link of the closing SMS (/r/{token}): it opens the rating of its own item without signing
in, takes one rating with a CSRF token bound to the browser, and nothing else — a confirmation link, a
forged token or another item named with it get the one neutral page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.routes import now
from payouts.db import transaction
from payouts.models import Offer
from payouts.sms import MemoryGateway
from portal import ratings
from portal.models import Rating
from tests.api.browser import SHOTS, accessibility_problems
from tests.api.conftest import World, csrf_of


def _closing(world: World, policy_id: str = "c-gaoxin") -> tuple[MemoryGateway, list[str]]:
    """Pay the policy's offers (as reconciliation would) and send their closing SMS; the link paths."""
    with transaction(world.app.state.engine) as s:
        paid = list(s.scalars(select(Offer).where(Offer.policy_id == policy_id)).all())
        for o in paid:
            o.state, o.paid_at = "paid", now() - dt.timedelta(hours=1)
    phone = MemoryGateway()
    settings = world.app.state.settings
    sent = ratings.send_links(
        world.app.state.engine, phone, now(), settings.payouts(), settings.rating_link_base
    )
    assert sent.sent == len(phone.sent) > 1
    return phone, [m.params["link"].removeprefix(settings.public_url) for m in phone.sent]


def test_the_sms_link_rates_its_own_item_without_signing_in(world: World) -> None:
    _, paths = _closing(world)
    assert all(p.startswith("/r/") for p in paths)
    browser = TestClient(world.app)
    page = browser.get(paths[0])
    assert page.status_code == 200 and "服务评价" in page.text and "已到账" in page.text
    subject_id = page.text.split('name="subject_id" value="')[1].split('"')[0]
    form = {"csrf": csrf_of(page.text), "subject_id": subject_id, "score": "2", "comment": ""}
    poor = browser.post(paths[0], data=form)
    assert poor.status_code == 422 and "请写明不满意的原因" in poor.text
    done = browser.post(paths[0], data={**form, "comment": "到账比承诺晚了三天"})
    assert done.status_code == 200 and "不满意" in done.text and "5 个工作日内答复" in done.text
    with transaction(world.app.state.engine) as s:
        row = s.scalar(select(Rating))
        offer = s.scalar(select(Offer).where(Offer.public_id == subject_id))
    assert (row.subject_id, row.uscc, row.score) == (subject_id, offer.uscc, 2)
    assert "提交评价" not in browser.get(paths[0]).text  # rated: the link shows the rating, no form


def test_another_item_a_confirmation_link_or_a_forged_token_gets_the_neutral_page(world: World) -> None:
    confirm_paths = world.notify("c-kexing")
    _, paths = _closing(world)
    browser = TestClient(world.app)
    mine = browser.get(paths[0]).text
    other = browser.get(paths[1]).text.split('name="subject_id" value="')[1].split('"')[0]
    form = {"csrf": csrf_of(mine), "subject_id": other, "score": "5", "comment": ""}
    refused = browser.post(paths[0], data=form)  # link 0 naming link 1's offer
    assert refused.status_code == 404 and "链接无效或已失效" in refused.text
    token = confirm_paths[0].removeprefix("/c/")
    assert browser.get(f"/r/{token}").status_code == 404  # a confirmation link is not a rating link
    assert browser.get("/r/" + "A" * 22).status_code == 404
    assert browser.get(paths[0].replace("/r/", "/c/")).status_code == 404  # nor the reverse
    stranger = TestClient(world.app)  # another browser, without the link's nonce cookie
    assert stranger.post(paths[0], data={**form, "subject_id": ""}).status_code == 403
    with transaction(world.app.state.engine) as s:
        assert s.scalar(select(Rating)) is None


def test_the_rating_page_at_360_px(template, browser, tmp_path: Path) -> None:
    from tests.api.browser import live_world

    with live_world(template, tmp_path / "live") as w:
        _, paths = _closing(w)
        page = browser.new_page(viewport={"width": 360, "height": 740})
        page.goto(f"{w.base}{paths[0]}")
        page.screenshot(path=str(SHOTS / "rating-link-form-360.png"), full_page=True)
        assert accessibility_problems(page) == []
        page.check("input[name=score][value='5']")
        page.click("#rate")
        assert page.locator("#rating-score").inner_text() == "非常满意"
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        page.screenshot(path=str(SHOTS / "rating-link-360.png"), full_page=True)
        assert overflow <= 0
        page.close()
