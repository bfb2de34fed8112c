"""The public notice (/gongshi) of a large batch: one page of lines at a time, a search by name or line
number, and an objection whose line is picked from the search, not from a list of every line."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.api.conftest import World


def notice_of_wenbao(w: World) -> tuple[str, list[dict]]:
    """A notice over a batch of every c-wenbao offer (released straight to confirmed); its id and lines."""
    assert w.bulk("/api/review/release", "release", {"filter": {"policy_id": "c-wenbao"}}).status_code == 200
    made = w.make_batch("c-wenbao")
    assert made.status_code == 201, made.text
    r = w.client.post(
        "/api/notices", json={"batch": made.json()["reference"], "days": 3}, headers=w.auth("maker")
    )
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["lines"]


def rows(html: str) -> list[int]:
    table = html.split('id="notice-lines"')[1].split("</table>")[0]
    return [int(n) for n in re.findall(r"<tr><td>(\d+)</td>", table)]


def test_the_public_list_comes_in_pages_and_finds_by_name_or_number(world: World) -> None:
    nid, lines = notice_of_wenbao(world)
    assert len(lines) > 50
    public = TestClient(world.app)
    first = public.get(f"/gongshi/{nid}").text
    assert rows(first) == [x["line_no"] for x in lines[:50]]
    assert "下一页" in first and f"共 {len(lines):,} 家企业" in first
    second = public.get(f"/gongshi/{nid}", params={"offset": 50}).text
    assert rows(second) == [x["line_no"] for x in lines[50:100]]
    assert 'name="line_no"' not in first  # no list of every line to pick from
    one = lines[len(lines) // 2]
    found = public.get(f"/gongshi/{nid}", params={"q": one["name"]}).text
    assert one["line_no"] in rows(found)
    assert rows(found) == [x["line_no"] for x in lines if one["name"] in x["name"]]
    by_number = public.get(f"/gongshi/{nid}", params={"q": str(one["line_no"])}).text
    assert one["line_no"] in rows(by_number)


def test_an_objection_is_filed_against_the_line_picked_from_the_search(world: World) -> None:
    nid, lines = notice_of_wenbao(world)
    one = lines[-1]
    public = TestClient(world.app)
    found = public.get(f"/gongshi/{nid}", params={"q": one["name"]}).text
    link = re.search(rf'href="\?([^"]*line={one["line_no"]})#objection"', found)
    assert link, "no objection link on the found line"
    form = public.get(f"/gongshi/{nid}?{link.group(1).replace('&amp;', '&')}").text
    assert f'<input type="hidden" name="line_no" value="{one["line_no"]}">' in form
    assert one["name"] in form.split('id="objection-line"')[1].split("</p>")[0]
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    r = public.post(
        f"/gongshi/{nid}/objection",
        data={
            "line_no": one["line_no"],
            "name": "张三",
            "contact": "13900001111",
            "text": "该企业已停止经营",
            "csrf": csrf.group(1),
        },
    )
    assert r.status_code == 200 and "异议已收到" in r.text
    objections = world.client.get(f"/api/notices/{nid}", headers=world.auth("maker")).json()["objections"]
    assert [o["line_no"] for o in objections] == [one["line_no"]]
