"""Supervision that pushes (`reports.supervision`): staff reminded one working day and one hour before a
deadline by SMS and e-mail through the outbox, each once; overdue work escalated to the department's
head with a 督办 list."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from payouts import imports, offers, outbox
from payouts.models import SmsMessage, StaffUser
from payouts.sms import MemoryGateway
from reports import supervision
from reports.sla import DEFAULT
from rules.formats import CHINA
from rules.workdays import working_days_after

DEPT = "市工业和信息化局"  # the example policies' department


def beijing(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=CHINA)


def test_a_deadline_runs_across_the_national_day_holiday_and_an_adjusted_working_saturday() -> None:
    # Two working days from Tuesday 30 September 2025: 1–8 October is the holiday, so 9 and 10 October.
    assert working_days_after(beijing(2025, 9, 30, 10), 2) == beijing(2025, 10, 10, 10).astimezone(dt.UTC)
    # Two from Thursday 9 October: Friday 10 and Saturday 11 October (调休上班).
    assert working_days_after(beijing(2025, 10, 9, 10), 2) == beijing(2025, 10, 11, 10).astimezone(dt.UTC)


def _world(tx, small_run: Path) -> None:
    """`gaoxin` confirmed at release on Thursday 9 October 2025, 10:00: its 组批 is due Saturday 11
    October, 10:00 (2 working days, the Saturday worked). The maker has a phone and an e-mail; the
    department has a head."""
    at = beijing(2025, 10, 9, 10)
    with tx() as s:
        imports.import_run(s, small_run, "rev", at)
        offers.release(s, "rev", at)
        maker = s.scalar(select(StaffUser).where(StaffUser.username == "maker"))
        maker.phone, maker.email = "13900000001", "maker@czj.example.gov.cn"
        s.add(
            StaffUser(
                username="head",
                display_name="局长",
                role="policy",
                department=DEPT,
                head=True,
                phone="13900000009",
                email="head@gxj.example.gov.cn",
                created_at=at,
            )
        )


def test_staff_are_reminded_a_working_day_and_an_hour_before_each_once(tx, small_run: Path) -> None:
    _world(tx, small_run)
    phone, mail = MemoryGateway(), outbox.MemoryMail()

    def remind(*at: int) -> supervision.Pushed:
        with tx() as s:
            return supervision.remind(s, phone, mail, beijing(*at), DEFAULT)

    assert remind(2025, 10, 9, 12).sent == 0  # more than a working day left
    first = remind(2025, 10, 10, 10, 30)  # a working day before Saturday 10:00
    assert first.sent == 2 and first.failed == 0
    assert [m.phone for m in phone.sent] == ["13900000001"] and [m.to for m in mail.sent] == [
        "maker@czj.example.gov.cn"
    ]
    assert "组批" in phone.sent[0].text and "2025年10月11日 10:00" in phone.sent[0].text
    assert "剩一个工作日" in phone.sent[0].text
    assert remind(2025, 10, 10, 16).sent == 0  # sent once
    hour = remind(2025, 10, 11, 9, 15)  # an hour before
    assert hour.sent == 2 and "剩一小时" in phone.sent[-1].text
    assert remind(2025, 10, 11, 9, 45).sent == 0
    assert len(phone.sent) == 2 and len(mail.sent) == 2 and not phone.duplicates
    with tx() as s:
        kinds = sorted(s.scalars(select(SmsMessage.kind).where(SmsMessage.staff_user_id.is_not(None))))
    assert kinds == ["sla_1d", "sla_1d", "sla_1h", "sla_1h"]


def test_an_opted_out_staff_phone_gets_the_e_mail_only(tx, small_run: Path) -> None:
    _world(tx, small_run)
    with tx() as s:
        outbox.opt_out(s, "13900000001", beijing(2025, 10, 1), "reply")
    phone, mail = MemoryGateway(), outbox.MemoryMail()
    with tx() as s:
        r = supervision.remind(s, phone, mail, beijing(2025, 10, 10, 10, 30), DEFAULT)
    assert (r.sent, r.skipped, phone.sent, len(mail.sent)) == (1, 1, [], 1)


def test_overdue_work_goes_to_the_head_with_a_supervision_list_once_a_day(tx, small_run: Path) -> None:
    _world(tx, small_run)
    phone, mail = MemoryGateway(), outbox.MemoryMail()
    with tx() as s:
        supervision.remind(s, phone, mail, beijing(2025, 10, 10, 10, 30), DEFAULT)
    monday = beijing(2025, 10, 13, 9)
    with tx() as s:
        rows = supervision.supervision_list(s, DEFAULT, monday, DEPT)
        pushed = supervision.escalate(s, phone, mail, monday, DEFAULT)
    # The offer held at review (no account) is overdue at 初核 too; the confirmed one at 组批.
    assert {r.step for r in rows} == {"初核发布", "组批"}
    [row] = [r for r in rows if r.step == "组批"]
    assert (row.step, row.offers, row.overdue_since) == (
        "组批",
        1,
        beijing(2025, 10, 11, 10).astimezone(dt.UTC),
    )
    assert any("maker" in who or "制单" in who for who in row.responsible)
    assert any("提前一个工作日短信提醒" in d for d in row.done), row
    assert pushed.sent == 2
    letter = mail.sent[-1]
    assert letter.to == "head@gxj.example.gov.cn" and "督办" in letter.subject
    for part in ("gaoxin 惠企补贴·组批", "自 2025年10月11日 10:00 起超时", "责任人", "已办"):
        assert part in letter.text
    assert "办理超时" in phone.sent[-1].text and phone.sent[-1].phone == "13900000009"
    with tx() as s:
        assert supervision.escalate(s, phone, mail, beijing(2025, 10, 13, 15), DEFAULT).sent == 0
        assert supervision.escalate(s, phone, mail, beijing(2025, 10, 14, 9), DEFAULT).sent == 2


def test_a_staff_contact_is_checked_and_a_head_needs_a_department(tx) -> None:
    t0 = beijing(2025, 10, 9, 10)
    import pytest

    from payouts import users
    from payouts.errors import RoleError

    with tx() as s:
        users.create_user(s, "admin", "system_admin", now=t0)
        users.create_user(s, "dept_rev", "reviewer", department=DEPT, carry_over=True, now=t0)
    with tx() as s, pytest.raises(RoleError, match="11 位手机号码"):
        users.set_contact(s, "dept_rev", phone="12345", email=None, head=False, by="admin", now=t0)
    with tx() as s, pytest.raises(RoleError, match=r"没有部门.*set-department"):
        users.set_contact(s, "maker", phone=None, email=None, head=True, by="admin", now=t0)
    with tx() as s:
        user = users.set_contact(
            s, "dept_rev", phone="13900001111", email="rev@gxj.example.gov.cn", head=True, by="admin", now=t0
        )
        assert (user.phone, user.head) == ("13900001111", True)
        assert [u.username for u in supervision.heads(s, DEPT)] == ["dept_rev"]
