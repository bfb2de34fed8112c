"""Separation of duties (三员分立): the system administrator manages users, the security administrator
reviews roles, unlocks accounts and keeps the security settings, the auditor reads and verifies the audit
log; no role both administers and moves money, none both administers and audits, and nobody can change
their own role. The old all-powerful `admin` becomes a system administrator without any money right.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select, text
from sqlmodel import Session

from api.deps import ACCESS
from payouts import offers, users
from payouts.db import make_engine, migrate, transaction
from payouts.errors import RoleError
from payouts.models import Role, StaffUser
from tests.api.conftest import World

# What moves money or decides who is paid, and what administers; the spec, independent of the code's sets.
MONEY = {
    "import",
    "review",
    "correct_account",
    "approve_account_change",
    "batch_make",
    "batch_check",
    "bank_files",
    "data_verify",
    "notice_open",
    "objection_resolve",
}
MONEY_ACTIONS = {"run_start", "review", "sms_send", "batch_make", "batch_check", "bank_files", "notice_open"}
ADMINISTERS = {"manage_users", "review_roles", "unlock_accounts", "security_settings"}
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def granted(role: Role) -> set[str]:
    return {p for p, roles in users.PERMISSIONS.items() if role in roles}


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_no_role_both_administers_and_moves_money_or_audits(role: Role) -> None:
    mine = granted(role)
    if mine & ADMINISTERS:
        assert not mine & MONEY, (role, mine & MONEY)
        assert "audit" not in mine, role
        assert not {a for a in MONEY_ACTIONS if role in ACCESS[a]}, role
    if "manage_users" in mine:
        assert not mine & (ADMINISTERS - {"manage_users"}), "users and security are two people's duties"


def test_each_duty_has_its_own_role() -> None:
    assert users.PERMISSIONS["manage_users"] == {Role.SYSTEM_ADMIN}
    assert users.PERMISSIONS["unlock_accounts"] == {Role.SECURITY_ADMIN}
    assert users.PERMISSIONS["audit"] == {Role.AUDITOR}
    assert users.ROLE_LABELS[Role.SYSTEM_ADMIN] == "系统管理员"
    assert users.ROLE_LABELS[Role.SECURITY_ADMIN] == "安全管理员"
    assert users.ROLE_LABELS[Role.AUDITOR] == "安全审计员"


def test_the_system_administrator_cannot_release_offers_or_read_them(world: World) -> None:
    drafted = world.offers("c-gaoxin", "drafted")
    body = {"offers": drafted[:1], "expected_count": 1, "expected_total": "0.00"}
    r = world.client.post("/api/review/release", json=body, headers=world.auth("sysadmin"))
    assert r.status_code == 403 and r.json()["title"] == "无权操作"
    assert world.client.get("/api/offers", headers=world.auth("sysadmin")).status_code == 403
    with transaction(world.app.state.engine) as s, pytest.raises(RoleError, match="系统管理员"):
        offers.release(s, "sysadmin", NOW, public_ids=drafted[:1])
    assert world.offers("c-gaoxin", "drafted") == drafted


def test_the_auditor_can_verify_but_cannot_change_anything(world: World) -> None:
    assert world.client.get("/api/audit/verify", headers=world.auth("auditor")).status_code == 200
    for permission, roles in users.PERMISSIONS.items():
        assert Role.AUDITOR not in roles or permission == "audit", permission
    changing = [
        (method.upper(), path)
        for path, ops in world.app.openapi()["paths"].items()
        if path.startswith("/api") and path != "/api/session"
        for method in ops
        if method.upper() in ("POST", "PUT", "PATCH", "DELETE")
    ]
    assert len(changing) > 15
    offer = world.offers("c-gaoxin")[0]
    for method, path in changing:
        concrete = path.format_map(
            defaultdict(
                lambda: "nosuch", public_id=offer, reference="ZDNOSUCHBATCH", policy_id="c-gaoxin", version=2
            )
        )
        r = world.client.request(method, concrete, json={}, headers=world.auth("auditor"))
        assert r.status_code in (403, 404), (method, path, r.status_code, r.text)
    assert world.offers("c-gaoxin")[0] == offer


def test_nobody_can_change_their_own_role_or_account(world: World) -> None:
    with transaction(world.app.state.engine) as s:
        with pytest.raises(RoleError, match="不能更改自己"):
            users.set_role(s, "sysadmin", "finance_checker", by="sysadmin", now=NOW)
        with pytest.raises(RoleError, match="不能停用或启用自己"):
            users.set_active(s, "sysadmin", False, by="sysadmin", now=NOW)
        with pytest.raises(RoleError, match="系统管理员"):  # a reviewer raising themselves: no right at all
            users.set_role(s, "reviewer", "system_admin", by="reviewer", now=NOW)
        with pytest.raises(RoleError, match="系统管理员"):  # nor may the security administrator
            users.set_role(s, "secadmin", "system_admin", by="secadmin", now=NOW)
    with transaction(world.app.state.engine) as s:
        roles = dict(s.execute(select(StaffUser.username, StaffUser.role)).tuples().all())
    assert roles["sysadmin"] == "system_admin" and roles["reviewer"] == "reviewer"
    assert roles["secadmin"] == "security_admin"


def test_a_system_administrator_changes_someone_elses_role_audited(world: World) -> None:
    with transaction(world.app.state.engine) as s:
        users.set_role(s, "maker2", "finance_checker", by="sysadmin", now=NOW)
    with transaction(world.app.state.engine) as s:
        assert users.get_user(s, "maker2").role == "finance_checker"
        events = s.execute(
            text("SELECT actor, from_state, to_state FROM audit_event WHERE action = 'set_role'")
        ).all()
    assert [tuple(e) for e in events] == [("sysadmin", "finance_maker", "finance_checker")]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"zhida_sod_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_existing_admins_become_system_administrators_without_money_rights(empty_url: str) -> None:
    engine = make_engine(empty_url)
    migrate(engine, "0004")
    with engine.begin() as c:  # an installation of yesterday: one admin, who has made a batch
        c.execute(
            text(
                "INSERT INTO staff_user (username, display_name, role, active, created_at) "
                "VALUES ('old-admin', '管理员', 'admin', true, :t)"
            ),
            {"t": NOW},
        )
        c.execute(
            text(
                "INSERT INTO batch (reference, policy_id, period, state, maker_id, line_count, total, payer_name, "
                "payer_account, payer_bank, purpose, created_at) SELECT 'ZDOLD', 'p', '2025', 'rejected', id, 0, 0, "
                "'x', 'x', 'x', 'x', :t FROM staff_user"
            ),
            {"t": NOW},
        )
    migrate(engine)
    try:
        with Session(engine) as s:
            assert users.get_user(s, "old-admin").role == "system_admin"
            users.require(s, "old-admin", "manage_users")
            for permission in MONEY | {"audit"}:
                with pytest.raises(RoleError):
                    users.require(s, "old-admin", permission)
        with engine.begin() as c, pytest.raises(Exception, match="ck_staff_user_role"):
            c.execute(text("UPDATE staff_user SET role = 'admin'"))
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM batch")).scalar_one() == 1
    finally:
        engine.dispose()


def test_the_console_shows_each_role_in_chinese_to_the_administrators(world: World) -> None:
    with transaction(world.app.state.engine) as s:
        users.set_role(s, "maker2", "finance_checker", by="sysadmin", now=NOW)
    for admin in ("sysadmin", "secadmin"):
        browser = world.browser(admin)
        home = browser.get("/console")
        assert (
            home.status_code == 200 and "/console/users" in home.text and "/console/review" not in home.text
        )
        page = browser.get("/console/users").text
        for label in ("系统管理员", "安全管理员", "安全审计员", "资金拨付（复核）", "初核"):
            assert label in page, (admin, label)
        assert "更改角色" in page and "资金拨付（制单）" in page  # maker2's change, for review
    assert world.browser("maker").get("/console/users").status_code == 403
