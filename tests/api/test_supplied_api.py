"""Supplying missing data through the service: the enterprise's form (/e/supplied), upload limits and type
sniffing, the owning department's API and console, object-level access, and a new match run that applies
the verified value.

Enterprises of the conformance case:
- A = 91321302N37DJHMYJR: missing data for c-wenbao/refund (ui_premium_paid, held by 人力资源和社会保障局,
  so by the staff of 市人力资源和社会保障局: reviewer_hr, policy_hr).
- B = 913208131AFBFAU45N: missing data for c-wenbao/refund (serious_dishonest, held by 信用办).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.enterprise_auth import ENTERPRISE_COOKIE
from payouts.db import transaction
from payouts.models import AuditEvent, Offer
from tests.api.conftest import World

A = "91321302N37DJHMYJR"
B = "913208131AFBFAU45N"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS\xde"
PREMIUM = {"key": "ui_premium_paid@2024"}  # asked once, for the policy's assessment year


def signed_in(w: World, uscc: str) -> TestClient:
    """A browser signed in as the enterprise `uscc` by the SMS code sent to the phone the run registered."""
    client = TestClient(w.app)
    before = len(w.app.state.phone.sent)
    r = client.post("/e/login/code", data={"uscc": uscc, "csrf": csrf(client.get("/e/login").text)})
    assert r.status_code == 200, r.text
    code = [m for m in w.app.state.phone.sent[before:] if m.kind == "login_code"][-1].params["code"]
    data = {"uscc": uscc, "code": code, "csrf": csrf(client.get("/e/login").text)}
    r = client.post("/e/login/verify", data=data, follow_redirects=False)
    assert r.status_code == 303 and ENTERPRISE_COOKIE in r.cookies, r.text
    return client


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def supply(
    client: TestClient,
    form: dict[str, str] | None = None,
    value: str = "12345.67",
    data: bytes = PDF,
    name: str = "缴费证明.pdf",
    content_type: str = "application/pdf",
    token: str | None = None,
) -> Any:
    page = client.get("/e/supplied")
    assert page.status_code == 200, page.text
    fields = {**(form or PREMIUM), "value": value, "csrf": token if token is not None else csrf(page.text)}
    return client.post(
        "/e/supplied", data=fields, files={"evidence": (name, data, content_type)}, follow_redirects=False
    )


def supplied_id(response: Any) -> str:
    assert response.status_code == 303, response.text
    return response.headers["location"].rsplit("/", 1)[1]


@pytest.fixture
def w(world: World) -> Iterator[World]:
    yield world


def test_the_enterprise_sees_its_missing_field_and_supplies_it_with_a_pdf(w: World) -> None:
    a = signed_in(w, A)
    page = a.get("/e/supplied")
    assert page.status_code == 200
    assert 'data-field="ui_premium_paid"' in page.text and "人力资源和社会保障局" in page.text
    sid = supplied_id(supply(a))
    detail = a.get(f"/e/supplied/{sid}")
    assert "待核实" in detail.text and "12345.67" in detail.text
    again = a.get("/e/supplied").text
    assert f"/e/supplied/{sid}" in again
    assert 'class="supplied-done"' in again and 'name="key" value="ui_premium_paid@2024"' not in again
    r = supply(a)  # the form is gone, and a forged second one is refused while the first waits
    assert r.status_code == 422 and "请勿重复提交" in r.text


def test_uploads_are_sniffed_from_their_bytes_and_limited_to_10_mb(w: World) -> None:
    a = signed_in(w, A)
    r = supply(a, data=b"<html><script>alert(1)</script></html>", name="证明.pdf")
    assert r.status_code == 422 and "只能是 PDF 或图片" in r.text
    r = supply(a, data=b"MZ\x90\x00" + b"\x00" * 200, name="证明.png", content_type="image/png")
    assert r.status_code == 422 and "只能是 PDF 或图片" in r.text
    r = supply(a, data=PDF + b"\x00" * (10 * 1024 * 1024))
    assert r.status_code == 422 and "过大" in r.text and "最大 10 MB" in r.text
    # A real image is taken for what it is, whatever the browser called it.
    sid = supplied_id(supply(a, data=PNG, name="scan", content_type="text/plain"))
    reviewer = w.browser("reviewer_hr")
    assert reviewer.get(f"/api/supplied/{sid}").json()["evidence_type"] == "image/png"
    evidence = list((w.root / "web" / "evidence").iterdir())
    assert len(evidence) == 1 and re.fullmatch(r"[0-9a-f]{32}", evidence[0].name)


def test_the_value_must_fit_the_catalog_and_the_field_must_be_missing(w: World) -> None:
    a = signed_in(w, A)
    r = supply(a, value="一万")
    assert r.status_code == 422 and "应为数字" in r.text
    for key in ("layoff_rate", "employees@2024", "ui_premium_paid@2023"):  # not asked of this enterprise
        r = supply(a, form={"key": key})
        assert r.status_code == 422 and "没有这项缺失数据" in r.text
    r = supply(a, value=" ")
    assert r.status_code == 422 and "请至少填写一项数据" in r.text


def test_a_form_without_its_csrf_token_is_refused(w: World) -> None:
    r = supply(signed_in(w, A), token="forged")
    assert r.status_code == 403


def test_an_enterprise_never_sees_anothers_submission_or_any_evidence(w: World) -> None:
    a, b = signed_in(w, A), signed_in(w, B)
    sid = supplied_id(supply(a))
    assert b.get(f"/e/supplied/{sid}").status_code == 404
    assert sid not in b.get("/e/supplied").text
    assert 'data-field="ui_premium_paid"' not in b.get("/e/supplied").text
    # B cannot supply A's missing field either: it is not one of B's lines.
    r = supply(b)
    assert r.status_code == 422
    for client in (a, b):  # no enterprise downloads evidence: that is for the department's staff
        assert client.get(f"/api/supplied/{sid}/evidence").status_code == 401
    assert TestClient(w.app).get("/e/supplied", follow_redirects=False).status_code == 303


def test_only_the_owning_department_sees_downloads_and_verifies(w: World) -> None:
    sid = supplied_id(supply(signed_in(w, A)))
    for user in ("policy_sci", "reviewer"):  # another department, and no department
        assert w.client.get(f"/api/supplied/{sid}", headers=w.auth(user)).status_code == 404
        assert w.client.post(f"/api/supplied/{sid}/verify", headers=w.auth(user)).status_code == 404
        assert w.client.get(f"/api/supplied/{sid}/evidence", headers=w.auth(user)).status_code == 404
        assert w.client.get("/api/supplied", headers=w.auth(user)).json() == []
    assert w.client.post(f"/api/supplied/{sid}/verify", headers=w.auth("maker_hr")).status_code == 403
    listed = w.client.get("/api/supplied", headers=w.auth("reviewer_hr")).json()
    assert [x["id"] for x in listed] == [sid] and listed[0]["state"] == "submitted"
    file = w.client.get(f"/api/supplied/{sid}/evidence", headers=w.auth("reviewer_hr"))
    assert file.status_code == 200 and file.content == PDF
    assert file.headers["content-type"] == "application/pdf"
    assert file.headers["content-disposition"].startswith("attachment")
    assert file.headers["x-content-type-options"] == "nosniff"
    r = w.client.post(f"/api/supplied/{sid}/verify", headers=w.auth("policy_hr"))
    assert r.status_code == 200, r.text
    assert r.json() | {"id": ""} == {
        "id": "",
        "uscc": A,
        "table": "social_insurance",
        "column": "ui_premium_paid",
        "year": 2024,
        "value": "12345.67",
    }
    again = w.client.post(f"/api/supplied/{sid}/verify", headers=w.auth("reviewer_hr"))
    assert again.status_code == 409
    with transaction(w.app.state.engine) as s:
        actions = s.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.entity.in_(("supplied", "override")))
            .order_by(AuditEvent.seq)
        ).all()
    assert list(actions) == ["supply", "view_evidence", "verify", "create"]


def test_a_rejection_reaches_the_enterprise_with_its_reason(w: World) -> None:
    a = signed_in(w, A)
    sid = supplied_id(supply(a))
    r = w.client.post(f"/api/supplied/{sid}/reject", json={"reason": ""}, headers=w.auth("reviewer_hr"))
    assert r.status_code == 422
    r = w.client.post(
        f"/api/supplied/{sid}/reject",
        json={"reason": "缴费凭证金额与填报不符"},
        headers=w.auth("reviewer_hr"),
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    page = a.get(f"/e/supplied/{sid}")
    assert "已退回" in page.text and "缴费凭证金额与填报不符" in page.text


def test_the_console_lists_and_verifies_with_csrf(w: World) -> None:
    sid = supplied_id(supply(signed_in(w, A)))
    staff = w.browser("reviewer_hr")
    listing = staff.get("/console/supplied")
    assert listing.status_code == 200 and sid in listing.text
    page = staff.get(f"/console/supplied/{sid}")
    assert page.status_code == 200 and f"/api/supplied/{sid}/evidence" in page.text
    assert staff.post(f"/console/supplied/{sid}/verify", data={"csrf": "x"}).status_code == 403
    r = staff.post(f"/console/supplied/{sid}/verify", data={"csrf": csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert "已核实" in staff.get(f"/console/supplied/{sid}").text
    assert w.browser("policy_sci").get(f"/console/supplied/{sid}").status_code == 404


def test_a_new_run_applies_the_verified_value_and_the_pair_becomes_an_offer(w: World) -> None:
    sid = supplied_id(supply(signed_in(w, A)))
    assert w.client.post(f"/api/supplied/{sid}/verify", headers=w.auth("reviewer_hr")).status_code == 200
    with transaction(w.app.state.engine) as s:
        assert s.scalar(select(Offer.id).where(Offer.uscc == A, Offer.policy_id == "c-wenbao")) is None
    r = w.client.post("/api/runs", json={"snapshot": "conformance"}, headers=w.auth("reviewer"))
    assert r.status_code == 202, r.text
    assert w.run_jobs() == 1
    job = w.client.get(f"/api/runs/{r.json()['id']}", headers=w.auth("reviewer")).json()
    assert job["state"] == "done", job
    manifest = w.app.state.jobs.manifest(w.app.state.jobs.get(job["id"]))
    assert manifest is not None
    (applied,) = manifest.overrides["applied"]
    assert (applied["uscc"], applied["column"], applied["old"], applied["new"]) == (
        A,
        "ui_premium_paid",
        None,
        "12345.67",
    )
    with transaction(w.app.state.engine) as s:
        offer = s.scalar(select(Offer).where(Offer.uscc == A, Offer.policy_id == "c-wenbao"))
    assert offer is not None and str(offer.amount) == "6172.84"
    assert 'data-field="ui_premium_paid"' not in signed_in(w, A).get("/e/supplied").text
