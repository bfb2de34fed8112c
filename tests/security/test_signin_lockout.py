"""Guessing staff passwords: lockout in the database, forwarded addresses only from trusted proxies, the
sign-in audit, CSRF on the sign-in form, and the staff password policy.

Attacks: before, the only brake was an in-memory count per address and name, lost at every restart and
per worker, keyed on an address anyone could choose with `X-Forwarded-For` (uvicorn believed it from
127.0.0.1, where a local proxy or the attacker's tunnel sits); a sign-in left no trace; any site could post
the sign-in form; `password12345` was a good enough password.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from api.app import create_app
from api.auth import set_password
from api.commands import users as users_cmd
from api.commands.serve import server_config
from api.deps import SESSION_COOKIE
from payouts import stafftokens
from payouts.db import transaction
from payouts.errors import RoleError
from payouts.models import AuditEvent
from payouts.passwords import PasswordPolicyError
from tests.api.conftest import PASSWORD, World, copy_world, csrf_of, login

WRONG = "not-the-password-1"


def _try(w: World | TestClient, user: str, password: str, **headers: str) -> int:
    client = w.client if isinstance(w, World) else w
    return client.post(
        "/api/session", json={"username": user, "password": password}, headers=headers
    ).status_code


def _events(w: World, *actions: str) -> list[AuditEvent]:
    with transaction(w.app.state.engine) as s:
        query = select(AuditEvent).where(AuditEvent.entity == "user", AuditEvent.action.in_(actions))
        return list(s.scalars(query.order_by(AuditEvent.seq)).all())


def test_five_wrong_passwords_lock_the_account_in_the_database_across_restarts(
    template: Any, tmp_path: Path
) -> None:
    w = copy_world(template, tmp_path / "w", login_limit=1000)  # the in-memory brake is not what stops it
    codes = [_try(w, "reviewer", f"{WRONG}{i}") for i in range(5)]
    assert codes == [401, 401, 401, 401, 423]
    assert _try(w, "reviewer", PASSWORD) == 423  # the right password is refused too
    # Another worker, or the service after a restart: a new application on the same database.
    again = TestClient(create_app(w.app.state.settings))
    r = again.post("/api/session", json={"username": "reviewer", "password": PASSWORD})
    assert r.status_code == 423 and "锁定" in r.json()["detail"]
    page = TestClient(w.app)
    assert login(page, "reviewer", PASSWORD).status_code == 423 and SESSION_COOKIE not in page.cookies
    assert _try(w, "auditor", PASSWORD) == 200  # other accounts are untouched


def test_failures_further_apart_than_the_window_do_not_add_up(template: Any, tmp_path: Path) -> None:
    w = copy_world(template, tmp_path / "w", login_limit=1000)
    at = [dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)]
    w.app.state.clock = lambda: at[0]
    assert [_try(w, "reviewer", WRONG) for _ in range(4)] == [401] * 4
    at[0] += dt.timedelta(minutes=16)
    assert [_try(w, "reviewer", WRONG) for _ in range(4)] == [401] * 4
    assert _try(w, "reviewer", PASSWORD) == 200


def test_a_security_administrator_unlocks_and_every_step_is_audited(
    template: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = copy_world(template, tmp_path / "w", login_limit=1000)
    assert _try(w, "nobody", WRONG) == 401
    for _ in range(5):
        _try(w, "reviewer", WRONG, **{"X-Forwarded-For": "203.0.113.9"})
    monkeypatch.setenv("ZHIDA_DATABASE_URL", w.app.state.settings.database_url)
    runner = CliRunner()
    with transaction(w.app.state.engine) as s:
        cli_tokens = {
            name: stafftokens.issue(s, name, dt.datetime.now(dt.UTC)) for name in ("sysadmin", "secadmin")
        }
    monkeypatch.setenv(stafftokens.TOKEN_ENV, cli_tokens["sysadmin"])
    refused = runner.invoke(users_cmd.app, ["unlock", "reviewer"])
    assert isinstance(refused.exception, RoleError)  # managing users is not unlocking them (三员分立)
    monkeypatch.setenv(stafftokens.TOKEN_ENV, cli_tokens["secadmin"])
    ok = runner.invoke(users_cmd.app, ["unlock", "reviewer"])
    assert ok.exit_code == 0 and "已解锁" in ok.output
    token = w.client.post("/api/session", json={"username": "reviewer", "password": PASSWORD}).json()["token"]
    assert w.client.delete("/api/session", headers={"Authorization": f"Bearer {token}"}).status_code == 204

    events = _events(w, "sign_in_failed", "lock", "unlock", "sign_in", "sign_out")
    seen = [(e.action, e.entity_id, e.actor) for e in events]
    assert seen == [
        ("sign_in_failed", "nobody", "anonymous"),  # an unknown name is recorded as given
        *[("sign_in_failed", "reviewer", "anonymous")] * 5,
        ("lock", "reviewer", "system"),
        ("unlock", "reviewer", "secadmin"),
        ("sign_in", "reviewer", "reviewer"),
        ("sign_out", "reviewer", "reviewer"),
    ]
    # Where each attempt came from (the peer: X-Forwarded-For from an untrusted peer is ignored) ...
    assert {json.loads(e.data)["ip"] for e in events if e.action != "unlock"} == {"testclient"}
    # ... and never the password tried.
    assert not any(WRONG in (e.data + (e.reason or "")) for e in events)


def test_forwarded_addresses_count_only_from_a_trusted_proxy(template: Any, tmp_path: Path) -> None:
    w = copy_world(template, tmp_path / "w", login_limit=2, trusted_proxies="10.0.0.0/24")
    stranger = TestClient(w.app, client=("198.51.100.7", 40000))
    # A stranger naming a new address each time is still one address: the brake holds.
    codes = [_try(stranger, "auditor", WRONG, **{"X-Forwarded-For": f"192.0.2.{i}"}) for i in range(3)]
    assert codes == [401, 401, 429]
    # Behind the proxy, each client is told apart by the address the proxy saw.
    proxy = TestClient(w.app, client=("10.0.0.2", 40000))
    assert _try(proxy, "checker", WRONG, **{"X-Forwarded-For": "203.0.113.1"}) == 401
    assert _try(proxy, "checker", WRONG, **{"X-Forwarded-For": "198.51.100.7, 203.0.113.2"}) == 401
    ips = [json.loads(e.data)["ip"] for e in _events(w, "sign_in_failed")]
    assert ips == ["198.51.100.7", "198.51.100.7", "203.0.113.1", "203.0.113.2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _served(w: World) -> Iterator[str]:
    port = _free_port()
    server = uvicorn.Server(server_config(w.app, "127.0.0.1", port, 1.0))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_the_served_service_ignores_x_forwarded_for_from_localhost(template: Any, tmp_path: Path) -> None:
    """uvicorn, as `zhida serve` runs it, does not rewrite the client from X-Forwarded-For (it would, by
    default, for a peer at 127.0.0.1)."""
    w = copy_world(template, tmp_path / "w", login_limit=2)
    with _served(w) as base:
        codes = [
            httpx.post(
                f"{base}/api/session",
                json={"username": "auditor", "password": WRONG},
                headers={"X-Forwarded-For": f"192.0.2.{i}"},
            ).status_code
            for i in range(3)
        ]
    assert codes == [401, 401, 429]
    assert {json.loads(e.data)["ip"] for e in _events(w, "sign_in_failed")} == {"127.0.0.1"}


def test_the_sign_in_form_is_refused_without_its_csrf_token(shared: World) -> None:
    browser = TestClient(shared.app)
    forged = browser.post(
        "/login", data={"username": "auditor", "password": PASSWORD}, follow_redirects=False
    )
    assert forged.status_code == 403 and SESSION_COOKIE not in browser.cookies
    # A token from another browser (the attacker's own page load) does not fit this browser's nonce.
    theirs = csrf_of(TestClient(shared.app).get("/login").text)
    browser.get("/login")
    data = {"username": "auditor", "password": PASSWORD, "csrf": theirs}
    assert browser.post("/login", data=data, follow_redirects=False).status_code == 403
    assert SESSION_COOKIE not in browser.cookies
    assert login(browser, "auditor", PASSWORD).status_code == 303


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short-pw-1", "至少 12 个字符"),
        ("my-auditor-passphrase", "不能包含用户名"),
        ("password12345", "过于常见"),
        ("Qwertyuiop!2024", "过于常见"),
        ("1qaz2wsx3edc", "过于常见"),
        ("woaini1314520", "过于常见"),
        ("aaaaaaaaaaaaaa", "过于常见"),
        ("138001380001", "全是数字"),
    ],
)
def test_weak_staff_passwords_are_refused_with_the_reason(world: World, password: str, why: str) -> None:
    with pytest.raises(PasswordPolicyError, match=why), transaction(world.app.state.engine) as s:
        set_password(s, "auditor", password, "admin", dt.datetime.now(dt.UTC))
    assert _try(world, "auditor", PASSWORD) == 200  # the old password still stands


def test_users_add_refuses_a_common_password(
    template: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = copy_world(template, tmp_path / "w")
    monkeypatch.setenv("ZHIDA_DATABASE_URL", w.app.state.settings.database_url)
    with transaction(w.app.state.engine) as s:
        monkeypatch.setenv(stafftokens.TOKEN_ENV, stafftokens.issue(s, "sysadmin", dt.datetime.now(dt.UTC)))
    r = CliRunner().invoke(
        users_cmd.app, ["add", "zhao", "--role", "auditor", "--password-stdin"], input="iloveyou1234\n"
    )
    assert isinstance(r.exception, PasswordPolicyError) and "过于常见" in str(r.exception)
    assert _try(w, "zhao", "iloveyou1234") == 401  # no user was added


def test_cli_tokens_obey_the_same_lockout(
    template: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = copy_world(template, tmp_path / "w")
    monkeypatch.setenv("ZHIDA_DATABASE_URL", w.app.state.settings.database_url)
    runner = CliRunner()
    for _ in range(5):
        wrong = runner.invoke(users_cmd.app, ["token", "reviewer", "--password-stdin"], input=f"{WRONG}\n")
        assert isinstance(wrong.exception, RoleError)
    locked = runner.invoke(users_cmd.app, ["token", "reviewer", "--password-stdin"], input=f"{PASSWORD}\n")
    assert isinstance(locked.exception, RoleError) and "锁定" in str(locked.exception)
    assert _try(w, "reviewer", PASSWORD) == 423  # and the sign-in page agrees
