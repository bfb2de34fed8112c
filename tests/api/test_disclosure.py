"""The public 晾晒 pages (/liangshai) and the open-data export: no sign-in, aggregates only, readable on a
phone and a desktop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser
from sqlalchemy import select

from api.routes import disclosure as disclosure_routes
from payouts.db import transaction
from payouts.models import Payee
from tests.api.browser import SHOTS, live_world
from tests.api.conftest import World, confirm_offer


@pytest.fixture(autouse=True)
def _fresh_figures() -> Iterator[None]:
    disclosure_routes._cache.clear()  # the pages' cache lives in the process
    yield
    disclosure_routes._cache.clear()


def _reach(w: World) -> None:
    """c-gaoxin's enterprises told by SMS, the first one confirmed."""
    links = w.notify("c-gaoxin")
    assert confirm_offer(TestClient(w.app), links[0]).status_code == 200


def test_the_public_pages_and_export_show_figures_without_personal_data(world: World) -> None:
    _reach(world)
    anyone = TestClient(world.app)  # no sign-in
    page = anyone.get("/liangshai")
    assert page.status_code == 200 and "惠企资金去向晾晒" in page.text and "应享尽享率" in page.text
    one = anyone.get("/liangshai/c-gaoxin")
    assert one.status_code == 200 and "按区县" in one.text and "已告知企业" in one.text
    assert 'href="/liangshai/open-data.csv?policy=c-gaoxin"' in one.text  # the open data of this policy
    missing = anyone.get("/liangshai/no-such-policy")
    assert missing.status_code == 404 and 'href="/liangshai/open-data.csv"' in missing.text
    assert "<title>惠企资金去向晾晒</title>" in missing.text and 'href="/liangshai"' in missing.text
    data = anyone.get("/liangshai/open-data.json").json()
    gaoxin = next(r for r in data["totals"] if r["policy_id"] == "c-gaoxin" and r["county_code"] == "")
    assert gaoxin["eligible"] > 0 and gaoxin["reached"] > 0
    csv_text = anyone.get("/liangshai/open-data.csv", params={"policy": "c-gaoxin"}).text
    assert csv_text.startswith("\ufeff政策代码,")
    with transaction(world.app.state.engine) as s:
        payees = s.execute(select(Payee.uscc, Payee.name, Payee.contact_phone, Payee.account_no)).all()
    everything = page.text + one.text + json.dumps(data, ensure_ascii=False) + csv_text
    for row in payees:
        for secret in row:
            assert not secret or secret not in everything, secret


def test_the_public_pages_read_on_a_phone_and_a_desktop(template, browser: Browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with live_world(template, tmp_path / "w") as w:
        _reach(w)
        base = w.base  # type: ignore[attr-defined]
        for width in (360, 1366):
            page = browser.new_context(viewport={"width": width, "height": 800}).new_page()
            page.goto(f"{base}/liangshai")
            page.screenshot(path=SHOTS / f"liangshai-list-{width}px.png", full_page=True)
            page.click("text=高新技术企业")
            assert "应享尽享率" in page.content()
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            page.screenshot(path=SHOTS / f"liangshai-policy-{width}px.png", full_page=True)
            page.context.close()
