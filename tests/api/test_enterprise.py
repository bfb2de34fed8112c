"""The enterprise's own side: sign-in by SMS code and by the provincial unified identity (OIDC, against a
fake provider in this process), my policies from the latest match run, each offer's timeline, and that
one enterprise never sees another's data.

Enterprises of the conformance case (tests/conformance/expected):
- A = 913208038HQ7FMGPQ2: candidate of c-gaoxin/mature (150,000.00); near miss of c-wenbao/refund on
  `layoff` (裁员率 63.8%, the policy asks ≤ 5%), of c-gaoxin/young on `age`, c-kexing/award on
  `tech_sme`, c-xinban/capital and /opening on `new`; nothing for c-jiuye and c-yanfa.
- B = 913208131AFBFAU45N: candidate of c-gaoxin/mature; missing data for c-wenbao/refund
  (serious_dishonest, held by 信用办).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import time
import urllib.parse
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select

from api.enterprise_auth import OidcProvider
from api.routes.enterprise import OIDC_FAILED
from payouts.db import transaction
from payouts.models import AuditEvent, MatchRun
from portal import identity
from portal.models import LoginCode
from tests.api.conftest import World, confirmed_batch, copy_world
from tests.staff import fix_account

A = "913208038HQ7FMGPQ2"
B = "913208131AFBFAU45N"
C = "91321302N37DJHMYJR"  # no candidate: near misses, and ui_premium_paid missing for c-wenbao
NOBODY = "91320803000000000X"  # not a valid check character


def _form_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def ask_code(w: World, client: TestClient, uscc: str) -> tuple[Any, str | None]:
    """Ask for a code on the sign-in page; the response and the code the phone got (None if none)."""
    before = len(w.app.state.phone.sent)
    page = client.get("/e/login")
    r = client.post("/e/login/code", data={"uscc": uscc, "csrf": _form_csrf(page.text)})
    new = [m for m in w.app.state.phone.sent[before:] if m.kind == "login_code"]
    return r, (new[-1].params["code"] if new else None)


def enter_code(client: TestClient, uscc: str, code: str) -> Any:
    page = client.get("/e/login")
    return client.post(
        "/e/login/verify",
        data={"uscc": uscc, "code": code, "csrf": _form_csrf(page.text)},
        follow_redirects=False,
    )


def sign_in(w: World, uscc: str) -> TestClient:
    client = TestClient(w.app)
    r, code = ask_code(w, client, uscc)
    assert r.status_code == 200 and code, r.text
    r = enter_code(client, uscc, code)
    assert r.status_code == 303 and r.headers["location"] == "/e", r.text
    return client


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# --- Sign-in by SMS code ---


def test_the_code_goes_to_the_registered_phone_and_signs_in_once(world: World) -> None:
    client = TestClient(world.app)
    r, code = ask_code(world, client, A.lower())
    assert r.status_code == 200 and code is not None
    sms = [m for m in world.app.state.phone.sent if m.kind == "login_code"][-1]
    assert sms.phone == "13999235777" and code in sms.text
    assert "139****5777" in r.text  # the page shows where it went, masked
    with transaction(world.app.state.engine) as s:
        stored = s.scalars(select(LoginCode.code_hash).where(LoginCode.uscc == A)).all()
    assert stored and code not in stored[0]  # kept as an HMAC only
    r = enter_code(client, A, code)
    assert r.status_code == 303 and "zhida_ent" in r.cookies
    assert client.get("/e").status_code == 200
    again = enter_code(TestClient(world.app), A, code)
    assert again.status_code == 401 and "验证码已失效" in again.text  # single use
    with transaction(world.app.state.engine) as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == A)).all()
    assert {"login_code", "login"} <= set(actions)


def test_an_enterprise_without_a_candidate_signs_in_with_its_registered_phone(world: World) -> None:
    # No candidate (so no payee): near misses and a missing field; the run's contacts know its phone.
    client = TestClient(world.app)
    r, code = ask_code(world, client, C)
    assert r.status_code == 200 and code is not None, r.text
    sms = [m for m in world.app.state.phone.sent if m.kind == "login_code"][-1]
    assert sms.phone == "13906789613" and "139****9613" in r.text
    assert enter_code(client, C, code).status_code == 303
    home = client.get("/e").text
    assert 'data-policy="c-wenbao"' in _section(home, "missing") and "上年度实缴失业保险费" in home


def test_a_phone_corrected_by_staff_wins_over_the_runs_registered_one(world: World) -> None:
    with transaction(world.app.state.engine) as s:
        fix_account(
            s,
            A,
            bank_name="测试银行",
            account_no="6222000011112222",
            account_name="淮安测试企业00798有限公司",
            by="reviewer",
            reason="企业来函更正联系电话",
            now=dt.datetime.now(dt.UTC),
            contact_phone="13700001111",
        )
    _, code = ask_code(world, TestClient(world.app), A)
    sms = [m for m in world.app.state.phone.sent if m.kind == "login_code"][-1]
    assert code is not None and sms.phone == "13700001111"


def test_a_wrong_code_is_refused_and_says_how_many_tries_are_left(world: World) -> None:
    client = TestClient(world.app)
    _, code = ask_code(world, client, A)
    assert code is not None
    r = enter_code(client, A, wrong(code))
    assert r.status_code == 401 and "还可尝试 4 次" in r.text and "zhida_ent" not in r.cookies
    assert client.get("/e", follow_redirects=False).headers["location"] == "/e/login"


def test_a_code_expires_after_five_minutes(world: World) -> None:
    client = TestClient(world.app)
    _, code = ask_code(world, client, A)
    assert code is not None
    with transaction(world.app.state.engine) as s:
        row = s.scalars(select(LoginCode).where(LoginCode.uscc == A)).one()
        assert row.expires_at - row.created_at == dt.timedelta(minutes=5)
        row.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    r = enter_code(client, A, code)
    assert r.status_code == 401 and "验证码已失效" in r.text


def test_a_new_code_replaces_the_old_one(world: World) -> None:
    client = TestClient(world.app)
    _, first = ask_code(world, client, A)
    _, second = ask_code(world, client, A)
    assert first and second
    if first != second:
        assert enter_code(client, A, first).status_code == 401
    assert enter_code(client, A, second).status_code == 303


def test_five_wrong_codes_block_this_address(world: World) -> None:
    client = TestClient(world.app)
    _, code = ask_code(world, client, A)
    assert code is not None
    for _ in range(4):
        assert enter_code(client, A, wrong(code)).status_code == 401
    r = enter_code(client, A, wrong(code))
    assert r.status_code == 429 and "已暂停尝试" in r.text
    assert enter_code(client, A, code).status_code == 429  # even the right code, now
    r, sent = ask_code(world, client, A)
    assert r.status_code == 429 and "已暂停尝试" in r.text and sent is None  # and no new code is sent
    with transaction(world.app.state.engine) as s:
        assert "login_blocked" in s.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == A)).all()


def test_codes_are_rate_limited_per_address_and_enterprise_and_per_ip(world: World) -> None:
    client = TestClient(world.app)
    for _ in range(identity.CLIENT_CODES[0]):
        r, code = ask_code(world, client, A)
        assert r.status_code == 200 and code
    r, code = ask_code(world, client, A)
    assert r.status_code == 429 and code is None and int(r.headers["Retry-After"]) > 0
    r, code = ask_code(world, client, B)  # another enterprise from the same IP still may
    assert r.status_code == 200 and code
    ip_limit = world.app.state.settings.login_code_ip_limit
    for _ in range(ip_limit):
        r, _code = ask_code(world, client, C)
    assert r.status_code == 429 and "请求过于频繁" in r.text  # the per-IP limit, across enterprises


def test_guessing_codes_from_one_ip_is_rate_limited(template, tmp_path) -> None:  # type: ignore[no-untyped-def]
    w = copy_world(template, tmp_path, login_code_ip_limit=3)
    client = TestClient(w.app)
    statuses = [enter_code(client, A, "000000").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    w.app.state.engine.dispose()


def test_sign_in_refuses_bad_codes_unknown_enterprises_and_forms_without_csrf(world: World) -> None:
    client = TestClient(world.app)
    r, code = ask_code(world, client, NOBODY)
    assert r.status_code == 422 and "统一社会信用代码有误" in r.text and code is None
    r, code = ask_code(world, client, "91320803HJ3YQ6PG0G")  # valid, but not in the run
    assert code is None and r.status_code == 422
    r = client.post("/e/login/code", data={"uscc": A, "csrf": "forged"})
    assert r.status_code == 403
    r = TestClient(world.app).post("/e/login/verify", data={"uscc": A, "code": "123456"})
    assert r.status_code == 403


def test_sign_out_needs_the_form_token_and_ends_the_session(world: World) -> None:
    client = sign_in(world, A)
    assert client.post("/e/logout", data={"csrf": "forged"}).status_code == 403
    page = client.get("/e")
    stolen = client.cookies.get("zhida_ent")
    r = client.post("/e/logout", data={"csrf": _form_csrf(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/e", follow_redirects=False).status_code == 303
    replay = TestClient(world.app)  # a copy of the cookie taken before signing out is dead too
    replay.cookies.set("zhida_ent", stolen or "")
    assert replay.get("/e", follow_redirects=False).headers["location"] == "/e/login"
    assert sign_in(world, A).get("/e").status_code == 200  # signing in again works


def test_the_enterprise_session_is_no_staff_session(world: World) -> None:
    client = sign_in(world, A)
    assert client.get("/console", follow_redirects=False).headers["location"].startswith("/login")
    assert client.get("/api/offers").status_code == 401
    staff = world.browser("reviewer")
    assert staff.get("/e", follow_redirects=False).headers["location"] == "/e/login"


# --- The provincial unified identity (OIDC), against a fake provider ---

ISSUER = "https://id.example.gov.cn/oidc"
CLIENT_ID = "zhida-test"
CLIENT_SECRET = "client-secret-0123456789"


class FakeProvider:
    """An OpenID provider in this process: discovery, JWKS, the token endpoint with PKCE and client
    authentication; it signs ID tokens with its own RSA key (or another, or for another audience)."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
        self.codes: dict[str, dict[str, str]] = {}
        self.sign_with = self.key
        self.audience = CLIENT_ID
        self.uscc = A

    def authorize(self, url: str) -> dict[str, str]:
        """What the provider does when the enterprise signs in there: a code bound to the request."""
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        assert q["client_id"] == CLIENT_ID and q["response_type"] == "code"
        assert q["code_challenge_method"] == "S256" and q["scope"] == "openid"
        code = f"code-{len(self.codes)}"
        self.codes[code] = q
        return {"code": code, "state": q["state"]}

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/oidc/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/authorize",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                },
            )
        if path == "/oidc/jwks":
            return httpx.Response(200, json=KeySet([self.key]).as_dict(private=False))
        if path == "/oidc/token":
            form = dict(urllib.parse.parse_qsl(request.content.decode()))
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {basic}":
                return httpx.Response(401, json={"error": "invalid_client"})
            asked = self.codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            )
            if (
                asked is None
                or asked["code_challenge"] != challenge
                or asked["redirect_uri"] != form.get("redirect_uri")
            ):
                return httpx.Response(400, json={"error": "invalid_grant"})
            now = int(time.time())
            claims = {
                "iss": ISSUER,
                "sub": "legal-person-1",
                "aud": self.audience,
                "iat": now,
                "exp": now + 300,
                "nonce": asked["nonce"],
                "uscc": self.uscc,
            }
            id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.sign_with)
            return httpx.Response(
                200,
                json={"access_token": "at", "token_type": "Bearer", "expires_in": 300, "id_token": id_token},
            )
        return httpx.Response(404)


@pytest.fixture
def oidc(template, tmp_path):  # type: ignore[no-untyped-def]
    w = copy_world(
        template,
        tmp_path,
        oidc_issuer=ISSUER,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
    )
    fake = FakeProvider()
    w.app.state.oidc = OidcProvider(w.app.state.settings, transport=httpx.MockTransport(fake.handle))
    yield w, fake
    w.app.state.engine.dispose()


def _go_to_provider(client: TestClient) -> str:
    r = client.get("/e/login/oidc", follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"].startswith(f"{ISSUER}/authorize?")
    return r.headers["location"]


def test_oidc_sign_in_with_pkce_state_and_nonce(oidc) -> None:  # type: ignore[no-untyped-def]
    w, fake = oidc
    client = TestClient(w.app)
    assert "使用统一身份认证登录" in client.get("/e/login").text
    back = fake.authorize(_go_to_provider(client))
    r = client.get("/e/login/oidc/callback", params=back, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/e", r.text
    assert A in client.get("/e").text
    with transaction(w.app.state.engine) as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.entity_id == A, AuditEvent.action == "login")
        ).all()
    assert events and '"via":"oidc"' in events[-1].data


def _refused_neutrally(r: Any, caplog: pytest.LogCaptureFixture, reason: str) -> bool:
    """The page says only that sign-in did not succeed; the reason is in the service's log alone."""
    logged = " ".join(str(getattr(record, "fields", {})) for record in caplog.records)
    return OIDC_FAILED in r.text and reason not in r.text and reason in logged


def test_oidc_refuses_a_wrong_state(oidc, caplog) -> None:  # type: ignore[no-untyped-def]
    w, fake = oidc
    client = TestClient(w.app)
    back = fake.authorize(_go_to_provider(client))
    r = client.get("/e/login/oidc/callback", params={**back, "state": "forged"}, follow_redirects=False)
    assert r.status_code == 401 and _refused_neutrally(r, caplog, "state") and "zhida_ent" not in r.cookies
    other = TestClient(w.app)  # another browser, without the flow cookie, with the right state
    r = other.get("/e/login/oidc/callback", params=back, follow_redirects=False)
    assert r.status_code == 401


def test_oidc_refuses_a_token_signed_with_another_key(oidc, caplog) -> None:  # type: ignore[no-untyped-def]
    w, fake = oidc
    fake.sign_with = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    client = TestClient(w.app)
    back = fake.authorize(_go_to_provider(client))
    r = client.get("/e/login/oidc/callback", params=back, follow_redirects=False)
    assert r.status_code == 401 and _refused_neutrally(r, caplog, "令牌无效") and "zhida_ent" not in r.cookies


def test_oidc_refuses_a_token_for_another_audience(oidc, caplog) -> None:  # type: ignore[no-untyped-def]
    w, fake = oidc
    fake.audience = "another-client"
    client = TestClient(w.app)
    back = fake.authorize(_go_to_provider(client))
    r = client.get("/e/login/oidc/callback", params=back, follow_redirects=False)
    assert r.status_code == 401 and _refused_neutrally(r, caplog, "令牌无效") and "zhida_ent" not in r.cookies


def test_oidc_refuses_a_token_without_a_valid_uscc(oidc, caplog) -> None:  # type: ignore[no-untyped-def]
    w, fake = oidc
    fake.uscc = NOBODY
    client = TestClient(w.app)
    back = fake.authorize(_go_to_provider(client))
    r = client.get("/e/login/oidc/callback", params=back, follow_redirects=False)
    assert r.status_code == 401 and _refused_neutrally(r, caplog, "统一社会信用代码有误")


# --- My policies ---


def _section(html: str, anchor: str) -> str:
    start = html.index(f'id="{anchor}"')
    end = html.find('<section class="box"', start)
    return html[start : end if end > 0 else None]


def test_my_policies_show_each_item_where_the_enterprise_stands(world: World) -> None:
    client = sign_in(world, A)
    html = client.get("/e").text
    matched = _section(html, "matched")
    assert "高新技术企业奖励（示例）" in matched and "150,000.00 元" in matched and "审核中" in matched
    assert "待初核" not in html  # staff words stay on staff pages
    near = _section(html, "near_miss")
    assert near.count('class="ent-item near-miss"') == 5
    wenbao = near[near.index('data-policy="c-wenbao"') :]
    assert "裁员率不高于5%" in wenbao and "裁员率为63.8%，本事项要求裁员率不高于5%。" in wenbao
    assert "高新技术企业" in near[near.index('data-policy="c-kexing"') :] or "科技型中小企业" in near
    ineligible = _section(html, "ineligible")
    assert "吸纳高校毕业生就业补贴（示例）" in ineligible and "研发" in ineligible
    assert 'id="missing"' in html and "暂无" in _section(html, "missing")


def test_another_regions_policy_is_not_listed_even_as_ineligible(world: World) -> None:
    # c-xinban is for 清江浦区 and 淮阴区 (region_code =~ "^32080[34]"): A in 320803 sees it (a near miss);
    # an enterprise in 宿迁 (321302) does not see it at all, not even under 不符合.
    assert "新办企业开办补贴（示例）" in _section(sign_in(world, A).get("/e").text, "near_miss")
    html = sign_in(world, "91321302N37DJHMYJR").get("/e").text
    assert "新办企业开办补贴（示例）" not in html
    assert "吸纳高校毕业生就业补贴（示例）" in html  # a policy for everywhere still is


def test_the_comparison_comes_from_the_run_itself_when_its_policy_folder_is_gone(world: World) -> None:
    # The manifest carries each condition's rule; the policy folder it names is only a fallback.
    with transaction(world.app.state.engine) as s:
        run = s.scalars(select(MatchRun).where(MatchRun.run_id == world.run_id)).one()
        manifest = json.loads(run.manifest)
        wenbao = next(p for p in manifest["policies"] if p["id"] == "c-wenbao")
        layoff = next(c for c in wenbao["conditions"] if c["id"] == "layoff")  # a shared condition
        assert layoff["rule"] == "layoff_rate <= 0.05"
        assert all("rule" in c for p in manifest["policies"] for i in p["items"] for c in i["conditions"])
        manifest["rules"]["path"] = str(world.root / "gone")  # the job's policy copy was deleted
        run.manifest = json.dumps(manifest, ensure_ascii=False)
    near = _section(sign_in(world, A).get("/e").text, "near_miss")
    assert "裁员率为63.8%，本事项要求裁员率不高于5%" in near[near.index('data-policy="c-wenbao"') :]


def test_missing_data_names_the_field_and_its_department(world: World) -> None:
    client = sign_in(world, B)
    missing = _section(client.get("/e").text, "missing")
    assert 'data-policy="c-wenbao"' in missing
    assert "严重失信主体" in missing and "发展和改革委员会（信用办）" in missing


def test_a_compact_run_is_read_as_it_is_without_a_cache_file(world: World) -> None:
    """A run of format 3 keeps its results compact: the enterprise pages read them directly, nothing is
    written per run (the cache file of older runs is gone)."""
    cache = world.app.state.standings.cache_root
    r = world.client.post("/api/runs", json={"snapshot": "conformance"}, headers=world.auth("reviewer"))
    assert r.status_code == 202, r.text
    assert world.run_jobs() == 1
    job = world.client.get(f"/api/runs/{r.json()['id']}", headers=world.auth("reviewer")).json()
    assert job["state"] == "done" and job["imported"] and job["run_id"] != world.run_id, job
    near = _section(sign_in(world, A).get("/e").text, "near_miss")
    assert "裁员率为63.8%，本事项要求裁员率不高于5%" in near
    assert not list(cache.glob("*.parquet")) if cache.exists() else True


# --- Timeline ---


def _offer_of(w: World, uscc: str, policy_id: str) -> str:
    from payouts.models import Offer

    with transaction(w.app.state.engine) as s:
        return s.scalars(
            select(Offer.public_id).where(Offer.uscc == uscc, Offer.policy_id == policy_id)
        ).one()


def test_the_timeline_follows_an_offer_to_the_bank(world: World) -> None:
    from tests.api.conftest import confirm_offer

    offer = _offer_of(world, A, "c-gaoxin")
    client = sign_in(world, A)
    page = client.get(f"/e/offers/{offer}").text
    assert "审核中" in page and "等待市科学技术局初核" in page and "150,000.00" in page
    links = world.notify("c-gaoxin")
    sms = [m for m in world.app.state.phone.sent if m.kind == "notice" and m.phone == "13999235777"][-1]
    page = client.get(f"/e/offers/{offer}").text
    assert "已通知" in page and "请打开短信中的链接确认领取" in page and "期限" in page
    path = sms.params["link"].removeprefix(world.app.state.settings.public_url)
    assert path in links and confirm_offer(TestClient(world.app), path).status_code == 200
    r = world.make_batch("c-gaoxin")
    assert r.status_code == 201, r.text
    ref = r.json()["reference"]
    page = client.get(f"/e/offers/{offer}").text
    assert f"批次 {ref}" in page and "等待复核" in page
    assert world.client.post(f"/api/batches/{ref}/approve", headers=world.auth("checker")).status_code == 200
    assert world.client.post(f"/api/batches/{ref}/export", headers=world.auth("checker")).status_code == 200
    staff = world.browser("checker")
    ret = staff.get(f"/demo/bank/{ref}/return.csv")
    assert ret.status_code == 200
    r = world.client.post(
        f"/api/batches/{ref}/return",
        files={"file": ("return.csv", ret.content, "text/csv")},
        headers=world.auth("checker"),
    )
    assert r.status_code == 200, r.text
    page = client.get(f"/e/offers/{offer}").text
    assert "已拨付" in page and "银行业务参考号 ZL" in page
    for label in (
        "数据比对匹配",
        "初核通过",
        "发送确认短信",
        "企业确认",
        "纳入拨付批次",
        "批次复核通过",
        "资金到账",
    ):
        assert label in page
    assert page.count('class="step-done') == 7


def test_a_failed_payment_shows_the_banks_reason(world: World) -> None:
    ref = confirmed_batch(world, "c-gaoxin")
    assert world.client.post(f"/api/batches/{ref}/approve", headers=world.auth("checker")).status_code == 200
    assert world.client.post(f"/api/batches/{ref}/export", headers=world.auth("checker")).status_code == 200
    ret = world.browser("checker").get(f"/demo/bank/{ref}/return.csv", params={"fail": 1})
    r = world.client.post(
        f"/api/batches/{ref}/return",
        files={"file": ("r.csv", ret.content, "text/csv")},
        headers=world.auth("checker"),
    )
    assert r.status_code == 200, r.text
    failed = r.json()["failures"][0]
    from payouts.models import Offer

    with transaction(world.app.state.engine) as s:
        uscc = s.scalars(select(Offer.uscc).where(Offer.public_id == failed[0])).one()
    page = sign_in(world, uscc).get(f"/e/offers/{failed[0]}").text
    assert "拨付失败" in page and "账户已销户" in page and "更正后将重新拨付" in page


# --- Only its own data ---


def test_an_enterprise_never_sees_another_enterprises_offer(world: World) -> None:
    mine, theirs = _offer_of(world, A, "c-gaoxin"), _offer_of(world, B, "c-gaoxin")
    a = sign_in(world, A)
    assert a.get(f"/e/offers/{mine}").status_code == 200
    r = a.get(f"/e/offers/{theirs}")
    assert r.status_code == 404 and B not in r.text
    assert a.get("/e/offers/00000000000000000000").status_code == 404  # the same answer as for no offer
    home = a.get("/e").text
    assert theirs not in home and B not in home and mine in home
    b = sign_in(world, B)
    assert b.get(f"/e/offers/{mine}").status_code == 404
    assert mine not in b.get("/e").text


def test_a_forged_or_foreign_session_cookie_is_refused(world: World) -> None:
    client = TestClient(world.app)
    staff_token = world.tokens["reviewer"]
    for value in ("forged", staff_token, world.app.state.tokens.csrf("enterprise", A)):
        client.cookies.set("zhida_ent", value)
        assert client.get("/e", follow_redirects=False).headers["location"] == "/e/login"


def test_the_demo_enterprise_has_an_offer_and_a_near_miss(shared: World) -> None:
    from portal.standings import MATCHED, NEAR_MISS, demo_enterprise

    standings = shared.app.state.standings
    with transaction(shared.app.state.engine) as s:
        who = demo_enterprise(s, standings)
        assert who is not None and who.phone
        statuses = {x.status for x in standings.standings(s, who.uscc)[1]}
    assert {MATCHED, NEAR_MISS} <= statuses
