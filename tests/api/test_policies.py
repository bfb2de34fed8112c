"""Policies through the API and the console: the CLI's validation errors with their lines, versions,
impact simulation, publishing, and immutability of published versions.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from matcher.duckdb_engine import connect
from matcher.simulate import simulate
from matcher.snapshot import load_snapshot
from rules.errors import PolicyError
from rules.validate import load_policy, parse_policy_text
from tests.api.conftest import AS_OF, POLICIES, SNAPSHOT, World, csrf_of

BROKEN = sorted((Path(__file__).parents[1] / "rules" / "broken").glob("*.yaml"))
GAOXIN = (POLICIES / "c-gaoxin.yaml").read_bytes()
# Version 2 also pays young high-tech firms of two years and more: more enterprises, more money.
GAOXIN_V2 = GAOXIN.replace(b"version: 1", b"version: 2").replace(b"amount: 30000", b"amount: 50000")


def upload(w: World, data: bytes, user: str = "policy_sci", name: str = "c-gaoxin.yaml"):  # type: ignore[no-untyped-def]
    return w.client.post("/api/policies", files={"file": (name, data)}, headers=w.auth(user))


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_upload_refuses_a_broken_file_with_the_same_problems_as_the_cli(shared: World, path: Path) -> None:
    with pytest.raises(PolicyError) as cli:
        load_policy(path)
    r = upload(shared, path.read_bytes(), name=path.name)
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["title"] == "政策文件有误"
    got = [(p["line"], p["where"], p["message"], p.get("hint")) for p in body["problems"]]
    assert got == [(p.line, p.where, p.message, p.hint) for p in cli.value.problems]
    assert all(p["file"] == path.name for p in body["problems"])


def test_an_unknown_field_is_reported_at_its_line_with_the_closest_names(shared: World) -> None:
    bad = GAOXIN.replace(b"rule: is_high_tech", b"rule: is_hightech")
    problems = upload(shared, bad).json()["problems"]
    assert [p["line"] for p in problems] == [16]
    assert "is_high_tech" in (problems[0]["hint"] or problems[0]["message"])


def test_a_file_that_is_not_utf8_is_refused_like_the_cli_does(shared: World) -> None:
    r = upload(shared, GAOXIN.replace("高新技术企业奖励".encode(), "高新技术企业奖励".encode("gbk")))
    assert r.status_code == 422
    assert r.json()["problems"][0]["line"] == 3
    assert "UTF-8" in r.json()["problems"][0]["message"]


def test_upload_simulate_publish_and_versions(world: World) -> None:
    r = upload(world, GAOXIN_V2)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "draft" and r.json()["version"] == 2

    impact = world.client.get(
        "/api/policies/c-gaoxin/drafts/2/impact?snapshot=conformance&as_of=2025-09-30",
        headers=world.auth("policy_sci"),
    )
    assert impact.status_code == 200, impact.text
    got = impact.json()
    con = connect()
    load_snapshot(SNAPSHOT, con)
    expected = simulate(
        con, parse_policy_text(GAOXIN_V2.decode(), "x.yaml"), load_policy(POLICIES / "c-gaoxin.yaml"), AS_OF
    )
    assert got["against_version"] == 1
    assert (got["old_enterprises"], got["new_enterprises"], got["gained"], got["lost"]) == (
        expected.old_enterprises,
        expected.new_enterprises,
        expected.gained,
        expected.lost,
    )
    assert got["new_amount"] == format(expected.new_amount, "f")
    assert float(got["delta_amount"]) > 0  # young firms now get 50,000 instead of 30,000

    published = world.client.post("/api/policies/c-gaoxin/drafts/2/publish", headers=world.auth("policy_sci"))
    assert published.status_code == 200 and published.json()["status"] == "published"
    assert published.json()["published_by"] == "policy_sci"
    versions = world.client.get("/api/policies/c-gaoxin/versions", headers=world.auth("auditor")).json()
    assert [(v["version"], v["status"]) for v in versions] == [(2, "published"), (1, "published")]
    # Published versions are immutable: the same version cannot come back, nor an older one.
    again = upload(world, GAOXIN_V2)
    assert again.status_code == 422
    assert again.json()["problems"][0]["line"] == 2
    assert "请把 version 改为 3" in again.json()["problems"][0]["hint"]
    assert (
        world.client.post(
            "/api/policies/c-gaoxin/drafts/2/publish", headers=world.auth("policy_sci")
        ).status_code
        == 404
    )
    events = world.client.get("/api/audit/verify", headers=world.auth("auditor")).json()
    assert events["ok"]


def test_the_next_match_run_uses_the_newly_published_version(world: World) -> None:
    assert upload(world, GAOXIN_V2).status_code == 201
    assert (
        world.client.post(
            "/api/policies/c-gaoxin/drafts/2/publish", headers=world.auth("policy_sci")
        ).status_code
        == 200
    )
    r = world.client.post(
        "/api/runs", json={"snapshot": "conformance", "as_of": "2025-09-30"}, headers=world.auth("reviewer")
    )
    assert "c-gaoxin@2" in r.json()["policies"] and "c-gaoxin@1" not in r.json()["policies"]
    assert world.run_jobs() == 1
    run = world.client.get(f"/api/runs/{r.json()['id']}", headers=world.auth("reviewer")).json()
    assert run["state"] == "done", run
    young = [i for i in run["items"] if (i["policy_id"], i["item_id"]) == ("c-gaoxin", "young")]
    assert young and float(young[0]["amount"]) == 50000 * young[0]["candidates"]


def test_the_console_shows_each_error_at_its_line_then_publishes_a_good_file(world: World) -> None:
    browser = world.browser("policy_sci")
    csrf = csrf_of(browser.get("/console/policies").text)
    bad = GAOXIN_V2.replace(b"rule: age_years >= 3", b"rule: age_yaers >= 3")
    refused = browser.post(
        "/console/policies/upload", data={"csrf": csrf}, files={"file": ("c-gaoxin.yaml", bad)}
    )
    assert refused.status_code == 422
    assert 'class="line bad" id="L23"' in refused.text
    assert 'data-line="23"' in refused.text and "age_yaers" in refused.text
    # Staff read it in words: names in Chinese quotation marks, no command lines, no backticks.
    assert "“age_years”" in refused.text and "`" not in refused.text.split('id="problems"')[1]
    assert "zhida rules" not in refused.text
    good = browser.post(
        "/console/policies/upload", data={"csrf": csrf}, files={"file": ("c-gaoxin.yaml", GAOXIN_V2)}
    )
    assert good.url.path == "/console/policies/c-gaoxin/drafts/2"
    impact = browser.get("/console/policies/c-gaoxin/drafts/2?snapshot=conformance&as_of=2025-09-30")
    assert 'id="impact"' in impact.text and "新增" in impact.text
    done = browser.post("/console/policies/c-gaoxin/drafts/2/publish", data={"csrf": csrf})
    assert "已发布 高新技术企业奖励（示例） 第 2 版" in done.text


def test_a_run_with_no_policy_in_force_is_refused(shared: World) -> None:
    r = shared.client.post(
        "/api/runs", json={"snapshot": "conformance", "as_of": "2019-01-01"}, headers=shared.auth("reviewer")
    )
    assert r.status_code == 422
    assert "没有处于有效期内的已发布政策" in r.json()["detail"]
    assert dt.date(2019, 1, 1).isoformat() in r.json()["detail"]


def test_a_policy_store_kept_as_files_by_an_earlier_release_is_taken_over_at_start(tmp_path: Path) -> None:
    # What an earlier release kept under <data dir>/policies: the published version 1 and a draft of 2.
    from api.app import create_app
    from tests.api.conftest import settings_for

    folder = tmp_path / "web" / "policies"
    for sub, data, status in (("published", GAOXIN, "published"), ("drafts", GAOXIN_V2, "draft")):
        policy = parse_policy_text(data.decode(), "c-gaoxin.yaml")
        (folder / sub).mkdir(parents=True)
        key = f"{policy.id}@{policy.version}"
        (folder / sub / f"{key}.yaml").write_bytes(data)
        record = {
            "id": policy.id,
            "version": policy.version,
            "status": status,
            "title": policy.title,
            "department": policy.department,
            "valid_from": policy.valid_from.isoformat(),
            "valid_to": policy.valid_to.isoformat(),
            "file_name": "c-gaoxin.yaml",
            "sha256": "b" * 64,
            "uploaded_by": "policy_sci",
            "uploaded_at": "2025-09-01T08:00:00+00:00",
            "published_by": "policy_sci" if status == "published" else None,
            "published_at": "2025-09-02T08:00:00+00:00" if status == "published" else None,
        }
        (folder / sub / f"{key}.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
    app = create_app(settings_for(tmp_path))
    try:
        store = app.state.store
        latest = store.latest_published("c-gaoxin")
        assert latest is not None and latest.version == 1 and latest.published_by == "policy_sci"
        assert store.text(latest).encode() == GAOXIN
        assert [r.version for r in store.list("draft")] == [2]
        # The public policy supermarket lists it, and a match run gets its text.
        assert TestClient(app).get("/api/public/policies/c-gaoxin").status_code == 200
        ruleset = store.copy_latest(tmp_path / "run" / "policies", AS_OF)
        assert [p.id for p in ruleset.policies] == ["c-gaoxin"]
        assert (tmp_path / "run" / "policies" / "c-gaoxin@1.yaml").read_bytes() == GAOXIN
    finally:
        app.state.engine.dispose()
