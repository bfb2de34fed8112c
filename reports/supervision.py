"""Supervision that pushes (督办): the SLA's deadlines told to the people who must meet them, and overdue
work escalated to the department's head.

Huai'an texts the responsible official one working day and one hour before a deadline; Leiyang takes up
every yellow and red light. Here, from the one SLA (`reports.sla`, a policy's own limits included):

- `remind`: for each step with a time limit that staff own — 初核 (reviewers of the policy's
  department), 组批 (finance makers) and 复核 (finance checkers) — the offers waiting in it are grouped
  by policy and by the day their deadline falls on; each responsible user gets one SMS (if a phone is
  on file) and one e-mail (if an address is) one working day before the earliest deadline of the
  group, and one an hour before it. Each message goes once (the outbox's idempotency key names the
  tier, user, step, policy and deadline day).
- `escalate`: the work past its deadline, per department, goes to the department's head(s) (users
  marked `head`) as a 督办 list — who is responsible, what waits (policy, step, offers, money), since
  when it is overdue, and what was done (the reminders sent) — once per department and day.

Both run as periodic jobs on the job queue (`api.worker`); the 督办 list is also `supervision_list`
for the console and the API. Deadlines are computed per group, never per offer in Python, so the work
is bounded by policies × days whatever the number of offers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from payouts import outbox
from payouts.models import Offer, OfferState, PolicyVersion, Role, SmsMessage, StaffUser
from payouts.sms import SmsGateway
from reports.calendar import china_day
from reports.sla import DEFAULT, Sla
from reports.timeline import first_batches
from rules.formats import CHINA, money, staff_time
from rules.workdays import working_days_after, working_days_before

S = OfferState
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class Step:
    """A step whose deadline staff own: which role answers for it, and how its waiting offers are found."""

    id: str
    label: str
    role: Role
    days_key: str  # the `Sla` attribute with its limit


STEPS = (
    Step("review", "初核发布", Role.REVIEWER, "review_days"),
    Step("batch", "组批", Role.FINANCE_MAKER, "batch_days"),
    Step("approve", "复核", Role.FINANCE_CHECKER, "approve_days"),
)
TIERS = (("1d", "一个工作日"), ("1h", "一小时"))


@dataclass(frozen=True)
class Due:
    """Offers of one policy waiting in one step whose deadlines fall on one day (the earliest given)."""

    step: Step
    policy_id: str
    title: str
    department: str
    deadline: dt.datetime  # the earliest deadline of the group
    offers: int
    amount: Decimal
    since: dt.datetime  # when the earliest of them entered the step


def due_work(
    session: Session,
    sla: Sla,
    now: dt.datetime,
    *,
    horizon: dt.timedelta | None = None,
    region: str | None = None,
) -> list[Due]:
    """Waiting work grouped by step, policy and deadline day, with the earliest deadline of each group;
    only groups due before `now + horizon` (default: every group), and with `region`, only the offers of
    enterprises whose region code starts with it (a region-scoped user's). A policy's own limits count."""
    sla = sla if sla.policies else sla.with_policies(session)
    out: list[Due] = []
    for step in STEPS:
        fb = first_batches()
        started = {"review": Offer.created_at, "batch": Offer.confirmed_at, "approve": fb.c.batched_at}[
            step.id
        ]
        waiting = {
            "review": Offer.state.in_([S.DRAFTED.value, S.HELD.value]),
            "batch": Offer.state == S.CONFIRMED.value,
            "approve": and_(Offer.state == S.IN_BATCH.value, fb.c.approved_at.is_(None)),
        }[step.id]
        keys = (Offer.policy_id, PolicyVersion.title, PolicyVersion.department, china_day(started))
        query = (
            select(*keys, func.min(started), func.count(), func.sum(Offer.amount))
            .select_from(Offer)
            .join(
                PolicyVersion,
                and_(
                    PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version
                ),
            )
            .where(waiting, started.is_not(None))
            .group_by(*keys)
        )
        if step.id == "approve":
            query = query.outerjoin(fb, fb.c.offer_id == Offer.id)
        if region is not None:
            query = query.where(Offer.region_code.startswith(region, autoescape=True))
        groups: dict[tuple[str, dt.date], list[Due]] = {}
        for pid, title, dept, _, first, n, amount in session.execute(query):
            first = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
            deadline = working_days_after(first, getattr(sla.for_policy(pid), step.days_key), strict=False)
            if horizon is not None and deadline > now + horizon:
                continue
            amount = Decimal(amount or 0).quantize(ZERO)
            due = Due(step, pid, title, dept, deadline, int(n), amount, first)
            groups.setdefault((pid, deadline.astimezone(CHINA).date()), []).append(due)
        for dues in groups.values():  # start days whose deadlines fall on one day (over a weekend, a holiday)
            first_due = min(dues, key=lambda d: d.deadline)
            out.append(
                Due(
                    step,
                    first_due.policy_id,
                    first_due.title,
                    first_due.department,
                    first_due.deadline,
                    sum(d.offers for d in dues),
                    sum((d.amount for d in dues), ZERO),
                    min(d.since for d in dues),
                )
            )
    return sorted(out, key=lambda d: (STEPS.index(d.step), d.deadline, d.policy_id))


def responsible(session: Session, role: Role, department: str) -> list[StaffUser]:
    """Active users with `role` in `department` (or serving every department)."""
    return list(
        session.scalars(
            select(StaffUser)
            .where(
                StaffUser.active.is_(True),
                StaffUser.role == role.value,
                or_(StaffUser.department.is_(None), StaffUser.department == department),
            )
            .order_by(StaffUser.id)
        )
    )


def heads(session: Session, department: str) -> list[StaffUser]:
    """The department's head(s): active users marked `head` in it."""
    return list(
        session.scalars(
            select(StaffUser)
            .where(StaffUser.active.is_(True), StaffUser.head.is_(True), StaffUser.department == department)
            .order_by(StaffUser.id)
        )
    )


@dataclass
class Pushed:
    """What a reminder or escalation run did."""

    sent: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def count(self, r: outbox.Sent, what: str) -> None:
        if r.sent:
            self.sent += 1
        elif r.error:
            self.failed += 1
            self.errors.append(f"{what}: {r.error}")
        else:
            self.skipped += 1

    def plain(self) -> dict[str, Any]:
        return {"sent": self.sent, "skipped": self.skipped, "failed": self.failed, "errors": self.errors[:20]}


def _deliver(
    session: Session,
    user: StaffUser,
    key: str,
    kind: str,
    subject: str,
    sms_text: str,
    mail_text: str,
    now: dt.datetime,
    sms: SmsGateway,
    mail: outbox.MailGateway,
    result: Pushed,
) -> None:
    """One message to one user, by SMS and e-mail where each is on file, each once per key."""
    if user.phone:
        r = outbox.send_once(
            session,
            dedupe_key=f"{key}|sms",
            kind=kind,
            channel="sms",
            to=user.phone,
            text=sms_text,
            now=now,
            sms=sms,
            staff_user_id=user.id,
        )
        result.count(r, f"{user.username} 短信")
    if user.email:
        r = outbox.send_once(
            session,
            dedupe_key=f"{key}|email",
            kind=kind,
            channel="email",
            to=user.email,
            text=mail_text,
            subject=subject,
            now=now,
            mail=mail,
            staff_user_id=user.id,
        )
        result.count(r, f"{user.username} 邮件")


def remind(
    session: Session,
    sms: SmsGateway,
    mail: outbox.MailGateway,
    now: dt.datetime,
    sla: Sla = DEFAULT,
    *,
    sign: str = "惠企直达",
) -> Pushed:
    """Remind the responsible staff one working day and one hour before each deadline (each tier once)."""
    result = Pushed()
    horizon = dt.timedelta(days=15)  # no limit's last working day is further than this before its deadline
    for due in due_work(session, sla, now, horizon=horizon):
        if due.deadline <= now:
            continue  # overdue: escalated, not reminded
        tiers = []
        if working_days_before(due.deadline, 1, strict=False) <= now:
            tiers.append(TIERS[0])
        if due.deadline - dt.timedelta(hours=1) <= now:
            tiers.append(TIERS[1])
        if not tiers:
            continue
        tier, left = tiers[-1]  # the nearer tier only: an hour before, the day-before message is moot
        when = staff_time(due.deadline)
        for user in responsible(session, due.step.role, due.department):
            key = (
                f"sla|{tier}|{user.id}|{due.step.id}|{due.policy_id}|{due.deadline.astimezone(CHINA).date()}"
            )
            what = f"“{due.title}”{due.offers:,}笔待{due.step.label}"
            sms_text = f"【{sign}】{user.display_name}：{what}，{when}到期（剩{left}），请及时办理。"
            mail_text = (
                f"{user.display_name}：\n\n{what}（金额 {money(due.amount)} 元），办理时限于 {when}（北京时间）"
                f"到期，距到期不足{left}。请登录惠企直达工作台及时办理。\n\n本邮件由系统自动发送。"
            )
            subject = f"【办理时限提醒】{due.title} {due.step.label} {when}到期"
            _deliver(session, user, key, f"sla_{tier}", subject, sms_text, mail_text, now, sms, mail, result)
    return result


@dataclass(frozen=True)
class Overdue:
    """One line of the 督办 list: what is overdue, who answers for it, since when, what was done."""

    department: str
    policy_id: str
    title: str
    step: str
    offers: int
    amount: Decimal
    overdue_since: dt.datetime  # the earliest deadline passed
    responsible: tuple[str, ...]  # display names
    done: tuple[str, ...]  # the reminders sent, e.g. "张三 短信提醒 2025-10-14 10:00"


def supervision_list(
    session: Session, sla: Sla, now: dt.datetime, department: str | None = None, region: str | None = None
) -> list[Overdue]:
    """The 督办 list: overdue work by department, policy and step, oldest first (with `region`, of that
    region's enterprises only)."""
    groups: dict[tuple[str, str, str], list[Due]] = {}
    for due in due_work(session, sla, now, region=region):
        if due.deadline <= now and (department is None or due.department == department):
            groups.setdefault((due.department, due.policy_id, due.step.id), []).append(due)
    rows = []
    for (dept, pid, _), dues in groups.items():
        step = dues[0].step
        users = responsible(session, step.role, dept)
        done = _reminders_sent(session, [u.id for u in users if u.id is not None], step.id, pid)
        rows.append(
            Overdue(
                dept,
                pid,
                dues[0].title,
                step.label,
                sum(d.offers for d in dues),
                sum((d.amount for d in dues), ZERO),
                min(d.deadline for d in dues),
                tuple(f"{u.display_name}（{ROLE_NAMES[step.role]}）" for u in users) or ("未配置责任人",),
                done or ("未发出提醒",),
            )
        )
    return sorted(rows, key=lambda r: (r.overdue_since, r.department, r.policy_id))


ROLE_NAMES = {Role.REVIEWER: "初核", Role.FINANCE_MAKER: "制单", Role.FINANCE_CHECKER: "复核"}


def _reminders_sent(session: Session, user_ids: Iterable[int], step: str, policy_id: str) -> tuple[str, ...]:
    ids = list(user_ids)
    if not ids:
        return ()
    rows = session.execute(
        select(StaffUser.display_name, SmsMessage.channel, SmsMessage.kind, SmsMessage.sent_at)
        .select_from(SmsMessage)
        .join(StaffUser, StaffUser.id == SmsMessage.staff_user_id)
        .where(
            SmsMessage.staff_user_id.in_(ids),
            SmsMessage.status == "sent",
            SmsMessage.dedupe_key.like(f"sla|%|{step}|{policy_id}|%"),
        )
        .order_by(SmsMessage.sent_at)
    ).all()
    channel = {"sms": "短信", "email": "邮件"}
    tier = {"sla_1d": "提前一个工作日", "sla_1h": "提前一小时"}
    return tuple(f"{n} {tier.get(k, k)}{channel.get(c, c)}提醒 {staff_time(at)}" for n, c, k, at in rows)


def escalate(
    session: Session,
    sms: SmsGateway,
    mail: outbox.MailGateway,
    now: dt.datetime,
    sla: Sla = DEFAULT,
    *,
    sign: str = "惠企直达",
) -> Pushed:
    """Send each department's head its 督办 list of overdue work, once per department and day."""
    result = Pushed()
    by_dept: dict[str, list[Overdue]] = {}
    for row in supervision_list(session, sla, now):
        by_dept.setdefault(row.department, []).append(row)
    today = now.astimezone(CHINA).date()
    for dept, rows in sorted(by_dept.items()):
        offers = sum(r.offers for r in rows)
        lines = [
            f"{n}. {r.title}·{r.step}：{r.offers:,}笔，{money(r.amount)}元，自 {staff_time(r.overdue_since)} 起超时；"
            f"责任人：{'、'.join(r.responsible)}；已办：{'；'.join(r.done)}"
            for n, r in enumerate(rows, start=1)
        ]
        for head in heads(session, dept):
            sms_text = (
                f"【{sign}】{head.display_name}：{dept}有{len(rows)}项办理超时（{offers:,}笔），"
                "督办清单已发至您的邮箱，请督促办理。"
            )
            mail_text = (
                f"{head.display_name}：\n\n截至 {staff_time(now)}（北京时间），{dept}以下事项已超过办理时限，请督促办理：\n\n"
                + "\n".join(lines)
                + "\n\n本邮件由系统自动发送。"
            )
            subject = f"【督办】{dept}办理超时事项清单（{today.year}年{today.month}月{today.day}日）"
            key = f"escalation|{head.id}|{dept}|{today}"
            _deliver(session, head, key, "escalation", subject, sms_text, mail_text, now, sms, mail, result)
    return result
