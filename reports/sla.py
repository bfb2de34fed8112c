"""The one SLA: the time limit of every step from import to money, counted in working days by the
official calendar (`reports.calendar`), and its lights (Leiyang's 红黄绿灯).

Two readers, one definition: the console's live lights (`lights`: offers waiting now, by stage and
policy) and the monthly report (`sla_outcomes`, `sla_table`: every step finished or still open, per
department). Both take an `Sla`; the service and the CLI build it from settings (`ZHIDA_SLA_*`).

Which rule, and why. zhida had two: the console counted Monday to Friday with 5 working days from
confirmation to money; the report counted by the official calendar but gave the payment steps
3 + 2 + 2 = 7 working days. The calendar is the report's: a "working day" in a government time limit
is a day worked by the State Council's schedule, so the National Day week is not five working days
and a 调休 Saturday is one (Monday to Friday made the console call offers late over 国庆 and on time
across a worked weekend). The limit is the console's: the reform's promise is money within 5 working
days (Huai'an: "most paid within 5 working days", shared/domain/README.md), so the payment steps
(制单 batch, 复核 approve, 银行到账 pay) share those 5 days — 2 + 1 + the rest — and an offer on time
at every step is on time overall.

The enterprise's own step (意愿确认) is not an office's time limit: the live lights measure it against
the link's deadline, the report against `confirm_days` working days from the notice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, and_, case, func, not_, or_, select
from sqlmodel import Session

from payouts.models import Offer, OfferState
from reports.calendar import calendar_for, china_date, china_days, working_days_before
from reports.errors import ReportError
from reports.timeline import STAMPS

S = OfferState


@dataclass(frozen=True)
class SlaStage:
    """One step with a time limit in working days: from one timeline column to the next, and who owns it."""

    id: str
    label: str
    start: str
    end: str
    days: int
    owner: str
    waiting: tuple[OfferState, ...]  # the offer states that mean "still in this step"


@dataclass(frozen=True)
class Sla:
    """The time limits, in working days by the official calendar.

    `payment_days` runs from confirmation to money; its steps are `batch_days` (财政制单),
    `approve_days` (财政复核) and the rest for the bank (`bank_days`).
    """

    review_days: int = 2
    notify_days: int = 1
    confirm_days: int = 10
    payment_days: int = 5
    batch_days: int = 2
    approve_days: int = 1
    warn_days: int = 1  # a live light turns yellow this many working days before the limit
    confirm_warn_days: int = 3  # the confirm light turns yellow this many days before the link expires

    def __post_init__(self) -> None:
        if self.bank_days < 1:
            raise ReportError(
                f"拨付时限 {self.payment_days} 个工作日不够分给制单 {self.batch_days} 天、复核 {self.approve_days} 天"
                "和银行到账（至少 1 天）：请调大 ZHIDA_SLA_PAYMENT_DAYS"
            )

    @property
    def bank_days(self) -> int:
        return self.payment_days - self.batch_days - self.approve_days

    @property
    def stages(self) -> tuple[SlaStage, ...]:
        """The steps the monthly report times, in order; batch, approve and pay add up to `payment_days`."""
        return (
            SlaStage(
                "review",
                "初核发布",
                "imported_at",
                "released_at",
                self.review_days,
                "政策部门初核",
                (S.DRAFTED,),
            ),
            SlaStage(
                "notify", "发送短信", "released_at", "notified_at", self.notify_days, "平台", (S.RELEASED,)
            ),
            SlaStage(
                "confirm", "企业确认", "notified_at", "confirmed_at", self.confirm_days, "企业", (S.NOTIFIED,)
            ),
            SlaStage(
                "batch", "组批", "confirmed_at", "batched_at", self.batch_days, "财政制单", (S.CONFIRMED,)
            ),
            SlaStage(
                "approve", "复核", "batched_at", "approved_at", self.approve_days, "财政复核", (S.IN_BATCH,)
            ),
            SlaStage("pay", "银行到账", "approved_at", "paid_at", self.bank_days, "开户银行", (S.IN_BATCH,)),
        )


DEFAULT = Sla()
LIGHTS = ((0.05, "green", "绿灯"), (0.2, "amber", "黄灯"), (1.0, "red", "红灯"))
"""Breach share up to 5% is green, up to 20% amber, above that red."""
TARGET_WORKING_DAYS = 10
"""Target from a run's import to the money in the account, in working days (the old process took 77)."""
OUTCOME_COLUMNS = ["stage", "label", "days", "department", "amount", "working_days", "outcome"]


# --- the console's live lights ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Light:
    """Offers of one stage (and policy) by colour."""

    stage: str
    label: str
    limit: str
    policy_id: str | None
    green: int
    yellow: int
    red: int

    @property
    def total(self) -> int:
        return self.green + self.yellow + self.red


def _count(
    session: Session,
    states: Iterable[OfferState],
    red: ColumnElement[bool],
    yellow: ColumnElement[bool],
    policy_ids: set[str] | None,
) -> dict[str, tuple[int, int, int]]:
    colour = case((red, 2), (yellow, 1), else_=0)
    query = (
        select(Offer.policy_id, colour.label("c"), func.count())
        .where(Offer.state.in_([s.value for s in states]))
        .group_by(Offer.policy_id, colour)
    )
    if policy_ids is not None:
        query = query.where(Offer.policy_id.in_(sorted(policy_ids)))
    out: dict[str, list[int]] = {}
    for policy_id, c, n in session.execute(query):
        out.setdefault(policy_id, [0, 0, 0])[c] += n
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


@dataclass(frozen=True)
class LightStage:
    """One stage of the live lights: its offers' states, and the conditions for red and for yellow (an offer
    of these states that is neither is green)."""

    id: str
    label: str
    limit: str
    states: tuple[OfferState, ...]
    red: ColumnElement[bool]
    yellow: ColumnElement[bool]

    def colour(self, colour: str) -> ColumnElement[bool]:
        """The offers of one colour (green, yellow, red), exactly as `lights` counts them."""
        in_stage = Offer.state.in_([s.value for s in self.states])
        colours = {
            "red": self.red,
            "yellow": and_(not_(self.red), self.yellow),
            "green": not_(or_(self.red, self.yellow)),
        }
        if colour not in colours:
            raise ReportError(f"灯色应为 green、yellow 或 red：{colour}")
        # NULL stamps count as green in `lights` (the CASE falls through): the same here.
        chosen = (
            colours[colour]
            if colour != "green"
            else or_(colours["green"], *(column.is_(None) for column in self.stamps))
        )
        return and_(in_stage, chosen)

    @property
    def stamps(self) -> tuple[Any, ...]:
        return tuple(STAMP_OF[self.id])


STAMP_OF = {"review": (Offer.created_at,), "confirm": (Offer.deadline,), "payment": (Offer.confirmed_at,)}


def light_stages(sla: Sla, now: dt.datetime) -> list[LightStage]:
    """The stages of the live lights at `now`, in order (the one definition `lights` counts and the
    console's links to the offers of a light list).

    初核 (review): drafted or held offers since they were created; 意愿确认 (confirm): notified offers
    against their link's deadline; 拨付到账 (payment): confirmed, in a batch or failed, since confirmation.
    Yellow starts `warn_days` working days before the limit (`confirm_warn_days` days before the deadline).
    """

    def before(days: int) -> dt.datetime:
        return working_days_before(now, days, strict=False)

    confirm_yellow = now + dt.timedelta(days=sla.confirm_warn_days)
    return [
        LightStage(
            "review",
            "初核",
            f"{sla.review_days} 个工作日",
            (S.DRAFTED, S.HELD),
            Offer.created_at < before(sla.review_days),
            Offer.created_at < before(sla.review_days - sla.warn_days),
        ),
        LightStage(
            "confirm",
            "意愿确认",
            "链接有效期内",
            (S.NOTIFIED,),
            Offer.deadline <= now,
            Offer.deadline <= confirm_yellow,
        ),
        LightStage(
            "payment",
            "拨付到账",
            f"{sla.payment_days} 个工作日",
            (S.CONFIRMED, S.IN_BATCH, S.PAYMENT_FAILED),
            Offer.confirmed_at < before(sla.payment_days),
            Offer.confirmed_at < before(sla.payment_days - sla.warn_days),
        ),
    ]


def light_condition(sla: Sla, now: dt.datetime, stage: str, colour: str) -> tuple[str, ColumnElement[bool]]:
    """The offers one light counts (its stage's label and the condition on the offer table); ReportError
    naming the stages and colours for an unknown one."""
    for st in light_stages(sla, now):
        if st.id == stage:
            return st.label, st.colour(colour)
    raise ReportError(f"环节应为 review、confirm 或 payment：{stage}")


def lights(session: Session, sla: Sla, now: dt.datetime, policy_ids: set[str] | None = None) -> list[Light]:
    """Offers waiting now, per stage (`light_stages`): the total over the policies first, then one row per
    policy."""
    out = []
    for st in light_stages(sla, now):
        counts = _count(session, st.states, st.red, st.yellow, policy_ids)
        g, y, r = (sum(v[i] for v in counts.values()) for i in range(3))
        out.append(Light(st.id, st.label, st.limit, None, g, y, r))
        out += [Light(st.id, st.label, st.limit, pid, *counts[pid]) for pid in sorted(counts)]
    return out


# --- the report's outcomes ---------------------------------------------------------------------------------


def sla_outcomes(
    timeline: pd.DataFrame,
    at: dt.datetime | None = None,
    since: dt.datetime | None = None,
    sla: Sla = DEFAULT,
) -> pd.DataFrame:
    """One row per offer and SLA stage it entered: finished on time, late, or still open (and overdue?).

    As of `at` (default: the latest time in the timeline). With `since`, only steps that finished in
    [since, at] or were still open at `at`. An offer that left a step another way (declined, expired,
    held, payment failed) is not counted for that step.
    """
    at_ts = pd.Timestamp(at) if at is not None else timeline[STAMPS].max().max()
    since_ts = pd.Timestamp(since) if since is not None else None
    if timeline.empty or pd.isna(at_ts):
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    at_day = pd.Timestamp(china_date(at_ts))
    local = {c: china_days(timeline[c]) for c in STAMPS}
    cal = calendar_for([*local.values(), pd.Series([at_day])])
    assert cal is not None
    parts = []
    for st in sla.stages:
        start, end = timeline[st.start], timeline[st.end]
        entered = start.notna() & (start <= at_ts)
        if st.id == "notify":
            entered &= timeline["confirmation"] != "none"
        done = entered & end.notna() & (end <= at_ts)
        waiting = timeline["state"].isin([w.value for w in st.waiting])
        if st.id == "approve":
            waiting &= timeline["approved_at"].isna()
        if st.id == "pay":
            waiting &= timeline["approved_at"].notna()
        still = entered & ~done & ((end.notna() & (end > at_ts)) | (end.isna() & waiting))
        if since_ts is not None:
            done &= end >= since_ts
        keep = done | still
        if not keep.any():
            continue
        rows = timeline[keep]
        finished = done[keep]
        finish = local[st.end][keep].where(finished, at_day)
        taken = cal.spans(local[st.start][keep], finish)
        late = taken > st.days
        outcome = late.map({True: "late", False: "on_time"}).where(
            finished, late.map({True: "open_late", False: "open"})
        )
        parts.append(
            pd.DataFrame(
                {
                    "stage": st.id,
                    "label": st.label,
                    "days": st.days,
                    "department": rows["department"].to_numpy(),
                    "amount": rows["amount"].to_numpy(),
                    "working_days": taken.to_numpy(),
                    "outcome": outcome.to_numpy(),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def sla_table(outcomes: pd.DataFrame, by_department: bool = False) -> pd.DataFrame:
    """Per stage (and department): on time, late, open, open and overdue, breaches and the light."""
    keys = ["stage", "label", "days", *(["department"] if by_department else [])]
    if outcomes.empty:
        return pd.DataFrame(
            columns=[
                *keys,
                "on_time",
                "late",
                "open",
                "open_late",
                "breaches",
                "breach_share",
                "light",
                "light_label",
            ]
        )
    counts = outcomes.pivot_table(
        index=keys, columns="outcome", values="amount", aggfunc="size", fill_value=0
    )
    for c in ("on_time", "late", "open", "open_late"):
        if c not in counts.columns:
            counts[c] = 0
    df = counts[["on_time", "late", "open", "open_late"]].reset_index()
    df.columns.name = None
    order = {st.id: n for n, st in enumerate(DEFAULT.stages)}
    df = df.sort_values(
        by=["stage", *keys[3:]], key=lambda s: s.map(order) if s.name == "stage" else s, ignore_index=True
    )
    df["breaches"] = df["late"] + df["open_late"]
    total = df[["on_time", "late", "open", "open_late"]].sum(axis=1)
    df["breach_share"] = df["breaches"] / total.where(total > 0, 1)
    shades = [_light(s) for s in df["breach_share"]]
    df["light"] = [x[0] for x in shades]
    df["light_label"] = [x[1] for x in shades]
    return df


def _light(share: float) -> tuple[str, str]:
    return next((c, label) for limit, c, label in LIGHTS if share <= limit)


# --- working days to cash ---------------------------------------------------------------------------------


def days_to_cash(timeline: pd.DataFrame) -> pd.DataFrame:
    """Every paid offer with the working and calendar days from its run's import to the payment."""
    paid = timeline[timeline["paid_at"].notna()].copy()
    start, end = china_days(paid["imported_at"]), china_days(paid["paid_at"])
    cal = calendar_for([start, end])
    paid["working_days"] = cal.spans(start, end) if cal else pd.Series(dtype="int64")
    paid["calendar_days"] = (end - start).dt.days
    paid["on_target"] = paid["working_days"] <= TARGET_WORKING_DAYS
    return paid


def cash_summary(paid: pd.DataFrame) -> dict[str, Any]:
    """Median and 90th percentile of working days to cash, and the share within the target."""
    if paid.empty:
        return {"paid": 0, "median": None, "p90": None, "on_target": None, "target": TARGET_WORKING_DAYS}
    wd = paid["working_days"]
    return {
        "paid": len(paid),
        "median": float(wd.median()),
        "p90": float(wd.quantile(0.9)),
        "on_target": float(paid["on_target"].mean()),
        "target": TARGET_WORKING_DAYS,
    }


# --- one item against its own time limit --------------------------------------------------------------------


def light_for(used: int, limit: int, warn_days: int) -> tuple[str, str]:
    """The light of one thing that has used `used` of its `limit` working days, as the live lights colour
    offers: red past the limit, yellow within `warn_days` of it, else green; with its label."""
    if used > limit:
        return "red", "已超时"
    if used >= limit - warn_days:
        return "yellow", "临近时限"
    return "green", "正常"
