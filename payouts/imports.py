"""Importing a match run folder (Contract 4) as offers, in bulk.

A run folder holds `manifest.json`, `candidates.parquet` and `payees.parquet` (single files or
folders of part files, as Spark writes them). Importing checks the whole folder first and refuses
it with every problem listed; then it writes the run, its policy versions, one payee record per
enterprise and one offer per candidate, with their audit events, in the caller's transaction.

Importing the same run twice is refused (the run id is unique). A candidate whose (enterprise,
policy, item, period) already has a live offer from an earlier run is skipped and counted, so an
enterprise is offered, and paid, at most once per item and period.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from sqlalchemy import and_, or_, select
from sqlmodel import Session

from matcher import runfolder
from matcher.runfolder import Manifest, ManifestError, read_manifest
from payouts import audit, bankfiles, offers, tokens
from payouts.audit import Event
from payouts.bulkload import among, insert_columns
from payouts.errors import RunImportError
from payouts.models import CLOSED_STATES, MatchRun, Offer, OfferState, Payee, PolicyVersion
from payouts.offers import NO_ACCOUNT, UNSAFE_NAME
from payouts.users import require
from rules.catalog import SIZE_CLASSES

CANDIDATE_COLUMNS = ("policy_id", "policy_version", "item_id", "uscc", "amount", "amount_before_allocation")
PAYEE_COLUMNS = ("uscc", "name", "contact_phone", "bank_name", "account_no", "account_name")
# In run folders written since the payees carry them; older folders' offers get NULL (region_code: the
# enterprise's GB/T 2260 division from the profile, what region-scoped staff see, payouts/scope.py).
PROFILE_KEYS = ("industry_section", "size_class", "region_code")
MONEY = pa.decimal128(18, 2)


@dataclass
class ImportResult:
    """What an import did, per policy and in total, and how long it took."""

    run_id: str
    offers: int = 0
    held: int = 0
    skipped: int = 0  # already offered (live) in an earlier run
    zero: int = 0  # 0.00 (cut to nothing by the budget, or an item that pays nothing): nothing to offer
    amount: Decimal = Decimal("0.00")
    by_policy: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunFolder:
    """A match run folder read into memory and checked."""

    path: Path
    manifest: Manifest
    candidates: pa.Table
    payees: pa.Table


def _read(
    path: Path, columns: tuple[str, ...], problems: list[str], optional: tuple[str, ...] = ()
) -> pa.Table | None:
    if not path.exists():
        problems.append(f"缺少 {path.name}")
        return None
    try:
        dataset = ds.dataset(path, format="parquet")
    except (pa.ArrowInvalid, OSError) as e:
        problems.append(f"{path.name} 无法读取：{e}")
        return None
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        problems.append(f"{path.name} 缺少列：{', '.join(missing)}")
        return None
    present = [c for c in optional if c in dataset.schema.names]
    table = dataset.to_table(columns=[*columns, *present])
    for c in optional:
        if c not in present:
            table = table.append_column(c, pa.nulls(table.num_rows, pa.string()))
    return table


def _money(table: pa.Table, column: str, problems: list[str]) -> pa.Table:
    kind = table.schema.field(column).type
    if not (pa.types.is_decimal(kind) and kind.scale <= 2):
        problems.append(f"candidates 的 {column} 应为 DECIMAL(18,2)，实为 {kind}")
        return table
    return table.set_column(table.schema.get_field_index(column), column, pc.cast(table[column], MONEY))


def read_run(path: Path) -> RunFolder:
    """Read and check a run folder; raises RunImportError listing every problem found."""
    problems: list[str] = []
    manifest: Manifest | None = None
    try:
        manifest = read_manifest(path)
    except ManifestError as e:
        if not e.problems:  # no manifest, not JSON, or a format this code cannot read
            raise RunImportError(str(e)) from e
        problems += e.problems  # missing keys: listed with the folder's other problems
    if manifest is not None and manifest.over_budget:
        problems.append(f"超出预算的政策不能发放：{', '.join(manifest.over_budget)}")
    candidates = _read(path / runfolder.CANDIDATES, CANDIDATE_COLUMNS, problems)
    payees = _read(path / runfolder.PAYEES, PAYEE_COLUMNS, problems, PROFILE_KEYS)
    if candidates is not None:
        candidates = _money(_money(candidates, "amount", problems), "amount_before_allocation", problems)
    if problems or manifest is None or candidates is None or payees is None:
        raise RunImportError(f"{path} 不能导入：\n" + "\n".join(f"- {p}" for p in problems))
    run = RunFolder(path, manifest, candidates, payees)
    _check(run)
    return run


def _check(run: RunFolder) -> None:
    """Consistency of candidates with the manifest and the payees; every problem at once."""
    problems: list[str] = []
    c = run.candidates
    known = {p.key: {i.id for i in p.items} for p in run.manifest.policies}
    pairs = c.group_by(["policy_id", "policy_version", "item_id"]).aggregate([]).to_pylist()
    for row in pairs:
        key = (row["policy_id"], row["policy_version"])
        if key not in known:
            problems.append(f"候选名单中的政策 {key[0]} 第 {key[1]} 版不在 manifest.json 中")
        elif row["item_id"] not in known[key]:
            problems.append(f"候选名单中的事项 {key[0]}/{row['item_id']} 不在 manifest.json 中")
    for column in CANDIDATE_COLUMNS:
        if c[column].null_count:
            problems.append(f"candidates 的 {column} 有 {c[column].null_count} 个空值")
    if not problems:
        if pc.any(pc.less(c["amount"], pa.scalar(Decimal(0), MONEY))).as_py():
            problems.append("candidates 中有负金额")
        if pc.any(pc.greater(c["amount"], c["amount_before_allocation"])).as_py():
            problems.append("candidates 中有分配后金额大于分配前金额的记录")
        keys = c.group_by(["policy_id", "item_id", "uscc"]).aggregate([([], "count_all")])
        if dup := pc.sum(pc.greater(keys["count_all"], 1)).as_py():
            problems.append(f"candidates 中有 {dup} 组重复的（政策、事项、企业）")
    payee_uscc = run.payees["uscc"]
    for column in ("uscc", "name"):
        if run.payees[column].null_count:
            problems.append(f"payees 的 {column} 有 {run.payees[column].null_count} 个空值")
    if len(payee_uscc) != len(pc.unique(payee_uscc)):
        problems.append("payees 中有重复的统一社会信用代码")
    missing = pc.sum(pc.invert(pc.is_in(pc.unique(c["uscc"]), payee_uscc))).as_py()
    if missing:
        problems.append(f"{missing} 家候选企业不在 payees 中")
    for column, allowed, what in (
        (
            "industry_section",
            [chr(n) for n in range(ord("A"), ord("Z") + 1)],
            "一个大写字母（GB/T 4754 门类）",
        ),
        ("size_class", list(SIZE_CLASSES), "、".join(SIZE_CLASSES)),
    ):
        values = pc.cast(run.payees[column], pa.string())
        bad = pc.unique(values.filter(pc.invert(pc.is_in(values, pa.array(allowed)))).drop_null())
        if len(bad):
            shown = "、".join(repr(v) for v in bad.to_pylist()[:5])
            problems.append(f"payees 的 {column} 应为 {what} 或空值，却有 {shown}")
    regions = pc.cast(run.payees["region_code"], pa.string())
    bad = pc.unique(regions.filter(pc.invert(pc.match_substring_regex(regions, r"^[0-9]{6}$"))).drop_null())
    if len(bad):
        shown = "、".join(repr(v) for v in bad.to_pylist()[:5])
        problems.append(f"payees 的 region_code 应为六位行政区划代码（GB/T 2260）或空值，却有 {shown}")
    if problems:
        raise RunImportError(f"{run.path} 不能导入：\n" + "\n".join(f"- {p}" for p in problems))


def _policy_versions(session: Session, run: RunFolder, run_row: MatchRun) -> dict[tuple[str, int], str]:
    """Record the run's policy versions (immutable once seen); returns (id, version) → period."""
    periods: dict[tuple[str, int], str] = {}
    problems = []
    for p in run.manifest.policies:
        budget = None if p.budget is None else Decimal(p.budget).quantize(Decimal("0.01"))
        fields = {
            "title": p.title,
            "department": p.department,
            "period": p.period,
            "budget": budget,
            "allocation": p.allocation,
            "confirmation": p.confirmation,
            "notice_days": p.notice_working_days or p.notice_days,  # absent in runs before public notices
            "notice_working": p.notice_working_days is not None,
            "service_phone": p.service_phone,  # absent in runs made before policies named one
            "review_days": p.review_days,
            "payment_days": p.payment_days,
            "outreach": p.outreach,
            # Joint review (会签): absent in runs before policies named reviewers, and for a department alone.
            "reviewers": audit.canonical(list(p.reviewers)) if p.reviewers else None,
        }
        if fields["confirmation"] not in ("required", "none"):
            problems.append(f"政策 {p.id} 的 confirmation 应为 required 或 none")
        existing = session.scalar(
            select(PolicyVersion).where(PolicyVersion.policy_id == p.id, PolicyVersion.version == p.version)
        )
        if existing is None:
            session.add(
                PolicyVersion(
                    policy_id=p.id,
                    version=p.version,
                    items=audit.canonical(p.raw["items"]),
                    conditions=audit.canonical(p.raw.get("conditions", [])),
                    **fields,
                )
            )
        else:
            changed = [k for k, v in fields.items() if getattr(existing, k) != v]
            if changed:
                problems.append(
                    f"政策 {p.id} 第 {p.version} 版已发布，不能改动：{', '.join(changed)} 与已导入的不同"
                )
        periods[p.key] = p.period
    if problems:
        raise RunImportError("\n".join(problems))
    return periods


def _live_keys(session: Session, policy_ids: list[str]) -> list[str]:
    """The keys (see `_key`) of every live offer of these policies."""
    rows = session.execute(
        select(Offer.uscc, Offer.policy_id, Offer.item_id, Offer.period).where(
            Offer.policy_id.in_(policy_ids), Offer.state.not_in([s.value for s in CLOSED_STATES])
        )
    )
    return [SEP.join(r) for r in rows]


SEP = "\x1f"


def _key(*columns: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """(uscc, policy, item, period) as one text per row, for set membership in Arrow."""
    return pc.binary_join_element_wise(*columns, SEP)


def _payees(session: Session, run: RunFolder, run_row: MatchRun, now: dt.datetime) -> pa.Table:
    """Write one payee record per candidate enterprise; returns (uscc, payee_id, has_account)."""
    table = run.payees.filter(pc.is_in(run.payees["uscc"], pc.unique(run.candidates["uscc"])))
    account = pc.utf8_trim_whitespace(table["account_no"])
    account = pc.if_else(pc.equal(account, ""), pa.scalar(None, pa.string()), account)
    n = table.num_rows
    insert_columns(
        session,
        Payee.__table__,
        {
            **{c: table[c] for c in PAYEE_COLUMNS if c != "account_no"},
            "account_no": account,
            "source": pa.array(["snapshot"] * n, pa.string()),
            "match_run_id": pa.array([run_row.id] * n, pa.int64()),
            "created_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
        },
    )
    unsafe = _unsafe_names(table.filter(pc.is_valid(account)))
    rows = session.execute(
        select(Payee.uscc, Payee.id, Payee.account_no).where(Payee.match_run_id == run_row.id)
    ).all()
    return pa.table(
        {
            "uscc": pa.array([r[0] for r in rows], pa.string()),
            "payee_id": pa.array([r[1] for r in rows], pa.int64()),
            "has_account": pa.array([r[2] is not None for r in rows], pa.bool_()),
            "unsafe_name": pa.array([unsafe.get(r[0]) for r in rows], pa.string()),
        }
    )


def _unsafe_names(table: pa.Table) -> dict[str, str]:
    """The hold reason of each enterprise whose account name or bank name cannot go into a bank file
    exactly (`payouts.bankfiles.name_problem`); the names are tested in Arrow, the few found in Python."""
    hits = []
    for column in ("account_name", "bank_name"):
        text = pc.fill_null(table[column], "")
        hits.append(pc.match_substring_regex(text, bankfiles.UNSAFE_NAME_RE2))
        hits.append(pc.greater(pc.utf8_length(text), bankfiles.NAME_MAX))
        if column == "account_name":
            hits.append(pc.equal(pc.utf8_trim_whitespace(text), ""))
    suspect = hits[0]
    for hit in hits[1:]:
        suspect = pc.or_(suspect, hit)
    reasons: dict[str, str] = {}
    for row in table.filter(suspect).select(["uscc", "account_name", "bank_name"]).to_pylist():
        for what, text, required in (
            ("收款户名", row["account_name"], True),
            ("开户行名称", row["bank_name"], False),
        ):
            if problem := bankfiles.name_problem(text, required=required):
                reasons[row["uscc"]] = (
                    f"{UNSAFE_NAME}：{what}{problem}；请核实后在数据源更正并重新匹配，或作废该要约"
                )
                break
    return reasons


def import_run(session: Session, path: Path, by: str, now: dt.datetime | None = None) -> ImportResult:
    """Import a match run folder as offers: drafted, then held at once where there is no account or the
    account's names cannot go into a bank file exactly (never changed to fit)."""
    now = now or dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    user = require(session, by, "import")
    run = read_run(path)
    m = run.manifest
    if session.scalar(select(MatchRun.id).where(MatchRun.run_id == m.run_id)) is not None:
        raise RunImportError(f"匹配批次 {m.run_id} 已经导入过，不能重复导入")
    result = ImportResult(run_id=m.run_id)
    t1 = time.perf_counter()
    result.seconds["read"] = t1 - t0
    run_row = MatchRun(
        run_id=m.run_id,
        as_of=m.as_of,
        snapshot_fingerprint=m.snapshot.fingerprint,
        rules_fingerprint=m.rules.fingerprint,
        path=str(path.resolve()),
        manifest=audit.canonical(m.to_dict()),
        imported_at=now,
        imported_by=user.id,
    )
    session.add(run_row)
    periods = _policy_versions(session, run, run_row)
    session.flush()
    payees = _payees(session, run, run_row, now)
    t2 = time.perf_counter()
    result.seconds["payees"] = t2 - t1

    c = run.candidates
    version_keys = list(periods)
    policy_key = pc.binary_join_element_wise(c["policy_id"], pc.cast(c["policy_version"], pa.string()), SEP)
    which = pc.index_in(policy_key, value_set=pa.array([f"{p}{SEP}{v}" for p, v in version_keys]))
    c = c.append_column("period", pa.array([periods[k] for k in version_keys], pa.string()).take(which))
    nonzero = pc.not_equal(c["amount"], pa.scalar(Decimal(0), MONEY))
    result.zero = len(c) - pc.sum(nonzero).as_py() if len(c) else 0
    c = c.filter(nonzero)
    live = _live_keys(session, sorted({p for p, _ in periods}))
    if live:
        dup = pc.is_in(_key(c["uscc"], c["policy_id"], c["item_id"], c["period"]), value_set=pa.array(live))
        result.skipped = pc.sum(dup).as_py() or 0
        c = c.filter(pc.invert(dup))
    at = pc.index_in(c["uscc"], value_set=payees["uscc"])
    payee_id, has_account = payees["payee_id"].take(at), payees["has_account"].take(at)
    keys = pc.index_in(c["uscc"], value_set=run.payees["uscc"])
    n = len(c)
    ids = pa.array(tokens.public_ids(n), pa.string())
    stamp = pa.array([now] * n, pa.timestamp("us", tz="UTC"))
    insert_columns(
        session,
        Offer.__table__,
        {
            "public_id": ids,
            "match_run_id": pa.array([run_row.id] * n, pa.int64()),
            "policy_id": c["policy_id"],
            "policy_version": c["policy_version"],
            "item_id": c["item_id"],
            "period": c["period"],
            "uscc": c["uscc"],
            **{k: pc.cast(run.payees[k], pa.string()).take(keys) for k in PROFILE_KEYS},
            "amount": c["amount"],
            "amount_before_allocation": c["amount_before_allocation"],
            "payee_id": payee_id,
            "state": pa.array([OfferState.DRAFTED.value] * n, pa.string()),
            "round": pa.array([0] * n, pa.int32()),
            "created_at": stamp,
            "updated_at": stamp,
        },
    )
    t3 = time.perf_counter()
    result.seconds["offers"] = t3 - t2
    zero = Decimal("0.00")
    by_policy = c.group_by("policy_id").aggregate([("amount", "sum"), ("amount", "count")])
    unsafe_name = payees["unsafe_name"].take(at)
    held_mask = pc.or_(pc.invert(has_account), pc.is_valid(unsafe_name))
    held = c.filter(held_mask).group_by("policy_id").aggregate([("amount", "count")])
    held_by = dict(zip(held["policy_id"].to_pylist(), held["amount_count"].to_pylist(), strict=True))
    for pid, amount, count in zip(
        *(by_policy[k].to_pylist() for k in ("policy_id", "amount_sum", "amount_count")), strict=True
    ):
        result.by_policy[pid] = {
            "offers": count,
            "held": held_by.get(pid, 0),
            "amount": Decimal(amount).quantize(zero),
        }
    result.offers = n
    result.held = sum(s["held"] for s in result.by_policy.values())
    result.amount = sum((s["amount"] for s in result.by_policy.values()), zero)
    run_row.offers, run_row.held, run_row.skipped, run_row.amount = (
        result.offers,
        result.held,
        result.skipped,
        result.amount,
    )
    # One event for every offer created: its members are the offers of this run (their public ids and
    # run never change), so no member rows are needed; then the offers without an account, or whose
    # names cannot go into a bank file exactly, are held with the reason.
    event = Event(by, "import", "offers", m.run_id, None, OfferState.DRAFTED.value, None, {"run": m.run_id})
    audit.append_bulk(session, event, ids.to_pylist(), now, listed=False)
    by_reason: dict[str, list[int]] = {}
    for payee_id_, reason in zip(
        payees["payee_id"].to_pylist(), payees["unsafe_name"].to_pylist(), strict=True
    ):
        if reason is not None:
            by_reason.setdefault(reason, []).append(payee_id_)
    o = Offer.__table__
    no_account = select(Payee.id).where(Payee.match_run_id == run_row.id, Payee.account_no.is_(None))
    holds = [(among(session, o.c.payee_id, ids_), reason) for reason, ids_ in sorted(by_reason.items())]
    for payees_held, reason in [*holds, (o.c.payee_id.in_(no_account), NO_ACCOUNT)]:
        offers.move_where(
            session,
            (o.c.match_run_id == run_row.id) & payees_held,
            OfferState.DRAFTED,
            OfferState.HELD,
            actor=by,
            action="import",
            now=now,
            reason=reason,
            subject=m.run_id,
        )
    audit.record(
        session,
        now,
        by,
        "import",
        "run",
        m.run_id,
        None,
        "imported",
        offers=result.offers,
        held=result.held,
        skipped=result.skipped,
        zero=result.zero,
        amount=str(result.amount),
        snapshot=m.snapshot.fingerprint,
        rules=m.rules.fingerprint,
        candidates=_digest(path / "candidates.parquet"),
    )
    result.seconds["audit"] = time.perf_counter() - t3
    result.seconds["total"] = time.perf_counter() - t0
    return result


def _digest(path: Path) -> str:
    """SHA-256 over the candidate file(s) as imported (names and bytes), kept in the run's audit event."""
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(path.parent).as_posix().encode() + b"\0")
        with f.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def backfill_profile_keys(session: Session, run_row: MatchRun, *, chunk: int = 5_000) -> int:
    """Fill the industry section, size class and region code of a run's offers imported without them
    (before migrations 0012 and 0018), from the profile of the run's latest assessment year, rebuilt from
    the snapshot and policies the run's manifest names; returns how many offers were filled. MatchError
    when the snapshot or policies are gone or no longer the ones the run used (their fingerprints are
    checked). A value an offer already has is kept."""
    from sqlalchemy import func as sql

    from matcher.analysis import open_run  # loads DuckDB and the snapshot: only for this repair

    data = open_run(Path(run_row.path))
    try:
        year = max(p.assessment_year for p in data.policies.values())
        profile = data.profile(year)
        rows = data.con.execute(
            f"SELECT uscc, industry_section, size_class, region_code FROM {profile} "
            "WHERE uscc IN (SELECT DISTINCT uscc FROM run_candidates)"
        ).fetchall()
    finally:
        data.con.close()
    groups: dict[tuple[str | None, str | None, str | None], list[str]] = {}
    for uscc, section, size, region in rows:
        section = section if section and len(section) == 1 and section.isupper() else None
        size = size if size in SIZE_CLASSES else None
        region = region if region and len(region) == 6 and region.isdigit() else None
        if section or size or region:
            groups.setdefault((section, size, region), []).append(uscc)
    o = Offer.__table__
    filled = 0
    for (section, size, region), usccs in sorted(
        groups.items(), key=lambda kv: tuple(v or "" for v in kv[0])
    ):
        for n in range(0, len(usccs), chunk):
            filled += session.execute(
                o.update()
                .where(
                    o.c.match_run_id == run_row.id,
                    or_(
                        and_(o.c.industry_section.is_(None), o.c.size_class.is_(None)),
                        o.c.region_code.is_(None),
                    ),
                    o.c.uscc.in_(usccs[n : n + chunk]),
                )
                .values(
                    industry_section=sql.coalesce(o.c.industry_section, section),
                    size_class=sql.coalesce(o.c.size_class, size),
                    region_code=sql.coalesce(o.c.region_code, region),
                )
            ).rowcount
    return filled
