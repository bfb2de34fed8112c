"""The staff side through the API: match run lists as CSV and Excel, review (hold, drop, release), the
maker-checker batch, bank files, the return file, reports and the audit trail.
"""

from __future__ import annotations

import csv
import io
import re

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from matcher.results import export_lists
from tests.api.conftest import (
    POLICIES,
    World,
    confirm_form,
    confirm_offer,
    confirmed_batch,
    csrf_of,
    hidden_fields,
)


def test_run_summary_and_lists_match_the_run_folder(shared: World) -> None:
    w = shared
    run = w.client.get(f"/api/runs/{w.job_id}", headers=w.auth("reviewer")).json()
    folder = w.app.state.jobs.run_dir(w.app.state.jobs.get(w.job_id))
    candidates = pq.read_table(folder / "candidates.parquet")
    assert sum(i["candidates"] for i in run["items"]) == candidates.num_rows
    assert run["snapshot_fingerprint"].startswith("sha256:")
    r = w.client.get(f"/api/runs/{w.job_id}/lists/candidates", headers=w.auth("reviewer"))
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["政策", "版本", "事项", "统一社会信用代码"]
    assert len(rows) - 1 == candidates.num_rows
    assert {(r[0], r[2], r[3]) for r in rows[1:]} == set(
        zip(*(candidates[c].to_pylist() for c in ("policy_id", "item_id", "uscc")), strict=True)
    )
    xlsx = w.client.get(
        f"/api/runs/{w.job_id}/lists/near_misses?format=xlsx&policy_id=c-gaoxin&item_id=mature",
        headers=w.auth("reviewer"),
    )
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    values = list(sheet.values)
    export_lists(folder, w.root / "lists")  # the run keeps them compact: the export is format 2's file
    near = pq.read_table(w.root / "lists" / "near_misses.parquet").to_pylist()
    wanted = [n for n in near if (n["policy_id"], n["item_id"]) == ("c-gaoxin", "mature")]
    assert len(values) - 1 == len(wanted) > 0
    assert {v[3] for v in values[1:]} == {n["condition_id"] for n in wanted}
    missing = w.client.get(
        f"/api/runs/{w.job_id}/lists/missing_data?field=revenue", headers=w.auth("reviewer")
    ).text
    assert all("revenue" in line for line in missing.splitlines()[1:])


def test_an_unknown_run_or_a_path_trick_is_not_found(shared: World) -> None:
    for job in ("0123456789abcdef", "..%2F..%2Fetc", "zzzz"):
        assert shared.client.get(f"/api/runs/{job}", headers=shared.auth("reviewer")).status_code in (
            404,
            422,
        )


def test_hold_drop_and_release_need_a_reason_and_follow_the_state_machine(world: World) -> None:
    w = world
    a, b, c = w.offers("c-kexing", "drafted")[:3]
    rev = w.auth("reviewer")
    assert (
        w.client.post("/api/review/hold", json={"offers": [a], "reason": ""}, headers=rev).status_code == 422
    )
    r = w.bulk("/api/review/hold", "hold", {"offers": [a], "reason": "核实社保数据"})
    assert r.json()["changed"] == 1 and r.json()["offers"] == [a]
    assert w.bulk("/api/review/drop", "drop", {"offers": [b], "reason": "已注销"}).status_code == 200
    r = w.bulk("/api/review/release", "release", {"offers": [a, c]})
    assert r.json()["released"] == 2
    dropped_again = w.bulk("/api/review/release", "release", {"offers": [b]})
    assert dropped_again.status_code == 409
    trail = w.client.get(f"/api/offers/{a}/audit", headers=w.auth("auditor")).json()
    assert [e["action"] for e in trail] == ["import", "hold", "release"]
    assert trail[1]["reason"] == "核实社保数据" and trail[1]["actor"] == "reviewer"
    found = w.client.get("/api/offers?policy_id=c-kexing&state=dropped", headers=rev).json()
    assert [o["public_id"] for o in found["offers"]] == [b]


def test_search_by_uscc_name_and_state(shared: World) -> None:
    w = shared
    rev = w.auth("reviewer")
    some = w.client.get("/api/offers?policy_id=c-kexing&limit=1", headers=rev).json()["offers"][0]
    by_code = w.client.get(f"/api/offers?uscc={some['uscc'][:12]}", headers=rev).json()
    assert some["public_id"] in {o["public_id"] for o in by_code["offers"]}
    assert all(o["uscc"].startswith(some["uscc"][:12]) for o in by_code["offers"])
    by_name = w.client.get(f"/api/offers?name={some['name'][-8:]}", headers=rev).json()
    assert all(some["name"][-8:] in o["name"] for o in by_name["offers"])
    held = w.client.get("/api/offers?state=held", headers=rev).json()
    assert held["total"] > 0 and {o["state"] for o in held["offers"]} == {"held"}
    assert w.client.get("/api/offers?state=nonsense", headers=rev).status_code == 422


def test_maker_checker_bank_files_and_return_file(world: World) -> None:
    w = world
    ref = confirmed_batch(w)
    detail = w.client.get(f"/api/batches/{ref}", headers=w.auth("checker")).json()
    assert detail["state"] == "assembled" and detail["maker"] == "maker"
    assert detail["line_count"] == len(detail["lines"]) == 1
    assert sum(float(x["amount"]) for x in detail["lines"]) == float(detail["total"])
    assert "*" in detail["lines"][0]["account_masked"]
    # The maker cannot check their own batch, and a batch cannot be exported before it is approved.
    assert w.client.post(f"/api/batches/{ref}/approve", headers=w.auth("maker")).status_code == 403
    assert w.client.post(f"/api/batches/{ref}/export", headers=w.auth("maker")).status_code == 409
    approved = w.client.post(f"/api/batches/{ref}/approve", headers=w.auth("checker2"))
    assert approved.json()["state"] == "approved" and approved.json()["checker"] == "checker2"
    exported = w.client.post(f"/api/batches/{ref}/export", headers=w.auth("maker"))
    assert exported.json()["state"] == "exported"
    bank = w.client.get(f"/api/batches/{ref}/files/csv", headers=w.auth("maker"))
    assert bank.status_code == 200 and ref in bank.text
    xml = w.client.get(f"/api/batches/{ref}/files/xml", headers=w.auth("checker"))
    assert "pain.001.001.09" in xml.text
    returned = w.client.get(f"/demo/bank/{ref}/return.csv", headers=w.auth("maker")).content
    r = w.client.post(
        f"/api/batches/{ref}/return", files={"file": ("回单.csv", returned)}, headers=w.auth("maker")
    )
    assert r.json()["paid"] == 1 and r.json()["pending"] == 0
    again = w.client.post(
        f"/api/batches/{ref}/return", files={"file": ("回单.csv", returned)}, headers=w.auth("maker")
    )
    assert again.status_code == 409 or again.status_code == 422
    assert w.client.get(f"/api/batches/{ref}", headers=w.auth("auditor")).json()["state"] == "reconciled"
    paid = w.client.get(
        "/api/reports/disclosure?policy_id=c-gaoxin", headers=w.auth("auditor")
    ).content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(paid)))
    assert rows[0] == [
        "序号",
        "企业名称",
        "统一社会信用代码",
        "政策",
        "兑现事项",
        "期间",
        "金额（元）",
        "拨付日期",
    ]
    assert len(rows) == 2 and rows[1][3] == "高新技术企业奖励（示例）"
    assert rows[1][5] in ("一次性", "2025年度") and re.fullmatch(r"\d{4}年\d{1,2}月\d{1,2}日", rows[1][7])
    funnel = w.client.get("/api/reports/funnel?policy_id=c-gaoxin", headers=w.auth("auditor")).json()
    assert {s["stage"]: s["count"] for s in funnel["stages"]}["paid"] == 1
    trail = w.client.get(f"/api/batches/{ref}/audit", headers=w.auth("auditor")).json()
    assert [e["action"] for e in trail] == ["assemble", "approve", "export", "reconcile"]
    assert w.client.get("/api/audit/verify", headers=w.auth("auditor")).json()["ok"]


def test_a_rejected_batch_frees_its_offers_for_the_next_one(world: World) -> None:
    w = world
    ref = confirmed_batch(w)
    r = w.client.post(f"/api/batches/{ref}/reject", json={"reason": "金额待核"}, headers=w.auth("checker"))
    assert r.json()["state"] == "rejected"
    ready = w.client.get("/api/batches/ready", headers=w.auth("maker")).json()
    assert [x["policy_id"] for x in ready] == ["c-gaoxin"]
    assert w.make_batch("c-gaoxin", "maker2").status_code == 201


def test_console_maker_then_a_different_checker(world: World) -> None:
    w = world
    links = w.notify("c-gaoxin")
    confirm_offer(TestClient(w.app), links[0])
    maker = w.browser("maker")
    page = maker.get("/console/batches")
    assert "制单" in page.text
    made = maker.post(
        "/console/batches", data=hidden_fields(page.text, "/console/batches", 'value="c-gaoxin"')
    )
    assert "已制单" in made.text and "待另一位复核人员复核" in made.text
    assert 'id="approve"' not in made.text
    checker = w.browser("checker")
    ref = made.url.path.rsplit("/", 1)[-1]
    view = checker.get(f"/console/batches/{ref}")
    assert 'id="approve"' in view.text and 'id="lines"' in view.text
    done = checker.post(f"/console/batches/{ref}/approve", data={"csrf": csrf_of(view.text)})
    assert "复核通过" in done.text


def test_the_whole_walk_through_the_console(world: World) -> None:
    """publish → match → review → SMS link → confirm → batch → approve → bank file → return file."""
    w = world
    policy = w.browser("policy_sci")
    page = policy.get("/console/policies")
    v2 = (POLICIES / "c-yanfa.yaml").read_bytes().replace(b"version: 1", b"version: 2")
    draft = policy.post(
        "/console/policies/upload", data={"csrf": csrf_of(page.text)}, files={"file": ("c-yanfa.yaml", v2)}
    )
    published = policy.post(draft.url.path + "/publish", data={"csrf": csrf_of(draft.text)})
    assert "已发布" in published.text

    reviewer = w.browser("reviewer")
    page = reviewer.get("/console/runs")
    run = reviewer.post(
        "/console/runs", data={"csrf": csrf_of(page.text), "snapshot": "conformance", "as_of": "2025-09-30"}
    )
    assert "排队中" in run.text  # a worker runs it (the service's own one, under `zhida serve`)
    assert w.run_jobs() == 1
    run = reviewer.get(run.url.path)
    assert "已完成" in run.text and "已生成待初核要约" in run.text
    queue = reviewer.get("/console/review?policy_id=c-yanfa")
    asked = reviewer.post(
        "/console/review/preview",
        data={
            "csrf": csrf_of(queue.text),
            "action": "release",
            "scope": "matching",
            "policy_id": "c-yanfa",
            "back": "/console/review",
        },
    )
    assert "请确认：发布" in asked.text
    url, fields = confirm_form(asked.text)
    released = reviewer.post(url, data=fields)
    assert "已发布" in released.text
    asked = reviewer.post(
        "/console/review/preview",
        data={
            "csrf": csrf_of(released.text),
            "action": "notify",
            "scope": "matching",
            "policy_id": "c-yanfa",
        },
    )
    url, fields = confirm_form(asked.text)
    sent = reviewer.post(url, data=fields)
    assert "确认短信：发送" in sent.text
    phone = reviewer.get("/demo/phone").text
    link = re.findall(r'href="http://testserver(/c/[^"]+)"', phone)[0]
    receipt = confirm_offer(TestClient(w.app), link)
    assert "已确认领取" in receipt.text

    maker = w.browser("maker")
    page = maker.get("/console/batches")
    made = maker.post(
        "/console/batches", data=hidden_fields(page.text, "/console/batches", 'value="c-yanfa"')
    )
    ref = made.url.path.rsplit("/", 1)[-1]
    checker = w.browser("checker")
    page = checker.get(f"/console/batches/{ref}")
    approved = checker.post(f"/console/batches/{ref}/approve", data={"csrf": csrf_of(page.text)})
    exported = checker.post(f"/console/batches/{ref}/export", data={"csrf": csrf_of(approved.text)})
    assert 'id="batch-state">已导出' in exported.text
    assert (
        checker.get(f"/api/batches/{ref}/files/csv").status_code == 200
    )  # the download link, with the cookie
    returned = checker.get(f"/demo/bank/{ref}/return.csv").content
    done = checker.post(
        f"/console/batches/{ref}/return",
        data={"csrf": csrf_of(exported.text)},
        files={"file": ("回单.csv", returned)},
    )
    assert 'id="batch-state">已对账' in done.text and "到账 1 笔" in done.text
    assert "哈希链完整" in w.browser("auditor").get("/console/audit").text
