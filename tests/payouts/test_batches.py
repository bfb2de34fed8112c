"""Payout batches: maker-checker, the budget, one live batch per offer, rejection and re-batching."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select, text

from payouts import bankfiles, batches, confirm, offers, sms
from payouts.errors import RoleError
from payouts.imports import import_run
from payouts.models import BatchLine, Offer, Payee, StaffUser
from rules.errors import BudgetError, StateError
from tests.staff import fix_account

H = dt.timedelta(hours=1)


def _confirm_all(tx, notified, t0) -> None:
    with tx() as s:
        for n in (1, 2, 3, 4):
            confirm.confirm(s, notified.links[n], ip="203.0.113.1", user_agent="t", now=t0 + H)


def test_a_batch_takes_confirmed_offers_and_copies_their_registered_accounts(tx, notified, t0) -> None:
    _confirm_all(tx, notified, t0)
    with tx() as s:
        b = batches.create_batch(s, "wengang", "maker", t0 + 2 * H)
        assert (b.state, b.line_count, b.total) == ("assembled", 4, Decimal("7500.50"))
        for line in s.scalars(select(BatchLine)).all():
            offer = s.get(Offer, line.offer_id)
            payee = s.get(Payee, offer.payee_id)
            assert (line.account_no, line.account_name, line.amount) == (
                payee.account_no,
                payee.account_name,
                offer.amount,
            )
            assert offer.state == "in_batch"


def test_the_checker_cannot_be_the_maker(tx, notified, t0) -> None:
    _confirm_all(tx, notified, t0)
    with tx() as s:
        ref = batches.create_batch(s, "wengang", "maker", t0 + 2 * H).reference
        with pytest.raises(RoleError):
            batches.approve(s, ref, "maker", t0 + 3 * H)  # a maker has no checker role
        # Even if the maker is later made a checker, they cannot check their own batch.
        s.scalar(select(StaffUser).where(StaffUser.username == "maker")).role = "finance_checker"
        s.flush()
        with pytest.raises(RoleError, match="制单人不能复核"):
            batches.approve(s, ref, "maker", t0 + 3 * H)
        s.scalar(select(StaffUser).where(StaffUser.username == "maker")).role = "finance_maker"
        assert batches.approve(s, ref, "checker", t0 + 3 * H).state == "approved"


def test_the_database_refuses_a_batch_checked_by_its_maker(tx, notified, t0) -> None:
    _confirm_all(tx, notified, t0)
    with tx() as s:
        b = batches.create_batch(s, "wengang", "maker", t0 + 2 * H)
    with pytest.raises(Exception, match="four_eyes"), tx() as s:
        s.execute(text("UPDATE batch SET checker_id = maker_id WHERE id = :i"), {"i": b.id})


def test_an_offer_is_in_at_most_one_live_batch(tx, notified, t0) -> None:
    _confirm_all(tx, notified, t0)
    one = [notified.ids[1]]
    with tx() as s:
        batches.create_batch(s, "wengang", "maker", t0 + 2 * H, public_ids=one)
    with pytest.raises(StateError, match="拨付中"), tx() as s:
        batches.create_batch(s, "wengang", "maker2", t0 + 2 * H, public_ids=one)
    with tx() as s:  # without names, the other maker gets the rest
        assert batches.create_batch(s, "wengang", "maker2", t0 + 2 * H).line_count == 3


def test_a_batch_never_takes_a_policy_past_its_budget(tx, ex, tmp_path: Path, settings, t0) -> None:
    run = ex.write_run(
        tmp_path / "r",
        [ex.policy("p", budget="2500.00")],
        [("p", "main", 1, "1000.00"), ("p", "main", 2, "2000.00")],
        [ex.payee(1), ex.payee(2)],
    )
    phone = sms.MemoryGateway()
    with tx() as s:
        import_run(s, run, "rev", t0)
        offers.release(s, "rev", t0)
        sms.send_notices(s, phone, t0, settings)
        for m in phone.sent:
            confirm.confirm(
                s, m.params["link"].removeprefix(settings.link_base), ip=None, user_agent=None, now=t0
            )
        ids = {int(o.uscc[8:17]): o.public_id for o in s.scalars(select(Offer))}
        first = batches.create_batch(s, "p", "maker", t0, public_ids=[ids[1]])
        with pytest.raises(BudgetError, match=r"剩余 1,500\.00 元"):
            batches.create_batch(s, "p", "maker", t0, public_ids=[ids[2]])
        # When the first payment fails, its money is free again.
        batches.approve(s, first.reference, "checker", t0)
        batches.export(s, first.reference, "maker", tmp_path / "bank", t0)
        content = batches.bank_file_of(s, first)
        returned = bankfiles.render_return(content, {content.lines[0].reference: "账户已销户"})
        batches.reconcile(s, first.reference, returned, "maker", t0)
        assert batches.budget(s, "p", "2025").committed == 0
        assert batches.create_batch(s, "p", "maker", t0, public_ids=[ids[2]]).total == Decimal("2000.00")


def test_a_rejected_batch_gives_its_offers_back(tx, notified, t0) -> None:
    _confirm_all(tx, notified, t0)
    with tx() as s:
        ref = batches.create_batch(s, "wengang", "maker", t0 + 2 * H).reference
        with pytest.raises(RoleError, match="只有复核人员或本批次的制单人"):
            batches.reject(s, ref, "maker2", "金额有误", t0 + 3 * H)
        assert batches.reject(s, ref, "checker", "名单需复核", t0 + 3 * H).state == "rejected"
        assert {o.state for o in s.scalars(select(Offer).where(Offer.policy_id == "wengang"))} >= {
            "confirmed"
        }
        assert batches.budget(s, "wengang", "2025").committed == 0
        assert batches.create_batch(s, "wengang", "maker2", t0 + 4 * H).line_count == 4


def test_a_failed_payment_is_batched_again_only_after_the_account_is_corrected(
    tx, notified, tmp_path, t0
) -> None:
    _confirm_all(tx, notified, t0)
    with tx() as s:
        b = batches.create_batch(s, "wengang", "maker", t0 + 2 * H)
        batches.approve(s, b.reference, "checker", t0 + 3 * H)
        batches.export(s, b.reference, "maker", tmp_path, t0 + 3 * H)
        content = batches.bank_file_of(s, b)
        line = next(ln for ln in content.lines if ln.account_no.endswith("1"))
        result = batches.reconcile(
            s,
            b.reference,
            bankfiles.render_return(content, {line.reference: "户名不符"}),
            "maker",
            t0 + 4 * H,
        )
        assert (result.paid, result.failed, result.failures[0][1]) == (3, 1, "户名不符")
        failed = s.scalar(select(Offer).where(Offer.state == "payment_failed"))
        with pytest.raises(StateError, match="须先更正账户"):
            batches.create_batch(s, "wengang", "maker", t0 + 5 * H, public_ids=[failed.public_id])
        fix_account(
            s,
            failed.uscc,
            bank_name="中国建设银行某市分行",
            account_no="43001500000000000009",
            account_name="示例企业1有限公司",
            by="rev",
            reason="银行退回后企业更正",
            now=t0 + 5 * H,
        )
        again = batches.create_batch(s, "wengang", "maker", t0 + 6 * H)
        assert again.line_count == 1
        assert (
            s.scalar(select(BatchLine.account_no).where(BatchLine.batch_id == again.id))
            == "43001500000000000009"
        )
