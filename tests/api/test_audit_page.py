"""The audit page: events searched by actor, action, enterprise, offer and date range, page by page, in
Chinese, and exported as a CSV that opens in Chinese Excel."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

from sqlalchemy import select

from payouts.db import transaction
from payouts.models import Offer
from rules import formats
from tests.api.conftest import World


def event_rows(html: str) -> list[str]:
    body = html.split('id="events"')[1].split("</table>")[0]
    return re.findall(r"<tr><td class=\"n\">\d+</td>.*?</tr>", body, flags=re.S)


def held_one(w: World) -> tuple[str, str]:
    """Hold one offer of c-wenbao by the reviewer: its public id and enterprise's USCC."""
    public_id = w.offers("c-wenbao", "drafted")[0]
    r = w.bulk("/api/review/hold", "hold", {"offers": [public_id], "reason": "核实经营地址"})
    assert r.status_code == 200, r.text
    with transaction(w.app.state.engine) as s:
        uscc = s.scalar(select(Offer.uscc).where(Offer.public_id == public_id))
    return public_id, uscc


def test_the_audit_page_finds_an_offers_events_in_chinese_never_the_logs_english_words(world: World) -> None:
    public_id, _ = held_one(world)
    auditor = world.browser("auditor")
    page = auditor.get("/console/audit", params={"offer": public_id}).text
    rows = event_rows(page)
    assert len(rows) == 2  # imported with its run, then held
    assert "导入比对结果" in rows[1] and "暂缓" in rows[0] and "待初核" in rows[0]
    for english in (">import<", ">hold<", ">drafted<", ">held<", ">system<"):
        assert english not in page
    assert "enterprise:" not in page


def test_search_by_actor_and_action_lists_only_their_events(world: World) -> None:
    held_one(world)
    auditor = world.browser("auditor")
    everything = auditor.get("/console/audit").text
    assert "哈希链完整" in everything
    hold = auditor.get("/console/audit", params={"action": "hold"}).text
    assert event_rows(hold) and all("暂缓" in r for r in event_rows(hold))
    by_maker = auditor.get("/console/audit", params={"actor": "maker", "action": "hold"}).text
    assert event_rows(by_maker) == [] and "没有符合条件的事件" in by_maker
    reviewer_name = auditor.get("/console/audit", params={"actor": "reviewer", "action": "hold"}).text
    assert len(event_rows(reviewer_name)) == len(event_rows(hold))


def test_search_by_enterprise_finds_its_offers_events_and_not_others(world: World) -> None:
    _, uscc = held_one(world)
    auditor = world.browser("auditor")
    page = auditor.get("/console/audit", params={"enterprise": uscc, "action": "hold"}).text
    rows = event_rows(page)
    assert len(rows) == 1 and "暂缓" in rows[0]
    other = world.offers("c-wenbao", "drafted")[0]
    with transaction(world.app.state.engine) as s:
        other_uscc = s.scalar(select(Offer.uscc).where(Offer.public_id == other))
    assert other_uscc != uscc
    assert (
        event_rows(auditor.get("/console/audit", params={"enterprise": other_uscc, "action": "hold"}).text)
        == []
    )


def test_a_date_range_in_china_time_bounds_the_events_and_a_reversed_one_is_refused(world: World) -> None:
    held_one(world)
    auditor = world.browser("auditor")
    today = dt.datetime.now(formats.CHINA).date()
    todays = auditor.get(
        "/console/audit", params={"date_from": today.isoformat(), "date_to": today.isoformat()}
    )
    assert event_rows(todays.text)
    before = (today - dt.timedelta(days=400)).isoformat()
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    assert (
        event_rows(auditor.get("/console/audit", params={"date_from": before, "date_to": yesterday}).text)
        == []
    )
    reversed_ = auditor.get(
        "/console/audit", params={"date_from": today.isoformat(), "date_to": yesterday}
    ).text
    assert "起始日期" in reversed_ and "晚于截止日期" in reversed_ and 'role="alert"' in reversed_
    bad = auditor.get("/console/audit", params={"date_from": "30/9/2025"}).text
    assert "起始日期应为日期，例如 2025-09-30" in bad


def test_the_events_are_paginated_newest_first(world: World) -> None:
    for public_id in world.offers("c-wenbao", "drafted")[:3]:
        assert (
            world.bulk(
                "/api/review/hold", "hold", {"offers": [public_id], "reason": "核实经营地址"}
            ).status_code
            == 200
        )
    auditor = world.browser("auditor")
    first = auditor.get("/console/audit", params={"action": "hold", "size": 50}).text
    seqs = [int(re.search(r'<td class="n">(\d+)</td>', r).group(1)) for r in event_rows(first)]
    assert len(seqs) == 3 and seqs == sorted(seqs, reverse=True)
    assert "事件 3 条" in first


def test_the_export_opens_in_chinese_excel_with_the_same_events_in_chinese(world: World) -> None:
    public_id, uscc = held_one(world)
    auditor = world.browser("auditor")
    got = auditor.get("/console/audit/export.csv", params={"enterprise": uscc})
    assert got.status_code == 200 and got.content.startswith(b"\xef\xbb\xbf")
    assert "attachment" in got.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"), newline="")))
    assert rows[0][:6] == ["序号", "时间", "操作人", "操作", "对象", "对象编号"]
    actions = [r[3] for r in rows[1:]]
    assert "暂缓" in actions and "导入比对结果" in actions
    held = next(r for r in rows[1:] if r[3] == "暂缓")
    assert held[4] == "要约" and held[5] == f'="{public_id}"' and held[6:8] == ["待初核", "暂缓"]
    assert re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}", held[1])
    assert all(r[2] not in ("system",) and not r[2].startswith("enterprise:") for r in rows[1:])


def test_the_export_reads_page_by_page_and_keeps_every_event_once(world: World, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from api.routes import audit as audit_route

    monkeypatch.setattr(audit_route, "EXPORT_PAGE", 2)  # five holds read two at a time
    for public_id in world.offers("c-wenbao", "drafted")[:5]:
        world.bulk("/api/review/hold", "hold", {"offers": [public_id], "reason": "核实经营地址"})
    got = world.browser("auditor").get("/console/audit/export.csv", params={"action": "hold"})
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"), newline="")))[1:]
    seqs = [int(r[0]) for r in rows]
    assert len(seqs) == 5 and seqs == sorted(set(seqs), reverse=True)


def test_only_auditors_see_the_audit_page_and_its_export(world: World) -> None:
    reviewer = world.browser("reviewer")
    assert reviewer.get("/console/audit").status_code == 403
    assert reviewer.get("/console/audit/export.csv").status_code == 403


def test_an_enterprises_own_answer_is_shown_under_its_name(world: World) -> None:
    from fastapi.testclient import TestClient

    from payouts.models import Payee
    from tests.api.conftest import confirm_offer

    links = world.notify("c-gaoxin")
    phone = TestClient(world.app)
    assert confirm_offer(phone, links[0]).status_code in (200, 303)
    auditor = world.browser("auditor")
    page = auditor.get("/console/audit", params={"action": "confirm"}).text
    rows = event_rows(page)
    assert len(rows) == 1 and "企业确认领取" in rows[0]
    with transaction(world.app.state.engine) as s:
        names = set(s.scalars(select(Payee.name)).all())
    assert any(f"{name}（企业）" in rows[0] for name in names)
    assert "enterprise:" not in page
