"""A payee change needs a second person (四眼原则): where an enterprise's money goes is changed only when
someone other than its proposer approves it. Until then the offers pay to the old account; a rejected
change never takes effect; every step is audited, with the accounts masked.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from api.commands import offers as offers_cmd
from api.commands import users as users_cmd
from payouts.audit import verify
from payouts.db import transaction
from payouts.errors import RoleError
from payouts.models import AuditEvent, Offer, Payee
from tests.api.conftest import PASSWORD, World, copy_world, csrf_of

A = "913208038HQ7FMGPQ2"  # a c-gaoxin candidate whose offer is drafted
NAME = "淮安测试企业00798有限公司"
NEW_ACCOUNT = "6222000011112222"


def propose(w: World, user: str = "reviewer", **change: str):  # type: ignore[no-untyped-def]
    body = {
        "uscc": A,
        "bank_name": "测试银行某支行",
        "account_no": NEW_ACCOUNT,
        "account_name": NAME,
        "reason": "企业来函并附开户许可证",
        **change,
    }
    return w.client.post("/api/account-changes", json=body, headers=w.auth(user))


def paid_to(w: World) -> set[str | None]:
    with transaction(w.app.state.engine) as s:
        return set(
            s.scalars(select(Payee.account_no).join(Offer, Offer.payee_id == Payee.id).where(Offer.uscc == A))
        )


def test_the_proposer_cannot_approve_their_own_change(world: World) -> None:
    r = propose(world)
    assert r.status_code == 201, r.text
    change = r.json()["id"]
    own = world.client.post(f"/api/account-changes/{change}/approve", headers=world.auth("reviewer"))
    assert own.status_code == 403 and "申请人不能审核自己" in own.json()["detail"]
    rejected_own = world.client.post(
        f"/api/account-changes/{change}/reject", json={"reason": "撤回"}, headers=world.auth("reviewer")
    )
    assert rejected_own.status_code == 403
    assert NEW_ACCOUNT not in paid_to(world)
    ok = world.client.post(f"/api/account-changes/{change}/approve", headers=world.auth("checker"))
    assert ok.status_code == 200 and ok.json()["state"] == "approved" and ok.json()["decided_by"] == "checker"
    assert paid_to(world) == {NEW_ACCOUNT}


def test_a_change_takes_effect_only_when_approved(world: World) -> None:
    before = paid_to(world)
    change = propose(world).json()
    assert change["state"] == "pending" and change["new_account"] == "6222 **** **** 2222"
    assert NEW_ACCOUNT not in json.dumps(change)  # shown masked, old and new
    assert paid_to(world) == before
    listed = world.client.get("/api/account-changes", headers=world.auth("checker")).json()
    assert [c["id"] for c in listed] == [change["id"]]
    # The maker, the administrators and the auditor cannot decide it.
    for user in ("maker", "sysadmin", "secadmin", "auditor"):
        r = world.client.post(f"/api/account-changes/{change['id']}/approve", headers=world.auth(user))
        assert r.status_code == 403, user
    assert paid_to(world) == before
    world.client.post(f"/api/account-changes/{change['id']}/approve", headers=world.auth("checker"))
    assert paid_to(world) == {NEW_ACCOUNT}
    again = world.client.post(f"/api/account-changes/{change['id']}/approve", headers=world.auth("checker"))
    assert again.status_code == 409


def test_a_rejected_change_never_takes_effect(world: World) -> None:
    before = paid_to(world)
    change = propose(world).json()["id"]
    r = world.client.post(
        f"/api/account-changes/{change}/reject",
        json={"reason": "户名与证明不符"},
        headers=world.auth("checker"),
    )
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    late = world.client.post(f"/api/account-changes/{change}/approve", headers=world.auth("reviewer_hr"))
    assert late.status_code in (404, 409)
    assert paid_to(world) == before


def test_a_change_proposed_against_an_account_since_replaced_cannot_be_approved(world: World) -> None:
    first = propose(world).json()["id"]
    stale = propose(world, account_no="6222000099998888").json()["id"]
    assert (
        world.client.post(f"/api/account-changes/{first}/approve", headers=world.auth("checker")).status_code
        == 200
    )
    r = world.client.post(f"/api/account-changes/{stale}/approve", headers=world.auth("checker"))
    assert r.status_code == 409 and "已变更" in r.json()["detail"]
    assert paid_to(world) == {NEW_ACCOUNT}


def test_every_step_is_audited_with_masked_accounts(world: World) -> None:
    change = propose(world).json()["id"]
    world.client.post(f"/api/account-changes/{change}/approve", headers=world.auth("checker"))
    with transaction(world.app.state.engine) as s:
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        assert verify(s).ok
    steps = [(e.actor, e.action, e.entity_id) for e in events if e.entity == "payee_change"]
    assert steps == [
        ("reviewer", "propose_account_change", change),
        ("checker", "approve_account_change", change),
    ]
    proposed = next(e for e in events if e.action == "propose_account_change")
    assert "6222 **** **** 2222" in proposed.data and NEW_ACCOUNT not in proposed.data
    assert all(NEW_ACCOUNT not in (e.data or "") for e in events)


def test_the_cli_proposes_and_another_user_approves(template, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    w = copy_world(template, tmp_path / "w")
    monkeypatch.setenv("ZHIDA_DATABASE_URL", w.app.state.settings.database_url)

    def as_user(user: str) -> CliRunner:
        got = CliRunner().invoke(users_cmd.app, ["token", user, "--password-stdin"], input=PASSWORD + "\n")
        return CliRunner(env={"ZHIDA_STAFF_TOKEN": got.output.split("ZHIDA_STAFF_TOKEN=")[1].split()[0]})

    reviewer, checker = as_user("reviewer"), as_user("checker")
    before = paid_to(w)
    args = ["fix-account", A, "--bank", "测试银行", "--account-no", NEW_ACCOUNT, "--account-name", NAME]
    r = reviewer.invoke(offers_cmd.app, [*args, "--reason", "企业来函"])
    assert r.exit_code == 0, r.output
    assert (
        "待另一位工作人员审核" in r.output
        and "6222 **** **** 2222" in r.output
        and NEW_ACCOUNT not in r.output
    )
    assert paid_to(w) == before
    change = r.output.split("已提出账户变更 ")[1].split("：")[0]
    own = reviewer.invoke(offers_cmd.app, ["approve-account-change", change])
    assert own.exit_code != 0 and isinstance(own.exception, RoleError)
    assert paid_to(w) == before
    ok = checker.invoke(offers_cmd.app, ["approve-account-change", change])
    assert ok.exit_code == 0 and "已生效" in ok.output, ok.output
    assert paid_to(w) == {NEW_ACCOUNT}


@pytest.mark.parametrize("user", ["sysadmin", "auditor", "maker"])
def test_only_a_reviewer_may_propose_a_change(world: World, user: str) -> None:
    assert propose(world, user).status_code == 403


def test_the_console_offers_approval_only_to_someone_else(world: World) -> None:
    reviewer = world.browser("reviewer")
    page = reviewer.get("/console/account-changes").text
    form = {
        "csrf": csrf_of(page),
        "uscc": A,
        "bank_name": "测试银行某支行",
        "account_no": NEW_ACCOUNT,
        "account_name": NAME,
        "reason": "企业来函",
    }
    r = reviewer.post("/console/account-changes", data=form, follow_redirects=False)
    assert r.status_code == 303
    mine = reviewer.get("/console/account-changes").text
    change = mine.split('data-change="')[1].split('"')[0]
    assert "待他人审核" in mine and f"/{change}/approve" not in mine and NEW_ACCOUNT not in mine
    own = reviewer.post(f"/console/account-changes/{change}/approve", data={"csrf": csrf_of(mine)})
    assert own.status_code == 403
    assert paid_to(world) != {NEW_ACCOUNT}
    checker = world.browser("checker")
    theirs = checker.get("/console/account-changes").text
    assert f"/{change}/approve" in theirs and 'id="propose"' not in theirs
    done = checker.post(f"/console/account-changes/{change}/approve", data={"csrf": csrf_of(theirs)})
    assert done.status_code == 200 and "已审核通过并生效" in done.text
    assert paid_to(world) == {NEW_ACCOUNT}
