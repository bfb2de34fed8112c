"""Every API endpoint refuses the wrong role (403), anyone not signed in (401), and objects of another
department (404, as if they did not exist). The tables below list every endpoint; a test checks that
no endpoint is missing from them.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.api.conftest import POLICIES, World, confirmed_batch

ROLE_USER = {
    "policy": "policy_sci",
    "reviewer": "reviewer",
    "finance_maker": "maker",
    "finance_checker": "checker",
    "auditor": "auditor",
    "system_admin": "sysadmin",
    "security_admin": "secadmin",
}
ALL = frozenset(ROLE_USER)
STAFF = ALL - {"system_admin", "security_admin"}  # the administrators see no offers, money or reports
POLICY_READ = frozenset({"policy", "reviewer", "auditor"})
BATCH_READ = frozenset({"finance_maker", "finance_checker", "auditor"})
BANK = frozenset({"finance_maker", "finance_checker"})
REPORTS = STAFF
DATA_VERIFY = frozenset({"policy", "reviewer"})  # also who resolves objections
ACCOUNT_DECIDE = frozenset({"reviewer", "finance_checker"})  # a second person, never the proposer
YAML = b"id: x\n"

PAYER = {"name": "某市财政局", "account_no": "1", "bank_name": "国库", "file_format": "bank_csv"}
PART = {"payer_code": "city", "share": 1, "fund_source": "市级资金", "budget_no": "1号"}

# What a bulk action's user saw in its preview (the access checks come first, whatever the count).
EXPECT = {"expected_count": 1, "expected_total": "0.00"}

# method, path (with {offer}, {batch}, {job}), body (json dict, or "file"), roles allowed
ENDPOINTS: list[tuple[str, str, Any, frozenset[str]]] = [
    ("GET", "/api/me", None, ALL),
    ("GET", "/api/policies", None, POLICY_READ),
    ("POST", "/api/policies", "file", frozenset({"policy"})),
    ("GET", "/api/policies/c-gaoxin/versions", None, POLICY_READ),
    ("GET", "/api/policies/c-gaoxin/drafts/2/impact?snapshot=conformance", None, POLICY_READ),
    ("POST", "/api/policies/c-gaoxin/drafts/2/publish", None, frozenset({"policy"})),
    ("GET", "/api/snapshots", None, POLICY_READ),
    ("GET", "/api/runs", None, POLICY_READ),
    ("POST", "/api/runs", {"snapshot": "conformance"}, frozenset({"reviewer"})),
    ("GET", "/api/runs/{job}", None, POLICY_READ),
    ("GET", "/api/runs/{job}/lists/candidates", None, POLICY_READ),
    ("GET", "/api/offers", None, STAFF),
    ("GET", "/api/offers/{offer}", None, STAFF),
    ("GET", "/api/offers/{offer}/audit", None, STAFF),
    ("POST", "/api/review/preview", {"filter": {}, "action": "release"}, frozenset({"reviewer"})),
    (
        "POST",
        "/api/review/hold",
        {"offers": ["{offer}"], "reason": "x", **EXPECT},
        frozenset({"reviewer"}),
    ),
    (
        "POST",
        "/api/review/drop",
        {"offers": ["{offer}"], "reason": "x", **EXPECT},
        frozenset({"reviewer"}),
    ),
    ("POST", "/api/review/release", {"offers": ["{offer}"], **EXPECT}, frozenset({"reviewer"})),
    ("POST", "/api/review/opinion", {"offers": ["{offer}"], "agree": True}, frozenset({"reviewer"})),
    ("POST", "/api/sms/send", {"filter": {}, **EXPECT}, frozenset({"reviewer"})),
    ("GET", "/api/batches", None, BATCH_READ),
    ("GET", "/api/batches/ready", None, BATCH_READ),
    ("POST", "/api/batches", {"policy_id": "c-gaoxin", **EXPECT}, frozenset({"finance_maker"})),
    ("GET", "/api/batches/{batch}", None, BATCH_READ),
    ("POST", "/api/batches/{batch}/approve", None, frozenset({"finance_checker"})),
    ("POST", "/api/batches/{batch}/reject", {"reason": "x"}, BANK),
    ("POST", "/api/batches/{batch}/export", None, BANK),
    ("GET", "/api/batches/{batch}/files/csv", None, BANK),
    ("POST", "/api/batches/{batch}/return", "file", BANK),
    ("GET", "/api/batches/{batch}/audit", None, BATCH_READ),
    ("GET", "/api/audit/verify", None, frozenset({"auditor"})),
    ("GET", "/api/reports/funnel", None, REPORTS),
    ("GET", "/api/reports/money", None, REPORTS),
    ("GET", "/api/reports/sla", None, REPORTS),
    ("GET", "/api/reports/supervision", None, REPORTS),
    # The monthly report compares every department: for report readers who serve them all (a policy
    # user always has a department).
    ("GET", "/api/reports/monthly?month=2025-10", None, REPORTS - {"policy"}),
    ("GET", "/api/reports/disclosure", None, REPORTS),
    # Supplied data: the department that holds the field; public notice (公示) and objections.
    ("GET", "/api/supplied", None, DATA_VERIFY),
    ("GET", "/api/supplied/{offer}", None, DATA_VERIFY),
    ("POST", "/api/supplied/{offer}/verify", None, DATA_VERIFY),
    ("POST", "/api/supplied/{offer}/reject", {"reason": "x"}, DATA_VERIFY),
    ("GET", "/api/supplied/{offer}/evidence", None, DATA_VERIFY),
    ("GET", "/api/notices", None, STAFF),
    ("POST", "/api/notices", {"batch": "ZDNOSUCHBATCH", "days": 3}, frozenset({"finance_maker"})),
    ("GET", "/api/notices/{offer}", None, STAFF),
    ("POST", "/api/notices/objections/{offer}/resolve", {"upheld": False, "reason": "x"}, DATA_VERIFY),
    # Who holds which role: the administrators and the auditor (三员), nobody who moves money.
    ("GET", "/api/users", None, frozenset({"system_admin", "security_admin", "auditor"})),
    ("GET", "/api/users/changes", None, frozenset({"system_admin", "security_admin", "auditor"})),
    ("GET", "/api/users/departments", None, frozenset({"system_admin", "security_admin", "auditor"})),
    ("GET", "/api/jobs", None, frozenset({"reviewer", "auditor", "system_admin"})),
    # Payee account changes: proposed by a reviewer, decided by another reviewer or a finance checker.
    (
        "POST",
        "/api/account-changes",
        {"uscc": "9" * 18, "bank_name": "x", "account_no": "1", "account_name": "x", "reason": "x"},
        frozenset({"reviewer"}),
    ),
    ("GET", "/api/account-changes", None, ACCOUNT_DECIDE | {"auditor"}),
    # The finance structure: read by finance staff and the auditor, kept by the finance checker alone.
    ("GET", "/api/finance/payers", None, BATCH_READ),
    ("GET", "/api/finance/payers/city", None, BATCH_READ),
    ("PUT", "/api/finance/payers/city", PAYER, frozenset({"finance_checker"})),
    ("GET", "/api/finance/policies/c-gaoxin", None, BATCH_READ),
    ("PUT", "/api/finance/policies/c-gaoxin", {"parts": [PART]}, frozenset({"finance_checker"})),
    ("POST", "/api/account-changes/{offer}/approve", None, ACCOUNT_DECIDE),
    ("POST", "/api/account-changes/{offer}/reject", {"reason": "x"}, ACCOUNT_DECIDE),
]


@pytest.fixture(scope="module")
def fx(shared: World) -> SimpleNamespace:
    """The shared world with a draft (c-gaoxin v2) and an assembled c-gaoxin batch."""
    data = (POLICIES / "c-gaoxin.yaml").read_bytes().replace(b"version: 1", b"version: 2")
    r = shared.client.post(
        "/api/policies", files={"file": ("c-gaoxin.yaml", data)}, headers=shared.auth("policy_sci")
    )
    assert r.status_code == 201, r.text
    batch = confirmed_batch(shared)
    return SimpleNamespace(
        w=shared,
        batch=batch,
        offer=shared.offers("c-gaoxin", "notified")[0],
        hr_offer=shared.offers("c-jiuye")[0],
    )


def call(w: World, method: str, path: str, body: Any, user: str | None, fx: SimpleNamespace) -> Any:
    path = path.format(offer=fx.offer, batch=fx.batch, job=w.job_id)
    headers = w.auth(user) if user else {}
    if body == "file":
        return w.client.request(method, path, files={"file": ("x.yaml", YAML)}, headers=headers)
    if isinstance(body, dict):
        body = {
            k: [x.format(offer=fx.offer) if isinstance(x, str) else x for x in v]
            if isinstance(v, list)
            else v
            for k, v in body.items()
        }
    return w.client.request(method, path, json=body, headers=headers)


def test_the_table_lists_every_api_endpoint(fx: SimpleNamespace) -> None:
    routes = {
        (method.upper(), path)
        for path, operations in fx.w.app.openapi()["paths"].items()
        # /api/session signs in; /api/public/ is the policy supermarket, open to all (test_supermarket.py);
        # /api/sms/replies is the SMS gateway's signed callback, no user's (test_sms_replies.py)
        if path.startswith("/api")
        and path not in ("/api/session", "/api/sms/replies")
        and not path.startswith("/api/public/")
        for method in operations
    }
    listed = set()
    for method, path, _, _ in ENDPOINTS:
        template = (
            path.split("?")[0]
            .replace("{offer}", "{public_id}")
            .replace("{batch}", "{reference}")
            .replace("{job}", "{job_id}")
            .replace("c-gaoxin", "{policy_id}")
            .replace("/drafts/2/", "/drafts/{version}/")
            .replace("/lists/candidates", "/lists/{name}")
            .replace("/files/csv", "/files/{kind}")
            .replace("/payers/city", "/payers/{code}")
        )
        listed.add((method, template))
    assert routes == listed


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_anonymous_requests_get_401(
    fx: SimpleNamespace, method: str, path: str, body: Any, allowed: frozenset[str]
) -> None:
    r = call(fx.w, method, path, body, None, fx)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_each_wrong_role_gets_403(
    fx: SimpleNamespace, method: str, path: str, body: Any, allowed: frozenset[str]
) -> None:
    for role in sorted(ALL - allowed):
        r = call(fx.w, method, path, body, ROLE_USER[role], fx)
        assert r.status_code == 403, (role, r.status_code, r.text)
        assert r.json()["title"] == "无权操作"


SAFE = [e for e in ENDPOINTS if e[0] == "GET"]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), SAFE, ids=[f"{m} {p}" for m, p, _, _ in SAFE])
def test_each_right_role_may_read(
    fx: SimpleNamespace, method: str, path: str, body: Any, allowed: frozenset[str]
) -> None:
    for role in sorted(allowed):
        r = call(fx.w, method, path, body, ROLE_USER[role], fx)
        assert r.status_code not in (401, 403, 500), (role, r.status_code, r.text)


# Department boundaries: user, method, path, body → 404 (the object "does not exist" for them)
OTHER_DEPARTMENT = [
    ("policy_hr", "GET", "/api/offers/{offer}", None),
    ("policy_hr", "GET", "/api/offers/{offer}/audit", None),
    ("policy_hr", "GET", "/api/policies/c-gaoxin/versions", None),
    ("policy_hr", "GET", "/api/policies/c-gaoxin/drafts/2/impact?snapshot=conformance", None),
    ("policy_hr", "POST", "/api/policies/c-gaoxin/drafts/2/publish", None),
    (
        "reviewer_hr",
        "POST",
        "/api/review/preview",
        {"filter": {"policy_id": "c-gaoxin"}, "action": "release"},
    ),
    ("reviewer_hr", "POST", "/api/review/preview", {"offers": ["{offer}"], "action": "drop"}),
    ("reviewer_hr", "POST", "/api/review/hold", {"offers": ["{offer}"], "reason": "x", **EXPECT}),
    ("reviewer_hr", "POST", "/api/review/drop", {"offers": ["{offer}"], "reason": "x", **EXPECT}),
    ("reviewer_hr", "POST", "/api/review/release", {"offers": ["{offer}"], **EXPECT}),
    ("reviewer_hr", "POST", "/api/review/opinion", {"offers": ["{offer}"], "agree": True}),
    ("reviewer_hr", "POST", "/api/review/release", {"filter": {"policy_id": "c-gaoxin"}, **EXPECT}),
    ("maker_hr", "GET", "/api/batches/{batch}", None),
    ("maker_hr", "GET", "/api/batches/{batch}/audit", None),
    ("maker_hr", "POST", "/api/batches", {"policy_id": "c-gaoxin", **EXPECT}),
    ("maker_hr", "POST", "/api/batches/{batch}/export", None),
    ("checker_hr", "POST", "/api/batches/{batch}/approve", None),
    ("checker_hr", "POST", "/api/batches/{batch}/reject", {"reason": "x"}),
    ("checker_hr", "GET", "/api/batches/{batch}/files/csv", None),
    ("policy_hr", "GET", "/api/reports/funnel?policy_id=c-gaoxin", None),
    ("policy_hr", "GET", "/api/reports/disclosure?policy_id=c-gaoxin", None),
]


@pytest.mark.parametrize(
    ("user", "method", "path", "body"),
    OTHER_DEPARTMENT,
    ids=[f"{u} {m} {p}" for u, m, p, _ in OTHER_DEPARTMENT],
)
def test_another_departments_objects_do_not_exist(
    fx: SimpleNamespace, user: str, method: str, path: str, body: Any
) -> None:
    r = call(fx.w, method, path, body, user, fx)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/problem+json"


def test_the_refused_review_changed_nothing(fx: SimpleNamespace) -> None:
    r = fx.w.client.get(f"/api/offers/{fx.offer}", headers=fx.w.auth("reviewer"))
    assert r.json()["state"] == "notified"


def test_a_department_sees_only_its_own_offers_policies_and_runs(fx: SimpleNamespace) -> None:
    w = fx.w
    offers = w.client.get("/api/offers?limit=500", headers=w.auth("policy_hr")).json()
    assert offers["total"] > 0
    assert {o["policy_id"] for o in offers["offers"]} <= {"c-jiuye", "c-wenbao"}
    assert {o["department"] for o in offers["offers"]} == {"市人力资源和社会保障局"}
    policies = w.client.get("/api/policies", headers=w.auth("policy_hr")).json()
    assert {p["id"] for p in policies["published"]} == {"c-jiuye", "c-wenbao"}
    assert policies["drafts"] == []  # the science bureau's draft is not theirs
    run = w.client.get(f"/api/runs/{w.job_id}", headers=w.auth("policy_hr")).json()
    assert {i["policy_id"] for i in run["items"]} == {"c-jiuye", "c-wenbao"}
    everything = w.client.get(f"/api/runs/{w.job_id}", headers=w.auth("reviewer")).json()
    assert len({i["policy_id"] for i in everything["items"]}) > 2
    csv = w.client.get(f"/api/runs/{w.job_id}/lists/near_misses", headers=w.auth("policy_hr")).text
    assert {line.split(",")[0] for line in csv.splitlines()[1:]} <= {"c-jiuye", "c-wenbao"}
    money = w.client.get("/api/reports/money", headers=w.auth("policy_hr")).json()
    assert {m["policy_id"] for m in money} <= {"c-jiuye", "c-wenbao"}
    batches = w.client.get("/api/batches", headers=w.auth("maker_hr")).json()
    assert batches == []


def test_a_policy_user_cannot_upload_another_departments_policy(fx: SimpleNamespace) -> None:
    data = (POLICIES / "c-gaoxin.yaml").read_bytes().replace(b"version: 1", b"version: 3")
    r = fx.w.client.post(
        "/api/policies", files={"file": ("c-gaoxin.yaml", data)}, headers=fx.w.auth("policy_hr")
    )
    assert r.status_code == 403
    assert "只能上传本部门" in r.json()["detail"]


def test_console_pages_refuse_the_wrong_role_and_send_strangers_to_login(fx: SimpleNamespace) -> None:
    w = fx.w
    anonymous = w.client.get("/console/batches", follow_redirects=False)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/console/batches"
    reviewer = w.browser("reviewer")
    assert reviewer.get("/console/batches").status_code == 403
    assert reviewer.get(f"/console/batches/{fx.batch}").status_code == 403
    assert w.browser("maker").get("/console/review").status_code == 403
    assert w.browser("policy_hr").get(f"/console/offers/{fx.offer}").status_code == 404
    assert w.browser("checker_hr").get(f"/console/batches/{fx.batch}").status_code == 404
