"""帮办代办 beyond applying: the agent confirms an apply-free offer of an enterprise without a phone and
supplies an enterprise's missing data on the strength of its 委托书; the enterprise sees who acted for it;
a 委托书 revoked (by the enterprise, or by the agent on its written request) leaves the agent nothing."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.auth import set_password
from payouts import offers, users
from payouts.audit import history
from payouts.db import transaction
from payouts.models import AuditEvent, Offer, Payee
from portal.models import Mandate, SuppliedValue
from tests.api.conftest import PASSWORD, World, csrf_of
from tests.api.test_applications import PDF, enterprise
from tests.api.test_supplied_api import PREMIUM, A


def make_agent(world: World, name: str = "agent1") -> TestClient:
    now = dt.datetime.now(dt.UTC)
    with transaction(world.app.state.engine) as s:
        users.create_user(s, name, "agent", now=now)
        set_password(s, name, PASSWORD, "system", now)
    return world.browser(name)


def no_phone_offer(world: World, policy_id: str = "c-kexing") -> Offer:
    """An offer of the policy held at release because its enterprise registered no phone."""
    with transaction(world.app.state.engine) as s:
        offer = s.scalar(select(Offer).where(Offer.policy_id == policy_id).order_by(Offer.id).limit(1))
        s.get(Payee, offer.payee_id).contact_phone = None
    r = world.bulk("/api/review/release", "release", {"filter": {"policy_id": policy_id}})
    assert r.status_code == 200, r.text
    with transaction(world.app.state.engine) as s:
        offer = s.get(Offer, offer.id)
    assert (offer.state, offer.hold_reason) == ("held", offers.NO_PHONE)
    return offer


def register(agent: TestClient, uscc: str) -> None:
    token = csrf_of(agent.get("/console/agency").text)
    r = agent.post(
        "/console/agency/mandates",
        data={"csrf": token, "uscc": uscc},
        files={"file": ("委托书.pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text


def test_an_agent_confirms_for_an_enterprise_without_a_phone_and_its_timeline_names_the_agent(
    world: World,
) -> None:
    agent = make_agent(world)
    offer = no_phone_offer(world)
    token = csrf_of(agent.get("/console/agency").text)
    confirm = f"/console/agency/offers/{offer.public_id}/confirm"
    assert agent.post(confirm, data={"csrf": token}).status_code == 404  # no 委托书 yet
    register(agent, offer.uscc)
    page = agent.get("/console/agency").text
    assert f'data-offer="{offer.public_id}"' in page and offers.NO_PHONE in page
    done = agent.post(confirm, data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303
    with transaction(world.app.state.engine) as s:
        assert s.get(Offer, offer.id).state == "confirmed"
        event = next(e for e in history(s, "offer", offer.public_id) if e.action == "confirm")
    assert event.actor == "agent:agent1" and "mandate" in event.data
    timeline = enterprise(world, offer.uscc).get(f"/e/offers/{offer.public_id}").text
    assert "由帮办代办工作人员 agent1 依贵单位委托书代为办理" in timeline
    again = agent.post(confirm, data={"csrf": token})  # confirmed already: refused, said in Chinese
    assert "不能代为确认" in again.text


def test_a_revoked_mandate_leaves_the_agent_nothing(world: World) -> None:
    agent = make_agent(world)
    offer = no_phone_offer(world)
    register(agent, offer.uscc)
    register(agent, A)
    with transaction(world.app.state.engine) as s:
        mandates = {m.uscc: m.public_id for m in s.scalars(select(Mandate))}
    token = csrf_of(agent.get("/console/agency").text)
    # Staff revoke only on the enterprise's written request.
    empty = agent.post(f"/console/agency/mandates/{mandates[offer.uscc]}/revoke", data={"csrf": token})
    assert "书面申请" in empty.text
    r = agent.post(
        f"/console/agency/mandates/{mandates[offer.uscc]}/revoke",
        data={"csrf": token, "request": "2025年10月8日撤销委托申请书"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert (
        agent.post(f"/console/agency/offers/{offer.public_id}/confirm", data={"csrf": token}).status_code
        == 404
    )
    # The enterprise revokes its own, signed in; another enterprise's is not found.
    mine = enterprise(world, A)
    page = mine.get("/e/mandates").text
    assert "帮办代办工作人员 agent1" in page
    other = enterprise(world, offer.uscc)
    stranger = other.post(
        f"/e/mandates/{mandates[A]}/revoke", data={"csrf": csrf_of(other.get("/e/mandates").text)}
    )
    assert stranger.status_code == 404
    assert agent.get(f"/console/agency/{A}/supplied").status_code == 200
    mine.post(f"/e/mandates/{mandates[A]}/revoke", data={"csrf": csrf_of(page)})
    assert "已于" in mine.get("/e/mandates").text
    assert agent.get(f"/console/agency/{A}/supplied").status_code == 404
    with transaction(world.app.state.engine) as s:
        actors = [e.actor for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "mandate_revoke"))]
        assert s.get(Offer, offer.id).state == "held"
    assert actors == ["agent1", f"enterprise:{A}"]


def test_an_agent_supplies_missing_data_and_the_enterprise_sees_it(world: World) -> None:
    agent = make_agent(world)
    register(agent, A)
    page = agent.get(f"/console/agency/{A}/supplied")
    assert page.status_code == 200 and 'data-field="ui_premium_paid"' in page.text
    r = agent.post(
        f"/console/agency/{A}/supplied",
        data={**PREMIUM, "value": "12345.67", "csrf": csrf_of(page.text)},
        files={"evidence": ("缴费证明.pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with transaction(world.app.state.engine) as s:
        row = s.scalar(select(SuppliedValue))
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "supply"))
    assert (row.uscc, row.submitted_by, event.actor) == (A, "agent:agent1", "agent:agent1")
    seen = enterprise(world, A).get("/e/supplied").text
    assert "12345.67" in seen and "由帮办代办工作人员 agent1 代为提交" in seen
