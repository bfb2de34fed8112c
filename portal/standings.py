"""What the latest match run says about one enterprise (我的政策), and where to reach it.

For every item of the latest imported match run, one standing:
- 已匹配 (`matched`): its offer and the offer's state (or, without an offer, why: budget used up, or an
  item that pays nothing, such as a tax relief taken when declaring);
- 差一点 (`near_miss`): the one condition it failed, its value and what the condition requires;
- 数据缺失 (`missing`): the fields that were empty and the department that holds each;
- 不符合 (`ineligible`): none of the above.

Nothing is recomputed per page view. A run of format 3 keeps its results compact (Contract 4) and is read
through `matcher.results`: the enterprise's pattern per block, the statuses of those patterns and, for a
near miss, the values from the run's profile, each looked up by bisecting small row groups sorted by uscc
(`devtools/bench_enterprise.py`); no file is written. For a run of an older format, the first lookup
writes one cache file (its candidates, near misses, missing data and contacts, sorted by uscc in small row
groups) under the cache folder, named by the run id and written atomically; later lookups bisect it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml
from sqlalchemy import and_, select
from sqlmodel import Session

from matcher import runfolder
from matcher.results import RunResults, _ByUscc, open_results
from matcher.runfolder import Manifest
from payouts import offers as offer_states
from payouts.models import CLOSED_STATES, MatchRun, Offer, Payee, PolicyVersion
from rules.catalog import CATALOG
from rules.formats import day, field_value
from rules.policy import Condition
from rules.scope import ANYWHERE, Scope, condition_scope, meet

MATCHED, NEAR_MISS, MISSING, INELIGIBLE = "matched", "near_miss", "missing", "ineligible"
STATUS_LABELS = {MATCHED: "已匹配", NEAR_MISS: "差一点", MISSING: "数据缺失", INELIGIBLE: "不符合"}
ROW_GROUP = 2048  # rows per parquet row group of the cache: one lookup reads one or two groups
_COMPARISON = re.compile(
    r"^\s*([a-z_][a-z0-9_]*)\s*(<=|>=|<|>|==|!=)\s*(-?\d+(?:\.\d+)?|d\"\d{4}-\d{2}-\d{2}\")\s*$"
)
_EQUALS = re.compile(r'^\s*([a-z_][a-z0-9_]*)\s*==\s*"([^"]*)"\s*$')
_FLAG = re.compile(r"^\s*(not\s+)?([a-z_][a-z0-9_]*)\s*$")
_IN = re.compile(r'^\s*([a-z_][a-z0-9_]*)\s+in\s+\[\s*("[^"]*"(?:\s*,\s*"[^"]*")*)\s*\]\s*$')
# What a comparison asks, in words: 本事项要求裁员率不高于5.5%; dates read 不晚于 / 不早于.
_ASKS = {"<=": "不高于", ">=": "不低于", "<": "低于", ">": "高于", "==": "为", "!=": "不为"}
_ASKS_DATE = {"<=": "不晚于", ">=": "不早于", "<": "早于", ">": "晚于", "==": "为", "!=": "不为"}
_NEGATED = {"<=": ">", ">=": "<", "<": "≥", ">": "≤", "==": "≠", "!=": "="}
_SHOWN = {"<=": "≤", ">=": "≥", "<": "<", ">": ">", "==": "=", "!=": "≠"}


@dataclass(frozen=True)
class Item:
    """One item of a run's policy, with what the enterprise pages show of it."""

    policy_id: str
    version: int
    item_id: str
    policy_title: str
    item_title: str
    department: str
    period: str
    conditions: dict[str, dict[str, Any]]  # condition id → {"text", "clause", "rule" (when known)}
    scope: Scope = ANYWHERE  # where the item may apply (its conditions on region, industry, size)


COLUMNS = (
    "kind",
    "policy_id",
    "item_id",
    "condition_id",
    "value",
    "fields",
    "amount",
    "name",
    "phone",
    "region",
)
CACHE_VERSION = 3  # part of the cache file's name: a cache written by an older layout is rebuilt


@dataclass(frozen=True)
class RunView:
    """A match run as the enterprise pages read it: its items and its per-uscc cache file (a DuckDB view)."""

    run_id: str
    as_of: dt.date
    items: list[Item]
    cache: Path | None  # runs of format 1 and 2 only
    groups: _ByUscc | None  # the cache file's row groups by uscc
    results: RunResults | None = None  # runs of format 3: their compact results
    contacts: _ByUscc | None = None


@dataclass(frozen=True)
class FieldGap:
    """A field that was empty, and who holds it."""

    field: str
    label: str
    department: str


@dataclass(frozen=True)
class OfferRef:
    """The offer of a matched item, as the enterprise sees it."""

    public_id: str
    state: str
    state_label: str
    amount: Decimal
    deadline: dt.datetime | None


@dataclass
class Standing:
    """Where the enterprise stands on one item of the latest run."""

    item: Item
    status: str
    offer: OfferRef | None = None
    note: str | None = None  # matched without an offer: why
    condition_id: str | None = None
    condition_text: str | None = None
    clause: str | None = None
    field_label: str | None = None
    value_text: str | None = None  # their value, e.g. "63.8%"
    required_text: str | None = None  # what the condition asks, e.g. "≤ 5%" or the condition's text
    comparison: str | None = None  # e.g. "裁员率 63.8% > 5%"
    sentence: str | None = None  # e.g. "裁员率为63.8%，本事项要求不高于5%"
    gaps: list[FieldGap] = field(default_factory=list)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


@dataclass(frozen=True)
class Contact:
    """An enterprise as the latest run registered it: its name and contact phone."""

    uscc: str
    name: str
    phone: str | None


def latest_run(session: Session) -> MatchRun | None:
    """The match run imported last."""
    return session.scalar(select(MatchRun).order_by(MatchRun.id.desc()).limit(1))


def _rules(manifest: Manifest) -> dict[tuple[str, int, str | None, str], str]:
    """(policy, version, item or None, condition) → rule, from the policy files the run was made from.

    The run's manifest names their folder; where it is gone, pages show the condition's own text as
    the requirement instead of a comparison.
    """
    named = manifest.rules.path
    found: dict[tuple[str, int, str | None, str], str] = {}
    if not named or not Path(named).is_dir():
        return found
    folder = Path(named)
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "id" not in data or "version" not in data:
            continue
        key = (str(data["id"]), int(data["version"]))
        for c in data.get("conditions") or []:
            found[(*key, None, str(c.get("id")))] = str(c.get("rule", ""))
        for item in data.get("items") or []:
            for c in item.get("conditions") or []:
                found[(*key, str(item.get("id")), str(c.get("id")))] = str(c.get("rule", ""))
    return found


def _items(manifest: Manifest) -> list[Item]:
    rules = _rules(manifest)
    out = []
    for p in manifest.policies:
        version = p.version
        for it in p.items:
            conditions: dict[str, dict[str, Any]] = {}
            for c, scope in [*((c, None) for c in p.conditions), *((c, it.id) for c in it.conditions)]:
                rule = c.rule or rules.get((p.id, version, scope, c.id))  # the manifest's first
                conditions[c.id] = {"text": c.text, "clause": c.clause, "rule": rule}
            scope = ANYWHERE
            for c in conditions.values():
                if c["rule"]:
                    try:
                        scope = meet(scope, condition_scope(Condition(id="c", text="c", rule=c["rule"])))
                    except Exception:
                        continue
            out.append(
                Item(
                    scope=scope,
                    policy_id=p.id,
                    version=version,
                    item_id=it.id,
                    policy_title=p.title,
                    item_title=it.title,
                    department=p.department,
                    period=p.period,
                    conditions=conditions,
                )
            )
    return out


def _build_cache(run_path: Path, target: Path) -> None:
    """Write the run's per-uscc cache file (see the module docstring)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    parts = [
        f"""SELECT uscc, 'candidate' AS kind, policy_id, item_id, NULL AS condition_id, NULL AS value,
                   CAST(amount_before_allocation AS VARCHAR) AS fields, CAST(amount AS VARCHAR) AS amount,
                   NULL AS name, NULL AS phone, NULL AS region
            FROM read_parquet('{runfolder.parquet_source(run_path / runfolder.CANDIDATES)}')""",
    ]
    if (run_path / runfolder.NEAR_MISSES).exists():
        parts.append(
            f"""SELECT uscc, 'near_miss', policy_id, item_id, condition_id, value, NULL, NULL, NULL, NULL, NULL
                FROM read_parquet('{runfolder.parquet_source(run_path / runfolder.NEAR_MISSES)}')"""
        )
    if (run_path / runfolder.MISSING_DATA).exists():
        parts.append(
            f"""SELECT uscc, 'missing', policy_id, item_id, NULL, NULL, array_to_string(fields, ';'),
                       NULL, NULL, NULL, NULL
                FROM read_parquet('{runfolder.parquet_source(run_path / runfolder.MISSING_DATA)}')"""
        )
    # Contacts: every enterprise with a result (runs before contacts.parquet: candidates' payees only).
    contacts = next(
        (run_path / f for f in (runfolder.CONTACTS, runfolder.PAYEES) if (run_path / f).exists()), None
    )
    if contacts is not None:
        # The region (contacts of runs before it was written have none: nothing is then left out).
        con = duckdb.connect()
        try:
            described = con.execute(
                f"DESCRIBE SELECT * FROM read_parquet('{runfolder.parquet_source(contacts)}')"
            ).fetchall()
        finally:
            con.close()
        region = "CAST(region_code AS VARCHAR)" if "region_code" in {r[0] for r in described} else "NULL"
        parts.append(
            f"""SELECT uscc, 'payee', NULL, NULL, NULL, NULL, NULL, NULL, name, contact_phone, {region}
                FROM read_parquet('{runfolder.parquet_source(contacts)}')"""
        )
    query = " UNION ALL ".join(parts) + " ORDER BY uscc, kind, policy_id, item_id"
    con = duckdb.connect()
    try:
        con.execute(f"COPY ({query}) TO '{tmp}' (FORMAT PARQUET, ROW_GROUP_SIZE {ROW_GROUP})")
    finally:
        con.close()
    os.replace(tmp, target)


class Standings:
    """The enterprise side's view of match runs, cached per run (one per process, in the app's state)."""

    def __init__(self, cache_root: Path) -> None:
        self.cache_root = cache_root
        self._views: dict[str, RunView] = {}
        self._building: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def view(self, run: MatchRun) -> RunView:
        """The run's items and cache file, built on first use (other runs' pages are not held up)."""
        with self._lock:
            if run.run_id in self._views:
                return self._views[run.run_id]
            building = self._building.setdefault(run.run_id, threading.Lock())
        with building:
            if run.run_id in self._views:
                return self._views[run.run_id]
            items = _items(runfolder.parse_manifest(run.manifest, f"匹配批次 {run.run_id} 的清单"))
            path = Path(run.path)
            if runfolder.has_compact_results(path):
                contacts = path / runfolder.CONTACTS
                view = RunView(
                    run.run_id,
                    run.as_of,
                    items,
                    None,
                    None,
                    open_results(path),
                    _ByUscc(contacts) if contacts.exists() else None,
                )
            else:
                cache = self.cache_root / f"{run.run_id}.v{CACHE_VERSION}.parquet"
                if not cache.exists():
                    _build_cache(path, cache)
                view = RunView(run.run_id, run.as_of, items, cache, _ByUscc(cache))
            with self._lock:
                self._views[run.run_id] = view
            return view

    def _rows(self, view: RunView, uscc: str) -> list[tuple[Any, ...]]:
        """The enterprise's rows as the cache holds them (`COLUMNS`), from the cache or the compact results."""
        if view.results is None:
            assert view.groups is not None
            table = view.groups.rows(uscc, COLUMNS)
            return list(zip(*(table[c].to_pylist() for c in COLUMNS), strict=True))
        rows: list[tuple[Any, ...]] = []
        for r in view.results.standing(uscc):
            if r.status == "candidate":
                rows.append(
                    (
                        "candidate",
                        r.policy_id,
                        r.item_id,
                        None,
                        None,
                        r.amount_before_allocation,
                        r.amount,
                        None,
                        None,
                        None,
                    )
                )
            elif r.status == "near_miss":
                rows.append(
                    (
                        "near_miss",
                        r.policy_id,
                        r.item_id,
                        r.condition_id,
                        r.value,
                        None,
                        None,
                        None,
                        None,
                        None,
                    )
                )
            else:
                rows.append(
                    (
                        "missing",
                        r.policy_id,
                        r.item_id,
                        None,
                        None,
                        ";".join(r.fields),
                        None,
                        None,
                        None,
                        None,
                    )
                )
        if view.contacts is not None:
            for c in view.contacts.rows(uscc).to_pylist():
                region = c.get("region_code")
                rows.append(
                    (
                        "payee",
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        c["name"],
                        c["contact_phone"],
                        None if region is None else str(region),
                    )
                )
        return rows

    def near_missed(self, run: MatchRun) -> list[str]:
        """Every enterprise with a near miss in the run, in uscc order."""
        view = self.view(run)
        if view.results is not None:
            cur = view.results.cursor()
            try:
                sql = view.results.list_sql("near_misses", values=False)
                return [
                    u for (u,) in cur.execute(f"SELECT DISTINCT uscc FROM ({sql}) ORDER BY uscc").fetchall()
                ]
            finally:
                cur.close()
        assert view.cache is not None
        table = pq.read_table(view.cache, columns=["uscc", "kind"])
        usccs = table.filter(pc.equal(table["kind"], "near_miss"))["uscc"]
        return sorted(pc.unique(usccs).to_pylist())

    def contact(self, session: Session, uscc: str) -> Contact | None:
        """The enterprise's name and contact phone: its latest payee record (staff corrections included),
        else the registered contact the latest run wrote for every enterprise with a result (candidate,
        near miss or missing data: contacts.parquet); None when the latest run does not know it."""
        payee = session.scalar(
            select(Payee)
            .where(Payee.uscc == uscc, Payee.contact_phone.is_not(None))
            .order_by(Payee.id.desc())
            .limit(1)
        )
        if payee is not None and payee.contact_phone:
            return Contact(uscc, payee.name, payee.contact_phone)
        run = latest_run(session)
        if run is None:
            return None
        rows = [r for r in self._rows(self.view(run), uscc) if r[0] == "payee"]
        if rows:
            return Contact(uscc, rows[0][7], rows[0][8] or None)
        return None

    def standings(self, session: Session, uscc: str) -> tuple[RunView | None, list[Standing]]:
        """Every item of the latest run and where this enterprise stands on it."""
        run = latest_run(session)
        if run is None:
            return None, []
        view = self.view(run)
        rows = self._rows(view, uscc)
        # A candidate's `fields` column holds its amount before allocation (see _build_cache).
        candidates = {(r[1], r[2]): (r[6], r[5]) for r in rows if r[0] == "candidate"}
        region = next((r[9] for r in rows if r[0] == "payee" and r[9]), None)
        misses = {(r[1], r[2]): (r[3], r[4]) for r in rows if r[0] == "near_miss"}
        gaps = {(r[1], r[2]): (r[5] or "").split(";") for r in rows if r[0] == "missing"}
        mine = offers_of(session, uscc)
        out = []
        for item in view.items:
            key = (item.policy_id, item.item_id)
            offer = _offer_for(mine, item)
            if offer is not None:
                out.append(Standing(item, MATCHED, offer=_ref(offer)))
            elif key in candidates:
                out.append(Standing(item, MATCHED, note=candidate_note(*candidates[key])))
            elif region is not None and not item.scope.admits_region(region):
                continue  # another region's policy: not the enterprise's concern, not even as 不符合
            elif key in misses:
                out.append(_near_miss(item, *misses[key]))
            elif key in gaps:
                out.append(Standing(item, MISSING, gaps=[_gap(f) for f in gaps[key] if f]))
            else:
                out.append(Standing(item, INELIGIBLE))
        return view, out


def offers_of(session: Session, uscc: str) -> list[Offer]:
    """Every offer of one enterprise, newest first."""
    return list(session.scalars(select(Offer).where(Offer.uscc == uscc).order_by(Offer.id.desc())).all())


def _offer_for(mine: list[Offer], item: Item) -> Offer | None:
    """The enterprise's offer for this item and period: the live one, else the latest closed one."""
    same = [
        o for o in mine if (o.policy_id, o.item_id, o.period) == (item.policy_id, item.item_id, item.period)
    ]
    closed = {s.value for s in CLOSED_STATES}
    live = [o for o in same if o.state not in closed]
    return (live or same or [None])[0]


def _ref(offer: Offer) -> OfferRef:
    return OfferRef(
        offer.public_id, offer.state, offer_states.public_label(offer.state), offer.amount, offer.deadline
    )


def _gap(name: str) -> FieldGap:
    f = CATALOG.get(name)
    if f is None:
        return FieldGap(name, name, "数据主管部门")
    return FieldGap(name, f.label, f.department)


def _values(text: str | None) -> dict[str, str]:
    """'field=value; field=value' as the matcher writes it → {field: value}."""
    out = {}
    for part in (text or "").split("; "):
        name, sep, value = part.partition("=")
        if sep:
            out[name] = value
    return out


def candidate_note(amount: str | None, before: str | None) -> str:
    """What a candidate without an offer is told, from its amount after and before allocation (decimal text;
    `before` is None in caches written before it was kept)."""
    if Decimal(amount or "0") > 0:
        return "符合条件，有关部门审核后将以短信通知确认"
    if before is not None and Decimal(before) == 0:
        # The item pays nothing (amount 0 in the policy): a relief, a deferral or a loan.
        return "符合条件，按规定直接享受，不涉及资金拨付"
    return "符合条件，但本期预算已分配完毕"


def _near_miss(item: Item, condition_id: str, value: str | None) -> Standing:
    cond = item.conditions.get(condition_id, {"text": condition_id, "clause": None, "rule": None})
    values = _values(value)
    standing = Standing(
        item,
        NEAR_MISS,
        condition_id=condition_id,
        condition_text=cond["text"],
        clause=cond.get("clause"),
        required_text=cond["text"],
    )
    if values:
        name = next(iter(values))
        f = CATALOG.get(name)
        standing.field_label = f.label if f else name
        standing.value_text = "；".join(
            f"{CATALOG[n].label if n in CATALOG else n} {field_value(n, v)}" for n, v in values.items()
        )
        if len(values) == 1:
            standing.value_text = field_value(name, values[name])
    rule = cond.get("rule") or ""
    standing.sentence = _sentence(rule, values, cond["text"])
    if (m := _COMPARISON.match(rule)) and m.group(1) in values:
        name, op, literal = m.groups()
        literal = literal.removeprefix('d"').removesuffix('"')
        shown = field_value(name, literal)
        standing.required_text = f"{_SHOWN[op]} {shown}"
        standing.comparison = (
            f"{standing.field_label} {field_value(name, values[name])} {_NEGATED[op]} {shown}"
        )
    elif (m := _EQUALS.match(rule)) and m.group(1) in values:
        name, wanted = m.groups()
        standing.required_text = field_value(name, wanted)
        standing.comparison = (
            f"{standing.field_label} {field_value(name, values[name])} ≠ {field_value(name, wanted)}"
        )
    elif (m := _FLAG.match(rule)) and m.group(2) in values:
        name = m.group(2)
        wanted = "否" if m.group(1) else "是"
        standing.required_text = f"应为“{wanted}”"
        standing.comparison = f"{standing.field_label}：{field_value(name, values[name])}（要求：{wanted}）"
    return standing


def _shown(name: str, value: str) -> str:
    """A value inside a sentence: 中型, 7.2%, 是, 2021年1月1日 (money without the space before 元)."""
    f = CATALOG.get(name)
    if f is not None and f.type == "date" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return day(value)
    return field_value(name, value).replace(" 元", "元")


def _label(name: str) -> str:
    f = CATALOG.get(name)
    return f.label if f else name


def _wanted(name: str, values: list[str]) -> str:
    """What an equality or a list asks: 大型企业, 中型、小型或微型企业, or 行业门类为C或I."""
    shown = [_shown(name, v) for v in values]
    text = "、".join(shown[:-1]) + "或" + shown[-1] if len(shown) > 1 else shown[0]
    return text + "企业" if name == "size_class" else f"{_label(name)}为{text}"


def _sentence(rule: str, values: dict[str, str], text: str) -> str:
    """The near miss as a sentence: the enterprise's value and what the item asks, e.g.
    企业规模为中型，本事项要求大型企业; 裁员率为7.2%，本事项要求裁员率不高于5.5%."""
    if (m := _COMPARISON.match(rule)) and m.group(1) in values:
        name, op, literal = m.groups()
        literal = literal.removeprefix('d"').removesuffix('"')
        f = CATALOG.get(name)
        words = _ASKS_DATE if f is not None and f.type == "date" else _ASKS
        have, want = _shown(name, values[name]), _shown(name, literal)
        return f"{_label(name)}为{have}，本事项要求{_label(name)}{words[op]}{want}"
    if (m := _EQUALS.match(rule)) and m.group(1) in values:
        name = m.group(1)
        return f"{_label(name)}为{_shown(name, values[name])}，本事项要求{_wanted(name, [m.group(2)])}"
    if (m := _IN.match(rule)) and m.group(1) in values:
        name = m.group(1)
        wanted = re.findall(r'"([^"]*)"', m.group(2))
        return f"{_label(name)}为{_shown(name, values[name])}，本事项要求{_wanted(name, wanted)}"
    if (m := _FLAG.match(rule)) and m.group(2) in values:
        name = m.group(2)
        wanted = "否" if m.group(1) else "是"
        return f"{_label(name)}为“{_shown(name, values[name])}”，本事项要求为“{wanted}”"
    if values:
        have = "，".join(f"{_label(n)}为{_shown(n, v)}" for n, v in values.items())
        return f"{have}，本事项要求：{text}"
    return f"本事项要求：{text}"


def demo_enterprise(session: Session, standings: Standings) -> Contact | None:
    """An enterprise of the latest run that has an offer and a near miss (else one with an offer), for demos."""
    run = latest_run(session)
    if run is None:
        return None
    with_offers = select(Offer.uscc).where(Offer.match_run_id == run.id).distinct()
    usccs = set(session.scalars(with_offers).all())
    notified = set(
        session.scalars(
            with_offers.where(Offer.state == offer_states.S.NOTIFIED.value)  # its SMS link works too
        ).all()
    )
    both = sorted((u for u in standings.near_missed(run) if u in usccs), key=lambda u: (u not in notified, u))
    # Best: a near miss on a threshold (e.g. 裁员率 7.2% > 5.5%); then any near miss; then any offer.
    thresholds = ("≤", "≥", "<", ">")
    compared = (
        u
        for u in both[:40]
        if any((x.required_text or "").startswith(thresholds) for x in standings.standings(session, u)[1])
    )
    for uscc in itertools.chain(compared, both, sorted(usccs)):
        contact = standings.contact(session, uscc)
        if contact is not None and contact.phone:
            return contact
    return None


def policy_titles(session: Session, offer_list: list[Offer]) -> dict[int, tuple[str, str, str]]:
    """offer id → (policy title, item title, department), for lists of offers."""
    out = {}
    for o in offer_list:
        p = session.scalar(
            select(PolicyVersion).where(
                and_(PolicyVersion.policy_id == o.policy_id, PolicyVersion.version == o.policy_version)
            )
        )
        if p is None:
            continue
        item = next((i for i in json.loads(p.items) if i["id"] == o.item_id), {"title": o.item_id})
        out[o.id] = (p.title, item["title"], p.department)
    return out
