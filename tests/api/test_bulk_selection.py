"""A bulk action acts only on what its user chose, after seeing its count and total.

The defect these tests keep closed: with the review queue filtered to one policy and nothing ticked, one
click on 发布所选 released every drafted offer of every policy, and the offers of a policy that needs no
confirmation (c-wenbao here) went straight to confirmed, money nobody chose.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import World, confirm_form, confirm_offer, csrf_of

POLICIES = ("c-gaoxin", "c-kexing", "c-yanfa", "c-jiuye", "c-wenbao")


def states(w: World) -> dict[str, list[str]]:
    """Every drafted offer per policy: what must not move when nothing was chosen."""
    return {pid: w.offers(pid, "drafted") for pid in POLICIES}


def amount(w: World, offer: str) -> Decimal:
    return Decimal(w.client.get(f"/api/offers/{offer}", headers=w.auth("reviewer")).json()["amount"])


@pytest.mark.parametrize(
    "path", ["/api/review/release", "/api/review/hold", "/api/review/drop", "/api/sms/send"]
)
@pytest.mark.parametrize("body", [{}, {"expected_count": 0, "expected_total": "0"}])
def test_an_api_bulk_action_naming_no_offers_is_refused(world: World, path: str, body: dict) -> None:
    before = states(world)
    r = world.client.post(path, json={**body, "reason": "核实"}, headers=world.auth("reviewer"))
    assert r.status_code == 422, r.text
    assert states(world) == before


def test_release_with_nothing_ticked_in_the_console_changes_nothing(world: World) -> None:
    w = world
    before = states(w)
    reviewer = w.browser("reviewer")
    queue = reviewer.get("/console/review?policy_id=c-kexing")
    asked = reviewer.post(
        "/console/review/preview",
        data={"csrf": csrf_of(queue.text), "action": "release", "scope": "ticked", "policy_id": "c-kexing"},
    )
    assert "没有选择要约" in asked.text
    # The action itself, posted without a choice and without the confirmed count, is refused too.
    direct = reviewer.post(
        "/console/review/action",
        data={"csrf": csrf_of(queue.text), "action": "release", "policy_id": "c-kexing"},
    )
    assert direct.status_code == 422
    forged = reviewer.post(
        "/console/review/action",
        data={
            "csrf": csrf_of(queue.text),
            "action": "release",
            "policy_id": "c-kexing",
            "expected_count": "0",
            "expected_total": "0",
        },
    )
    assert forged.status_code == 422 and "没有选择要约" in forged.text
    assert states(w) == before


def test_all_matching_the_filter_acts_on_that_policy_alone_after_its_preview(world: World) -> None:
    w = world
    before = states(w)
    kexing = before["c-kexing"]
    total = sum((amount(w, o) for o in kexing), Decimal("0"))
    reviewer = w.browser("reviewer")
    queue = reviewer.get("/console/review?policy_id=c-kexing&state=drafted")
    asked = reviewer.post(
        "/console/review/preview",
        data={
            "csrf": csrf_of(queue.text),
            "action": "release",
            "scope": "matching",
            "policy_id": "c-kexing",
            "state": "drafted",
        },
    )
    assert f"将发布 <strong>{len(kexing):,}</strong> 条要约" in asked.text
    assert f"{total:,.2f} 元" in asked.text
    assert "<td>科技型中小企业奖励（示例）</td>" in asked.text  # the policy's title, not its id
    assert states(w) == before  # the preview changes nothing
    url, fields = confirm_form(asked.text)
    assert fields["expected_count"] == [str(len(kexing))] and Decimal(fields["expected_total"][0]) == total
    done = reviewer.post(url, data=fields)
    assert f"已发布 {len(kexing):,} 条" in done.text
    after = states(w)
    assert after["c-kexing"] == []
    assert {pid: ids for pid, ids in after.items() if pid != "c-kexing"} == {
        pid: ids for pid, ids in before.items() if pid != "c-kexing"
    }


def test_a_policy_needing_no_confirmation_is_named_in_the_preview(world: World) -> None:
    r = world.client.post(
        "/api/review/preview",
        json={"action": "release", "filter": {"policy_id": "c-wenbao"}},
        headers=world.auth("reviewer"),
    )
    assert r.status_code == 200
    seen = r.json()
    assert seen["count"] == len(world.offers("c-wenbao", "drafted")) > 0
    assert seen["direct_count"] == seen["count"] and [p["direct"] for p in seen["policies"]] == [True]


def test_a_set_that_changed_after_its_preview_is_refused_whole(world: World) -> None:
    w = world
    chosen = {"filter": {"policy_id": "c-kexing"}}
    seen = w.client.post(
        "/api/review/preview", json={**chosen, "action": "release"}, headers=w.auth("reviewer")
    )
    expected = {"expected_count": seen.json()["count"], "expected_total": seen.json()["total"]}
    # Another reviewer drops one of them meanwhile.
    gone = w.offers("c-kexing", "drafted")[0]
    assert w.bulk("/api/review/drop", "drop", {"offers": [gone], "reason": "已注销"}).status_code == 200
    before = states(w)
    r = w.client.post("/api/review/release", json={**chosen, **expected}, headers=w.auth("reviewer"))
    assert r.status_code == 409 and "已有变化" in r.json()["detail"]
    assert states(w) == before  # rolled back: not one of the remaining offers was released
    # A total that differs by one fen is refused the same way.
    seen = w.client.post(
        "/api/review/preview", json={**chosen, "action": "release"}, headers=w.auth("reviewer")
    )
    off = Decimal(seen.json()["total"]) + Decimal("0.01")
    r = w.client.post(
        "/api/review/release",
        json={**chosen, "expected_count": seen.json()["count"], "expected_total": str(off)},
        headers=w.auth("reviewer"),
    )
    assert r.status_code == 409
    assert states(w) == before


def test_ticked_offers_are_exactly_what_changes(world: World) -> None:
    w = world
    a, b = w.offers("c-kexing", "drafted")[:2]
    before = states(w)
    r = w.bulk("/api/review/hold", "hold", {"offers": [a, b], "reason": "核实社保数据"})
    assert r.status_code == 200 and sorted(r.json()["offers"]) == sorted([a, b])
    assert r.json()["total"] == f"{amount(w, a) + amount(w, b):.2f}"
    after = states(w)
    assert set(before["c-kexing"]) - set(after["c-kexing"]) == {a, b}
    assert {pid: ids for pid, ids in after.items() if pid != "c-kexing"} == {
        pid: ids for pid, ids in before.items() if pid != "c-kexing"
    }


def test_confirmation_sms_goes_only_to_the_filtered_policy(world: World) -> None:
    w = world
    for pid in ("c-kexing", "c-gaoxin"):
        assert w.bulk("/api/review/release", "release", {"filter": {"policy_id": pid}}).status_code == 200
    released_gaoxin = w.offers("c-gaoxin", "released")
    r = w.bulk("/api/sms/send", "notify", {"filter": {"policy_id": "c-kexing"}})
    assert r.status_code == 200 and r.json()["sent"] > 0
    assert w.offers("c-kexing", "released") == []
    assert w.offers("c-gaoxin", "released") == released_gaoxin  # not sent: not chosen


def test_a_batch_is_assembled_only_at_the_count_and_total_its_maker_saw(world: World) -> None:
    w = world
    for link in w.notify("c-gaoxin")[:2]:
        assert confirm_offer(TestClient(w.app), link).status_code == 200
    maker = w.auth("maker")
    row = next(
        r for r in w.client.get("/api/batches/ready", headers=maker).json() if r["policy_id"] == "c-gaoxin"
    )
    assert w.client.post("/api/batches", json={"policy_id": "c-gaoxin"}, headers=maker).status_code == 422
    stale = {"policy_id": "c-gaoxin", "expected_count": row["offers"] - 1, "expected_total": row["amount"]}
    r = w.client.post("/api/batches", json=stale, headers=maker)
    assert r.status_code == 409 and "已有变化" in r.json()["detail"]
    assert w.client.get("/api/batches", headers=maker).json() == []  # nothing assembled
    assert w.make_batch("c-gaoxin").json()["line_count"] == row["offers"]
