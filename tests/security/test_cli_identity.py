"""The CLI's actor is an authenticated identity, not a name anyone can type: a command that changes
offers, batches, accounts or users acts as the owner of the staff token in ZHIDA_STAFF_TOKEN, issued by
`zhida users token NAME` for that user's password and stored only as a hash. Without one it is refused
with a message saying how to get one; `--by someone` (or the old ZHIDA_USER) cannot claim another user.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from api.auth import set_password
from api.commands import offers as offers_cmd
from api.commands import users as users_cmd
from payouts.db import transaction
from payouts.errors import RoleError
from payouts.models import StaffToken
from tests.api.conftest import PASSWORD, World, copy_world


@pytest.fixture
def cli_world(template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:  # type: ignore[no-untyped-def]
    w = copy_world(template, tmp_path / "w")
    monkeypatch.setenv("ZHIDA_DATABASE_URL", w.app.state.settings.database_url)
    monkeypatch.delenv("ZHIDA_STAFF_TOKEN", raising=False)
    monkeypatch.delenv("ZHIDA_USER", raising=False)
    return w


def token_of(user: str, password: str = PASSWORD) -> str:
    r = CliRunner().invoke(users_cmd.app, ["token", user, "--password-stdin"], input=password + "\n")
    assert r.exit_code == 0, r.output
    return r.output.split("ZHIDA_STAFF_TOKEN=")[1].split()[0]


def hold(w: World, offer: str, env: dict[str, str], *extra: str):  # type: ignore[no-untyped-def]
    args = [
        "hold",
        offer,
        "--reason",
        "核实中",
        "--expect-count",
        "1",
        "--expect-total",
        _amount(w, offer),
        *extra,
    ]
    return CliRunner(env=env).invoke(offers_cmd.app, args)


def _amount(w: World, offer: str) -> str:
    return str(w.client.get(f"/api/offers/{offer}", headers=w.auth("auditor")).json()["amount"])


def _state(w: World, offer: str) -> str:
    return w.client.get(f"/api/offers/{offer}", headers=w.auth("auditor")).json()["state"]


def test_a_command_without_an_identity_is_refused_and_says_how_to_get_one(cli_world: World) -> None:
    offer = cli_world.offers("c-gaoxin", "drafted")[0]
    for env in ({}, {"ZHIDA_USER": "reviewer"}, {"ZHIDA_STAFF_TOKEN": "zst_forged-token-value"}):
        r = hold(cli_world, offer, env)
        assert r.exit_code != 0 and isinstance(r.exception, RoleError), (env, r.output)
        assert "未能确认操作人身份" in str(r.exception) and "zhida users token" in str(r.exception)
    assert _state(cli_world, offer) == "drafted"


def test_a_claimed_by_cannot_act_as_another_user(cli_world: World) -> None:
    offer = cli_world.offers("c-gaoxin", "drafted")[0]
    maker = token_of("maker")  # a maker may not hold offers; claiming to be the reviewer changes nothing
    r = hold(cli_world, offer, {"ZHIDA_STAFF_TOKEN": maker}, "--by", "reviewer")
    assert r.exit_code != 0 and "不接受 --by reviewer" in str(r.exception)
    r = hold(cli_world, offer, {"ZHIDA_STAFF_TOKEN": maker, "ZHIDA_USER": "reviewer"})
    assert r.exit_code != 0 and "初核" in str(r.exception)  # acted as the maker, who has no right to
    assert _state(cli_world, offer) == "drafted"


def test_the_token_owner_is_the_recorded_actor(cli_world: World) -> None:
    offer = cli_world.offers("c-gaoxin", "drafted")[0]
    r = hold(cli_world, offer, {"ZHIDA_STAFF_TOKEN": token_of("reviewer")})
    assert r.exit_code == 0, r.output
    assert _state(cli_world, offer) == "held"
    with transaction(cli_world.app.state.engine) as s:
        actors = s.execute(
            text("SELECT actor FROM audit_event WHERE action = 'hold' AND entity_id = :o"), {"o": offer}
        ).scalars()
        assert list(actors) == ["reviewer"]


def test_a_token_needs_the_users_password_and_is_stored_only_hashed(cli_world: World) -> None:
    wrong = CliRunner().invoke(
        users_cmd.app, ["token", "reviewer", "--password-stdin"], input="guess-guess-guess\n"
    )
    assert wrong.exit_code != 0 and "ZHIDA_STAFF_TOKEN=" not in wrong.output
    issued = token_of("reviewer")
    with transaction(cli_world.app.state.engine) as s:
        stored = s.scalars(select(StaffToken.token_hash)).all()
    assert len(stored) == 1 and issued not in stored[0] and len(stored[0]) == 64


def test_a_token_ends_when_its_password_changes_or_its_user_is_disabled(cli_world: World) -> None:
    offer = cli_world.offers("c-gaoxin", "drafted")[0]
    issued = token_of("reviewer")
    with transaction(cli_world.app.state.engine) as s:
        set_password(s, "reviewer", "a-new-long-password", "reviewer", dt.datetime.now(dt.UTC))
    r = hold(cli_world, offer, {"ZHIDA_STAFF_TOKEN": issued})
    assert r.exit_code != 0 and "令牌无效" in str(r.exception)
    admin = {"ZHIDA_STAFF_TOKEN": token_of("sysadmin")}
    again = token_of("reviewer", "a-new-long-password")
    assert CliRunner(env=admin).invoke(users_cmd.app, ["disable", "reviewer"]).exit_code == 0
    r = hold(cli_world, offer, {"ZHIDA_STAFF_TOKEN": again})
    assert r.exit_code != 0 and "令牌无效" in str(r.exception)
    assert _state(cli_world, offer) == "drafted"


def test_users_commands_need_a_system_administrators_token(cli_world: World) -> None:
    for who in (None, "secadmin", "reviewer"):
        env = {"ZHIDA_STAFF_TOKEN": token_of(who)} if who else {}
        r = CliRunner(env=env).invoke(users_cmd.app, ["set-role", "maker", "finance_checker"])
        assert r.exit_code != 0 and isinstance(r.exception, RoleError), (who, r.output)
    admin = {"ZHIDA_STAFF_TOKEN": token_of("sysadmin")}
    own = CliRunner(env=admin).invoke(users_cmd.app, ["set-role", "sysadmin", "finance_checker"])
    assert own.exit_code != 0 and "不能更改自己" in str(own.exception)
    ok = CliRunner(env=admin).invoke(users_cmd.app, ["set-role", "maker", "finance_checker"])
    assert ok.exit_code == 0 and "资金拨付（复核）" in ok.output


def test_only_the_first_system_administrator_is_created_without_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZHIDA_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    monkeypatch.delenv("ZHIDA_STAFF_TOKEN", raising=False)
    runner = CliRunner()
    add = ["add", "--password-stdin"]
    refused = runner.invoke(
        users_cmd.app, [*add, "rev", "--role", "reviewer"], input="amber-lantern-harbour\n"
    )
    assert refused.exit_code != 0 and "未能确认操作人身份" in str(refused.exception)
    first = runner.invoke(
        users_cmd.app, [*add, "root", "--role", "system_admin"], input="amber-lantern-harbour\n"
    )
    assert first.exit_code == 0 and "系统管理员" in first.output, first.output
    second = runner.invoke(
        users_cmd.app, [*add, "root2", "--role", "system_admin"], input="amber-lantern-harbour\n"
    )
    assert second.exit_code != 0 and "未能确认操作人身份" in str(second.exception)
