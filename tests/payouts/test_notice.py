"""Public notice (公示) and objections (异议): a batch of a policy with a notice period is approved only after
its recipients were on notice for the whole period and every objection is resolved; an upheld objection
takes the enterprise's line out of the batch.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from payouts import audit, batches, confirm, imports, notice, offers, sms
from payouts.models import Batch, BatchLine, Offer
from rules.errors import PayoutError, PolicyError, StateError
from rules.validate import parse_policy_text
from tests.payouts.conftest import SETTINGS

CONFORMANCE = Path(__file__).resolve().parents[1] / "conformance" / "policies"
H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


@pytest.fixture
def batch(tx, tmp_path, t0, ex) -> SimpleNamespace:
    """Three confirmed offers of `wengang` (7 days of public notice) in one assembled batch."""
    run = ex.write_run(
        tmp_path / "run",
        [ex.policy("wengang", budget="10000.00") | {"notice_days": 7}],
        [
            ("wengang", "main", 1, "1000.00"),
            ("wengang", "main", 2, "2000.00"),
            ("wengang", "main", 3, "3000.00"),
        ],
        [ex.payee(1), ex.payee(2), ex.payee(3)],
    )
    phone = sms.MemoryGateway()
    with tx() as s:
        imports.import_run(s, run, "rev", t0)
        offers.release(s, "rev", t0)
        sms.send_notices(s, phone, t0, SETTINGS)
    with tx() as s:
        for m in phone.sent:
            confirm.confirm(
                s, m.params["link"].removeprefix(SETTINGS.link_base), ip=None, user_agent=None, now=t0 + H
            )
        ref = batches.create_batch(s, "wengang", "maker", t0 + 2 * H).reference
    return SimpleNamespace(ref=ref, t=t0 + 3 * H)


def _open(tx, ref: str, at: dt.datetime) -> str:
    with tx() as s:
        return notice.open_notice(s, ref, "maker", at).public_id


def test_a_batch_is_not_approved_before_its_recipients_were_on_notice(tx, batch) -> None:
    with tx() as s, pytest.raises(StateError, match=r"政策要求公示 7 天：.*尚未公示"):
        batches.approve(s, batch.ref, "checker", batch.t)
    nid = _open(tx, batch.ref, batch.t)
    with tx() as s, pytest.raises(StateError, match="公示期满前不能复核通过"):
        batches.approve(s, batch.ref, "checker", batch.t + 7 * D - H)
    with tx() as s:
        assert notice.get(s, nid).days == 7
        assert batches.approve(s, batch.ref, "checker", batch.t + 7 * D).state == "approved"


def test_the_public_list_shows_name_item_and_amount_and_no_account(tx, batch) -> None:
    nid = _open(tx, batch.ref, batch.t)
    with tx() as s:
        shown = notice.lines(s, notice.get(s, nid))
        assert [(x.line_no, x.name, x.item, x.amount) for x in shown] == [
            (1, "示例企业1有限公司", "main 事项", Decimal("1000.00")),
            (2, "示例企业2有限公司", "main 事项", Decimal("2000.00")),
            (3, "示例企业3有限公司", "main 事项", Decimal("3000.00")),
        ]
        assert not any("4300150" in str(vars(x)) for x in shown)  # no account number
        assert [n.public_id for n in notice.running(s, batch.t + D)] == [nid]
        assert notice.running(s, batch.t + 8 * D) == []


def test_an_open_objection_blocks_approval_until_it_is_dismissed(tx, batch) -> None:
    nid = _open(tx, batch.ref, batch.t)
    with tx() as s:
        oid = notice.file_objection(
            s, nid, 2, name="张三", contact="13900001111", text="该企业已停业", now=batch.t + D
        ).public_id
    with tx() as s, pytest.raises(StateError, match="1 条异议尚未处理"):
        batches.approve(s, batch.ref, "checker", batch.t + 8 * D)
    with tx() as s:
        with pytest.raises(StateError, match="理由"):
            notice.resolve(s, oid, False, " ", "rev", batch.t + 2 * D)
        notice.resolve(s, oid, False, "经核实该企业正常经营", "rev", batch.t + 2 * D)
    with tx() as s:
        b = batches.approve(s, batch.ref, "checker", batch.t + 8 * D)
        assert (b.state, b.line_count, b.total) == ("approved", 3, Decimal("6000.00"))


def test_an_upheld_objection_removes_the_enterprises_line_and_holds_its_offer(tx, batch) -> None:
    nid = _open(tx, batch.ref, batch.t)
    with tx() as s:
        oid = notice.file_objection(
            s, nid, 2, name="李四", contact="li@example.com", text="重复享受", now=batch.t + D
        ).public_id
        notice.resolve(s, oid, True, "经核实已在他处享受", "rev", batch.t + 2 * D)
    with tx() as s:
        b = s.scalar(select(Batch).where(Batch.reference == batch.ref))
        assert (b.line_count, b.total) == (2, Decimal("4000.00"))
        line = s.scalar(select(BatchLine).where(BatchLine.batch_id == b.id, BatchLine.line_no == 2))
        offer = s.get(Offer, line.offer_id)
        assert (line.live, line.status, offer.state) == (False, "withdrawn", "held")
        assert "公示异议成立" in (offer.hold_reason or "")
        assert [x.line_no for x in notice.lines(s, notice.get(s, nid))] == [1, 3]
        with pytest.raises(StateError, match="已处理"):
            notice.resolve(s, oid, False, "再议", "rev", batch.t + 3 * D)
    with tx() as s:
        assert batches.approve(s, batch.ref, "checker", batch.t + 8 * D).line_count == 2
        assert audit.verify(s).ok


def test_an_objection_needs_a_contact_a_listed_line_and_a_running_notice(tx, batch) -> None:
    nid = _open(tx, batch.ref, batch.t)
    with tx() as s:
        with pytest.raises(PayoutError, match="联系方式"):
            notice.file_objection(s, nid, 1, name="王五", contact="找我", text="有问题", now=batch.t + D)
        with pytest.raises(PayoutError, match="第 9 条"):
            notice.file_objection(
                s, nid, 9, name="王五", contact="13900001111", text="有问题", now=batch.t + D
            )
        with pytest.raises(StateError, match="现在不能提出异议"):
            notice.file_objection(
                s, nid, 1, name="王五", contact="13900001111", text="晚了", now=batch.t + 8 * D
            )


def test_only_finance_makers_open_a_notice_and_only_once(tx, batch) -> None:
    with tx() as s, pytest.raises(PayoutError, match="无权"):
        notice.open_notice(s, batch.ref, "checker", batch.t)
    _open(tx, batch.ref, batch.t)
    with tx() as s, pytest.raises(StateError, match="已经公示过"):
        notice.open_notice(s, batch.ref, "maker", batch.t)


def test_the_notice_period_is_an_optional_whole_number_of_days_in_the_policy_file() -> None:
    text = (CONFORMANCE / "c-gaoxin.yaml").read_text(encoding="utf-8")
    assert parse_policy_text(text, "c-gaoxin.yaml").notice_days is None
    assert parse_policy_text(text + "notice_days: 7\n", "c-gaoxin.yaml").notice_days == 7
    for bad in ("-1", "3.5", "七天"):
        with pytest.raises(PolicyError, match="notice_days"):
            parse_policy_text(text + f"notice_days: {bad}\n", "c-gaoxin.yaml")


def test_a_withdrawn_batch_leaves_the_public_list(tx, batch) -> None:
    nid = _open(tx, batch.ref, batch.t)
    with tx() as s:
        batches.reject(s, batch.ref, "maker", "金额有误，重新制单", batch.t + H)
    with tx() as s:
        assert notice.running(s, batch.t + D) == []
        with pytest.raises(StateError, match="已撤回"):
            notice.file_objection(s, nid, 1, name="王五", contact="13900001111", text="x", now=batch.t + D)


def test_a_line_withdrawn_by_an_upheld_objection_never_reaches_the_bank(tx, batch, tmp_path) -> None:
    nid = _open(tx, batch.ref, batch.t)
    with tx() as s:
        oid = notice.file_objection(
            s, nid, 2, name="李四", contact="li@example.com", text="重复享受", now=batch.t + D
        ).public_id
        notice.resolve(s, oid, True, "经核实已在他处享受", "rev", batch.t + 2 * D)
        withdrawn = s.scalar(
            select(BatchLine.reference)
            .join(Batch)
            .where(Batch.reference == batch.ref, BatchLine.line_no == 2)
        )
    with tx() as s:
        batches.approve(s, batch.ref, "checker", batch.t + 8 * D)
        files = batches.export(s, batch.ref, "maker", tmp_path / "bank", batch.t + 8 * D + H)
        paid = batches.bank_file_of(s, batches.get_batch(s, batch.ref))
    csv = files.csv_path.read_bytes().decode("utf-8-sig")
    xml = files.xml_path.read_text(encoding="utf-8")
    assert withdrawn not in csv and withdrawn not in xml
    assert "<NbOfTxs>2</NbOfTxs>" in xml and "<CtrlSum>4000.00</CtrlSum>" in xml
    assert [ln.line_no for ln in paid.lines] == [1, 3] and paid.total == Decimal("4000.00")


def test_the_bank_files_purpose_names_the_period_as_people_read_it(tx, batch, tmp_path) -> None:
    # The purpose reaches the enterprise's bank statement: 2025年度, never the policy file's "2025" or "once".
    _open(tx, batch.ref, batch.t)
    with tx() as s:
        batches.approve(s, batch.ref, "checker", batch.t + 8 * D)
        files = batches.export(s, batch.ref, "maker", tmp_path / "bank", batch.t + 8 * D + H)
    assert "（2025年度）" in files.csv_path.read_bytes().decode("utf-8-sig")
    assert "（2025年度）</Ustrd>" in files.xml_path.read_text(encoding="utf-8")


def test_a_notice_in_working_days_runs_past_the_national_day_holiday(tx, tmp_path, ex) -> None:
    """黑龙江's 新增规上 award is on notice for 5 working days. Opened on Monday 29 September 2025 at 10:00
    China time, it counts 30 September, then (after 1–8 October off) 9, 10 and Saturday 11 October (an
    adjusted working day) and Monday 13 October: it ends on 13 October at 10:00, not on 4 October."""
    opened = dt.datetime(2025, 9, 29, 2, 0, tzinfo=dt.UTC)  # 10:00 in China
    run = ex.write_run(
        tmp_path / "run",
        [ex.policy("shenggui", budget="10000.00", confirmation="none") | {"notice_working_days": 5}],
        [("shenggui", "main", 1, "1000.00")],
        [ex.payee(1)],
    )
    with tx() as s:
        imports.import_run(s, run, "rev", opened - D)
        offers.release(s, "rev", opened - D)
        ref = batches.create_batch(s, "shenggui", "maker", opened - H).reference
    with tx() as s, pytest.raises(StateError, match=r"政策要求公示 5 个工作日：.*尚未公示"):
        batches.approve(s, ref, "checker", opened)
    nid = _open(tx, ref, opened)
    ends = dt.datetime(2025, 10, 13, 2, 0, tzinfo=dt.UTC)
    with tx() as s:
        shown = notice.get(s, nid)
        assert (shown.days, shown.working, shown.ends_at, shown.period_text) == (5, True, ends, "5 个工作日")
    with tx() as s, pytest.raises(StateError, match="2025年10月13日 10:00 结束"):
        batches.approve(s, ref, "checker", ends - H)
    with tx() as s:
        assert batches.approve(s, ref, "checker", ends).state == "approved"
