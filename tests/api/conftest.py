"""Fixtures for the service tests: a real SQLite database and policy store, the conformance snapshot, one
staff user per role (and per department), and a match run already imported as offers.

The world is built once per session (policies published, match run done) and copied for each test that
changes it, so every test starts from the same state in a fraction of a second.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.auth import set_password
from api.settings import Settings
from payouts import signin, users
from payouts.db import transaction
from payouts.models import Offer, StaffUser

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT / "tests" / "conformance" / "snapshot"
POLICIES = ROOT / "tests" / "conformance" / "policies"
AS_OF = dt.date(2025, 9, 30)
PASSWORD = "correct-horse-battery"
SECRET = "test-secret-key-that-is-long-enough-0123456789"
SCI = "市科学技术局"  # c-gaoxin, c-kexing, c-yanfa
HR = "市人力资源和社会保障局"  # c-jiuye, c-wenbao
STAFF = {
    "sysadmin": ("system_admin", None),
    "secadmin": ("security_admin", None),
    "reviewer": ("reviewer", None),
    "reviewer_hr": ("reviewer", HR),
    "policy_sci": ("policy", SCI),
    "policy_hr": ("policy", HR),
    "maker": ("finance_maker", None),
    "maker2": ("finance_maker", None),
    "maker_hr": ("finance_maker", HR),
    "checker": ("finance_checker", None),
    "checker2": ("finance_checker", None),
    "checker_hr": ("finance_checker", HR),
    "auditor": ("auditor", None),
}


def settings_for(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{root / 'zhida.db'}",
        "data_dir": root / "web",
        "snapshots_root": root / "snapshots",
        "as_of": AS_OF,
        "secret_key": SECRET,
        "demo_phone": True,
        "public_url": "http://testserver",
        # The template's sessions are made once per test run: they must outlive a long run.
        "session_idle_minutes": 24 * 60,
        "session_max_hours": 72,
        # The examples' offers are dated 2025: a daily sweep at today's date would expire them all.
        "schedule": False,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class World:
    """One running service and what the tests need to know about its data."""

    root: Path
    app: FastAPI
    client: TestClient
    job_id: str
    run_id: str
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        """The headers of `user`'s API session."""
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def run_jobs(self) -> int:
        """Run the queued jobs (a match run, an SMS wave) as the service's worker would; how many ran."""
        return int(self.app.state.worker.drain())

    def offers(self, policy_id: str, state: str | None = None) -> list[str]:
        with transaction(self.app.state.engine) as s:
            query = select(Offer.public_id).where(Offer.policy_id == policy_id).order_by(Offer.id)
            if state:
                query = query.where(Offer.state == state)
            return list(s.scalars(query).all())

    def browser(self, user: str) -> TestClient:
        """A client signed in to the console with the session cookie."""
        client = TestClient(self.app)
        r = login(client, user, PASSWORD)
        assert r.status_code == 303, r.text
        return client

    def bulk(self, path: str, action: str, chosen: dict[str, Any], user: str = "reviewer") -> Any:
        """A bulk action as its user takes it: preview the chosen offers, then confirm that count and total."""
        headers = self.auth(user)
        seen = self.client.post("/api/review/preview", json={**chosen, "action": action}, headers=headers)
        assert seen.status_code == 200, seen.text
        expected = {"expected_count": seen.json()["count"], "expected_total": seen.json()["total"]}
        return self.client.post(path, json={**chosen, **expected}, headers=headers)

    def make_batch(self, policy_id: str, maker: str = "maker") -> Any:
        """Assemble a batch of a policy's ready offers with the count and total the maker saw."""
        ready = self.client.get("/api/batches/ready", headers=self.auth(maker)).json()
        row = next(r for r in ready if r["policy_id"] == policy_id)
        body = {"policy_id": policy_id, "expected_count": row["offers"], "expected_total": row["amount"]}
        return self.client.post("/api/batches", json=body, headers=self.auth(maker))

    def notify(self, policy_id: str) -> list[str]:
        """Release a policy's drafted offers and send their SMS; the links' paths (/c/<token>)."""
        before = len(self.app.state.phone.sent)
        chosen = {"filter": {"policy_id": policy_id}}
        r = self.bulk("/api/review/release", "release", chosen)
        assert r.status_code == 200, r.text
        r = self.bulk("/api/sms/send", "notify", chosen)
        assert r.status_code == 200, r.text
        base = self.app.state.settings.public_url
        return [m.params["link"].removeprefix(base) for m in self.app.state.phone.sent[before:]]


def confirm_form(html: str) -> tuple[str, dict[str, list[str]]]:
    """The action and hidden fields of a bulk action's confirmation page (the form of #confirm-action)."""
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', html.split("<main>")[1], re.S)
    assert form and 'id="confirm-action"' in form.group(2), "no confirmation form on the page"
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.group(2)):
        fields.setdefault(name, []).append(value)
    return form.group(1), fields


def hidden_fields(html: str, action: str, marker: str) -> dict[str, list[str]]:
    """The hidden fields of the form posting to `action` whose text contains `marker`."""
    for body in re.findall(
        rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S
    ):
        if marker in body:
            fields: dict[str, list[str]] = {}
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', body):
                fields.setdefault(name, []).append(value)
            return fields
    raise AssertionError(f"no form to {action} with {marker}")


def login(client: TestClient, username: str, password: str, next: str = "/console") -> Any:
    """Sign in on the console's login form, as a browser does: open the page, post it with its CSRF token."""
    page = client.get("/login")
    data = {"username": username, "password": password, "next": next, "csrf": csrf_of(page.text)}
    return client.post("/login", data=data, follow_redirects=False)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def _build(root: Path) -> tuple[str, str, dict[str, str]]:
    """Make the template world in `root`: users, published policies, one imported match run."""
    (root / "snapshots").mkdir(parents=True)
    (root / "snapshots" / "conformance").symlink_to(SNAPSHOT)
    app = create_app(settings_for(root))
    now = dt.datetime(2025, 9, 29, 1, 0, tzinfo=dt.UTC)
    with transaction(app.state.engine) as s:
        for name, (role, dept) in STAFF.items():
            users.create_user(s, name, role, department=dept, carry_over=True, now=now)
            set_password(s, name, PASSWORD, "system", now)
        app.state.store.seed(POLICIES, s, "system", now)
    with transaction(app.state.engine) as s:
        started = dt.datetime.now(dt.UTC)  # the service's clock: sessions are judged by real time
        tokens = {u.username: signin.start_session(s, u, started) for u in s.scalars(select(StaffUser)).all()}
    client = TestClient(app)
    r = client.post(
        "/api/runs",
        json={"snapshot": "conformance"},
        headers={"Authorization": f"Bearer {tokens['reviewer']}"},
    )
    assert r.status_code == 202, r.text
    assert app.state.worker.drain() == 1
    job = client.get(
        f"/api/runs/{r.json()['id']}", headers={"Authorization": f"Bearer {tokens['reviewer']}"}
    ).json()
    assert job["state"] == "done" and job["imported"], job
    app.state.engine.dispose()  # checkpoints the WAL, so that the file can be copied
    return job["id"], job["run_id"], tokens


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str, dict[str, str]]:
    root = tmp_path_factory.mktemp("template")
    return (root, *_build(root))


def copy_world(template: tuple[Path, str, str, dict[str, str]], root: Path, **overrides: Any) -> World:
    source, job_id, run_id, tokens = template
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "zhida.db", root / "zhida.db")
    shutil.copytree(source / "web", root / "web")
    (root / "snapshots").mkdir()
    (root / "snapshots" / "conformance").symlink_to(SNAPSHOT)
    app = create_app(settings_for(root, **overrides))
    return World(root, app, TestClient(app), job_id, run_id, dict(tokens))


@pytest.fixture
def world(template: tuple[Path, str, str, dict[str, str]], tmp_path: Path) -> Iterator[World]:
    """A fresh copy of the template world, for a test that changes things."""
    w = copy_world(template, tmp_path)
    yield w
    w.app.state.engine.dispose()


@pytest.fixture(scope="module")
def shared(
    template: tuple[Path, str, str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One copy for a whole module of tests that only read, or are refused."""
    w = copy_world(template, tmp_path_factory.mktemp("shared"))
    yield w
    w.app.state.engine.dispose()


def confirm_offer(client: TestClient, path: str) -> Any:
    """Open an SMS link's page and press 确认领取, as the enterprise's phone would."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(f"{path}/confirm", data={"csrf": csrf_of(page.text)})


def confirmed_batch(w: World, policy_id: str = "c-gaoxin", maker: str = "maker") -> str:
    """Notify a policy's offers, have the first enterprise confirm, and assemble a batch; its reference."""
    links = w.notify(policy_id)
    assert confirm_offer(TestClient(w.app), links[0]).status_code == 200
    r = w.make_batch(policy_id, maker)
    assert r.status_code == 201, r.text
    return r.json()["reference"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium under Playwright; the browser tests skip without it, except in CI (.ci/run
    installs it)."""
    from tests.api.browser import ARGS, CHROMIUM, SHOTS

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise RuntimeError("chromium is not installed: .ci/run installs the Debian packages chromium")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()
