"""Public notice and objections through the service: a maker puts a batch on notice, anyone objects on the
public page (no login, CSRF, rate-limited), the batch cannot be approved while the notice runs or an
objection is open, staff of the policy's department resolve it, and an upheld objection removes the line.

The clock of the routes is moved forward (`later`) to see the end of the notice period.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from api.routes import batches as batch_routes
from api.routes import notice as notice_routes
from api.routes import now as real_now
from tests.api.conftest import World, confirm_offer

Later = Callable[[dt.timedelta], None]


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Later:
    """Move the routes' clock forward by a time span."""

    def move(by: dt.timedelta) -> None:
        for module in (batch_routes, notice_routes):
            monkeypatch.setattr(module, "now", lambda: real_now() + by)

    return move


def batch_of_two(w: World) -> str:
    """c-gaoxin (市科学技术局): two confirmed offers in one assembled batch."""
    links = w.notify("c-gaoxin")
    for link in links[:2]:
        assert confirm_offer(TestClient(w.app), link).status_code == 200
    r = w.make_batch("c-gaoxin")
    assert r.status_code == 201, r.text
    assert r.json()["line_count"] == 2
    return r.json()["reference"]


def open_notice(w: World, ref: str, days: int = 3) -> dict:
    r = w.client.post("/api/notices", json={"batch": ref, "days": days}, headers=w.auth("maker"))
    assert r.status_code == 201, r.text
    return r.json()


def object_to(client: TestClient, notice_id: str, line_no: int = 1, contact: str = "13900001111") -> object:
    page = client.get(f"/gongshi/{notice_id}", params={"line": line_no})  # the line picked from the list
    assert page.status_code == 200, page.text
    return client.post(
        f"/gongshi/{notice_id}/objection",
        data={
            "line_no": line_no,
            "name": "张三",
            "contact": contact,
            "text": "该企业不符合条件",
            "csrf": csrf(page.text),
        },
    )


def test_the_public_sees_names_items_and_amounts_but_no_accounts(world: World) -> None:
    ref = batch_of_two(world)
    n = open_notice(world, ref)
    public = TestClient(world.app)
    listing = public.get("/gongshi")
    assert listing.status_code == 200 and f"/gongshi/{n['id']}" in listing.text
    page = public.get(f"/gongshi/{n['id']}")
    assert page.status_code == 200
    batch = world.client.get(f"/api/batches/{ref}", headers=world.auth("maker")).json()
    for line in batch["lines"]:
        assert line["account_name"] in page.text
        assert line["account_masked"] not in page.text
    assert len(n["lines"]) == 2 and all(set(x) == {"line_no", "name", "item", "amount"} for x in n["lines"])
    assert public.get("/gongshi/00000000000000000000").status_code == 404


def test_an_objection_blocks_approval_until_it_is_resolved(world: World, later: Later) -> None:
    ref = batch_of_two(world)
    n = open_notice(world, ref, days=3)
    approve = lambda: world.client.post(f"/api/batches/{ref}/approve", headers=world.auth("checker"))  # noqa: E731
    r = approve()
    assert r.status_code == 409 and "公示期满前不能复核通过" in r.json()["detail"]
    filed = object_to(TestClient(world.app), n["id"], line_no=2)
    assert filed.status_code == 200 and "异议已收到" in filed.text
    later(dt.timedelta(days=4))
    r = approve()
    assert r.status_code == 409 and "1 条异议尚未处理" in r.json()["detail"]
    detail = world.client.get(f"/api/notices/{n['id']}", headers=world.auth("policy_sci")).json()
    (objection,) = detail["objections"]
    assert (objection["line_no"], objection["state"], objection["contact"]) == (2, "open", "13900001111")
    resolve = f"/api/notices/objections/{objection['id']}/resolve"
    body = {"upheld": True, "reason": "经核实该企业已注销"}
    assert world.client.post(resolve, json=body, headers=world.auth("policy_hr")).status_code == 404
    assert world.client.post(resolve, json=body, headers=world.auth("maker")).status_code == 403
    r = world.client.post(resolve, json=body, headers=world.auth("policy_sci"))
    assert r.status_code == 200 and r.json()["state"] == "upheld"
    r = approve()
    assert r.status_code == 200, r.text
    assert r.json()["line_count"] == 1
    lines = world.client.get(f"/api/batches/{ref}", headers=world.auth("checker")).json()["lines"]
    assert [x["status"] for x in lines] == ["pending", "withdrawn"]


def test_the_objection_form_checks_csrf_contact_and_rate(world: World) -> None:
    ref = batch_of_two(world)
    n = open_notice(world, ref)
    public = TestClient(world.app)
    public.get(f"/gongshi/{n['id']}")
    forged = public.post(
        f"/gongshi/{n['id']}/objection",
        data={"line_no": 1, "name": "张三", "contact": "13900001111", "text": "x", "csrf": "forged"},
    )
    assert forged.status_code == 403
    bad = object_to(public, n["id"], contact="随便")
    assert bad.status_code == 422 and "联系方式" in bad.text
    limit = world.app.state.settings.objection_ip_limit
    answers = [object_to(public, n["id"]).status_code for _ in range(limit)]
    assert answers[-1] == 429


def test_staff_open_notices_only_in_their_role_and_department(world: World) -> None:
    ref = batch_of_two(world)
    for user, status in (("checker", 403), ("maker_hr", 404)):
        r = world.client.post("/api/notices", json={"batch": ref, "days": 3}, headers=world.auth(user))
        assert r.status_code == status, (user, r.text)
    n = open_notice(world, ref)
    assert (
        world.client.post(
            "/api/notices", json={"batch": ref, "days": 3}, headers=world.auth("maker")
        ).status_code
        == 409
    )
    assert [x["id"] for x in world.client.get("/api/notices", headers=world.auth("policy_sci")).json()] == [
        n["id"]
    ]
    assert world.client.get("/api/notices", headers=world.auth("policy_hr")).json() == []
    assert world.client.get(f"/api/notices/{n['id']}", headers=world.auth("policy_hr")).status_code == 404


def test_the_console_shows_the_notice_on_the_batch_and_resolves_with_csrf(world: World, later: Later) -> None:
    ref = batch_of_two(world)
    maker = world.browser("maker")
    page = maker.get(f"/console/batches/{ref}")
    assert "发起公示" in page.text
    r = maker.post(
        "/console/notices", data={"batch": ref, "days": "2", "csrf": csrf(page.text)}, follow_redirects=False
    )
    assert r.status_code == 303
    notice_url = r.headers["location"]
    assert "公示与异议" in maker.get(f"/console/batches/{ref}").text
    object_to(TestClient(world.app), notice_url.rsplit("/", 1)[1])
    staff = world.browser("policy_sci")
    page = staff.get(notice_url)
    assert page.status_code == 200 and "异议不成立" in page.text
    action = re.search(r'action="(/console/notices/objections/[^"]+)"', page.text)
    assert action
    r = staff.post(
        action.group(1), data={"csrf": csrf(page.text), "outcome": "dismissed", "reason": "经核实正常经营"}
    )
    assert r.status_code == 200 and "异议不成立" in r.text
    later(dt.timedelta(days=3))
    checker = world.browser("checker")
    page = checker.get(f"/console/batches/{ref}")
    r = checker.post(f"/console/batches/{ref}/approve", data={"csrf": csrf(page.text)})
    assert r.status_code == 200 and "复核通过" in r.text
