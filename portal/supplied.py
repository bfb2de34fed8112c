"""Supplying missing data: an enterprise sends the value of a field a match run found missing, with evidence;
the department that holds the field verifies or rejects it; a verified value becomes an override that the
next match run applies over the snapshot (`matcher.overrides`), never rewriting the snapshot itself.

```
supplied:  submitted(enterprise) → verified(owning department) → override (active until a newer one)
                                 ↘ rejected(reason)
```
- Only stored fields can be supplied; a derived one (裁员率) names the stored fields it is computed from
  (年初参保人数、年末参保人数), which is what the enterprise supplies instead (`inputs_for`); a last-year
  field (上年度营业收入) is supplied as the stored field of the year before the assessment year.
- The value is checked against the field's catalog type and codes, and kept as canonical text.
- The evidence is a PDF or an image, recognised from its bytes (the browser's content type is not
  trusted), at most 10 MB, written under a random name to a folder outside the web root.
- Only staff of the department that holds the field see the evidence and decide (`owns`).
- The enterprise is asked for each stored field once (per assessment year for a yearly one), however many
  items miss it (`asks`): the asks are grouped by the department that holds the fields, and one evidence
  file may cover several fields (`submit_several`: one row per field, all citing the same file).
- Every step is an audit event (entity "supplied" and "override").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import filetype
import yaml
from sqlalchemy import select
from sqlmodel import Session

from matcher import runfolder
from matcher.codes import is_known_industry, is_known_region
from matcher.runfolder import Manifest
from matcher.snapshot import SPECS
from payouts import audit, tokens
from payouts.errors import NotFoundError
from payouts.models import PolicyVersion, StaffUser
from payouts.users import require
from portal import standings as portal_standings
from portal.models import DataOverride, SuppliedState, SuppliedValue
from rules.catalog import CATALOG, Field
from rules.errors import PayoutError, StateError

MAX_EVIDENCE = 10 * 1024 * 1024  # 10 MB
EVIDENCE_TYPES = {
    "application/pdf": "PDF",
    "image/jpeg": "JPEG 图片",
    "image/png": "PNG 图片",
    "image/webp": "WebP 图片",
}
STATE_LABELS = {"submitted": "待核实", "verified": "已核实", "rejected": "已退回"}
_MAX_VALUE = 200
_FEN = Decimal("0.01")
_TRUE = {"true", "1", "是", "yes", "y"}
_FALSE = {"false", "0", "否", "no", "n"}


class EvidenceError(PayoutError):
    """The evidence file is refused: too large, empty, or not a PDF or an image."""


def enterprise_actor(uscc: str) -> str:
    """How an enterprise appears as the actor of audit events."""
    return f"enterprise:{uscc}"


def owns(staff_department: str | None, field_department: str) -> bool:
    """Whether staff of `staff_department` hold the data of a field of `field_department`.

    The catalog names a department without its city prefix (人力资源和社会保障局), sometimes several
    (科学技术局 / 工业和信息化局) or with a note (市场监督管理局（企业年报）); a staff department such
    as 市人力资源和社会保障局 owns it when it is, or ends with, one of them. No department owns nothing.
    """
    if not staff_department:
        return False
    names = [re.sub(r"（.*?）|\(.*?\)", "", part).strip() for part in field_department.split("/")]
    return any(n and (staff_department == n or staff_department.endswith(n)) for n in names)


def inputs_for(field_name: str) -> list[Field]:
    """The stored fields to supply when `field_name` is missing: itself, or the inputs of a derived field.

    PayoutError when it cannot be supplied at all (unknown, or a flag only a registry can set).
    """
    f = CATALOG.get(field_name)
    if f is None:
        raise PayoutError(f"没有字段 {field_name}")
    if not f.derived:
        _source(f)
        return [f]
    if not f.inputs:
        raise PayoutError(
            f"“{f.label}”由{f.department}的登记数据生成，不能由企业直接补充，请向{f.department}办理登记"
        )
    return [CATALOG[name] for name in f.inputs]


def _source(f: Field) -> tuple[str, str]:
    """The snapshot table and column a stored field comes from (Contract 2)."""
    spec = SPECS.get(f.table)
    if f.derived or spec is None or f.name not in spec.columns or f.name in spec.key:
        raise PayoutError(f"“{f.label}”（{f.name}）不是快照中可以补充的字段")
    return f.table, f.name


def parse_value(f: Field, raw: str) -> str:
    """The value typed for `f`, as canonical text; PayoutError saying what is expected otherwise."""
    text = raw.strip()
    if not text:
        raise PayoutError(f"请填写“{f.label}”")
    if len(text) > _MAX_VALUE:
        raise PayoutError(f"“{f.label}”过长（最多 {_MAX_VALUE} 个字符）")
    unit = f"（单位：{f.unit}）" if f.unit else ""
    if f.type == "integer":
        if not re.fullmatch(r"\d{1,12}", text.replace(",", "")):
            raise PayoutError(f"“{f.label}”应为不小于 0 的整数{unit}：{text}")
        return str(int(text.replace(",", "")))
    if f.type in ("money", "ratio"):
        try:
            number = Decimal(text.replace(",", ""))
        except InvalidOperation:
            raise PayoutError(f"“{f.label}”应为数字{unit}：{text}") from None
        if not number.is_finite() or number < 0 or abs(number) >= Decimal("1e16"):
            raise PayoutError(f"“{f.label}”应为不小于 0 的数字{unit}：{text}")
        if f.type == "money":
            if number != number.quantize(_FEN):
                raise PayoutError(f"“{f.label}”只能精确到分：{text}")
            return format(number.quantize(_FEN), "f")
        return format(number, "f")
    if f.type == "boolean":
        if text.lower() in _TRUE:
            return "true"
        if text.lower() in _FALSE:
            return "false"
        raise PayoutError(f"“{f.label}”应为“是”或“否”：{text}")
    if f.type == "date":
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            raise PayoutError(f"“{f.label}”应为日期，如 2020-05-01：{text}") from None
    if f.values and text not in f.values:
        raise PayoutError(f"“{f.label}”应为以下之一：{'、'.join(f.values)}（填写的是 {text}）")
    if f.name == "region_code" and not is_known_region(text):
        raise PayoutError(f"行政区划代码 {text} 不在 GB/T 2260 中")
    if f.name == "industry_code" and not is_known_industry(text):
        raise PayoutError(f"行业代码 {text} 不在 GB/T 4754-2017 中")
    return text


def sniff(data: bytes) -> str:
    """The MIME type of an evidence file from its bytes; EvidenceError unless it is a PDF or an image."""
    if not data:
        raise EvidenceError("证明材料是空文件")
    if len(data) > MAX_EVIDENCE:
        raise EvidenceError(f"证明材料过大：{len(data) / 1024 / 1024:.1f} MB，最大 10 MB")
    kind = filetype.guess(data[:8192])
    mime = kind.mime if kind is not None else None
    if mime not in EVIDENCE_TYPES:
        raise EvidenceError(
            f"证明材料只能是 PDF 或图片（{'、'.join(EVIDENCE_TYPES.values())}），"
            f"上传的文件是{'无法识别的格式' if mime is None else ' ' + mime}"
        )
    return mime


@dataclass(frozen=True)
class Missing:
    """One line of a run's missing-data list as the enterprise supplies it: which policy, item, field."""

    policy_id: str
    item_id: str
    field: str  # as the run named it; may be derived
    year: int | None  # the policy's assessment year
    run_id: str | None = None


def policy_years(manifest: Manifest) -> dict[tuple[str, int], int]:
    """(policy, version) → assessment year of a run's policies: from the manifest where it says so, else
    from the policy files the run was made from (the folder its manifest names)."""
    years = {
        p.key: int(p.raw["assessment_year"])
        for p in manifest.policies
        if p.raw.get("assessment_year") is not None
    }
    folder = Path(manifest.rules.path)
    if str(folder) and folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and {"id", "version", "assessment_year"} <= data.keys():
                years.setdefault((str(data["id"]), int(data["version"])), int(data["assessment_year"]))
    return years


@dataclass(frozen=True)
class MissingLine:
    """A 数据缺失 line of the latest run for one enterprise: the item, the missing field, what to supply."""

    missing: Missing
    policy_title: str
    item_title: str
    label: str
    department: str
    inputs: list[Field]
    refusal: str | None  # why it cannot be supplied, when it cannot


def missing_lines(session: Session, standings: portal_standings.Standings, uscc: str) -> list[MissingLine]:
    """Every missing field of the enterprise in the latest imported run, with the fields to supply."""
    view, items = standings.standings(session, uscc)
    run = portal_standings.latest_run(session)
    if view is None or run is None:
        return []
    years = policy_years(runfolder.parse_manifest(run.manifest, f"匹配批次 {run.run_id} 的清单"))
    out = []
    for s in items:
        if s.status != portal_standings.MISSING:
            continue
        for gap in s.gaps:
            try:
                inputs, refusal = inputs_for(gap.field), None
            except PayoutError as e:
                inputs, refusal = [], str(e)
            year = years.get((s.item.policy_id, s.item.version))
            missing = Missing(s.item.policy_id, s.item.item_id, gap.field, year, view.run_id)
            out.append(
                MissingLine(
                    missing,
                    s.item.policy_title,
                    s.item.item_title,
                    gap.label,
                    gap.department,
                    inputs,
                    refusal,
                )
            )
    return out


@dataclass(frozen=True)
class Ask:
    """One stored field the enterprise is asked for, once, with the items that wait for it."""

    key: str  # the form's name for it: the field, and the assessment year for a yearly one ("insured_start@2024")
    field: Field
    year: int | None  # for a yearly field: the assessment year it is asked for
    missing: Missing  # the first missing line that needs it; the submission cites it
    computes: tuple[str, ...]  # labels of the derived fields it is an input of (裁员率), if any
    items: tuple[str, ...]  # the titles of the items that wait for it


@dataclass(frozen=True)
class DepartmentAsks:
    """The fields one department holds that the enterprise is asked for: one form, one evidence file."""

    department: str
    asks: list[Ask]


@dataclass(frozen=True)
class Refusal:
    """A missing field that cannot be supplied here (a registry flag), once, with the items it blocks."""

    label: str
    text: str
    items: tuple[str, ...]


def _item_title(line: MissingLine) -> str:
    item = line.item_title
    return line.policy_title if item in line.policy_title else f"{line.policy_title}·{item}"


def _yearly(f: Field) -> bool:
    return "year" in SPECS[f.table].key


def supply_year(missing: Missing, f: Field) -> int | None:
    """The year whose row a value of stored field `f` fills for `missing`: none for a table without years;
    for a yearly one the policy's assessment year, or the year before it for a last-year field (revenue_prev
    is supplied as 营业收入 of assessment year − 1); None when the policy's year is unknown."""
    if not _yearly(f) or missing.year is None:
        return None
    return missing.year - CATALOG[missing.field].years_back


def asks(lines: list[MissingLine]) -> tuple[list[DepartmentAsks], list[Refusal]]:
    """The enterprise's missing lines as what it is asked for: each stored field once (per assessment
    year for a yearly field), grouped by the department that holds it; and what cannot be supplied."""
    found: dict[str, dict[str, Any]] = {}
    refused: dict[str, dict[str, Any]] = {}
    for line in lines:
        title = _item_title(line)
        if line.refusal is not None:
            r = refused.setdefault(
                line.missing.field, {"label": line.label, "text": line.refusal, "items": []}
            )
            if title not in r["items"]:
                r["items"].append(title)
            continue
        # A last-year field (上年度营业收入) is asked as the stored field of that year, not as an input.
        derived = line.missing.field not in {f.name for f in line.inputs}
        computes = derived and not CATALOG[line.missing.field].years_back
        for f in line.inputs:
            year = supply_year(line.missing, f)
            key = f.name if year is None else f"{f.name}@{year}"
            a = found.setdefault(
                key, {"field": f, "year": year, "missing": line.missing, "computes": [], "items": []}
            )
            if computes and line.label not in a["computes"]:
                a["computes"].append(line.label)
            if title not in a["items"]:
                a["items"].append(title)
    by_department: dict[str, list[Ask]] = {}
    for key, a in found.items():
        ask = Ask(key, a["field"], a["year"], a["missing"], tuple(a["computes"]), tuple(a["items"]))
        by_department.setdefault(ask.field.department, []).append(ask)
    groups = [
        DepartmentAsks(d, sorted(v, key=lambda x: (x.field.label, x.year or 0)))
        for d, v in by_department.items()
    ]
    groups.sort(key=lambda g: g.department)
    refusals = [Refusal(r["label"], r["text"], tuple(r["items"])) for r in refused.values()]
    return groups, refusals


def find_missing(
    session: Session,
    standings: portal_standings.Standings,
    uscc: str,
    policy_id: str,
    item_id: str,
    field: str,
) -> Missing:
    """The enterprise's missing line for (policy, item, field) in the latest run; NotFoundError if there is none."""
    for line in missing_lines(session, standings, uscc):
        m = line.missing
        if (m.policy_id, m.item_id, m.field) == (policy_id, item_id, field):
            return m
    raise NotFoundError(f"最新一次数据比对中，贵单位在 {policy_id}/{item_id} 没有缺失字段 {field}")


def submit(
    session: Session,
    *,
    uscc: str,
    missing: Missing,
    field_name: str,
    value: str,
    evidence: bytes,
    evidence_name: str,
    evidence_dir: Path,
    now: dt.datetime,
    note: str | None = None,
) -> SuppliedValue:
    """Record the value an enterprise supplies for `field_name` (the missing field, or one of its inputs).

    The caller has checked that `missing` is a line of this enterprise in the latest run.
    """
    return submit_several(
        session,
        uscc=uscc,
        values=[(missing, field_name, value)],
        evidence=evidence,
        evidence_name=evidence_name,
        evidence_dir=evidence_dir,
        now=now,
        note=note,
    )[0]


def submit_several(
    session: Session,
    *,
    uscc: str,
    values: list[tuple[Missing, str, str]],
    evidence: bytes,
    evidence_name: str,
    evidence_dir: Path,
    now: dt.datetime,
    note: str | None = None,
    actor: str | None = None,
) -> list[SuppliedValue]:
    """Record several values (missing line, field to supply, typed value) backed by one evidence file:
    one submission per field, all citing the same stored file. Every value is checked before anything is
    written; PayoutError lists every problem at once. `actor`: who submits, when not the enterprise
    itself (a 帮办代办 agent, `portal.agency.actor`).

    The caller has checked that each missing line is a line of this enterprise in the latest run.
    """
    if not values:
        raise PayoutError("请至少填写一项数据")
    checked, problems = [], []
    for missing, field_name, value in values:
        allowed = {f.name: f for f in inputs_for(missing.field)}
        f = allowed.get(field_name)
        if f is None:
            names = "、".join(x.label for x in allowed.values())
            problems.append(f"缺少“{CATALOG[missing.field].label}”时应补充：{names}")
            continue
        table, column = _source(f)
        yearly = "year" in SPECS[table].key
        if yearly and missing.year is None:
            problems.append(f"“{f.label}”按年度登记，须知道政策的评估年度")
            continue
        year = supply_year(missing, f)
        try:
            canonical = parse_value(f, value)
        except PayoutError as e:
            problems.append(str(e))
            continue
        waiting = session.scalar(
            select(SuppliedValue.public_id).where(
                SuppliedValue.uscc == uscc,
                SuppliedValue.field == f.name,
                SuppliedValue.year == year if yearly else SuppliedValue.year.is_(None),
                SuppliedValue.state == SuppliedState.SUBMITTED.value,
            )
        )
        if waiting is not None:
            raise StateError(f"“{f.label}”已提交，正等待{f.department}核实，请勿重复提交")
        checked.append((missing, f, table, column, year, canonical))
    if problems:
        raise PayoutError("；".join(problems))
    mime = sniff(evidence)
    evidence_dir.mkdir(parents=True, exist_ok=True)
    stored = secrets.token_hex(16)
    (evidence_dir / stored).write_bytes(evidence)
    digest = hashlib.sha256(evidence).hexdigest()
    return [
        _record(
            session,
            uscc,
            missing,
            f,
            table,
            column,
            year,
            canonical,
            mime,
            stored,
            digest,
            evidence,
            evidence_name,
            note,
            now,
            actor or enterprise_actor(uscc),
        )
        for missing, f, table, column, year, canonical in checked
    ]


def _record(
    session: Session,
    uscc: str,
    missing: Missing,
    f: Field,
    table: str,
    column: str,
    year: int | None,
    canonical: str,
    mime: str,
    stored: str,
    digest: str,
    evidence: bytes,
    evidence_name: str,
    note: str | None,
    now: dt.datetime,
    actor: str,
) -> SuppliedValue:
    row = SuppliedValue(
        public_id=tokens.public_id(),
        uscc=uscc,
        run_id=missing.run_id,
        policy_id=missing.policy_id,
        item_id=missing.item_id,
        field=f.name,
        missing_field=missing.field,
        snapshot_table=table,
        snapshot_column=column,
        year=year,
        value=canonical,
        department=f.department,
        note=(note or "").strip()[:500] or None,
        evidence_name=Path(evidence_name or "证明材料").name[:200],
        evidence_path=stored,
        evidence_type=mime,
        evidence_size=len(evidence),
        evidence_sha256=digest,
        state=SuppliedState.SUBMITTED.value,
        submitted_by=actor,
        submitted_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        now,
        row.submitted_by,
        "supply",
        "supplied",
        row.public_id,
        None,
        row.state,
        None,
        uscc=uscc,
        policy=missing.policy_id,
        item=missing.item_id,
        field=f.name,
        table=table,
        column=column,
        year=row.year,
        value=canonical,
        evidence=row.evidence_sha256,
    )
    return row


def get(session: Session, public_id: str, *, lock: bool = False) -> SuppliedValue:
    query = select(SuppliedValue).where(SuppliedValue.public_id == public_id)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise NotFoundError(f"没有补充材料 {public_id}")
    return row


def of_enterprise(session: Session, uscc: str) -> list[SuppliedValue]:
    """What one enterprise supplied, newest first."""
    query = select(SuppliedValue).where(SuppliedValue.uscc == uscc).order_by(SuppliedValue.id.desc())
    return list(session.scalars(query).all())


def for_staff(session: Session, user: StaffUser, state: str | None = None) -> list[SuppliedValue]:
    """The submissions of the fields the user's department holds (waiting ones first, then newest)."""
    query = select(SuppliedValue).order_by(SuppliedValue.id.desc())
    if state is not None:
        query = query.where(SuppliedValue.state == state)
    rows = [r for r in session.scalars(query).all() if owns(user.department, r.department)]
    return sorted(rows, key=lambda r: r.state != SuppliedState.SUBMITTED.value)


def decided_by(session: Session, row: SuppliedValue) -> str | None:
    """The username of the staff member who verified or rejected the submission."""
    if row.decided_by is None:
        return None
    return session.scalar(select(StaffUser.username).where(StaffUser.id == row.decided_by))


def for_department(session: Session, username: str, public_id: str) -> tuple[StaffUser, SuppliedValue]:
    """The staff user and the submission, if their department holds its field; NotFoundError otherwise
    (a submission outside the department does not exist for them)."""
    user = require(session, username, "data_verify")
    row = get(session, public_id)
    if not owns(user.department, row.department):
        raise NotFoundError(f"没有补充材料 {public_id}")
    return user, row


def verify(session: Session, public_id: str, by: str, now: dt.datetime) -> DataOverride:
    """The owning department accepts the value: it becomes the active override of its snapshot cell."""
    user, _ = for_department(session, by, public_id)
    row = get(session, public_id, lock=True)
    if row.state != SuppliedState.SUBMITTED.value:
        raise StateError(f"补充材料 {public_id} 已处理（{STATE_LABELS[row.state]}），不能再核实")
    row.state, row.decided_by, row.decided_at = SuppliedState.VERIFIED.value, user.id, now
    events = [audit.Event(by, "verify", "supplied", public_id, "submitted", row.state, None, {})]
    older = session.scalars(
        select(DataOverride)
        .where(
            DataOverride.uscc == row.uscc,
            DataOverride.snapshot_table == row.snapshot_table,
            DataOverride.snapshot_column == row.snapshot_column,
            DataOverride.year == row.year if row.year is not None else DataOverride.year.is_(None),
            DataOverride.active,
        )
        .with_for_update()
    ).all()
    override = DataOverride(
        public_id=tokens.public_id(),
        supplied_id=row.id,
        uscc=row.uscc,
        snapshot_table=row.snapshot_table,
        snapshot_column=row.snapshot_column,
        year=row.year,
        value=row.value,
        verified_by=user.id,
        verified_at=now,
    )
    session.add(override)
    session.flush()
    for old in older:
        old.active, old.retired_at = False, now
        events.append(
            audit.Event(
                by, "retire", "override", old.public_id, "active", "retired", None, {"by": override.public_id}
            )
        )
    events.append(
        audit.Event(
            by,
            "create",
            "override",
            override.public_id,
            None,
            "active",
            None,
            {
                "supplied": public_id,
                "uscc": row.uscc,
                "table": row.snapshot_table,
                "column": row.snapshot_column,
                "year": row.year,
                "value": row.value,
                "evidence": row.evidence_sha256,
            },
        )
    )
    audit.append(session, events, now)
    return override


def reject(session: Session, public_id: str, by: str, reason: str, now: dt.datetime) -> SuppliedValue:
    """The owning department refuses the value, saying why (the enterprise sees the reason)."""
    user, _ = for_department(session, by, public_id)
    if not reason.strip():
        raise StateError("退回补充材料必须写明原因")
    row = get(session, public_id, lock=True)
    if row.state != SuppliedState.SUBMITTED.value:
        raise StateError(f"补充材料 {public_id} 已处理（{STATE_LABELS[row.state]}），不能再退回")
    row.state, row.decided_by, row.decided_at, row.reason = (
        SuppliedState.REJECTED.value,
        user.id,
        now,
        reason.strip(),
    )
    audit.record(session, now, by, "reject", "supplied", public_id, "submitted", row.state, row.reason)
    return row


@dataclass(frozen=True)
class Evidence:
    """An evidence file to hand to staff: where it is, its sniffed type and a safe download name."""

    path: Path
    media_type: str
    filename: str


def evidence(session: Session, public_id: str, by: str, evidence_dir: Path, now: dt.datetime) -> Evidence:
    """The evidence of a submission, for staff of the owning department only; the access is audited."""
    _, row = for_department(session, by, public_id)
    path = evidence_dir / row.evidence_path
    if not re.fullmatch(r"[0-9a-f]{32}", row.evidence_path) or not path.is_file():
        raise NotFoundError(f"补充材料 {public_id} 的证明文件不存在")
    audit.record(session, now, by, "view_evidence", "supplied", public_id, None, None, None)
    extension = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
    return Evidence(path, row.evidence_type, f"{row.uscc}-{row.field}.{extension[row.evidence_type]}")


def override_records(session: Session) -> list[dict[str, Any]]:
    """The active overrides as plain records for `matcher.run.run_match(overrides=...)`, oldest first."""
    rows = session.scalars(select(DataOverride).where(DataOverride.active).order_by(DataOverride.id)).all()
    return [
        {
            "id": o.public_id,
            "uscc": o.uscc,
            "table": o.snapshot_table,
            "column": o.snapshot_column,
            "year": o.year,
            "value": o.value,
        }
        for o in rows
    ]


def item_titles(session: Session, rows: list[SuppliedValue]) -> dict[tuple[str, str], str]:
    """(policy, item) → the title the enterprise reads (政策·事项), for the submissions' items."""
    wanted = {(r.policy_id, r.item_id) for r in rows}
    out: dict[tuple[str, str], str] = {}
    if not wanted:
        return out
    versions = session.scalars(
        select(PolicyVersion)
        .where(PolicyVersion.policy_id.in_({p for p, _ in wanted}))
        .order_by(PolicyVersion.version)
    ).all()
    for p in versions:  # the latest version's titles win
        for item in json.loads(p.items):
            if (p.policy_id, item["id"]) in wanted:
                title = item["title"]
                out[(p.policy_id, item["id"])] = p.title if title in p.title else f"{p.title}·{title}"
    return out


def label(row: SuppliedValue) -> str:
    """The field's Chinese name and unit, for pages."""
    f = CATALOG[row.field]
    return f"{f.label}（{f.unit}）" if f.unit else f.label
