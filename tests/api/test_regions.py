"""Region-scoped staff on the web: a county 人社局 reviewer of the city bureau's policies sees, counts,
exports and acts on its own county's enterprises only, through the API and the console; another county's
offer answers 404, exactly as one that does not exist."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from api import runlists
from api.auth import set_password
from api.runlists import Filters
from payouts import departments, signin, users
from payouts.db import transaction
from payouts.models import Offer, PolicyVersion, StaffUser
from tests.api.conftest import HR, PASSWORD, World, csrf_of

NOW = dt.datetime(2025, 9, 29, 2, 0, tzinfo=dt.UTC)
HUAIYIN = "淮安市淮阴区人力资源和社会保障局"  # 320804
QINGJIANGPU = "淮安市清江浦区人力资源和社会保障局"  # 320812
POLICY = "c-wenbao"  # a policy of the city's 人社局 (HR)


@pytest.fixture
def regional(world: World) -> World:
    return regionalise(world)


def regionalise(world: World) -> World:
    """The city bureau placed under the province's 厅, two county bureaus under it, a reviewer of each
    county and a maker of one (with API sessions)."""
    with transaction(world.app.state.engine) as s:
        add = {"by": "sysadmin", "now": NOW}
        departments.add(
            s, "江苏省人力资源和社会保障厅", level="province", region_code="320000", parent=None, **add
        )
        departments.place(
            s, HR, level="city", region_code="320800", parent="江苏省人力资源和社会保障厅", **add
        )
        departments.add(s, HUAIYIN, level="county", region_code="320804", parent=HR, **add)
        departments.add(s, QINGJIANGPU, level="county", region_code="320812", parent=HR, **add)
        for name, role, dept in (
            ("rev_huaiyin", "reviewer", HUAIYIN),
            ("rev_qjp", "reviewer", QINGJIANGPU),
            ("maker_huaiyin", "finance_maker", HUAIYIN),
        ):
            users.create_user(s, name, role, department=dept, now=NOW)
            set_password(s, name, PASSWORD, "system", NOW)
    with transaction(world.app.state.engine) as s:
        started = dt.datetime.now(dt.UTC)
        for u in s.scalars(
            select(StaffUser).where(StaffUser.username.in_(["rev_huaiyin", "rev_qjp", "maker_huaiyin"]))
        ):
            world.tokens[u.username] = signin.start_session(s, u, started)
    return world


def _ids(w: World, region: str, state: str | None = None) -> set[str]:
    with transaction(w.app.state.engine) as s:
        query = select(Offer.public_id).where(Offer.policy_id == POLICY, Offer.region_code.startswith(region))
        if state:
            query = query.where(Offer.state == state)
        return set(s.scalars(query))


def test_the_api_lists_and_counts_only_the_countys_enterprises(regional: World) -> None:
    mine, other = _ids(regional, "320804"), _ids(regional, "320812")
    assert mine and other
    r = regional.client.get(
        "/api/offers", params={"policy_id": POLICY, "limit": 500}, headers=regional.auth("rev_huaiyin")
    )
    assert r.status_code == 200, r.text
    assert r.json()["total"] == len(mine)
    assert {o["public_id"] for o in r.json()["offers"]} == mine


def test_another_countys_offer_does_not_exist_for_a_county_reviewer(regional: World) -> None:
    other = sorted(_ids(regional, "320812"))[0]
    headers = regional.auth("rev_huaiyin")
    assert regional.client.get(f"/api/offers/{other}", headers=headers).status_code == 404
    assert regional.client.get(f"/api/offers/{other}/audit", headers=headers).status_code == 404
    assert regional.client.get(f"/api/offers/{other}", headers=regional.auth("rev_qjp")).status_code == 200
    held = regional.client.post(
        "/api/review/hold",
        json={"offers": [other], "reason": "核实", "expected_count": 1, "expected_total": "0"},
        headers=headers,
    )
    assert held.status_code == 404
    assert other in _ids(regional, "320812", "drafted")


def _states(w: World, region: str) -> dict[str, str]:
    with transaction(w.app.state.engine) as s:
        query = select(Offer.public_id, Offer.state).where(Offer.region_code.startswith(region))
        return dict(s.execute(query).all())


def test_a_bulk_release_of_all_matching_counts_and_changes_only_the_countys_offers(regional: World) -> None:
    mine, before = _ids(regional, "320804", "drafted"), _states(regional, "320812")
    r = regional.bulk("/api/review/release", "release", {"filter": {"policy_id": POLICY}}, user="rev_huaiyin")
    assert r.status_code == 200, r.text
    assert _ids(regional, "320804", "drafted") == set()
    assert r.json()["released"] + r.json()["confirmed"] + r.json()["held_no_phone"] == len(mine)
    assert _states(regional, "320812") == before  # the other county untouched


def test_the_console_export_holds_only_the_countys_enterprises(regional: World) -> None:
    browser = regional.browser("rev_huaiyin")
    r = browser.get("/console/review/export.csv", params={"policy_id": POLICY})
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    queue = {o for o, st in _states(regional, "320804").items() if st in ("drafted", "held")}
    assert {row[-1] for row in rows[1:]} == queue & _ids(regional, "320804")
    page = browser.get("/console/review", params={"policy_id": POLICY})
    assert all(f"/console/offers/{o}" not in page.text for o in _ids(regional, "320812"))
    other = sorted(_ids(regional, "320812"))[0]
    assert browser.get(f"/console/offers/{other}").status_code == 404


def test_a_county_maker_sees_and_batches_only_its_countys_confirmed_offers(regional: World) -> None:
    regional.bulk("/api/review/release", "release", {"filter": {"policy_id": POLICY}}, user="reviewer")
    mine, other = _ids(regional, "320804", "confirmed"), _ids(regional, "320812", "confirmed")
    assert mine and other  # c-wenbao needs no confirmation: released offers are confirmed
    ready = regional.client.get("/api/batches/ready", headers=regional.auth("maker_huaiyin")).json()
    assert {r["policy_id"]: r["offers"] for r in ready} == {POLICY: len(mine)}
    r = regional.make_batch(POLICY, "maker_huaiyin")
    assert r.status_code == 201, r.text
    assert r.json()["line_count"] == len(mine)
    assert _ids(regional, "320812", "confirmed") == other
    reference = r.json()["reference"]
    assert regional.client.get(f"/api/batches/{reference}", headers=regional.auth("maker")).status_code == 200
    listed = regional.client.get("/api/batches", headers=regional.auth("maker_huaiyin")).json()
    assert [b["reference"] for b in listed] == [reference]


def test_the_funnel_and_lights_count_only_the_countys_enterprises(regional: World) -> None:
    mine = _ids(regional, "320804")
    funnel = regional.client.get(
        "/api/reports/funnel", params={"policy_id": POLICY}, headers=regional.auth("rev_huaiyin")
    ).json()
    assert next(s for s in funnel["stages"] if s["stage"] == "matched")["count"] == len(mine)
    lights = regional.client.get("/api/reports/sla", headers=regional.auth("rev_huaiyin")).json()
    waiting = sum(r["green"] + r["yellow"] + r["red"] for r in lights if r["policy_id"] == POLICY)
    assert waiting == len(_ids(regional, "320804", "drafted") | _ids(regional, "320804", "held"))


def test_the_supervision_list_counts_only_the_countys_overdue_offers(regional: World) -> None:
    from reports import supervision

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)  # every waiting offer long overdue
    with transaction(regional.app.state.engine) as s:
        sla = regional.app.state.settings.sla()
        whole = supervision.supervision_list(s, sla, later)
        county = supervision.supervision_list(s, sla, later, region="320804")
    review = [r for r in county if r.policy_id == POLICY and r.step == "初核发布"]
    waiting = _ids(regional, "320804", "drafted") | _ids(regional, "320804", "held")
    assert review and sum(r.offers for r in review) == len(waiting)
    assert sum(r.offers for r in whole if r.policy_id == POLICY and r.step == "初核发布") > len(waiting)
    money = regional.client.get("/api/reports/money", headers=regional.auth("rev_huaiyin")).json()
    assert next(r for r in money if r["policy_id"] == POLICY)["offers"] == len(_ids(regional, "320804"))
    listed = regional.client.get("/api/reports/supervision", headers=regional.auth("rev_huaiyin")).json()
    assert sum(r["offers"] for r in listed if r["policy_id"] == POLICY) <= len(waiting)


def test_joint_review_on_the_web_the_co_reviewer_gives_its_opinion_and_the_lead_then_releases(
    regional: World,
) -> None:
    with transaction(regional.app.state.engine) as s:  # as the import records a policy naming reviewers
        s.execute(
            update(PolicyVersion)
            .where(PolicyVersion.policy_id == POLICY)
            .values(reviewers=json.dumps([HR, "淮安市财政局"], ensure_ascii=False))
        )
        departments.add(
            s, "淮安市财政局", level="city", region_code="320800", parent=None, by="sysadmin", now=NOW
        )
        departments.add(
            s,
            "淮阴区财政局",
            level="county",
            region_code="320804",
            parent="淮安市财政局",
            by="sysadmin",
            now=NOW,
        )
        users.create_user(s, "fin_huaiyin", "reviewer", department="淮阴区财政局", now=NOW)
        set_password(s, "fin_huaiyin", PASSWORD, "system", NOW)
    one = sorted(_ids(regional, "320804", "drafted"))[0]
    lead = regional.browser("rev_huaiyin")
    page = lead.get(f"/console/offers/{one}")
    assert "会签" in page.text and "尚无会签意见" in page.text and "同意</button>" not in page.text
    refused = regional.client.post(
        "/api/review/release",
        json={"offers": [one], "expected_count": 1, "expected_total": "0"},
        headers={"Authorization": f"Bearer {regional.tokens['rev_huaiyin']}"},
    )
    assert refused.status_code == 409 and "会签" in refused.text
    co = regional.browser("fin_huaiyin")
    page = co.get(f"/console/offers/{one}")
    assert "同意</button>" in page.text and 'value="release"' not in page.text
    r = co.post(
        f"/console/offers/{one}/opinion",
        data={"agree": "no", "note": "资金来源待落实", "csrf": csrf_of(page.text)},
    )
    assert r.status_code in (200, 303)
    page = lead.get(f"/console/offers/{one}")
    assert "不同意" in page.text and "资金来源待落实" in page.text and "会签意见" in page.text
    chosen = {"offers": [one]}
    done = regional.bulk("/api/review/release", "release", chosen, user="rev_huaiyin")
    assert done.status_code == 200, done.text


def _summary(w: World, user: str) -> dict[tuple[str, str], dict[str, object]]:
    r = w.client.get(f"/api/runs/{w.job_id}", headers=w.auth(user))
    assert r.status_code == 200, r.text
    return {(i["policy_id"], i["item_id"]): i for i in r.json()["items"] if i["policy_id"] == POLICY}


def _list_rows(w: World, user: str, name: str) -> list[list[str]]:
    r = w.client.get(f"/api/runs/{w.job_id}/lists/{name}", params={"policy_id": POLICY}, headers=w.auth(user))
    assert r.status_code == 200, r.text
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))[1:]


def test_the_run_summary_counts_only_the_countys_enterprises_and_the_city_its_own(
    regional: World,
) -> None:
    whole, city = _summary(regional, "reviewer"), _summary(regional, "reviewer_hr")
    county, other = _summary(regional, "rev_huaiyin"), _summary(regional, "rev_qjp")
    assert whole and set(county) == set(city) == set(whole)
    for key, row in county.items():
        for n in ("eligible", "near_misses", "missing_data", "candidates"):
            assert row[n] + other[key][n] <= city[key][n] <= whole[key][n]  # type: ignore[operator]
    # Counted again over every region, the run's own summary.
    jobs = regional.app.state.jobs
    job = jobs.get(regional.job_id)
    manifest = jobs.manifest(job)
    assert runlists.summary(jobs.run_dir(job), manifest.items, Filters(None)) == list(manifest.items)
    assert sum(r["candidates"] for r in whole.values()) > sum(r["candidates"] for r in county.values())  # type: ignore[misc]
    for name in ("candidates", "near_misses", "missing_data"):  # the rows the county's lists hold
        rows = _list_rows(regional, "rev_huaiyin", name)
        assert sum(r[name] for r in county.values()) == len(rows)  # type: ignore[misc]
        assert len(rows) < len(_list_rows(regional, "reviewer", name))
    money = sum(Decimal(str(r["amount"])) for r in county.values())
    assert money == sum(Decimal(r[5]) for r in _list_rows(regional, "rev_huaiyin", "candidates"))


def test_the_run_pages_imported_offers_are_the_countys_own(regional: World) -> None:
    with transaction(regional.app.state.engine) as s:  # the county's offers of the city bureau's policies
        hr = select(PolicyVersion.policy_id).where(PolicyVersion.department == HR)
        mine = set(
            s.scalars(
                select(Offer.public_id).where(Offer.policy_id.in_(hr), Offer.region_code.startswith("320804"))
            )
        )
    runs = regional.client.get("/api/runs", headers=regional.auth("rev_huaiyin")).json()
    imported = next(r for r in runs if r["id"] == regional.job_id)["imported"]
    assert imported["offers"] == len(mine) and imported["scoped"]
    whole = next(
        r
        for r in regional.client.get("/api/runs", headers=regional.auth("reviewer")).json()
        if r["id"] == regional.job_id
    )["imported"]
    assert whole["offers"] > len(mine) and "held" in whole
    page = regional.browser("rev_huaiyin").get(f"/console/runs/{regional.job_id}")
    assert f"的 {len(mine):,} 条" in page.text and "本辖区" in page.text
    assert f"{whole['offers']:,} 条" not in page.text
    queue = regional.browser("rev_huaiyin").get("/console/review").text
    runs = queue.split('<select name="run_id">')[1].split("</select>")[0]
    assert f"· {len(mine):,} 条" in runs and f"· {whole['offers']:,} 条" not in runs
    jobs = regional.browser("rev_huaiyin").get("/console/jobs")
    assert f"生成要约 {whole['offers']:,} 条" not in jobs.text


def _region_options(html: str) -> list[tuple[str, str]]:
    chosen = html.split('<select name="region">')[1].split("</select>")[0]
    return [
        (v, t.strip("　")) for v, t in re.findall(r'<option value="(\d*)"[^>]*>([^<]*)</option>', chosen) if v
    ]


def test_the_queues_regions_are_the_enterprises_regions_within_the_users_own(regional: World) -> None:
    county = _region_options(regional.browser("rev_huaiyin").get("/console/review").text)
    assert county == [("320804", "江苏省淮安市淮阴区")]  # never the city, the province or another county
    city = dict(_region_options(regional.browser("reviewer_hr").get("/console/review").text))
    assert {"3208", "320804", "320812"} <= set(city) and not any(len(v) == 2 for v in city)
    assert all(v.startswith("3208") for v in city)
    everyone = dict(_region_options(regional.browser("reviewer").get("/console/review").text))
    assert "32" in everyone and everyone["32"] == "江苏省"
    # Chosen, the region narrows the queue to the enterprises registered there (offer.region_code).
    page = regional.browser("reviewer").get(
        "/console/review", params={"policy_id": POLICY, "region": "320812", "size": "500"}
    )
    drafted = _ids(regional, "320812", "drafted") | _ids(regional, "320812", "held")
    assert set(re.findall(r'name="offer" value="([^"]+)"', page.text)) == drafted
    table = page.text.split('id="queue"')[1].split("</table>")[0]
    assert "清江浦区" in table and "淮阴区" not in table  # each row's region, from its region code
