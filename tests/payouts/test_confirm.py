"""What the enterprise does with its link: look, confirm (idempotently), decline, report a wrong account."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from payouts import confirm, offers, sms, tokens
from payouts.errors import LinkError
from payouts.models import Confirmation, Offer, Payee
from rules.errors import StateError
from tests.staff import fix_account

LATER = dt.timedelta(hours=3)


def test_the_page_shows_the_offer_and_the_registered_account_masked(tx, notified, t0) -> None:
    with tx() as s:
        v = confirm.view(s, notified.links[2], t0 + LATER)
    assert (v.enterprise, v.amount, v.state_label) == ("示例企业2有限公司", 2000, "已通知")
    assert v.account_masked == "4300 **** **** 0002"
    assert "43001500000000000002" not in repr(v)
    assert v.can_respond and {"text": "依法经营", "clause": "第二条"} in v.conditions


def test_confirming_twice_gives_one_confirmation_with_the_first_time_ip_and_agent(tx, notified, t0) -> None:
    with tx() as s:
        first = confirm.confirm(
            s, notified.links[1], ip="203.0.113.7", user_agent="iPhone Safari", now=t0 + LATER
        )
    with tx() as s:
        again = confirm.confirm(
            s, notified.links[1], ip="198.51.100.1", user_agent="Android", now=t0 + 2 * LATER
        )
        rows = s.scalars(select(Confirmation)).all()
        offer = s.scalar(select(Offer).where(Offer.public_id == first.public_id))
    assert (first.repeated, again.repeated, again.at) == (False, True, first.at)
    assert [(r.kind, r.ip, r.user_agent) for r in rows] == [("confirm", "203.0.113.7", "iPhone Safari")]
    assert offer.state == "confirmed" and offer.confirmed_at == t0 + LATER


def test_a_decline_is_recorded_and_final(tx, notified, t0) -> None:
    with tx() as s:
        confirm.decline(
            s, notified.links[3], ip="203.0.113.9", user_agent="x", now=t0 + LATER, reason="已享受同类补贴"
        )
    with pytest.raises(StateError, match="已放弃"), tx() as s:
        confirm.confirm(s, notified.links[3], ip=None, user_agent=None, now=t0 + 2 * LATER)
    with tx() as s:
        assert s.scalar(select(Offer).where(Offer.public_id == notified.ids[3])).state == "declined"


def test_a_wrong_account_holds_the_offer_until_staff_correct_it_and_notify_again(
    tx, notified, settings, t0
) -> None:
    with tx() as s:
        confirm.report_wrong_account(
            s, notified.links[4], ip=None, user_agent=None, now=t0 + LATER, note="已销户"
        )
        o = s.scalar(select(Offer).where(Offer.public_id == notified.ids[4]))
        assert (o.state, o.hold_reason) == ("held", "企业反映对公账户有误")
        with pytest.raises(StateError, match="已反映账户有误"):
            confirm.confirm(s, notified.links[4], ip=None, user_agent=None, now=t0 + LATER)
        fix_account(
            s,
            o.uscc,
            bank_name="招商银行某支行",
            account_no="755900112233",
            account_name="示例企业4有限公司",
            by="rev",
            reason="核对开户许可证",
            now=t0 + LATER,
        )
        offers.release(s, "rev", t0 + LATER, public_ids=[o.public_id])
        phone = sms.MemoryGateway()
        sms.send_notices(s, phone, t0 + LATER, settings)
    token = phone.sent[0].params["link"].removeprefix(settings.link_base)
    with tx() as s:
        shown = confirm.view(s, token, t0 + 2 * LATER)
        assert shown.account_masked == "7559 **** **** 2233"
        assert shown.deadline == t0 + LATER + dt.timedelta(days=30)  # a new round, a new deadline
        assert confirm.confirm(s, token, ip=None, user_agent=None, now=t0 + 2 * LATER).repeated is False
        assert (
            s.get(Payee, s.scalar(select(Offer.payee_id).where(Offer.public_id == o.public_id))).source
            == "staff"
        )


def test_an_unknown_link_is_refused(tx, notified, t0) -> None:
    with pytest.raises(LinkError, match="链接无效"), tx() as s:
        confirm.confirm(
            s, tokens.derived_link_token("another key", "o|1|notice|1"), ip=None, user_agent=None, now=t0
        )
