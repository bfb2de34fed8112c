"""Offers and their state machine, and the first review (初核): hold, drop, release.

```
offer:   drafted → released → notified → confirmed → in_batch → paid
                          ↘ declined | expired | held(reason) | payment_failed → (re-batched)
```
Every change goes through `move` (one offer) or `move_where` (many, in one UPDATE) and yields an
audit event; nothing else writes `Offer.state`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Select,
    and_,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlmodel import Session

from payouts import audit, bulkload, jointreview, scope
from payouts.audit import Event
from payouts.bankfiles import name_problem
from payouts.bulkload import among, lock_rows
from payouts.errors import NotFoundError
from payouts.models import MatchRun, Offer, OfferState, Payee, PolicyVersion
from payouts.selection import CENT, Preview, Selection, Tally, preview
from payouts.users import require
from rules.errors import StateError

S = OfferState
ZERO = Decimal("0.00")
TRANSITIONS: dict[OfferState | None, frozenset[OfferState]] = {
    None: frozenset({S.DRAFTED, S.HELD}),  # created by import; held when there is no account
    S.DRAFTED: frozenset({S.RELEASED, S.HELD, S.DROPPED, S.CONFIRMED}),  # confirmed: `confirmation: none`
    S.HELD: frozenset({S.RELEASED, S.DROPPED, S.CONFIRMED}),
    S.RELEASED: frozenset({S.NOTIFIED, S.HELD, S.DROPPED}),
    S.NOTIFIED: frozenset({S.CONFIRMED, S.DECLINED, S.EXPIRED, S.HELD}),
    S.CONFIRMED: frozenset({S.IN_BATCH, S.HELD}),
    S.IN_BATCH: frozenset({S.PAID, S.PAYMENT_FAILED, S.CONFIRMED}),  # confirmed: the batch was rejected
    S.PAYMENT_FAILED: frozenset({S.IN_BATCH, S.HELD}),
    S.PAID: frozenset(),
    S.DECLINED: frozenset(),
    S.EXPIRED: frozenset(),
    S.DROPPED: frozenset(),
}

LABELS = {
    S.DRAFTED: "待初核",
    S.RELEASED: "已发布",
    S.NOTIFIED: "已通知",
    S.CONFIRMED: "已确认",
    S.IN_BATCH: "拨付中",
    S.PAID: "已拨付",
    S.DECLINED: "企业放弃",
    S.EXPIRED: "已过期",
    S.HELD: "暂缓",
    S.DROPPED: "已剔除",
    S.PAYMENT_FAILED: "拨付失败",
}

# What the enterprise reads for a state: staff steps (初核, 剔除) in words an applicant knows.
PUBLIC_LABELS = {
    **LABELS,
    S.DRAFTED: "审核中",
    S.RELEASED: "审核通过，待通知确认",
    S.HELD: "暂缓办理",
    S.DROPPED: "经审核不予拨付",
}

NO_ACCOUNT = "无对公账户"
UNSAFE_NAME = "户名不能原样写入银行文件"  # the start of the reason; `payouts.bankfiles.name_problem` says why
NO_PHONE = "无联系电话"
NO_CONFIRMATION = "政策无需意愿确认"

# The timestamp column each state sets on arrival.
_ARRIVAL = {
    S.RELEASED: "released_at",
    S.NOTIFIED: "notified_at",
    S.CONFIRMED: "confirmed_at",
    S.PAID: "paid_at",
}


def label(state: str | None) -> str:
    """The Chinese name of a state, for messages."""
    return "（新建）" if state is None else LABELS[OfferState(state)]


def public_label(state: str) -> str:
    """The name of a state on the enterprise's pages."""
    return PUBLIC_LABELS[OfferState(state)]


def check_move(offer: Offer, to: OfferState) -> None:
    """Raise StateError unless the state machine allows `offer` to go to `to`."""
    if to not in TRANSITIONS[OfferState(offer.state)]:
        raise StateError(f"要约 {offer.public_id} 处于“{label(offer.state)}”，不能变为“{label(to)}”")


def move(
    offer: Offer,
    to: OfferState,
    *,
    actor: str,
    action: str,
    now: dt.datetime,
    reason: str | None = None,
    **data: Any,
) -> Event:
    """Change one (locked) offer's state and return the audit event the caller must append."""
    check_move(offer, to)
    before = offer.state
    offer.state = to.value
    offer.updated_at = now
    offer.hold_reason = reason if to is S.HELD else None
    if to in _ARRIVAL:
        setattr(offer, _ARRIVAL[to], now)
    return Event(actor, action, "offer", offer.public_id, before, to.value, reason, data)


def move_where(
    session: Session,
    where: ColumnElement[bool],
    source: OfferState,
    to: OfferState,
    *,
    actor: str,
    action: str,
    now: dt.datetime,
    reason: str | None = None,
    values: dict[str, Any] | None = None,
    subject: str | None = None,
) -> Moved:
    """Move every offer in `source` that matches `where` to `to` in one UPDATE, with one bulk audit
    event listing them (`subject` names the event, e.g. the run); returns their public ids and tally.
    """
    table = Offer.__table__
    changes = _changes(source, to, now, reason, values)
    session.flush()
    rows = session.execute(
        update(table)
        .where(where, table.c.state == source.value)
        .values(**changes)
        .returning(table.c.public_id, table.c.amount)
    ).all()
    session.expire_all()
    ids = [r[0] for r in rows]
    event = Event(actor, action, "offers", subject or action, source.value, to.value, reason)
    audit.append_bulk(session, event, ids, now)
    return Moved(ids, Tally.of([r[1] for r in rows]))


@dataclass(frozen=True)
class Moved:
    """The offers one `move_where` changed: their public ids and how many and how much."""

    ids: list[str]
    tally: Tally

    def __len__(self) -> int:
        return len(self.ids)


def _changes(
    source: OfferState, to: OfferState, now: dt.datetime, reason: str | None, values: dict[str, Any] | None
) -> dict[str, Any]:
    """The column values of offers moving from `source` to `to` (StateError if the move is not allowed)."""
    if to not in TRANSITIONS[source]:
        raise StateError(f"不能从“{label(source)}”变为“{label(to)}”")
    changes: dict[str, Any] = {"state": to.value, "updated_at": now, **(values or {})}
    changes["hold_reason"] = reason if to is S.HELD else None
    if to in _ARRIVAL:
        changes[_ARRIVAL[to]] = now
    return changes


ANALYZE_AFTER = 10_000  # offers moved at once, from which `move_selected` refreshes the planner's statistics


def move_selected(
    session: Session,
    ids: Select[tuple[int]],
    source: OfferState,
    to: OfferState,
    *,
    actor: str,
    action: str,
    subject: str,
    now: dt.datetime,
    reason: str | None = None,
    values: dict[str, Any] | None = None,
    **data: Any,
) -> int:
    """`move_where` for a set too large to hold: the offers whose ids `ids` selects, all locked (see
    `lock_where`) and in `source`, move to `to` in one UPDATE, with one bulk audit event listing them
    (written by INSERT ... SELECT); returns how many. Nothing per offer is loaded into memory.
    """
    table = Offer.__table__
    changes = _changes(source, to, now, reason, values)
    session.flush()
    chosen = table.c.id.in_(ids)
    moved = session.execute(update(table).where(chosen, table.c.state == source.value).values(**changes))
    if moved.rowcount >= ANALYZE_AFTER:
        # The planner's statistics of the offers' states, with this move in them, now rather than when
        # autovacuum comes by: the next bulk step (SMS claims after a release, a batch's lines) would
        # otherwise be planned for a handful of released or confirmed offers and rescan them all per chunk.
        # Only the columns the move wrote: the others' statistics have not changed.
        bulkload.analyze(session, table, changes)
    for obj in list(session.identity_map.values()):  # loaded offers are stale now; other objects are not
        if isinstance(obj, Offer):
            session.expire(obj)
    event = Event(actor, action, "offers", subject, source.value, to.value, reason, data)
    members = select(table.c.public_id).where(chosen, table.c.state == to.value)
    audit.append_bulk_query(session, event, members, now)
    return int(moved.rowcount)


def move_all(
    session: Session,
    where: ColumnElement[bool],
    source: OfferState,
    to: OfferState,
    *,
    actor: str,
    action: str,
    now: dt.datetime,
    reason: str | None = None,
    values: dict[str, Any] | None = None,
    subject: str | None = None,
) -> Tally:
    """`move_where` in bounded memory, for moves of any size that need no ids back: the offers in
    `source` matching `where` are locked and noted in a scratch table, then moved by `move_selected`;
    returns how many and how much (summed by the database)."""
    table = Offer.__table__
    chosen = and_(where, table.c.state == source.value)
    pick = bulkload.scratch_table(session, "move_pick", Column("offer_id", BigInteger, primary_key=True))
    session.flush()
    # Locked in id order (the order every writer locks in) and noted in one statement.
    locked = select(table.c.id).where(chosen).order_by(table.c.id).with_for_update()
    session.execute(insert(pick).from_select(["offer_id"], locked))
    bulkload.analyze(session, pick)
    count, total = session.execute(
        select(func.count(), func.coalesce(func.sum(table.c.amount), 0)).select_from(
            pick.join(table, table.c.id == pick.c.offer_id)
        )
    ).one()
    if count:
        move_selected(
            session,
            select(pick.c.offer_id),
            source,
            to,
            actor=actor,
            action=action,
            subject=subject or action,
            now=now,
            reason=reason,
            values=values,
        )
    return Tally(int(count), Decimal(total).quantize(CENT))


def get_offer(session: Session, public_id: str, *, lock: bool = False) -> Offer:
    """The offer with this public id (locked for update when `lock`)."""
    query = select(Offer).where(Offer.public_id == public_id)
    offer = session.scalar(query.with_for_update() if lock else query)
    if offer is None:
        raise NotFoundError(f"没有要约 {public_id}")
    return offer


def lock_offers(session: Session, public_ids: Iterable[str]) -> list[Offer]:
    """The offers with these public ids, locked, in id order (the order every writer locks in)."""
    wanted = sorted(set(public_ids))
    offers = list(
        session.scalars(
            select(Offer).where(among(session, Offer.public_id, wanted)).order_by(Offer.id).with_for_update()
        ).all()
    )
    missing = set(wanted) - {o.public_id for o in offers}
    if missing:
        raise NotFoundError(f"没有要约：{', '.join(sorted(missing))}")
    return offers


def lock_where(session: Session, where: ColumnElement[bool]) -> int:
    """Lock the offers matching `where` in id order (the order every writer locks in) without loading
    them (`bulkload.lock_rows`). Returns how many were locked."""
    return lock_rows(session, select(Offer.id).where(where).order_by(Offer.id).with_for_update())


def list_offers(
    session: Session,
    *,
    state: str | None = None,
    policy_id: str | None = None,
    run_id: str | None = None,
    limit: int = 50,
    within: scope.Scope | None = None,
) -> list[Offer]:
    """Offers in id order, optionally in one state, of one policy or of one run, `within` a user's scope."""
    query = select(Offer).order_by(Offer.id).limit(limit)
    if within is not None:
        query = query.where(within.offers())
    if state is not None:
        query = query.where(Offer.state == OfferState(state).value)
    if policy_id is not None:
        query = query.where(Offer.policy_id == policy_id)
    if run_id is not None:
        query = query.where(
            Offer.match_run_id == select(MatchRun.id).where(MatchRun.run_id == run_id).scalar_subquery()
        )
    return list(session.scalars(query).all())


def run_totals(
    session: Session, run_ids: Sequence[str], within: scope.Scope
) -> dict[str, tuple[int, Decimal]]:
    """Per imported match run (by run id): how many of its offers are `within` a user's scope, and their money
    (runs without one are absent)."""
    if not run_ids:
        return {}
    query = (
        select(MatchRun.run_id, func.count(), func.coalesce(func.sum(Offer.amount), 0))
        .join(Offer, Offer.match_run_id == MatchRun.id)
        .where(MatchRun.run_id.in_(sorted(set(run_ids))), within.offers())
        .group_by(MatchRun.run_id)
    )
    return {r: (int(n), Decimal(amount)) for r, n, amount in session.execute(query)}


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise StateError("暂缓或剔除必须写明原因")
    return reason


# The states a bulk action takes offers from when they are chosen by a filter rather than ticked
# (ticked offers in any other state are refused by name).
FILTER_SOURCES: dict[str, tuple[OfferState, ...]] = {
    "release": (S.DRAFTED,),
    "hold": (S.DRAFTED,),
    "drop": (S.DRAFTED, S.HELD),
    "notify": (S.RELEASED,),
}


# The lead's decisions in joint review (会签), taken only once every co-reviewer gave its opinion
# (payouts.jointreview); a hold needs none.
DECISIONS = ("release", "drop")


def acting(selection: Selection, action: str) -> ColumnElement[bool]:
    """The offers `action` (release, hold, drop, notify) changes when `selection` is chosen.

    Ticked offers are all acted on (or the action is refused); of a filter, those in the states the
    action takes offers from; release leaves out offers without an account, notify takes only
    released offers, ticked or not.
    """
    where = selection.condition()
    c = Offer.__table__.c
    if not selection.ticked or action == "notify":
        where = and_(where, c.state.in_([s.value for s in FILTER_SOURCES[action]]))
    if action == "release" and not selection.ticked:
        where = and_(where, c.payee_id.in_(_payee_ids(Payee.account_no.is_not(None))))
    return where


def preview_action(session: Session, selection: Selection, action: str, *, by: str | None = None) -> Preview:
    """What `action` would act on if `selection` were confirmed now: count, total and policies; with `by`,
    only the offers that user decides on (`payouts/scope.py`), exactly those the action will change."""
    where = acting(selection, action)
    if action in DECISIONS and not selection.ticked:
        where = and_(where, ~jointreview.awaiting(session))  # the lead decides once every opinion is in
    if by is not None:
        where = and_(where, scope.of_username(session, by).offers(deciding=True))
    return preview(session, where)


def set_aside(
    session: Session,
    to: OfferState,
    selection: Selection,
    reason: str,
    by: str,
    now: dt.datetime,
    *,
    expected: Tally | None = None,
) -> Moved:
    """Hold (`to` held: they wait until released again) or drop (`to` dropped: the enterprise will not be
    contacted) the chosen offers, with a reason (初核); refused when they are not `expected`.
    """
    mine = scope.of(session, require(session, by, "review"))
    reason = _reason(reason)
    action = "hold" if to is S.HELD else "drop"
    if selection.offers is not None:
        mine.check_offers(session, selection.offers, deciding=True)
        if action in DECISIONS:
            jointreview.check_decidable(session, selection.offers)
        offers = lock_offers(session, selection.offers)
        events = [move(o, to, actor=by, action=action, now=now, reason=reason) for o in offers]
        audit.append(session, events, now)
        done = Moved([o.public_id for o in offers], Tally.of([o.amount for o in offers]))
    else:
        done = Moved([], Tally(0, ZERO))
        for source in FILTER_SOURCES[action]:
            ready = ~jointreview.awaiting(session) if action in DECISIONS else true()
            step = move_where(
                session,
                and_(acting(selection, action), mine.offers(deciding=True), ready),
                source,
                to,
                actor=by,
                action=action,
                now=now,
                reason=reason,
            )
            done = Moved(done.ids + step.ids, done.tally + step.tally)
    done.tally.check(expected)
    return done


def hold(session: Session, public_ids: Sequence[str], reason: str, by: str, now: dt.datetime) -> list[str]:
    """Put these offers on hold with a reason; returns their public ids."""
    return set_aside(session, S.HELD, Selection(offers=tuple(public_ids)), reason, by, now).ids


def drop(session: Session, public_ids: Sequence[str], reason: str, by: str, now: dt.datetime) -> list[str]:
    """Drop these offers for good, with a reason; returns their public ids."""
    return set_aside(session, S.DROPPED, Selection(offers=tuple(public_ids)), reason, by, now).ids


@dataclass
class ReleaseResult:
    """What `release` did: offers sent on to notification, confirmed outright, or held."""

    released: int = 0
    confirmed: int = 0
    held_no_phone: int = 0
    tally: Tally = field(default_factory=lambda: Tally(0, ZERO))

    def add(self, moved: Tally, kind: str) -> None:
        setattr(self, kind, getattr(self, kind) + moved.count)
        self.tally += moved


def _payee_ids(*conditions: ColumnElement[bool]) -> Any:
    return select(Payee.id).where(*conditions)


def release(
    session: Session,
    by: str,
    now: dt.datetime,
    *,
    run_id: str | None = None,
    policy_id: str | None = None,
    public_ids: Sequence[str] | None = None,
    selection: Selection | None = None,
    expected: Tally | None = None,
) -> ReleaseResult:
    """Release reviewed offers (初核通过): the drafted ones matching the filters, or the named ones, or
    the `selection` (refused, with nothing changed, when they are not the `expected` count and total).

    Named offers may also be held ones (the hold is lifted). Offers of policies with
    `confirmation: none` go straight to confirmed; the others go on to SMS, except those with no
    contact phone, which are held. An offer without a registered account cannot be released.
    """
    mine = scope.of(session, require(session, by, "review"))
    table = Offer.__table__
    where: list[ColumnElement[bool]] = [
        table.c.payee_id.in_(_payee_ids(Payee.account_no.is_not(None))),
        mine.offers(deciding=True),  # the user's region, and the policies whose review they lead
    ]
    if public_ids is None and (selection is None or not selection.ticked):
        where.append(~jointreview.awaiting(session))  # jointly reviewed: only once every opinion is in
    if selection is not None:
        where.append(acting(selection, "release"))
        public_ids = selection.offers
    sources = [S.DRAFTED]
    if run_id is not None:
        run = session.scalar(select(MatchRun.id).where(MatchRun.run_id == run_id))
        if run is None:
            raise NotFoundError(f"没有导入过匹配批次 {run_id}")
        where.append(table.c.match_run_id == run)
    if policy_id is not None:
        where.append(table.c.policy_id == policy_id)
    if public_ids is not None:
        mine.check_offers(session, public_ids, deciding=True)
        jointreview.check_decidable(session, public_ids)
        _check_releasable(session, public_ids)
        where.append(table.c.public_id.in_(sorted(set(public_ids))))
        sources.append(S.HELD)
    no_confirmation = [
        and_(table.c.policy_id == p, table.c.policy_version == v)
        for p, v in session.execute(
            select(PolicyVersion.policy_id, PolicyVersion.version).where(PolicyVersion.confirmation == "none")
        )
    ]
    direct = or_(false(), *no_confirmation)
    no_phone = table.c.payee_id.in_(_payee_ids(or_(Payee.contact_phone.is_(None), Payee.contact_phone == "")))
    next_round = {"round": table.c.round + 1}
    common: dict[str, Any] = {"actor": by, "now": now, "action": "release", "subject": run_id or policy_id}
    result = ReleaseResult()
    for source in sources:
        done = move_all(
            session,
            and_(*where, direct),
            source,
            S.CONFIRMED,
            reason=NO_CONFIRMATION,
            values={"released_at": now, **next_round},
            **common,
        )
        result.add(done, "confirmed")
        if source is S.DRAFTED:
            done = move_all(
                session, and_(*where, ~direct, no_phone), source, S.HELD, reason=NO_PHONE, **common
            )
            result.add(done, "held_no_phone")
        done = move_all(
            session,
            and_(*where, ~direct, ~no_phone),
            source,
            S.RELEASED,
            values={**next_round, "deadline": None},
            **common,
        )
        result.add(done, "released")
    result.tally.check(expected)
    return result


def _check_releasable(session: Session, public_ids: Sequence[str]) -> None:
    rows = session.execute(
        select(
            Offer.public_id,
            Offer.state,
            Payee.account_no,
            Payee.account_name,
            Payee.bank_name,
            Payee.contact_phone,
            PolicyVersion.confirmation,
        )
        .join(Payee, Payee.id == Offer.payee_id)
        .join(
            PolicyVersion,
            and_(PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version),
        )
        .where(Offer.public_id.in_(sorted(set(public_ids))))
    ).all()
    if missing := set(public_ids) - {r.public_id for r in rows}:
        raise NotFoundError(f"没有要约：{', '.join(sorted(missing))}")
    problems = [
        f"{r.public_id}（{label(r.state)}）" for r in rows if r.state not in (S.DRAFTED.value, S.HELD.value)
    ]
    if problems:
        raise StateError(f"只有待初核或暂缓的要约可以发布：{', '.join(problems)}")
    if no_account := [r.public_id for r in rows if r.account_no is None]:
        raise StateError(f"{NO_ACCOUNT}，请先更正账户再发布：{', '.join(no_account)}")
    unsafe = [
        f"{r.public_id}（{what}{problem}）"
        for r in rows
        for what, problem in (
            ("收款户名", name_problem(r.account_name)),
            ("开户行名称", name_problem(r.bank_name, required=False)),
        )
        if problem
    ]
    if unsafe:
        raise StateError(f"{UNSAFE_NAME}，请先核实更正再发布：{', '.join(unsafe)}")
    no_phone = [
        r.public_id
        for r in rows
        if r.state == S.HELD.value and r.confirmation != "none" and not r.contact_phone
    ]
    if no_phone:
        raise StateError(f"{NO_PHONE}，请先补充联系电话再发布：{', '.join(no_phone)}")
