"""The service as a whole: sign-in, sessions, CSRF on cookie sessions, problem+json, request ids,
settings that refuse unsafe production values, the OpenAPI schema, and `zhida users`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from api.auth import set_password
from api.commands import users as users_cmd
from api.settings import Settings
from payouts.db import transaction
from tests.api.conftest import PASSWORD, World, copy_world, csrf_of, login


def test_sign_in_gives_a_bearer_token_and_bad_passwords_are_refused_alike(shared: World) -> None:
    c = shared.client
    ok = c.post("/api/session", json={"username": "auditor", "password": PASSWORD})
    assert ok.status_code == 200
    me = c.get("/api/me", headers={"Authorization": f"Bearer {ok.json()['token']}"}).json()
    assert me == {
        "username": "auditor",
        "display_name": "auditor",
        "role": "auditor",
        "role_label": "安全审计员",
        "department": None,
    }
    wrong = c.post("/api/session", json={"username": "auditor", "password": "nope-nope-nope"})
    nobody = c.post("/api/session", json={"username": "nobody", "password": "nope-nope-nope"})
    assert wrong.status_code == nobody.status_code == 401
    assert wrong.json()["detail"] == nobody.json()["detail"] == "用户名或密码错误"
    assert c.get("/api/me", headers={"Authorization": "Bearer forged.token.here"}).status_code == 401


def test_sign_in_attempts_are_limited(template, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    w = copy_world(template, tmp_path / "w", login_limit=3)
    codes = [
        w.client.post(
            "/api/session", json={"username": "sysadmin", "password": "guess-guess-guess"}
        ).status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    # Even the right password waits now.
    assert (
        w.client.post("/api/session", json={"username": "sysadmin", "password": PASSWORD}).status_code == 429
    )


def test_a_new_password_ends_the_old_sessions(world: World) -> None:
    headers = world.auth("auditor")
    assert world.client.get("/api/me", headers=headers).status_code == 200
    with transaction(world.app.state.engine) as s:
        set_password(s, "auditor", "another-long-password", "sysadmin", dt.datetime.now(dt.UTC))
    assert world.client.get("/api/me", headers=headers).status_code == 401


def test_cookie_sessions_need_the_csrf_token_to_change_anything(shared: World) -> None:
    browser = shared.browser("reviewer")
    page = browser.get("/console/review")
    offer = shared.offers("c-kexing", "drafted")[0]
    amount = shared.client.get(f"/api/offers/{offer}", headers=shared.auth("reviewer")).json()["amount"]
    body = {"offers": [offer], "reason": "x", "expected_count": 1, "expected_total": amount}
    assert browser.post("/api/review/hold", json=body).status_code == 403
    assert browser.post("/api/review/hold", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert (
        browser.post(
            "/console/review/action", data={"action": "hold", "offer": offer, "reason": "x"}
        ).status_code
        == 403
    )
    assert (
        shared.client.get(f"/api/offers/{offer}", headers=shared.auth("reviewer")).json()["state"]
        == "drafted"
    )
    ok = browser.post("/api/review/hold", json=body, headers={"X-CSRF-Token": csrf_of(page.text)})
    assert ok.status_code == 200


def test_login_page_only_redirects_within_the_site(shared: World) -> None:
    r = login(TestClient(shared.app), "auditor", PASSWORD, next="//evil.example/x")
    assert r.headers["location"] == "/console"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_errors_are_problem_details_with_the_request_id(shared: World) -> None:
    r = shared.client.get(
        "/api/offers/doesnotexist", headers={**shared.auth("reviewer"), "X-Request-ID": "abc-123"}
    )
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["x-request-id"] == "abc-123"
    assert r.json() == {
        "type": "about:blank",
        "title": "不存在",
        "status": 404,
        "detail": "没有要约 doesnotexist",
        "instance": "/api/offers/doesnotexist",
        "request_id": "abc-123",
    }
    bad = shared.client.get("/api/offers?limit=0", headers=shared.auth("reviewer"))
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "limit"]
    generated = shared.client.get("/api/me", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["x-request-id"]) == 32


def test_production_refuses_unsafe_settings() -> None:
    with pytest.raises(ValidationError) as e:
        Settings(env="production")
    message = str(e.value)
    assert "ZHIDA_SECRET_KEY" in message and "SQLite" in message and "ZHIDA_COOKIE_SECURE" in message
    assert "ZHIDA_LINK_KEY" in message
    with pytest.raises(ValidationError, match="ZHIDA_DEMO_PHONE"):
        Settings(
            env="production",
            secret_key="x" * 40,
            database_url="postgresql://db/zhida",
            cookie_secure=True,
            public_url="https://zd.example.gov.cn",
            demo_phone=True,
        )
    ok = Settings(
        env="production",
        secret_key="x" * 40,
        audit_key="k" * 40,
        link_key="l" * 40,
        audit_checkpoint_dir="/srv/zhida-checkpoints",
        database_url="postgresql://db/zhida",
        cookie_secure=True,
        public_url="https://zd.example.gov.cn",
    )
    assert ok.confirm_link_base == "https://zd.example.gov.cn/c/"
    assert Settings().secret_key.get_secret_value() != "change-me"  # development: a random key per process


def test_the_openapi_schema_documents_every_error_as_problem_json(shared: World) -> None:
    schema = shared.client.get("/openapi.json").json()
    assert "Problem" in schema["components"]["schemas"]
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for op in operations.values():
            codes = set(op["responses"])
            if path.startswith("/api") and path != "/api/session":
                assert {"401", "403", "404", "422"} <= codes, path
                assert op["responses"]["403"]["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
    assert not any(p.startswith("/console") for p in schema["paths"])


def test_users_add_creates_a_user_who_can_sign_in(template, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    w = copy_world(template, tmp_path / "w")
    monkeypatch.setenv("ZHIDA_DATABASE_URL", w.app.state.settings.database_url)
    # The system administrator proves who they are once, with their password, and acts by the token.
    issued = CliRunner().invoke(
        users_cmd.app, ["token", "sysadmin", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert issued.exit_code == 0, issued.output
    token_value = issued.output.split("ZHIDA_STAFF_TOKEN=")[1].split()[0]
    runner = CliRunner(env={"ZHIDA_STAFF_TOKEN": token_value})
    r = runner.invoke(
        users_cmd.app,
        ["add", "zhang", "--role", "policy", "--department", "市科学技术局", "--password-stdin"],
        input="a-very-long-password\n",
    )
    assert r.exit_code == 0, r.output
    assert "已新增用户 zhang" in r.output
    token = w.client.post("/api/session", json={"username": "zhang", "password": "a-very-long-password"})
    assert token.status_code == 200 and token.json()["user"]["department"] == "市科学技术局"
    no_department = runner.invoke(
        users_cmd.app, ["add", "li", "--role", "policy", "--password-stdin"], input="x" * 12 + "\n"
    )
    assert no_department.exit_code != 0
    short = runner.invoke(
        users_cmd.app, ["add", "wang", "--role", "auditor", "--password-stdin"], input="short\n"
    )
    assert short.exit_code != 0
    listed = runner.invoke(users_cmd.app, ["list"])
    assert "zhang" in listed.output and "wang" not in listed.output
