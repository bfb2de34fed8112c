"""The review queue built for 50,000 offers: filters from lists, sort, page size, "all matching" acting on
exactly the filtered set, and the export of the filtered list for Excel."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import Any

import pytest

from tests.api.conftest import World, confirm_form, csrf_of

REVIEW = {"drafted", "held"}


def every_offer(w: World) -> list[dict[str, Any]]:
    """Every offer as the API lists it (the oracle the console's filters are checked against)."""
    out: list[dict[str, Any]] = []
    while True:
        page = w.client.get(
            "/api/offers", params={"limit": 500, "offset": len(out)}, headers=w.auth("reviewer")
        ).json()
        out += page["offers"]
        if len(out) >= page["total"]:
            return out


def listed(html: str) -> list[str]:
    """The offers (public ids) the queue page lists."""
    return re.findall(r'name="offer" value="([^"]+)"', html)


def shown_total(html: str) -> int:
    found = re.search(r"<h2>要约 ([\d,]+) 条", html)
    assert found, "no count on the queue page"
    return int(found.group(1).replace(",", ""))


def test_filters_narrow_the_queue_and_all_matching_holds_exactly_that_set(world: World) -> None:
    w = world
    offers = [o for o in every_offer(w) if o["state"] in REVIEW]
    first = offers[0]
    region = first["region_code"][:4]  # the prefecture of its region (the profile's region code)
    same_item = [
        o for o in offers if (o["policy_id"], o["item_id"]) == (first["policy_id"], first["item_id"])
    ]
    amounts = sorted(Decimal(o["amount"]) for o in same_item)
    low, high = amounts[0], amounts[-1]
    wanted = [o for o in same_item if o["region_code"][:4] == region and low <= Decimal(o["amount"]) <= high]
    assert 0 < len(wanted) < len(offers)
    params = {
        "item": f"{first['policy_id']}/{first['item_id']}",
        "region": region,
        "amount_min": str(low),
        "amount_max": str(high),
        "size": "500",
    }
    reviewer = w.browser("reviewer")
    queue = reviewer.get("/console/review", params=params)
    assert shown_total(queue.text) == len(wanted)
    assert sorted(listed(queue.text)) == sorted(o["public_id"] for o in wanted)
    assert first["policy_title"] in queue.text and first["item_title"] in queue.text

    # "All matching" acts on exactly the filtered set: the preview's count and total, then the action.
    total = sum((Decimal(o["amount"]) for o in wanted), Decimal("0"))
    asked = reviewer.post(
        "/console/review/preview",
        data={**params, "csrf": csrf_of(queue.text), "action": "hold", "scope": "matching", "reason": "核实"},
    )
    assert f"将暂缓 <strong>{len(wanted):,}</strong> 条要约" in asked.text
    assert f"{total:,.2f} 元" in asked.text
    scope = asked.text.split('id="scope-words">')[1].split("</p>")[0]
    assert f"事项：{first['item_title']}" in scope and "金额：" in scope and "地区：" in scope
    assert region not in scope  # the region's name, not its code
    url, fields = confirm_form(asked.text)
    assert fields["expected_count"] == [str(len(wanted))] and Decimal(fields["expected_total"][0]) == total
    done = reviewer.post(url, data=fields)
    assert f"已暂缓 {len(wanted):,} 条，合计 {total:,.2f} 元" in done.text
    before = {o["public_id"]: o["state"] for o in offers}
    after = {o["public_id"]: o["state"] for o in every_offer(w)}
    changed = {pid for pid, state in before.items() if after[pid] != state}
    held_now = {o["public_id"] for o in wanted if o["state"] == "drafted"}
    assert changed == held_now
    assert all(after[o["public_id"]] == "held" for o in wanted)


def test_industry_and_size_filters_narrow_the_queue_and_all_matching_acts_on_exactly_that_set(
    world: World,
) -> None:
    w = world
    offers = [o for o in every_offer(w) if o["state"] in REVIEW]
    # Carried from the run's profile (a size class is unknown where the enterprise's figures are missing).
    assert all(o["industry_section"] for o in offers)
    assert sum(o["size_class"] is not None for o in offers) > len(offers) * 0.9
    first = next(o for o in offers if o["size_class"])
    wanted = [
        o
        for o in offers
        if (o["industry_section"], o["size_class"]) == (first["industry_section"], first["size_class"])
    ]
    assert 0 < len(wanted) < len(offers)
    params = {"industry": first["industry_section"], "size_class": first["size_class"], "size": "500"}
    reviewer = w.browser("reviewer")
    queue = reviewer.get("/console/review", params=params)
    assert shown_total(queue.text) == len(wanted)
    assert sorted(listed(queue.text)) == sorted(o["public_id"] for o in wanted)
    # Chosen from lists with their Chinese names (GB/T 4754 sections, size classes in words).
    industry_select = queue.text.split('name="industry"')[1].split("</select>")[0]
    assert re.search(
        rf'<option value="{first["industry_section"]}" selected>{first["industry_section"]} \w+',
        industry_select,
    )
    assert '<option value="micro"' in queue.text and "微型企业</option>" in queue.text

    total = sum((Decimal(o["amount"]) for o in wanted), Decimal("0"))
    asked = reviewer.post(
        "/console/review/preview",
        data={
            **params,
            "csrf": csrf_of(queue.text),
            "action": "hold",
            "scope": "matching",
            "reason": "核实规模",
        },
    )
    assert f"将暂缓 <strong>{len(wanted):,}</strong> 条要约" in asked.text
    scope = asked.text.split('id="scope-words">')[1].split("</p>")[0]
    assert "行业：" in scope and "规模：" in scope and first["size_class"] not in scope
    url, fields = confirm_form(asked.text)
    assert fields["industry"] == [first["industry_section"]] and fields["size_class"] == [first["size_class"]]
    done = reviewer.post(url, data=fields)
    assert f"已暂缓 {len(wanted):,} 条，合计 {total:,.2f} 元" in done.text
    after = {o["public_id"]: o["state"] for o in every_offer(w)}
    assert {pid for pid, state in after.items() if state == "held"} >= {o["public_id"] for o in wanted}
    others = [o for o in offers if o not in wanted and o["state"] == "drafted"]
    assert all(after[o["public_id"]] == "drafted" for o in others)


def test_an_industry_or_size_not_on_the_list_is_refused_in_words(shared: World) -> None:
    reviewer = shared.browser("reviewer")
    for params in ({"industry": "1"}, {"size_class": "huge"}):
        page = reviewer.get("/console/review", params=params).text
        assert "应从列表中选择" in page and shown_total(page) == 0
    api = shared.client.post(
        "/api/review/preview",
        json={"action": "hold", "filter": {"size_class": "huge"}},
        headers=shared.auth("reviewer"),
    )
    assert api.status_code == 422


def test_the_enterprise_box_finds_by_name_or_uscc_prefix(shared: World) -> None:
    w = shared
    offers = [o for o in every_offer(w) if o["state"] in REVIEW]
    one = offers[len(offers) // 2]
    reviewer = w.browser("reviewer")
    by_code = reviewer.get("/console/review", params={"q": one["uscc"].lower(), "size": "500"})
    assert listed(by_code.text) == [o["public_id"] for o in offers if o["uscc"] == one["uscc"]]
    by_name = reviewer.get("/console/review", params={"q": one["name"], "size": "500"})
    assert one["public_id"] in listed(by_name.text)
    assert shown_total(by_name.text) == sum(one["name"] in o["name"] for o in offers)


def test_pages_of_the_chosen_size_cover_the_queue_once_in_the_chosen_order(shared: World) -> None:
    w = shared
    offers = [o for o in every_offer(w) if o["state"] in REVIEW]
    reviewer = w.browser("reviewer")
    seen: list[str] = []
    offset = 0
    while True:
        page = reviewer.get("/console/review", params={"size": "20", "sort": "amount_desc", "offset": offset})
        rows = listed(page.text)
        assert len(rows) == min(20, len(offers) - offset)
        seen += rows
        offset += 20
        if "下一页" not in page.text:
            break
    assert sorted(seen) == sorted(o["public_id"] for o in offers) and len(seen) == len(set(seen))
    amount = {o["public_id"]: Decimal(o["amount"]) for o in offers}
    assert [amount[p] for p in seen] == sorted(amount.values(), reverse=True)
    assert "第 1 / " in reviewer.get("/console/review", params={"size": "20"}).text


def test_a_malformed_amount_lists_nothing_and_acts_on_nothing(shared: World) -> None:
    reviewer = shared.browser("reviewer")
    queue = reviewer.get("/console/review", params={"amount_min": "五万"})
    assert "最低金额应为数字" in queue.text and listed(queue.text) == []
    asked = reviewer.post(
        "/console/review/preview",
        data={"csrf": csrf_of(queue.text), "action": "release", "scope": "matching", "amount_min": "五万"},
    )
    assert "最低金额应为数字" in asked.text and "confirm-action" not in asked.text


def test_the_export_is_the_filtered_list_for_chinese_excel(shared: World) -> None:
    w = shared
    offers = [o for o in every_offer(w) if o["state"] in REVIEW]
    policy = offers[0]["policy_id"]
    wanted = [o for o in offers if o["policy_id"] == policy]
    r = w.browser("reviewer").get("/console/review/export.csv", params={"policy_id": policy})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads UTF-8, not GBK
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:2] == ["统一社会信用代码", "企业名称"]
    body = rows[1:]
    assert len(body) == len(wanted)
    by_id = {o["public_id"]: o for o in wanted}
    for row in body:
        o = by_id[row[-1]]
        assert row[0] == f'="{o["uscc"]}"'  # text in Excel: no 9.1E+17, no lost zeros
        assert row[12] == f'="{o["account_masked"]}"' and "****" in row[12]  # masked, as text
        assert row[5] == o["policy_title"] and Decimal(row[8]) == Decimal(o["amount"])
        sizes = {"large": "大型", "medium": "中型", "small": "小型", "micro": "微型", None: ""}
        assert row[4] == sizes[o["size_class"]]  # the size class in words, not large/micro
    assert not any("****" not in row[12] and row[12] for row in body)


def test_an_offers_trail_reads_in_chinese_with_titles_and_region(world: World) -> None:
    w = world
    offer = next(o for o in every_offer(w) if o["state"] == "drafted")
    assert (
        w.bulk("/api/review/hold", "hold", {"offers": [offer["public_id"]], "reason": "核实"}).status_code
        == 200
    )
    page = w.browser("reviewer").get(f"/console/offers/{offer['public_id']}").text
    trail = page.split('id="trail"')[1].split("</table>")[0]
    assert "<td>导入比对结果</td>" in trail and "<td>暂缓</td>" in trail
    assert ">hold<" not in trail and ">import<" not in trail
    assert offer["item_title"] in page and f"· {offer['item_id']} ·" not in page


def test_a_list_longer_than_the_count_cap_says_more_and_still_pages_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `COUNT_CAP` offers a list says "N 条以上" (it does not count a million offers for every page),
    keeps its next-page link, and a bulk action on all matching still shows the exact count first."""
    from api.routes import offers as offer_routes

    w = world
    waiting = [o for o in every_offer(w) if o["state"] in REVIEW]
    assert len(waiting) > 4
    monkeypatch.setattr(offer_routes, "COUNT_CAP", 3)
    reviewer = w.browser("reviewer")
    queue = reviewer.get("/console/review", params={"size": "20"})
    assert "要约 3 条以上" in queue.text and "全部符合筛选条件的 3 条以上要约" in queue.text
    assert len(listed(queue.text)) == min(20, len(waiting))
    page = w.client.get("/api/offers", params={"limit": 2}, headers=w.auth("reviewer")).json()
    assert (page["total"], page["more"], len(page["offers"])) == (3, True, 2)
    second = w.client.get("/api/offers", params={"limit": 2, "offset": 2}, headers=w.auth("reviewer")).json()
    assert not {o["public_id"] for o in second["offers"]} & {o["public_id"] for o in page["offers"]}
    asked = reviewer.post(
        "/console/review/preview",
        data={"csrf": csrf_of(queue.text), "action": "hold", "scope": "matching", "reason": "核实"},
    )
    drafted = [o for o in waiting if o["state"] == "drafted"]  # what a hold acts on
    assert f"将暂缓 <strong>{len(drafted):,}</strong> 条要约" in asked.text


def test_offers_imported_before_the_industry_and_size_columns_are_filled_from_their_runs_snapshot(
    world: World,
) -> None:
    from sqlalchemy import select, update

    from payouts import imports
    from payouts.db import transaction
    from payouts.models import MatchRun, Offer

    engine = world.app.state.engine
    with transaction(engine) as s:
        before = dict(
            s.execute(select(Offer.public_id, Offer.industry_section + ":" + Offer.size_class)).all()
        )
        s.execute(update(Offer).values(industry_section=None, size_class=None))  # as imported before 0012
    with transaction(engine) as s:
        (run,) = s.scalars(select(MatchRun)).all()
        filled = imports.backfill_profile_keys(s, run)
    with transaction(engine) as s:
        after = dict(
            s.execute(select(Offer.public_id, Offer.industry_section + ":" + Offer.size_class)).all()
        )
    assert after == before and filled == len(before)
