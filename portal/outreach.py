"""Outreach: enterprises that nearly qualify for a policy that asks for it (`outreach: true`) are told.

From the latest imported match run, every near miss (one condition failed) and every missing-data
result of an outreach policy becomes one SMS to the enterprise's registered contact, naming what is
missing — the condition it failed, or the data the run could not find — and the link to supply it
(`/e/supplied`, after sign-in). Limits:

- at most once per item and run (the outbox key names run, enterprise, policy and item);
- at most `per_month` outreach messages per enterprise per calendar month (China time), however many
  policies or runs it nearly qualifies for; the rest wait for the next month's run;
- never to a number on the opt-out list (回复TD退订, `payouts.outbox`); every message says how to opt out.

The results are read from the run folder with DuckDB, only the outreach policies' rows, in uscc order;
what outreach brought (supplied → verified → matched → paid) is counted by `reports.funnel.outreach`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlmodel import Session

from matcher import runfolder
from matcher.results import Slice, open_results
from payouts import outbox
from payouts.db import transaction
from payouts.models import MatchRun, PolicyVersion, SmsMessage
from payouts.sms import SmsGateway, fit_text
from portal.standings import latest_run
from rules.catalog import CATALOG
from rules.formats import CHINA

KIND = "outreach"
TEMPLATE = "【{sign}】{name}：贵单位差一点符合“{title}”，{what}。如有材料请登录补充：{link} {stop}"


@dataclass(frozen=True)
class OutreachSettings:
    """Outreach limits and wording (`ZHIDA_OUTREACH_*`)."""

    per_month: int = 2  # messages per enterprise per calendar month
    link: str = "https://zd.example.gov.cn/e/supplied"
    sign: str = "惠企直达"


@dataclass
class Reached:
    """What an outreach run did."""

    sent: int = 0
    capped: int = 0  # over the enterprise's monthly limit
    opted_out: int = 0
    already: int = 0  # told about this item in this run before
    no_phone: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def plain(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "errors"}
        return out | {"errors": self.errors[:20]}


def _results(run_path: Path, policies: list[str]) -> list[tuple[str, str, str, str, str | None, str | None]]:
    """(uscc, kind, policy, item, condition id, missing fields ;-joined) of the outreach policies, with the
    enterprise's registered name and phone, in uscc order."""
    contacts = run_path / runfolder.CONTACTS
    if not policies or not contacts.exists():
        return []
    results = open_results(run_path)  # compact (format 3) or the two files of older runs
    parts = []
    if results.compact or (run_path / runfolder.NEAR_MISSES).exists():
        parts.append(
            "SELECT uscc, 'near_miss' AS kind, policy_id, item_id, condition_id, NULL AS fields "
            f"FROM ({results.list_sql('near_misses', Slice(policy_ids=policies), values=False)})"
        )
    if results.compact or (run_path / runfolder.MISSING_DATA).exists():
        parts.append(
            "SELECT uscc, 'missing', policy_id, item_id, NULL, array_to_string(fields, ';') "
            f"FROM ({results.list_sql('missing_data', Slice(policy_ids=policies))})"
        )
    if not parts:
        return []
    con = results.cursor()
    try:
        return con.execute(
            f"SELECT r.uscc, r.kind, r.policy_id, r.item_id, r.condition_id, r.fields, c.name, c.contact_phone "
            f"FROM ({' UNION ALL '.join(parts)}) r "
            f"JOIN read_parquet('{runfolder.parquet_source(contacts)}') c USING (uscc) "
            "WHERE r.policy_id IN (SELECT unnest(?)) ORDER BY r.uscc, r.policy_id, r.item_id",
            [policies],
        ).fetchall()
    finally:
        con.close()


def what_is_missing(kind: str, condition: str | None, fields: str | None) -> str:
    """The phrase naming what is missing: the condition failed, or the data the run could not find."""
    if kind == "near_miss":
        return f"仅差一项条件：{condition}" if condition else "仅差一项条件"
    labels = [CATALOG[f].label if f in CATALOG else f for f in (fields or "").split(";") if f]
    return f"缺少{'、'.join(labels[:3])}{'等' if len(labels) > 3 else ''}数据" if labels else "缺少部分数据"


def render(settings: OutreachSettings, name: str, title: str, what: str) -> str:
    """The message, shortened (the enterprise name, then the title) to fit two SMS segments."""
    values = {"sign": settings.sign, "name": name, "title": title, "what": what, "link": settings.link}
    values["stop"] = outbox.OPT_OUT_HINT
    return fit_text(TEMPLATE, values, (("title", 8), ("name", 6), ("what", 10)))


def _conditions(run: MatchRun) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """policy → title, and (policy, condition) → the condition's text, from the run's manifest."""
    manifest = runfolder.parse_manifest(run.manifest, f"匹配批次 {run.run_id} 的清单")
    titles, texts = {}, {}
    for p in manifest.policies:
        titles[p.id] = p.title
        for c in p.conditions + tuple(c for i in p.items for c in i.conditions):
            texts[(p.id, c.id)] = c.text
    return titles, texts


def sent_this_month(session: Session, now: dt.datetime) -> dict[str, int]:
    """Outreach messages sent per enterprise in the current calendar month (China time)."""
    local = now.astimezone(CHINA)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    rows = session.execute(
        select(SmsMessage.uscc, func.count())
        .where(SmsMessage.kind == KIND, SmsMessage.status == "sent", SmsMessage.sent_at >= start)
        .group_by(SmsMessage.uscc)
    ).all()
    return {u: int(n) for u, n in rows if u}


def send(
    engine: Engine, gateway: SmsGateway, now: dt.datetime, settings: OutreachSettings, *, chunk: int = 1000
) -> Reached:
    """Tell the latest run's near-miss and missing-data enterprises of the outreach policies (see above),
    `chunk` messages at a time, each chunk committed with its outbox rows before the next is composed
    (`payouts.outbox.send_chunk`): a run cut short is resumed by running it again, which first hands
    over what was in hand (`outbox.resume`) and then sends only what was not sent."""
    result = Reached()
    outbox.resume(engine, gateway, KIND, now)
    with transaction(engine, read_only=True) as session:
        run = latest_run(session)
        if run is None:
            return result
        policies = sorted(
            set(
                session.scalars(
                    select(PolicyVersion.policy_id).where(PolicyVersion.outreach.is_(True))  # type: ignore[attr-defined]
                )
            )
        )
        titles, texts = _conditions(run)
        policies = [p for p in policies if p in titles]
        rows = _results(Path(run.path), policies)
        counts = sent_this_month(session, now)
        prefix = f"{KIND}|{run.run_id}|"
        told = set(
            session.scalars(
                select(SmsMessage.dedupe_key).where(
                    SmsMessage.kind == KIND,
                    SmsMessage.status == "sent",
                    SmsMessage.dedupe_key.startswith(prefix),
                )
            )
        )
    pending: list[outbox.Message] = []
    for uscc, kind, policy_id, item_id, condition_id, fields, name, phone in rows:
        key = f"{prefix}{uscc}|{policy_id}|{item_id}"
        if key in told:
            result.already += 1
            continue
        if not phone:
            result.no_phone += 1
            continue
        if counts.get(uscc, 0) >= settings.per_month:
            result.capped += 1
            continue
        counts[uscc] = counts.get(uscc, 0) + 1  # given back below if it is not sent
        what = what_is_missing(kind, texts.get((policy_id, condition_id or "")), fields)
        text = render(settings, name or "", titles[policy_id], what)
        pending.append(outbox.Message(key, KIND, phone, text, uscc=uscc, policy_id=policy_id))
        if len(pending) >= chunk:
            _send_chunk(engine, gateway, now, pending, counts, result)
            pending = []
    if pending:
        _send_chunk(engine, gateway, now, pending, counts, result)
    return result


def _send_chunk(
    engine: Engine,
    gateway: SmsGateway,
    now: dt.datetime,
    messages: list[outbox.Message],
    counts: dict[str, int],
    result: Reached,
) -> None:
    done = outbox.send_chunk(engine, gateway, messages, now)
    for m in messages:
        outcome = done.outcome.get(m.dedupe_key, "failed")
        if outcome != "sent" and m.uscc:
            counts[m.uscc] -= 1
        if outcome == "sent":
            result.sent += 1
        elif outcome == "opted_out":
            result.opted_out += 1
        elif outcome == "already":
            result.already += 1
        else:
            result.failed += 1
    result.errors += [f"{e}" for e in done.errors]
