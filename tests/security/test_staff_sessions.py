"""Staff sessions that end: a signed-out session, an idle one or an old one opens nothing, whether it is
presented as the console's cookie or as a bearer token; disabling a user ends their sessions at once.

Attack: before, `POST /logout` only asked the browser to forget its cookie; anyone who had copied the
value (a shared machine, a proxy log, a stolen bearer token) kept using it for eight hours.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.deps import SESSION_COOKIE
from payouts import users
from payouts.db import transaction
from payouts.models import StaffSession, StaffUser
from payouts.signin import token_digest
from tests.api.conftest import PASSWORD, World, copy_world, csrf_of, login

T0 = dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC)


class Clock:
    """The service's clock, moved by the test."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += dt.timedelta(**delta)


def _world(template: Any, tmp_path: Path, **settings: Any) -> tuple[World, Clock]:
    # The defaults a deployment gets: 30 minutes idle, 8 hours at most.
    w = copy_world(template, tmp_path / "w", session_idle_minutes=30, session_max_hours=8, **settings)
    clock = Clock(T0)
    w.app.state.clock = clock
    return w, clock


def _api_token(w: World, user: str = "auditor") -> str:
    r = w.client.post("/api/session", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return str(r.json()["token"])


def _me(w: World, token: str) -> int:
    return w.client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_signing_out_ends_the_session_for_the_cookie_and_the_bearer_token(world: World) -> None:
    browser = TestClient(world.app)
    assert login(browser, "reviewer", PASSWORD).status_code == 303
    stolen = browser.cookies[SESSION_COOKIE]
    page = browser.get("/console")
    assert page.status_code == 200
    out = browser.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    # The copied value opens nothing any more: not the console (to the login page) ...
    replay = TestClient(world.app, cookies={SESSION_COOKIE: stolen})
    r = replay.get("/console", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    # ... and not the API as a bearer token.
    assert _me(world, stolen) == 401


def test_signing_out_of_the_api_ends_the_bearer_token(world: World) -> None:
    token = _api_token(world)
    assert _me(world, token) == 200
    r = world.client.delete("/api/session", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204
    assert _me(world, token) == 401


def test_a_session_ends_after_thirty_idle_minutes(template: Any, tmp_path: Path) -> None:
    w, clock = _world(template, tmp_path)
    token = _api_token(w)
    clock.advance(minutes=29)
    assert _me(w, token) == 200  # in use: the idle time starts again
    clock.advance(minutes=29)
    assert _me(w, token) == 200
    clock.advance(minutes=31)
    assert _me(w, token) == 401
    w.app.state.engine.dispose()


def test_a_session_ends_eight_hours_after_sign_in_however_busy(template: Any, tmp_path: Path) -> None:
    w, clock = _world(template, tmp_path)
    token = _api_token(w)
    for _ in range(23):  # a request every 20 minutes for 7 h 40 min
        clock.advance(minutes=20)
        assert _me(w, token) == 200
    clock.advance(minutes=19)
    assert _me(w, token) == 200  # 7 h 59 min
    clock.advance(minutes=2)
    assert _me(w, token) == 401  # 8 h 01 min, though it was used a minute ago
    w.app.state.engine.dispose()


def test_the_session_cookie_ends_with_the_browser_and_stays_out_of_scripts(
    template: Any, tmp_path: Path
) -> None:
    w, _ = _world(template, tmp_path, cookie_secure=True)
    r = login(TestClient(w.app, base_url="https://testserver"), "auditor", PASSWORD)
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}="))
    attributes = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert "max-age" not in attributes and "expires" not in attributes  # a session cookie
    assert {"httponly", "secure", "samesite"} <= attributes
    w.app.state.engine.dispose()


def test_disabling_a_user_ends_their_sessions_at_once(world: World) -> None:
    token = _api_token(world, "reviewer")
    browser = world.browser("reviewer")
    with transaction(world.app.state.engine) as s:
        users.set_active(s, "reviewer", False, by="sysadmin", now=dt.datetime.now(dt.UTC))
    assert _me(world, token) == 401
    assert browser.get("/console", follow_redirects=False).status_code == 303
    with transaction(world.app.state.engine) as s:
        reasons = set(
            s.scalars(
                select(StaffSession.end_reason)
                .join(StaffUser, StaffUser.id == StaffSession.user_id)
                .where(StaffUser.username == "reviewer")
            )
        )
    assert reasons == {"disabled"}


def test_reads_record_activity_at_most_once_a_minute_outside_their_read_only_transaction(
    template: Any, tmp_path: Path
) -> None:
    w, clock = _world(template, tmp_path)
    token = _api_token(w)

    def last_seen() -> dt.datetime:
        with transaction(w.app.state.engine) as s:
            query = select(StaffSession.last_seen_at).where(StaffSession.token_hash == token_digest(token))
            return s.execute(query).scalar_one()

    clock.advance(seconds=30)
    assert _me(w, token) == 200
    assert last_seen() == T0  # not yet worth a write
    clock.advance(seconds=60)
    assert _me(w, token) == 200  # a GET: its own transaction is read-only, and still the time is kept
    assert last_seen() == T0 + dt.timedelta(seconds=90)
    w.app.state.engine.dispose()


def test_a_copy_of_the_database_holds_no_usable_session_token(world: World) -> None:
    token = _api_token(world)
    with transaction(world.app.state.engine) as s:
        stored = [str(v) for row in s.execute(select(StaffSession)).all() for v in vars(row[0]).values()]
    assert not any(token in value for value in stored)
