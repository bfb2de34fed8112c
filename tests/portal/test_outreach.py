"""Outreach (`portal.outreach`): the near-miss and missing-data enterprises of an `outreach: true` policy
are told once per item and run, at most N a month, never after 回复TD退订; the funnel counts what it
brought."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from payouts import imports, outbox
from payouts.models import Offer, SmsMessage
from payouts.sms import MemoryGateway
from portal import outreach
from reports import funnel
from rules.formats import CHINA
from tests.payouts.conftest import payee, policy, uscc, write_run

NOW = dt.datetime(2025, 11, 3, 10, tzinfo=CHINA)
SETTINGS = outreach.OutreachSettings(per_month=2, link="https://zd.example.gov.cn/e/supplied")


def _run(path: Path, *, outreach_on: bool = True, run_id: str = "r1") -> Path:
    """A run: `kuogang` (outreach) and `wengang` (not); enterprise 1 matched, 2 nearly (employees),
    3 missing revenue for both items of kuogang, 4 nearly for wengang only."""
    kuogang = policy("kuogang", items=("main", "extra")) | {"outreach": outreach_on}
    kuogang["conditions"] = [{"id": "staff", "text": "从业人员不少于10人", "clause": "第三条"}]
    run = write_run(
        path, [kuogang, policy("wengang")], [("kuogang", "main", 1, "1000.00")], [payee(1)], run_id=run_id
    )
    pq.write_table(
        pa.table(
            {
                "uscc": [uscc(2), uscc(4)],
                "policy_id": ["kuogang", "wengang"],
                "item_id": ["main", "main"],
                "condition_id": ["staff", "ok"],
                "value": ["8", "1"],
            }
        ),
        run / "near_misses.parquet",
    )
    pq.write_table(
        pa.table(
            {
                "uscc": [uscc(3), uscc(3)],
                "policy_id": ["kuogang", "kuogang"],
                "item_id": ["main", "extra"],
                "fields": [["revenue"], ["revenue", "employees"]],
            }
        ),
        run / "missing_data.parquet",
    )
    contacts = [
        {"uscc": uscc(n), "name": f"示例企业{n}有限公司", "contact_phone": f"1380000{n:04d}"}
        for n in (1, 2, 3, 4)
    ]
    pq.write_table(pa.Table.from_pylist(contacts), run / "contacts.parquet")
    return run


def _send(
    engine,
    gateway: MemoryGateway,
    now: dt.datetime = NOW,
    settings: outreach.OutreachSettings = SETTINGS,
    chunk: int = 1000,
):
    return outreach.send(engine, gateway, now, settings, chunk=chunk)


def test_near_misses_and_missing_data_are_told_what_is_missing_once_per_item_and_run(
    tx, engine, tmp_path: Path
) -> None:
    with tx() as s:
        imports.import_run(s, _run(tmp_path / "run"), "rev", NOW - dt.timedelta(days=1))
    phone = MemoryGateway()
    first = _send(engine, phone)
    assert first.sent == 3  # enterprise 2 once, enterprise 3 for each of two items; wengang is not outreach
    texts = {m.phone: m.text for m in phone.sent}
    assert "从业人员不少于10人" in texts["13800000002"] and "/e/supplied" in texts["13800000002"]
    assert "缺少营业收入" in texts["13800000003"] or "营业收入" in texts["13800000003"]
    assert all(m.text.endswith(outbox.OPT_OUT_HINT) and len(m.text) <= 134 for m in phone.sent)
    assert "13800000004" not in texts and "13800000001" not in texts
    again = _send(engine, phone, NOW + dt.timedelta(hours=1))
    assert (again.sent, again.already) == (0, 3) and len(phone.sent) == 3


def test_an_enterprise_gets_at_most_n_a_month(tx, engine, tmp_path: Path) -> None:
    with tx() as s:
        imports.import_run(s, _run(tmp_path / "run"), "rev", NOW - dt.timedelta(days=1))
    phone = MemoryGateway()
    r = _send(engine, phone, settings=outreach.OutreachSettings(per_month=1))
    assert (r.sent, r.capped) == (2, 1)  # enterprise 3's second item waits
    with tx() as s:
        imports.import_run(s, _run(tmp_path / "run2", run_id="r2"), "rev", NOW + dt.timedelta(days=2))
    later = _send(engine, phone, NOW + dt.timedelta(days=3), outreach.OutreachSettings(per_month=1))
    assert later.sent == 0 and later.capped == 3  # a new run, the same month: capped
    december = _send(
        engine, phone, dt.datetime(2025, 12, 1, 10, tzinfo=CHINA), outreach.OutreachSettings(per_month=1)
    )
    assert december.sent == 2


def test_td_opt_out_is_honoured_by_outreach_and_by_the_offer_notices(tx, engine, tmp_path: Path) -> None:
    from payouts import offers, sms
    from tests.payouts.conftest import SETTINGS as PAYOUT_SETTINGS

    with tx() as s:
        imports.import_run(s, _run(tmp_path / "run"), "rev", NOW - dt.timedelta(days=1))
        offers.release(s, "rev", NOW - dt.timedelta(days=1))
        assert outbox.is_stop_reply(" td ") and outbox.is_stop_reply("退订")
        for n in (1, 2):
            outbox.opt_out(s, f"1380000{n:04d}", NOW - dt.timedelta(days=2), "reply")
    phone = MemoryGateway()
    r = _send(engine, phone)
    assert r.opted_out == 1 and "13800000002" not in {m.phone for m in phone.sent}
    with tx() as s:
        sent = sms.send_notices(s, phone, NOW, PAYOUT_SETTINGS)
        state = s.scalar(select(Offer.state).where(Offer.uscc == uscc(1)))
    assert sent.sent == 0 and state == "released"  # enterprise 1's notice waits for staff
    assert "13800000001" not in {m.phone for m in phone.sent}


def test_the_funnel_counts_what_outreach_brought(tx, engine, tmp_path: Path) -> None:
    with tx() as s:
        imports.import_run(s, _run(tmp_path / "run"), "rev", NOW - dt.timedelta(days=1))
    _send(engine, MemoryGateway())
    # Enterprise 2 qualifies in the next run (after supplying its head count: not modelled here).
    later = tmp_path / "run2"
    write_run(
        later,
        [policy("kuogang", items=("main", "extra")) | {"outreach": True}, policy("wengang")],
        [("kuogang", "main", 2, "1000.00")],
        [payee(2)],
        run_id="r2",
    )
    with tx() as s:
        imports.import_run(s, later, "rev", NOW + dt.timedelta(days=5))
        stages = {st.stage: st for st in funnel.outreach(s)}
        told = s.scalars(select(SmsMessage.uscc).where(SmsMessage.kind == "outreach")).all()
    assert sorted(told) == [uscc(2), uscc(3), uscc(3)]
    assert stages["told"].count == 2  # counted per enterprise and policy (3 was told of two items)
    assert stages["matched"].count == 1 and stages["matched"].amount == 1000
    assert stages["paid"].count == 0 and stages["supplied"].count == 0


class _Crash(Exception):
    """The process dies (not a refusal by the gateway: nothing catches it)."""


@dataclass
class _DyingPhone(MemoryGateway):
    """A gateway whose process dies after the provider took the `die_after`-th message."""

    die_after: int = 0

    def send(self, sms):  # type: ignore[no-untyped-def]
        ref = super().send(sms)
        if len(self.sent) == self.die_after:
            self.die_after = 0
            raise _Crash()
        return ref


def _bigger_run(path: Path) -> Path:
    """`kuogang` with outreach, enterprises 10..16 each one condition short."""
    kuogang = policy("kuogang") | {"outreach": True}
    kuogang["conditions"] = [{"id": "staff", "text": "从业人员不少于10人", "clause": "第三条"}]
    run = write_run(path, [kuogang], [("kuogang", "main", 1, "1000.00")], [payee(1)], run_id="big")
    ns = range(10, 17)
    pq.write_table(
        pa.table(
            {
                "uscc": [uscc(n) for n in ns],
                "policy_id": ["kuogang"] * len(ns),
                "item_id": ["main"] * len(ns),
                "condition_id": ["staff"] * len(ns),
                "value": ["8"] * len(ns),
            }
        ),
        run / "near_misses.parquet",
    )
    contacts = [
        {"uscc": uscc(n), "name": f"示例企业{n}有限公司", "contact_phone": f"1380000{n:04d}"} for n in ns
    ]
    pq.write_table(pa.Table.from_pylist(contacts), run / "contacts.parquet")
    return run


def test_outreach_cut_short_after_a_chunk_is_resumed_and_sends_only_the_rest(
    tx, engine, tmp_path: Path
) -> None:
    with tx() as s:
        imports.import_run(s, _bigger_run(tmp_path / "run"), "rev", NOW - dt.timedelta(days=1))
    phone = _DyingPhone(die_after=4)  # chunks of 3: the first is settled, the second dies in hand
    with pytest.raises(_Crash):
        _send(engine, phone, chunk=3)
    with tx() as s:
        status = dict(
            s.execute(
                select(SmsMessage.status, func.count())
                .where(SmsMessage.kind == "outreach")
                .group_by(SmsMessage.status)
            ).all()
        )
    assert status == {"sent": 3, "sending": 1, "failed": 2}  # the chunk in hand: 1 unknown, 2 not tried
    again = _send(engine, phone, NOW + dt.timedelta(minutes=5), chunk=3)
    assert (again.sent, again.already) == (3, 4)  # the one in hand was handed over again, with its key
    assert len(phone.duplicates) == 1 and phone.duplicates[0].phone == phone.sent[3].phone
    assert sorted(m.phone for m in phone.sent) == [f"1380000{n:04d}" for n in range(10, 17)]  # each once
    with tx() as s:
        assert (
            s.scalar(select(func.count()).where(SmsMessage.kind == "outreach", SmsMessage.status == "sent"))
            == 7
        )
    assert _send(engine, phone, NOW + dt.timedelta(minutes=10), chunk=3).sent == 0
