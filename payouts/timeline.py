"""An offer's timeline as its enterprise follows it: matched, reviewed, notified, confirmed, batched,
approved, paid (with the bank reference) or failed (with the bank's reason), the amounts, and what
happens next and by when.

Read from the audit trail (`payouts.audit.history`: the offer's own events and the bulk events it is a
member of) and from the batch lines that carried it, so the enterprise sees exactly what staff and
auditors see, in its own words. Nothing here changes anything.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import select
from sqlmodel import Session

from payouts import audit, offers
from payouts.models import Batch, BatchLine, LineStatus, Offer, OfferState, PolicyVersion
from rules.formats import public_time

S = OfferState

AGENT = "agent:"  # the audit actor of a 帮办代办 staff member acting for the enterprise (portal.agency)

# The steps of the usual path, in order: (key, label).
STEPS = (
    ("matched", "数据比对匹配"),
    ("reviewed", "初核通过"),
    ("notified", "发送确认短信"),
    ("confirmed", "企业确认"),
    ("batched", "纳入拨付批次"),
    ("approved", "批次复核通过"),
    ("paid", "资金到账"),
)

# Audit actions on the offer → (step key it completes or None, what the enterprise reads).
ACTIONS = {
    "import": ("matched", "经数据比对，贵单位符合条件"),
    "release": ("reviewed", "初核通过，已发布"),
    "hold": (None, "暂缓"),
    "drop": (None, "初核未通过，已剔除"),
    "notify": ("notified", "已发送确认短信"),
    "confirm": ("confirmed", "贵单位已确认领取"),
    "decline": (None, "贵单位已放弃"),
    "account_wrong": (None, "贵单位反映对公账户有误，等待核实更正"),
    "expire": (None, "确认期限已过，视为放弃"),
    "batch": ("batched", "已纳入拨付批次"),
    "unbatch": (None, "拨付批次被退回，等待重新组批"),
    "correct_account": (None, "工作人员已更正对公账户"),
    # An offer from an application (快申快享): the enterprise applied, the departments accepted it.
    "apply_accept": ("confirmed", "申请审核通过，资金已核定"),
}


@dataclass
class Step:
    """One step of the usual path: done (when), the current one, or still to come."""

    key: str
    label: str
    at: dt.datetime | None = None
    detail: str | None = None
    done: bool = False
    failed: bool = False


@dataclass(frozen=True)
class Happened:
    """One recorded event, as the enterprise reads it."""

    at: dt.datetime
    text: str
    reason: str | None = None


@dataclass
class Timeline:
    """Everything the enterprise's page shows about one offer."""

    public_id: str
    policy_title: str
    item_title: str
    department: str
    state: str
    state_label: str
    amount: Decimal
    amount_before_allocation: Decimal
    deadline: dt.datetime | None
    service_phone: str | None = None  # the policy's 咨询电话; None: the deployment's
    steps: list[Step] = field(default_factory=list)
    events: list[Happened] = field(default_factory=list)
    bank_reference: str | None = None
    failure_reason: str | None = None
    next_step: str = ""
    next_by: dt.datetime | None = None


def _lines(session: Session, offer: Offer) -> list[tuple[BatchLine, Batch]]:
    rows = session.execute(
        select(BatchLine, Batch)
        .join(Batch, Batch.id == BatchLine.batch_id)
        .where(BatchLine.offer_id == offer.id)
        .order_by(BatchLine.id)
    ).all()
    return [(ln, b) for ln, b in rows]


def timeline(session: Session, offer: Offer) -> Timeline:
    """The timeline of one offer (the caller has checked that it is the enterprise's own)."""
    policy = session.scalar(
        select(PolicyVersion).where(
            PolicyVersion.policy_id == offer.policy_id, PolicyVersion.version == offer.policy_version
        )
    )
    assert policy is not None
    item = next((i for i in json.loads(policy.items) if i["id"] == offer.item_id), {"title": offer.item_id})
    t = Timeline(
        public_id=offer.public_id,
        policy_title=policy.title,
        item_title=item["title"],
        department=policy.department,
        state=offer.state,
        state_label=offers.public_label(offer.state),
        service_phone=policy.service_phone,
        amount=offer.amount,
        amount_before_allocation=offer.amount_before_allocation,
        deadline=offer.deadline,
    )
    steps = {key: Step(key, label) for key, label in STEPS}
    no_confirmation = policy.confirmation == "none"
    for event in audit.history(session, "offer", offer.public_id):
        if event.action == "reconcile":
            continue  # from the batch line below, with the bank's reference
        key, text = ACTIONS.get(event.action, (None, offers.label(event.to_state)))
        if event.action == "release" and event.to_state == S.CONFIRMED.value:
            text = "初核通过；本政策无需确认，直接进入拨付"
            for k in ("reviewed", "notified", "confirmed"):
                steps[k].done, steps[k].at = True, event.at
            steps["notified"].detail = steps["confirmed"].detail = "本政策无需意愿确认"
        if event.action == "apply_accept":
            # Applying was the enterprise's confirmation; the review was the departments'.
            steps["matched"].label, steps["reviewed"].label = "企业申请", "部门审核通过"
            for k in ("matched", "reviewed", "notified", "confirmed"):
                steps[k].done, steps[k].at = True, event.at
            steps["notified"].detail = steps["confirmed"].detail = "申请即视为确认，无需短信确认"
        if key is not None:
            steps[key].done, steps[key].at = True, event.at
        if event.actor.startswith(AGENT):  # 帮办代办 acted for the enterprise: say who
            who = event.actor.removeprefix(AGENT)
            text = f"{text}（由帮办代办工作人员 {who} 依贵单位委托书代为办理）".replace("贵单位已", "已")
            if key is not None:
                steps[key].detail = f"帮办代办工作人员 {who} 代为办理"
        t.events.append(Happened(event.at, text, event.reason))
    if steps["matched"].done:
        steps["matched"].detail = f"测算金额 {offer.amount_before_allocation:,.2f} 元"
        if offer.amount != offer.amount_before_allocation:
            steps["matched"].detail += f"，按预算分配后 {offer.amount:,.2f} 元"
    if offer.notified_at and not no_confirmation:
        steps["notified"].detail = f"请于 {_day(offer.deadline)} 前确认" if offer.deadline else None
    lines = _lines(session, offer)
    for ln, batch in lines:
        steps["batched"].detail = f"批次 {batch.reference}，金额 {ln.amount:,.2f} 元"
        if batch.approved_at is not None:
            steps["approved"].done, steps["approved"].at = True, batch.approved_at
            t.events.append(Happened(batch.approved_at, f"拨付批次 {batch.reference} 复核通过"))
        if batch.exported_at is not None:
            t.events.append(Happened(batch.exported_at, "已将拨付指令发送银行"))
        if batch.rejected_at is not None:
            t.events.append(Happened(batch.rejected_at, f"拨付批次 {batch.reference} 被退回", batch.reason))
        if ln.status == LineStatus.PAID.value and ln.settled_at is not None:
            steps["paid"].done, steps["paid"].at = True, ln.settled_at
            steps["paid"].detail = f"{ln.amount:,.2f} 元已到账，银行业务参考号 {ln.reference}"
            t.bank_reference = ln.reference
            t.events.append(Happened(ln.settled_at, f"资金已到账（参考号 {ln.reference}）"))
        elif ln.status == LineStatus.FAILED.value and ln.settled_at is not None:
            t.failure_reason = ln.bank_reason
            t.events.append(Happened(ln.settled_at, "银行拨付失败", ln.bank_reason))
    if offer.state == S.PAYMENT_FAILED.value:
        paid = steps["paid"]
        paid.label, paid.failed, paid.detail = "拨付失败", True, f"银行退回：{t.failure_reason or '原因未知'}"
    t.steps = [steps[key] for key, _ in STEPS]
    t.events.sort(key=lambda h: h.at)
    t.next_step, t.next_by = _next(offer, lines, t)
    return t


def _day(at: dt.datetime | None) -> str:
    return public_time(at)


def _next(offer: Offer, lines: list[tuple[BatchLine, Batch]], t: Timeline) -> tuple[str, dt.datetime | None]:
    """What happens next and, where the process sets one, by when."""
    state = OfferState(offer.state)
    batch = lines[-1][1] if lines else None
    if state is S.DRAFTED:
        return f"等待{t.department}初核，通过后将以短信通知贵单位确认", None
    if state is S.RELEASED:
        return "初核已通过，确认短信即将发送至贵单位登记的联系电话", None
    if state is S.NOTIFIED:
        return "请打开短信中的链接确认领取，逾期视为放弃", offer.deadline
    if state is S.CONFIRMED:
        return "贵单位已确认，等待财政部门制单拨付", None
    if state is S.IN_BATCH and batch is not None:
        if batch.approved_at is None:
            return f"拨付批次 {batch.reference} 等待复核", None
        return f"拨付批次 {batch.reference} 已复核，银行划款中，到账后本页显示银行参考号", None
    if state is S.PAID:
        return f"资金已拨付到贵单位登记的对公账户（参考号 {t.bank_reference}），流程结束", None
    if state is S.PAYMENT_FAILED:
        return (
            f"银行拨付失败（{t.failure_reason or '原因未知'}）；请联系{t.department}核实对公账户，更正后将重新拨付",
            None,
        )
    if state is S.HELD:
        return f"暂缓：{offer.hold_reason or '等待工作人员核实'}；如有疑问请联系{t.department}", None
    if state is S.DECLINED:
        return "贵单位已放弃本项资金，流程结束", None
    if state is S.EXPIRED:
        return "确认期限已过，本项资金视为放弃，流程结束", None
    return f"初核未通过，流程结束；如有疑问请联系{t.department}", None
