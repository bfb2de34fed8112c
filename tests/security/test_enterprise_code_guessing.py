"""Attack: a stranger who knows an enterprise's USCC asks for sign-in codes and types wrong ones, to lock
the enterprise out (again and again) and to flood its phone with SMS.

Wrong codes count against the stranger's address, not the enterprise; codes sent are capped per address
and per enterprise in the database; the enterprise is told (once a day) that its codes are being guessed.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from payouts.db import transaction
from payouts.models import AuditEvent
from portal import identity
from tests.api.conftest import World
from tests.api.test_enterprise import A, ask_code, enter_code, wrong

STRANGER = ("203.0.113.66", 40000)
OWNER = ("198.51.100.7", 50000)


def _sms(w: World, kind: str) -> list[str]:
    return [m.text for m in w.app.state.phone.sent if m.kind == kind]


def test_a_stranger_cannot_lock_the_enterprise_out(world: World) -> None:
    stranger = TestClient(world.app, client=STRANGER)
    for _round in range(3):  # today's attack: ask for a code, type five wrong ones, again
        r, code = ask_code(world, stranger, A)
        if code is None:
            break
        for _ in range(identity.MAX_FAILURES):
            r = enter_code(stranger, A, wrong(code))
    # The stranger's address is blocked, and stays refused, even with a right code.
    assert r.status_code == 429 and "本设备" in r.text and int(r.headers["Retry-After"]) > 0
    r, code = ask_code(world, stranger, A)
    assert r.status_code == 429 and code is None
    # The enterprise, from its own address, signs in as usual.
    owner = TestClient(world.app, client=OWNER)
    r, code = ask_code(world, owner, A)
    assert r.status_code == 200 and code, r.text
    r = enter_code(owner, A, code)
    assert r.status_code == 303 and r.headers["location"] == "/e", r.text
    with transaction(world.app.state.engine) as s:
        actions = s.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == A)).all()
    assert "login_blocked" in actions and "login_locked" not in actions


def test_a_strangers_code_request_does_not_void_the_owners_code(world: World) -> None:
    owner = TestClient(world.app, client=OWNER)
    _, mine = ask_code(world, owner, A)
    _, theirs = ask_code(world, TestClient(world.app, client=STRANGER), A)
    assert mine and theirs
    assert enter_code(owner, A, mine).status_code == 303


def test_a_stranger_cannot_make_the_enterprise_receive_unbounded_sms(world: World) -> None:
    # Many addresses (a small botnet) asking for codes for one enterprise, as fast as they are allowed.
    for n in range(40):
        client = TestClient(world.app, client=(f"203.0.113.{n}", 40000))
        for _ in range(10):
            ask_code(world, client, A)
    per_hour, per_day = identity.ENTERPRISE_CODES
    assert len(_sms(world, "login_code")) == per_hour
    # One address alone gets far fewer than the enterprise's share.
    assert identity.CLIENT_CODES[1] * 4 <= per_day


def test_one_address_gets_only_its_own_share_of_codes(world: World) -> None:
    stranger = TestClient(world.app, client=STRANGER)
    answers = [ask_code(world, stranger, A) for _ in range(6)]
    sent = [code for _r, code in answers if code]
    assert len(sent) == identity.CLIENT_CODES[0]
    assert answers[-1][0].status_code == 429 and "过于频繁" in answers[-1][0].text
    r, code = ask_code(world, TestClient(world.app, client=OWNER), A)  # the owner still gets one
    assert r.status_code == 200 and code


def test_the_enterprise_is_told_once_when_its_codes_are_guessed(world: World) -> None:
    for n in range(3):  # three addresses guess, each until blocked
        stranger = TestClient(world.app, client=(f"203.0.113.{n}", 40000))
        _, code = ask_code(world, stranger, A)
        assert code
        for _ in range(identity.MAX_FAILURES):
            enter_code(stranger, A, wrong(code))
    alerts = [m for m in world.app.state.phone.sent if m.kind == identity.LOGIN_ALERT]
    assert len(alerts) == 1  # once a day, however many addresses are blocked
    assert alerts[0].phone == "13999235777"
    assert (
        "多次输入贵单位惠企直达登录验证码有误" in alerts[0].text
        and "请勿向任何人透露验证码" in alerts[0].text
    )
    with transaction(world.app.state.engine) as s:
        assert "login_alert" in s.scalars(select(AuditEvent.action).where(AuditEvent.entity_id == A)).all()
    # After signing in, its home page says so too.
    owner = TestClient(world.app, client=OWNER)
    _, code = ask_code(world, owner, A)
    assert code and enter_code(owner, A, code).status_code == 303
    home = owner.get("/e").text
    assert 'id="guessing-notice"' in home and "有人多次输入贵单位的登录验证码有误" in home


def test_an_enterprise_whose_codes_nobody_guessed_sees_no_notice(world: World) -> None:
    owner = TestClient(world.app, client=OWNER)
    _, code = ask_code(world, owner, A)
    assert code and enter_code(owner, A, wrong(code)).status_code == 401  # one typo is not guessing
    assert enter_code(owner, A, code).status_code == 303
    assert 'id="guessing-notice"' not in owner.get("/e").text
    assert not [m for m in world.app.state.phone.sent if m.kind == identity.LOGIN_ALERT]
