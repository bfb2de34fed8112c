"""The finance structure: payer accounts and funding kept by the finance bureau, cost sharing between
levels split fen-exact, one batch per payer, and each offer paid when every payer has paid its part."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from payouts import audit, bankfiles, batches, confirm, finance, offers
from payouts.errors import RoleError
from payouts.imports import import_run
from payouts.models import BatchLine, Offer
from rules.errors import StateError
from tests.staff import fix_account, payer_accounts, share_cost

H = dt.timedelta(hours=1)
CENT = Decimal("0.01")


@given(
    fen=st.integers(min_value=1, max_value=10**13),
    shares=st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=6),
)
def test_cost_sharing_parts_sum_to_the_line_to_the_fen(fen: int, shares: list[int]) -> None:
    amount = Decimal(fen) * CENT
    parts = finance.split(amount, shares)
    assert sum(parts) == amount
    total = sum(shares)
    for part, share in zip(parts, shares, strict=True):
        assert part == part.quantize(CENT) and part >= 0
        assert abs(part - amount * share / total) < CENT  # never more than a fen from the exact share


def test_the_leftover_fen_goes_to_the_largest_remainder_then_to_the_first_listed() -> None:
    assert finance.split(Decimal("0.01"), [1, 1]) == [Decimal("0.01"), Decimal("0.00")]
    assert finance.split(Decimal("100.00"), [1, 1, 1]) == [
        Decimal("33.34"),
        Decimal("33.33"),
        Decimal("33.33"),
    ]
    assert finance.split(Decimal("0.05"), [1, 2]) == [Decimal("0.02"), Decimal("0.03")]


def _confirm_all(tx, notified, t0) -> None:
    with tx() as s:
        for n in (1, 2, 3, 4):
            confirm.confirm(s, notified.links[n], ip="203.0.113.1", user_agent="t", now=t0 + H)


def test_a_reviewer_or_a_maker_cannot_change_a_payer_account(tx, t0) -> None:
    with tx() as s:
        payer_accounts(s, t0)
    for who in ("rev", "maker"):
        with pytest.raises(RoleError, match="无权"), tx() as s:
            finance.set_payer_account(
                s,
                "city",
                name="某人的账户",
                account_no="6222000000000000",
                bank_name="某银行",
                file_format="bank_csv",
                by=who,
                now=t0 + H,
            )
    with tx() as s:
        assert finance.payer_account(s, "city").name == "长沙市财政局"
        changed = finance.set_payer_account(
            s,
            "city",
            name="长沙市财政局",
            account_no="430001000000000009",
            bank_name="国家金库长沙市中心支库",
            file_format="pain001",
            by="checker",
            now=t0 + 2 * H,
            reason="账户变更（长财库〔2025〕3号）",
        )
        assert changed.version == 2
        assert [a.account_no for a in finance.payer_history(s, "city")] == [
            "430001000000000009",
            "430001000000000001",
        ]
        event = audit.history(s, "payer_account", "city")[-1]
        assert (event.actor, event.from_state, event.to_state) == ("checker", "v1", "v2")


def test_a_payer_account_with_a_bad_field_is_refused_naming_the_field(tx, t0) -> None:
    with pytest.raises(finance.FinanceConfigError, match="行政区划代码") as e, tx() as s:
        finance.set_payer_account(
            s,
            "furong",
            name="长沙市芙蓉区财政局",
            account_no="4301-02",
            bank_name="=HYPERLINK()",
            file_format="treasury",
            by="checker",
            now=t0,
        )
    assert "开户行以“=”开头" in str(e.value)


def test_funding_names_existing_accounts_with_fund_source_and_budget_index(tx, notified, t0) -> None:
    with tx() as s:
        payer_accounts(s, t0)
        with pytest.raises(finance.FinanceConfigError) as e:
            finance.set_funding(s, "wengang", [finance.Part("nowhere", 0, "", "")], by="checker", now=t0 + H)
        assert all(
            word in str(e.value) for word in ("正整数", "资金来源", "预算指标文号", "没有这个付款账户")
        )
        with pytest.raises(RoleError):
            finance.set_funding(
                s, "wengang", [finance.Part("city", 1, "市级资金", "长财预1号")], by="rev", now=t0 + H
            )


def test_a_cost_shared_policy_is_batched_once_per_payer_and_every_line_sums(tx, notified, t0) -> None:
    _confirm_all(tx, notified, t0)
    with tx() as s:
        share_cost(s, "wengang", t0)
        made = batches.create_batches(s, "wengang", "maker", t0 + 2 * H)
        city, district = made
        assert (city.payer_name, district.payer_name) == ("长沙市财政局", "长沙市芙蓉区财政局")
        assert (city.file_format, district.file_format) == ("bank_csv", "treasury")
        assert (district.fund_source, district.budget_no, district.share) == (
            "区级财政配套资金",
            "芙财预〔2025〕7号",
            "1/2",
        )
        assert city.group_ref == district.group_ref == city.reference
        assert city.total + district.total == Decimal("7500.50")
        assert (city.total, district.total) == (Decimal("3750.25"), Decimal("3750.25"))
        for o in s.scalars(select(Offer).where(Offer.state == "in_batch")):
            lines = s.scalars(select(BatchLine.amount).where(BatchLine.offer_id == o.id)).all()
            assert sorted(lines) == sorted(finance.split(o.amount, [1, 1]))
        assert batches.budget(s, "wengang", "2025").committed == Decimal("7500.50")


def test_the_sql_split_gives_the_same_fen_as_the_rule(tx, ex, tmp_path: Path, settings, t0) -> None:
    amounts = ["0.01", "0.02", "1000.01", "3333.33", "7.00", "12345678.99", "0.10"]
    run = ex.write_run(
        tmp_path / "r",
        [ex.policy("p", budget=None, confirmation="none")],
        [("p", "main", n, a) for n, a in enumerate(amounts, start=1)],
        [ex.payee(n) for n in range(1, len(amounts) + 1)],
    )
    with tx() as s:
        import_run(s, run, "rev", t0)
        offers.release(s, "rev", t0)
        payer_accounts(s, t0)
        finance.set_payer_account(
            s,
            "state",
            name="湖南省财政厅",
            account_no="430000000000000003",
            bank_name="国家金库湖南省分库",
            file_format="pain001",
            by="checker",
            now=t0,
        )
        finance.set_funding(
            s,
            "p",
            [
                finance.Part("state", 5, "省级资金", "湘财预1号"),
                finance.Part("city", 3, "市级资金", "长财预1号"),
                finance.Part("furong", 3, "区级资金", "芙财预1号"),
            ],
            by="checker",
            now=t0,
        )
        made = batches.create_batches(s, "p", "maker", t0 + H)
        assert [b.payer_code for b in made] == ["state", "city", "furong"]
        order = {b.id: n for n, b in enumerate(made)}
        for o in s.scalars(select(Offer).where(Offer.policy_id == "p")):
            rows = s.execute(
                select(BatchLine.batch_id, BatchLine.amount).where(BatchLine.offer_id == o.id)
            ).all()
            parts = [Decimal("0.00")] * 3
            for batch_id, amount in rows:
                parts[order[batch_id]] = amount
            assert parts == finance.split(o.amount, [5, 3, 3]), o.amount
        # A part of zero fen (0.01 split three ways) makes no line.
        assert s.scalar(select(func.min(BatchLine.amount))) > 0


def _settle(s, batch, failures: dict[str, str], by: str, at) -> batches.Reconciliation:
    content = batches.bank_file_of(s, batch)
    reasons = {
        ln.reference: failures[ln.account_no[-1]] for ln in content.lines if ln.account_no[-1] in failures
    }
    return batches.reconcile(s, batch.reference, bankfiles.render_return(content, reasons), by, at)


def test_an_offer_is_paid_when_every_payer_has_paid_and_a_failed_part_is_batched_again_alone(
    tx, notified, tmp_path, t0
) -> None:
    _confirm_all(tx, notified, t0)
    with tx() as s:
        share_cost(s, "wengang", t0)
        city, district = batches.create_batches(s, "wengang", "maker", t0 + 2 * H)
        for b in (city, district):
            batches.approve(s, b.reference, "checker", t0 + 3 * H)
            batches.export(s, b.reference, "maker", tmp_path / b.reference, t0 + 3 * H)
        batches.create_batches(s, "gaoxin", "maker", t0 + 3 * H)  # another policy's batch, still pending
        _settle(s, city, {}, "maker", t0 + 4 * H)
        # The city paid its half; the district's half is still on its way.
        assert {o.state for o in s.scalars(select(Offer).where(Offer.policy_id == "wengang"))} >= {"in_batch"}
        assert s.scalar(select(func.count()).where(Offer.state == "paid")) == 0
        result = _settle(s, district, {"1": "户名不符"}, "maker", t0 + 5 * H)
        assert (result.paid, result.failed) == (3, 1)
        states = {o.uscc[8:17]: o.state for o in s.scalars(select(Offer).where(Offer.policy_id == "wengang"))}
        assert list(states.values()).count("paid") == 3
        failed = s.scalar(select(Offer).where(Offer.state == "payment_failed"))
        fix_account(
            s,
            failed.uscc,
            bank_name="中国建设银行某市分行",
            account_no="43001500000000000009",
            account_name="示例企业1有限公司",
            by="rev",
            reason="银行退回后企业更正",
            now=t0 + 6 * H,
        )
        again = batches.create_batches(s, "wengang", "maker", t0 + 7 * H)
        # Only the district's part of that one offer: the city's half is paid already.
        assert [(b.payer_code, b.line_count, b.total) for b in again] == [
            ("furong", 1, finance.split(failed.amount, [1, 1])[1])
        ]
        batches.approve(s, again[0].reference, "checker", t0 + 8 * H)
        batches.export(s, again[0].reference, "maker", tmp_path / "again", t0 + 8 * H)
        _settle(s, again[0], {}, "maker", t0 + 9 * H)
        assert s.get(Offer, failed.id).state == "paid"
        paid = s.scalar(select(func.sum(BatchLine.amount)).where(BatchLine.status == "paid"))
        assert paid == Decimal("7500.50")


def test_one_payers_batch_is_rejected_with_its_group_but_not_once_another_is_approved(
    tx, notified, t0
) -> None:
    _confirm_all(tx, notified, t0)
    with tx() as s:
        share_cost(s, "wengang", t0)
        city, district = batches.create_batches(s, "wengang", "maker", t0 + 2 * H)
        batches.reject(s, district.reference, "checker", "名单需复核", t0 + 3 * H)
        assert (city.state, district.state) == ("rejected", "rejected")
        assert {o.state for o in s.scalars(select(Offer).where(Offer.policy_id == "wengang"))} >= {
            "confirmed"
        }
        city, district = batches.create_batches(s, "wengang", "maker", t0 + 4 * H)
        batches.approve(s, city.reference, "checker", t0 + 5 * H)
        with pytest.raises(StateError, match="已复核，不能单独退回"):
            batches.reject(s, district.reference, "checker", "名单需复核", t0 + 5 * H)


def test_an_upheld_objection_withdraws_every_payers_part_of_the_offer(tx, notified, t0) -> None:
    from payouts import notice
    from payouts.models import Batch

    _confirm_all(tx, notified, t0)
    with tx() as s:
        share_cost(s, "wengang", t0)
        city, district = batches.create_batches(s, "wengang", "maker", t0 + 2 * H)
        nid = notice.open_notice(s, district.reference, "maker", t0 + 3 * H, days=7).public_id
        oid = notice.file_objection(
            s, nid, 2, name="李四", contact="li@example.com", text="重复享受", now=t0 + 4 * H
        ).public_id
        notice.resolve(s, oid, True, "经核实已在他处享受", "rev", t0 + 5 * H)
        line = s.scalar(select(BatchLine).where(BatchLine.batch_id == district.id, BatchLine.line_no == 2))
        parts = s.scalars(select(BatchLine).where(BatchLine.offer_id == line.offer_id)).all()
        assert [(p.live, p.status) for p in parts] == [(False, "withdrawn")] * 2
        assert s.get(Offer, line.offer_id).state == "held"
        for b in (city, district):
            b = s.scalar(select(Batch).where(Batch.id == b.id))
            live = s.scalar(
                select(func.sum(BatchLine.amount)).where(BatchLine.batch_id == b.id, BatchLine.live)
            )
            assert (b.line_count, b.total) == (3, live)
        assert audit.verify(s).ok


def _indexed(s, t0, city_amount: str | None, district_amount: str | None = "10000.00") -> None:
    finance.set_funding(
        s,
        "wengang",
        [
            finance.Part(
                "city", 1, "市级财政专项资金", "长财预〔2025〕101号", city_amount and Decimal(city_amount)
            ),
            finance.Part(
                "furong",
                1,
                "区级财政配套资金",
                "芙财预〔2025〕7号",
                district_amount and Decimal(district_amount),
            ),
        ],
        by="checker",
        now=t0,
    )


def test_a_batch_that_would_overdraw_its_budget_index_is_refused_naming_the_index_and_the_shortfall(
    tx, notified, tmp_path, t0
) -> None:
    from rules.errors import BudgetError

    _confirm_all(tx, notified, t0)
    with tx() as s:
        payer_accounts(s, t0)
        _indexed(s, t0, "3750.24")  # the city's half of 7,500.50 is 3,750.25: one fen short
        city, district = batches.create_batches(s, "wengang", "maker", t0 + 2 * H)
        batches.approve(s, district.reference, "checker", t0 + 3 * H)
        left = finance.index_balance(s, "芙财预〔2025〕7号")
        assert (left.amount, left.used, left.left) == (
            Decimal("10000.00"),
            Decimal("3750.25"),
            Decimal("6249.75"),
        )
        with pytest.raises(BudgetError) as e:
            batches.approve(s, city.reference, "checker", t0 + 3 * H)
        assert "长财预〔2025〕101号" in str(e.value) and "缺口 0.01元" in str(e.value)
    with tx() as s:
        city = batches.get_batch(s, city.reference)
        assert city.state == "assembled"
        _indexed(s, t0 + 4 * H, "3750.25")  # the finance bureau adds the fen
        batches.approve(s, city.reference, "checker", t0 + 5 * H)
        assert finance.index_balance(s, "长财预〔2025〕101号").left == Decimal("0.00")
        batches.export(s, city.reference, "maker", tmp_path / "city", t0 + 5 * H)
        _settle(s, city, {"1": "户名不符"}, "maker", t0 + 6 * H)
        failed = s.scalar(select(BatchLine.amount).where(BatchLine.status == "failed"))
        # A failed line gives its money back to the index.
        assert finance.index_balance(s, "长财预〔2025〕101号").left == failed > 0


def test_an_index_without_an_amount_is_not_checked_and_a_bad_amount_is_refused(tx, notified, t0) -> None:
    _confirm_all(tx, notified, t0)
    with tx() as s:
        payer_accounts(s, t0)
        with pytest.raises(finance.FinanceConfigError, match="指标金额"):
            _indexed(s, t0, "0.001")
        _indexed(s, t0, None, None)
        assert finance.index_balance(s, "长财预〔2025〕101号") is None
        for b in batches.create_batches(s, "wengang", "maker", t0 + 2 * H):
            assert batches.approve(s, b.reference, "checker", t0 + 3 * H).state == "approved"
