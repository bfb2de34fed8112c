"""Ratings (好差评): only after an item ends, only by its enterprise, once; a poor one needs a reason and
is answered by the rated department only."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from payouts import confirm, outbox, tokens
from payouts.errors import LinkError, NotFoundError
from payouts.models import AuditEvent, Offer, SmsMessage
from payouts.sms import MemoryGateway
from portal import applications as apps
from portal import ratings
from rules.errors import PayoutError, StateError
from tests.payouts.conftest import uscc
from tests.portal.test_applications import A, B, H, _ready, policy, staff  # noqa: F401  (fixture)


def test_a_rejected_application_is_rated_by_its_enterprise_and_a_poor_rating_answered(
    tx,
    tmp_path,
    t0,
    staff,  # noqa: F811
) -> None:
    pid = _ready(tx, tmp_path, t0)
    with tx() as s, pytest.raises(StateError, match="办结后才能评价"):
        ratings.rate(s, A, "application", pid, 5, None, t0 + H)
    with tx() as s:
        apps.reject(s, pid, "研发费用归集不符合规定", by="kj", now=t0 + H)
    with tx() as s:
        with pytest.raises(NotFoundError):
            ratings.rate(s, B, "application", pid, 1, "太慢", t0 + 2 * H)
        with pytest.raises(PayoutError, match="请写明不满意的原因"):
            ratings.rate(s, A, "application", pid, 1, " ", t0 + 2 * H)
        row = ratings.rate(s, A, "application", pid, 1, "退回理由不清楚", t0 + 2 * H)
        assert (row.department, row.score) == ("市科学技术局", 1)
        with pytest.raises(StateError, match="已评价过"):
            ratings.rate(s, A, "application", pid, 5, None, t0 + 2 * H)
    with tx() as s:
        with pytest.raises(NotFoundError):
            ratings.answer(s, row.public_id, "已改进", by="sw", now=t0 + 3 * H)
        assert [r.public_id for r in ratings.for_department(s, "kj")] == [row.public_id]
        answered = ratings.answer(
            s, row.public_id, "已核实，归集口径见通知第三条，欢迎来电咨询", by="kj", now=t0 + 3 * H
        )
        assert answered.answer.startswith("已核实") and answered.answered_by == "kj"


def test_a_paid_offer_is_rated_once_it_is_paid(tx, tmp_path, t0, staff) -> None:  # noqa: F811
    pid = _ready(tx, tmp_path, t0)
    p = policy()
    with tx() as s:
        apps.give_opinion(s, pid, agree=True, note=None, by="cz", now=t0 + H)
        offer = apps.accept(s, p, pid, amount=None, by="kj", now=t0 + H)
        with pytest.raises(StateError, match="资金到账后才能评价"):
            ratings.rate(s, A, "offer", offer.public_id, 5, None, t0 + H)
        s.get(Offer, offer.id).state = "paid"
        assert (
            ratings.rate(s, A, "offer", offer.public_id, 5, "很快", t0 + 2 * H).department == "市科学技术局"
        )


# --- the closing SMS and its rating link -----------------------------------------------------------

RATE_BASE = "https://zd.example.gov.cn/r/"


def _paid(tx, notified, t0) -> dict[int, str]:
    """wengang's offers paid at t0 (enterprise n → offer public id)."""
    with tx() as s:
        for o in s.scalars(select(Offer).where(Offer.policy_id == "wengang")):
            o.state, o.paid_at = "paid", t0
    return notified.ids


def _token(message) -> str:
    return message.params["link"].removeprefix(RATE_BASE)


def test_a_paid_item_gets_one_closing_sms_whose_link_rates_that_item_only(
    tx, engine, notified, settings, t0
) -> None:
    ids = _paid(tx, notified, t0)
    phone = MemoryGateway()
    sent = ratings.send_links(engine, phone, t0 + H, settings, RATE_BASE)
    assert (sent.sent, sent.no_phone) == (len(ids) - 1, 1)  # enterprise 6 registered no phone
    assert len(phone.sent) == len(ids) - 1
    assert ratings.send_links(engine, phone, t0 + 2 * H, settings, RATE_BASE).sent == 0  # once each
    by_phone = {int(m.phone[-4:]): m for m in phone.sent}
    one, two = by_phone[1], by_phone[2]
    assert "已到账" in one.text and "请评价本次服务" in one.text and len(one.text) <= 134
    token = _token(one)
    with tx() as s:
        stored = s.scalar(select(SmsMessage).where(SmsMessage.kind == "rating", SmsMessage.uscc == uscc(1)))
        assert token not in stored.text and stored.token_hash == tokens.token_hash(token)  # hash only
        # The link opens enterprise 1's item; naming enterprise 2's offer with it is not found.
        assert ratings.by_link(s, token, t0 + 2 * H).subject_id == ids[1]
        with pytest.raises(NotFoundError):
            ratings.rate_by_link(s, token, ids[2], 5, None, t0 + 2 * H)
        # Another kind of link: the confirmation link is not a rating link, nor the reverse.
        with pytest.raises(LinkError):
            ratings.by_link(s, notified.links[1], t0 + 2 * H)
        with pytest.raises(LinkError):
            confirm.view(s, token, t0 + 2 * H)
        with pytest.raises(LinkError):  # expired
            ratings.by_link(s, _token(two), t0 + dt.timedelta(days=ratings.LINK_DAYS, hours=2))
        row = ratings.rate_by_link(s, token, ids[1], 4, None, t0 + 2 * H)
        assert (row.uscc, row.subject, row.subject_id, row.score) == (uscc(1), "offer", ids[1], 4)
        with pytest.raises(StateError, match="已评价过"):
            ratings.rate_by_link(s, token, ids[1], 1, "改主意了", t0 + 3 * H)
    with tx() as s:
        assert "sms_link" in s.scalar(select(AuditEvent.data).where(AuditEvent.action == "rate"))


def test_no_closing_sms_to_an_opted_out_number_or_for_an_item_rated_already(
    tx, engine, notified, settings, t0
) -> None:
    ids = _paid(tx, notified, t0)
    with tx() as s:
        outbox.opt_out(s, "13800000001", t0, "reply")
        ratings.rate(s, uscc(2), "offer", ids[2], 5, None, t0)
    phone = MemoryGateway()
    r = ratings.send_links(engine, phone, t0 + H, settings, RATE_BASE)
    assert r.opted_out == 1 and {m.phone for m in phone.sent}.isdisjoint({"13800000001", "13800000002"})
    assert r.sent == len(ids) - 3  # and enterprise 6 has no phone


def test_a_closing_sms_cut_short_is_handed_over_again_with_the_same_link(
    tx, engine, notified, settings, t0
) -> None:
    _paid(tx, notified, t0)

    class Dies(Exception):
        pass

    class DyingPhone(MemoryGateway):
        def send(self, sms):  # type: ignore[no-untyped-def]
            ref = super().send(sms)
            if len(self.sent) == 2:
                raise Dies()  # the provider took the second message, then the process died
            return ref

    phone = DyingPhone()
    with pytest.raises(Dies):
        ratings.send_links(engine, phone, t0 + H, settings, RATE_BASE)
    again = MemoryGateway(refs=dict(phone.refs), sent=list(phone.sent))  # the same provider
    ratings.send_links(engine, again, t0 + 2 * H, settings, RATE_BASE)
    assert len(again.duplicates) == 1  # the one in hand went again, and the provider dropped the copy
    assert again.duplicates[0].params["link"] == phone.sent[1].params["link"]  # with its very link
    phones = [m.phone for m in again.sent]
    assert len(phones) == len(set(phones)) == len(notified.ids) - 1
    with tx() as s:
        assert ratings.by_link(s, _token(phone.sent[1]), t0 + 3 * H).uscc == uscc(
            int(phone.sent[1].phone[-4:])
        )
