"""The one SLA: the time limit of every step from import to money, counted in working days by the
official calendar (`rules.workdays`), and its lights (Leiyang's 红黄绿灯).

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from sqlalchemy import ColumnElement, and_, case, func, not_, null, or_, select, true
from sqlmodel import Session

from payouts.models import MatchRun, Offer, OfferState, PolicyVersion
from reports.calendar import WorkCalendar, as_day, calendar_for, china_day, china_days
from reports.errors import ReportError
from reports.timeline import STAMPS, first_batches
from rules.workdays import china_date, working_day_after, working_days_before, working_days_running

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
    # A policy's own committed limits (its guide's 承诺时限), policy id → {"review_days": n, "payment_days": n}.
    policies: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bank_days < 1:
            raise ReportError(
                f"拨付时限 {self.payment_days} 个工作日不够分给制单 {self.batch_days} 天、复核 {self.approve_days} 天"
                "和银行到账（至少 1 天）：请调大 ZHIDA_SLA_PAYMENT_DAYS"
            )

    def for_policy(self, policy_id: str | None) -> Sla:
        """The limits that hold for one policy: its own where it commits to them, else these."""
        own = self.policies.get(policy_id or "")
        if not own:
            return self
        limits = replace(self, policies={}, **own)
        # A longer payment limit gives the bank the extra days; the office steps keep theirs.
        return limits

    def with_policies(self, session: Session) -> Sla:
        """These limits with every published policy's own (the latest version of each that sets any)."""
        rows = session.execute(
            select(PolicyVersion.policy_id, PolicyVersion.review_days, PolicyVersion.payment_days).order_by(
                PolicyVersion.policy_id, PolicyVersion.version
            )
        ).all()
        own: dict[str, dict[str, int]] = {}
        for policy_id, review, payment in rows:  # the latest version wins
            limits = {k: v for k, v in (("review_days", review), ("payment_days", payment)) if v is not None}
            if limits:
                own[policy_id] = limits
            else:
                own.pop(policy_id, None)
        return replace(self, policies=own)

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
OUTCOME_COLUMNS = ["stage", "label", "days", "department", "policy_id", "offers", "working_days", "outcome"]


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
    region: str | None = None,
) -> dict[str, tuple[int, int, int]]:
    colour = case((red, 2), (yellow, 1), else_=0)
    query = (
        select(Offer.policy_id, colour.label("c"), func.count())
        .where(Offer.state.in_([s.value for s in states]))
        .group_by(Offer.policy_id, colour)
    )
    if policy_ids is not None:
        query = query.where(Offer.policy_id.in_(sorted(policy_ids)))
    if region is not None:  # a region-scoped user's enterprises only (payouts/scope.py)
        query = query.where(Offer.region_code.startswith(region, autoescape=True))
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
    limit: str | None  # the `Sla` attribute holding its limit in working days; None: the link's deadline
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


def _older(column: Any, sla: Sla, key: str, before: Any, warn: int = 0) -> ColumnElement[bool]:
    """`column` is more than a policy's `key` limit (less `warn`) working days ago: each policy by its own."""
    own: dict[int, list[str]] = {}
    for policy_id in sorted(sla.policies):
        days = getattr(sla.for_policy(policy_id), key)
        if days != getattr(sla, key):
            own.setdefault(days, []).append(policy_id)
    special = [p for ids in own.values() for p in ids]
    condition: ColumnElement[bool] = and_(
        Offer.policy_id.not_in(special) if special else true(),
        column < before(getattr(sla, key) - warn),
    )
    for days, ids in own.items():
        condition = or_(condition, and_(Offer.policy_id.in_(ids), column < before(days - warn)))
    return condition


def light_stages(session: Session, sla: Sla, now: dt.datetime) -> list[LightStage]:
    """The stages of the live lights at `now`, in order (the one definition `lights` counts and the
    console's links to the offers of a light list).

    初核 (review): drafted or held offers since they were created; 意愿确认 (confirm): notified offers
    against their link's deadline; 拨付到账 (payment): confirmed, in a batch or failed, since confirmation.
    Yellow starts `warn_days` working days before the limit (`confirm_warn_days` days before the deadline).
    A policy that commits to its own limits (`Sla.policies`) is judged by them.
    """
    sla = sla if sla.policies else sla.with_policies(session)

    def before(days: int) -> dt.datetime:
        return working_days_before(now, days, strict=False)

    confirm_yellow = now + dt.timedelta(days=sla.confirm_warn_days)
    return [
        LightStage(
            "review",
            "初核",
            "review_days",
            (S.DRAFTED, S.HELD),
            _older(Offer.created_at, sla, "review_days", before),
            _older(Offer.created_at, sla, "review_days", before, sla.warn_days),
        ),
        LightStage(
            "confirm",
            "意愿确认",
            None,
            (S.NOTIFIED,),
            Offer.deadline <= now,
            Offer.deadline <= confirm_yellow,
        ),
        LightStage(
            "payment",
            "拨付到账",
            "payment_days",
            (S.CONFIRMED, S.IN_BATCH, S.PAYMENT_FAILED),
            _older(Offer.confirmed_at, sla, "payment_days", before),
            _older(Offer.confirmed_at, sla, "payment_days", before, sla.warn_days),
        ),
    ]


def light_condition(
    session: Session, sla: Sla, now: dt.datetime, stage: str, colour: str
) -> tuple[str, ColumnElement[bool]]:
    """The offers one light counts (its stage's label and the condition on the offer table); ReportError
    naming the stages and colours for an unknown one."""
    for st in light_stages(session, sla, now):
        if st.id == stage:
            return st.label, st.colour(colour)
    raise ReportError(f"环节应为 review、confirm 或 payment：{stage}")


def lights(
    session: Session,
    sla: Sla,
    now: dt.datetime,
    policy_ids: set[str] | None = None,
    region: str | None = None,
) -> list[Light]:
    """Offers waiting now, per stage (`light_stages`): the total over the policies first, then one row per
    policy, each policy judged by its own limits; `region`: only enterprises whose region starts with it."""
    sla = sla if sla.policies else sla.with_policies(session)

    def limit(key: str | None, policy_id: str | None) -> str:
        return "链接有效期内" if key is None else f"{getattr(sla.for_policy(policy_id), key)} 个工作日"

    out = []
    for st in light_stages(session, sla, now):
        counts = _count(session, st.states, st.red, st.yellow, policy_ids, region)
        g, y, r = (sum(v[i] for v in counts.values()) for i in range(3))
        out.append(Light(st.id, st.label, limit(st.limit, None), None, g, y, r))
        out += [Light(st.id, st.label, limit(st.limit, pid), pid, *counts[pid]) for pid in sorted(counts)]
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
        parts.append(
            _judged(
                st,
                sla,
                pd.DataFrame(
                    {
                        "department": rows["department"].to_numpy(),
                        "policy_id": rows["policy_id"].to_numpy(),
                        "offers": 1,
                        "working_days": taken.to_numpy(),
                        "finished": finished.to_numpy(),
                    }
                ),
            )
        )
    if not parts:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def _judged(st: SlaStage, sla: Sla, steps: pd.DataFrame) -> pd.DataFrame:
    """Steps of one stage (department, policy, offers, working days, finished?) with their outcome, each
    against its policy's limit."""
    days = {p: _stage_days(sla.for_policy(p), st.id) for p in steps["policy_id"].unique()}
    limit = steps["policy_id"].map(days).astype("int64")
    late = steps["working_days"] > limit
    finished = steps["finished"].astype(bool)
    outcome = late.map({True: "late", False: "on_time"}).where(
        finished, late.map({True: "open_late", False: "open"})
    )
    return pd.DataFrame(
        {
            "stage": st.id,
            "label": st.label,
            "days": limit.to_numpy(),
            "department": steps["department"].to_numpy(),
            "policy_id": steps["policy_id"].to_numpy(),
            "offers": steps["offers"].to_numpy(),
            "working_days": steps["working_days"].to_numpy(),
            "outcome": outcome.to_numpy(),
        }
    )


def _stage_days(sla: Sla, stage: str) -> int:
    return next(st.days for st in sla.stages if st.id == stage)


def step_outcomes(
    session: Session,
    at: dt.datetime,
    since: dt.datetime | None = None,
    imported_before: dt.datetime | None = None,
    sla: Sla = DEFAULT,
) -> pd.DataFrame:
    """`sla_outcomes` counted in the database: the same outcomes, one row per department, policy, stage,
    working days and outcome with the number of `offers`, so memory does not grow with the offers.

    Offers of runs imported from `imported_before` on are left out (the month's report), and offers of
    applications (快申快享) made from then on; those are timed from 组批 on, as their confirmation is the
    acceptance (the steps before it are the application's own clock, `application_clock`).
    """
    first_batch = first_batches()
    stamp = {
        "imported_at": MatchRun.imported_at,
        "released_at": Offer.released_at,
        "notified_at": Offer.notified_at,
        "confirmed_at": Offer.confirmed_at,
        "batched_at": first_batch.c.batched_at,
        "approved_at": first_batch.c.approved_at,
        "paid_at": Offer.paid_at,
    }
    groups = []
    for st in sla.stages:
        start, end = stamp[st.start], stamp[st.end]
        entered: ColumnElement[bool] = and_(start.is_not(None), start <= at)
        if st.id == "notify":
            entered = and_(entered, PolicyVersion.confirmation != "none")
        finished = and_(end.is_not(None), end <= at)
        waiting: ColumnElement[bool] = Offer.state.in_([w.value for w in st.waiting])
        if st.id == "approve":
            waiting = and_(waiting, stamp["approved_at"].is_(None))
        if st.id == "pay":
            waiting = and_(waiting, stamp["approved_at"].is_not(None))
        still = and_(~finished, or_(and_(end.is_not(None), end > at), and_(end.is_(None), waiting)))
        done = finished if since is None else and_(finished, end >= since)
        ended = case((done, china_day(end)), else_=null())
        query = (
            select(
                PolicyVersion.department,
                Offer.policy_id,
                china_day(start),
                ended,
                func.count(),
            )
            .select_from(Offer)
            # Offers of applications (快申快享) have no run: they enter at 组批, confirmed when accepted.
            .outerjoin(MatchRun, MatchRun.id == Offer.match_run_id)
            .join(
                PolicyVersion,
                and_(
                    PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version
                ),
            )
            .outerjoin(first_batch, first_batch.c.offer_id == Offer.id)
            .where(entered, or_(done, still))
            .where(
                or_(
                    MatchRun.imported_at < imported_before,
                    and_(Offer.match_run_id.is_(None), Offer.created_at < imported_before),
                )
                if imported_before is not None
                else true()
            )
            .group_by(PolicyVersion.department, Offer.policy_id, china_day(start), ended)
        )
        rows = [(d, p, as_day(a), as_day(b), n) for d, p, a, b, n in session.execute(query)]
        if rows:
            groups.append((st, rows))
    if not groups:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    at_day = china_date(at)
    days = [day for _, rows in groups for r in rows for day in r[2:4] if day is not None]
    cal = WorkCalendar.covering(min([*days, at_day]), max([*days, at_day]))
    parts = []
    for st, rows in groups:
        steps = pd.DataFrame(
            {
                "department": [r[0] for r in rows],
                "policy_id": [r[1] for r in rows],
                "offers": [int(r[4]) for r in rows],
                "working_days": [cal.between(r[2], r[3] or at_day) for r in rows],
                "finished": [r[3] is not None for r in rows],
            }
        )
        parts.append(_judged(st, sla, steps))
    return pd.concat(parts, ignore_index=True)


APPLICATION_STAGE = SlaStage("apply", "申请审核", "submitted_at", "decided_at", 0, "牵头审核部门", ())
"""The review of an application (快申快享): from the first submission to the decision, against the policy's
committed `guide.time_limit_days` (each application carries its own), 补正 not counted."""


def application_outcomes(session: Session, at: dt.datetime, since: dt.datetime | None = None) -> pd.DataFrame:
    """Applications as SLA outcomes (`OUTCOME_COLUMNS`, stage `apply`, the lead department's): decided in
    [since, at] on time or late, or still undecided at `at` (open, or open and past the limit), each
    against its own committed limit with its clock stopped during 补正 (`application_days`)."""
    from portal.models import Application, ApplicationReturn  # the SLA reads the applications

    decided_in = Application.decided_at <= at
    if since is not None:
        decided_in = and_(decided_in, Application.decided_at >= since)
    rows = session.execute(
        select(
            Application.id,
            Application.lead_department,
            Application.policy_id,
            Application.time_limit_days,
            Application.submitted_at,
            Application.decided_at,
        ).where(
            Application.submitted_at.is_not(None),
            Application.submitted_at <= at,
            or_(
                and_(Application.decided_at.is_not(None), decided_in),
                Application.decided_at.is_(None),
                Application.decided_at > at,
            ),
        )
    ).all()
    if not rows:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    pauses: dict[int, list[Pause]] = {}
    for app_id, returned, resumed in session.execute(
        select(ApplicationReturn.application_id, ApplicationReturn.returned_at, ApplicationReturn.resumed_at)
        .where(
            ApplicationReturn.application_id.in_([r[0] for r in rows]), ApplicationReturn.returned_at <= at
        )
        .order_by(ApplicationReturn.id)
    ):
        pauses.setdefault(app_id, []).append(
            (returned, resumed if resumed is not None and resumed <= at else None)
        )
    out = []
    for app_id, dept, policy_id, limit, submitted, decided in rows:
        finished = decided is not None and decided <= at
        used = application_days(submitted, decided if finished else at, pauses.get(app_id, ()))
        late = used > limit
        outcome = ("late" if late else "on_time") if finished else ("open_late" if late else "open")
        out.append((APPLICATION_STAGE.id, APPLICATION_STAGE.label, limit, dept, policy_id, 1, used, outcome))
    return pd.DataFrame(out, columns=OUTCOME_COLUMNS)


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
    keys = ["stage", "label", *(["department"] if by_department else [])]
    counts = outcomes.pivot_table(index=keys, columns="outcome", values="offers", aggfunc="sum", fill_value=0)
    for c in ("on_time", "late", "open", "open_late"):
        if c not in counts.columns:
            counts[c] = 0
    counts = counts[["on_time", "late", "open", "open_late"]].astype("int64")
    # Policies with their own limits make a range ("2–5") where one department runs several.
    counts.insert(0, "days", outcomes.groupby(keys)["days"].agg(_days_text).reindex(counts.index))
    df = counts.reset_index()
    df.columns.name = None
    keys = ["stage", "label", "days", *(["department"] if by_department else [])]
    df = df[[*keys, "on_time", "late", "open", "open_late"]]
    order = {st.id: n for n, st in enumerate((*DEFAULT.stages, APPLICATION_STAGE))}
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


RANKING_COLUMNS = [
    "rank",
    "department",
    "steps",
    "breaches",
    "breach_share",
    "red",
    "amber",
    "green",
    "light_label",
    "ratings",
    "satisfied_share",
    "poor",
    "poor_late",
]


def ranking(table: pd.DataFrame, ratings: pd.DataFrame | None = None) -> pd.DataFrame:
    """月讲评: departments ranked on their time limits, lights and ratings, from a `sla_table(…,
    by_department=True)` and the month's ratings per department (`reports.service.ratings_by_department`):
    fewest red stages first, then fewest amber, then fewest poor ratings answered late (a time limit of
    its own), then the smaller share of steps over their limit, then the larger share rated 满意 or better.
    A department with ratings and no timed step is ranked too."""
    rated = (
        ratings
        if ratings is not None
        else pd.DataFrame(columns=["department", "ratings", "satisfied_share", "poor", "poor_late"])
    )
    if table.empty and rated.empty:
        return pd.DataFrame(columns=RANKING_COLUMNS)
    counts = ["on_time", "late", "open", "open_late"]
    if table.empty:
        g = pd.DataFrame(columns=["department", "steps", "breaches", "red", "amber", "green"])
    else:
        g = table.groupby("department").agg(
            breaches=("breaches", "sum"),
            red=("light", lambda s: int((s == "red").sum())),
            amber=("light", lambda s: int((s == "amber").sum())),
            green=("light", lambda s: int((s == "green").sum())),
        )
        g["steps"] = table.groupby("department")[counts].sum().sum(axis=1)
        g = g.reset_index()
    g = g.merge(rated, on="department", how="outer")
    for c in ("steps", "breaches", "red", "amber", "green", "ratings", "poor", "poor_late"):
        g[c] = g[c].fillna(0).astype("int64")
    g["breach_share"] = g["breaches"] / g["steps"].where(g["steps"] > 0, 1)
    g["light_label"] = [
        _light(x)[1] if n else "无计时事项" for x, n in zip(g["breach_share"], g["steps"], strict=True)
    ]
    g["satisfied_share"] = g["satisfied_share"].astype("float64")
    g["_unrated"] = -g["satisfied_share"].fillna(-1.0)  # rated departments first, the better first
    g = g.sort_values(
        ["red", "amber", "poor_late", "breach_share", "_unrated", "department"], ignore_index=True
    )
    g.insert(0, "rank", range(1, len(g) + 1))
    return g[RANKING_COLUMNS]


def _days_text(days: pd.Series) -> int | str:
    low, high = int(days.min()), int(days.max())
    return low if low == high else f"{low}–{high}"


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
    """Median and 90th percentile of working days to cash, and the share within the target.

    `paid` has one row per offer, or (with an `offers` column) per number of working days and the
    offers that took them (`reports.monthly` counts them in the database); the figures are the same.
    """
    if paid.empty:
        return {"paid": 0, "median": None, "p90": None, "on_target": None, "target": TARGET_WORKING_DAYS}
    weights = paid["offers"] if "offers" in paid.columns else pd.Series(1, index=paid.index)
    dist = (
        pd.DataFrame({"wd": paid["working_days"].astype("int64"), "n": weights.astype("int64")})
        .groupby("wd")["n"]
        .sum()
        .sort_index()
    )
    n = int(dist.sum())
    ends = dist.cumsum().to_numpy()  # the last position (exclusive) of each value in the sorted list
    values = dist.index.to_numpy()

    def nth(k: int) -> int:
        return int(values[int((ends > k).argmax())])

    def quantile(q: float) -> float:  # pandas' linear interpolation, on the counted values
        h = (n - 1) * q
        lo = int(h)
        a = nth(lo)
        b = nth(min(lo + 1, n - 1))
        return float(a + (h - lo) * (b - a))

    return {
        "paid": n,
        "median": quantile(0.5),
        "p90": quantile(0.9),
        "on_target": float(dist[dist.index <= TARGET_WORKING_DAYS].sum() / n),
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


# --- the clock of an application (快申快享) -------------------------------------------------------------------

Pause = tuple[dt.datetime, dt.datetime | None]
"""A return for correction (补正): from the return to the new submission (None: still correcting)."""


def application_days(
    submitted_at: dt.datetime, end: dt.datetime, pauses: Iterable[Pause] = (), *, strict: bool = True
) -> int:
    """Working days an application's clock ran from its first submission to `end` (its decision, its
    payment, or now), stopped from each return for correction until the new submission: the one count
    of the application's time that its page, the departments' queue and the monthly report share."""
    return working_days_running(submitted_at, end, pauses, strict=strict)


@dataclass(frozen=True)
class Clock:
    """An application's committed time limit and where it stands against it, in working days."""

    limit: int
    used: int
    paused: bool
    due: dt.date | None  # the last day to decide (None once decided or while paused)
    light: str


def application_clock(
    submitted_at: dt.datetime | None,
    decided_at: dt.datetime | None,
    limit: int,
    pauses: Iterable[Pause],
    at: dt.datetime,
    *,
    paused: bool,
    warn_days: int = 1,
) -> Clock | None:
    """The clock of one application at `at` (None before it was submitted): working days used of its
    `limit`, stopped during 补正, its last day and its light (yellow `warn_days` before the limit)."""
    if submitted_at is None:
        return None
    used = application_days(submitted_at, decided_at or at, pauses, strict=False)
    due = None
    if decided_at is None and not paused:
        due = working_day_after(china_date(at), limit - used, strict=False)
    return Clock(limit, used, paused, due, light_for(used, limit, warn_days)[0])
