"""Importing a match run folder (Contract 4) as offers, in bulk and in bounded memory.

A run folder holds `manifest.json`, `candidates.parquet` and `payees.parquet` (single files or
folders of part files, as Spark writes them). Importing checks the whole folder first and refuses
it with every problem listed; then it writes the run, its policy versions, one payee record per
enterprise and one offer per candidate, with their audit events, in the caller's transaction: an
import is all or nothing.

The files are read `chunk` rows at a time: each chunk is checked and copied into two scratch tables
of the transaction (`import_candidate`, `import_payee`); what needs the whole run (duplicates,
candidates without a payee, offers already live from an earlier run) is then asked of the database,
and the payees and offers are written from the scratch tables by INSERT ... SELECT. The import
event's member digest is computed while streaming the new offers' ids back in order. Nothing held
in Python grows with the run.

Importing the same run twice is refused (the run id is unique). A candidate whose (enterprise,
policy, item, period) already has a live offer from an earlier run is skipped and counted, so an
enterprise is offered, and paid, at most once per item and period.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    Table,
    Text,
    and_,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
)
from sqlmodel import Session

from matcher import runfolder
from matcher.runfolder import Manifest, ManifestError, read_manifest
from payouts import audit, bankfiles, bulkload, offers, tokens
from payouts.audit import Event
from payouts.bulkload import insert_columns
from payouts.errors import RunImportError
from payouts.models import CLOSED_STATES, MatchRun, Offer, OfferState, Payee, PolicyVersion
from payouts.offers import NO_ACCOUNT, UNSAFE_NAME
from payouts.sqltypes import Money, UtcDateTime
from payouts.users import require
from rules.catalog import SIZE_CLASSES

CANDIDATE_COLUMNS = ("policy_id", "policy_version", "item_id", "uscc", "amount", "amount_before_allocation")
PAYEE_COLUMNS = ("uscc", "name", "contact_phone", "bank_name", "account_no", "account_name")
# In run folders written since the payees carry them; older folders' offers get NULL (region_code: the
# enterprise's GB/T 2260 division from the profile, what region-scoped staff see, payouts/scope.py).
PROFILE_KEYS = ("industry_section", "size_class", "region_code")
MONEY = pa.decimal128(18, 2)
CHUNK = 100_000  # rows of a run folder's file read, checked and copied at a time
# The values a payee's profile keys may take (or NULL), and how the refusal names them.
PROFILE_VALUES = {
    "industry_section": ([chr(n) for n in range(ord("A"), ord("Z") + 1)], "一个大写字母（GB/T 4754 门类）"),
    "size_class": (list(SIZE_CLASSES), "、".join(SIZE_CLASSES)),
}
REGION_RE, REGION_WHAT = r"^[0-9]{6}$", "六位行政区划代码（GB/T 2260）"


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
    """A match run folder: its manifest, and its candidates and payees as datasets (read in chunks)."""

    path: Path
    manifest: Manifest
    candidates: ds.Dataset
    payees: ds.Dataset

    def candidate_chunks(self, chunk: int) -> Iterator[pa.RecordBatch]:
        """The candidates `chunk` rows at a time, money as DECIMAL(18,2)."""
        for batch in _batches(self.candidates, CANDIDATE_COLUMNS, chunk):
            yield _with_money(batch, ("amount", "amount_before_allocation"))

    def payee_chunks(self, chunk: int) -> Iterator[pa.RecordBatch]:
        """The payees `chunk` rows at a time, with the profile keys (NULL where the folder lacks them)."""
        present = [c for c in PROFILE_KEYS if c in self.payees.schema.names]
        for batch in _batches(self.payees, (*PAYEE_COLUMNS, *present), chunk):
            columns = {c: batch.column(c) for c in PAYEE_COLUMNS}
            for c in PROFILE_KEYS:
                columns[c] = (
                    pc.cast(batch.column(c), pa.string())
                    if c in present
                    else pa.nulls(len(batch), pa.string())
                )
            yield pa.RecordBatch.from_pydict(columns)


def _batches(dataset: ds.Dataset, columns: tuple[str, ...], chunk: int) -> Iterator[pa.RecordBatch]:
    # Little read-ahead: memory stays a few chunks whatever the size of the files.
    scanner = dataset.scanner(
        columns=list(columns), batch_size=chunk, batch_readahead=1, fragment_readahead=1
    )
    for batch in scanner.to_batches():
        if len(batch):
            yield batch


def _with_money(batch: pa.RecordBatch, columns: tuple[str, ...]) -> pa.RecordBatch:
    arrays = [
        pc.cast(batch.column(name), MONEY) if name in columns else batch.column(name)
        for name in batch.schema.names
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def _open(path: Path, columns: tuple[str, ...], problems: list[str]) -> ds.Dataset | None:
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
    return dataset


def _money_problems(dataset: ds.Dataset) -> list[str]:
    problems = []
    for column in ("amount", "amount_before_allocation"):
        kind = dataset.schema.field(column).type
        if not (pa.types.is_decimal(kind) and kind.scale <= 2):
            problems.append(f"candidates 的 {column} 应为 DECIMAL(18,2)，实为 {kind}")
    return problems


def read_run(path: Path) -> RunFolder:
    """Open a run folder and check its manifest and the files' columns (the rows are checked as they are
    imported); raises RunImportError listing every problem found."""
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
    candidates = _open(path / runfolder.CANDIDATES, CANDIDATE_COLUMNS, problems)
    payees = _open(path / runfolder.PAYEES, PAYEE_COLUMNS, problems)
    if candidates is not None:
        problems += _money_problems(candidates)
    if problems or manifest is None or candidates is None or payees is None:
        raise RunImportError(f"{path} 不能导入：\n" + "\n".join(f"- {p}" for p in problems))
    return RunFolder(path, manifest, candidates, payees)


def _scratch_candidates(session: Session) -> Table:
    return bulkload.scratch_table(
        session,
        "import_candidate",
        Column("ord", BigInteger),
        Column("public_id", Text),
        Column("policy_id", Text),
        Column("policy_version", Integer),
        Column("item_id", Text),
        Column("uscc", Text),
        Column("period", Text),
        Column("amount", Money),
        Column("amount_before_allocation", Money),
        Index("import_candidate_key", "uscc", "policy_id", "item_id"),
    )


def _scratch_payees(session: Session) -> Table:
    return bulkload.scratch_table(
        session,
        "import_payee",
        Column("ord", BigInteger),
        *(Column(c, Text) for c in (*PAYEE_COLUMNS, *PROFILE_KEYS)),
        Column("unsafe_name", Text),  # why the names cannot go into a bank file (a hold reason), or NULL
        Index("import_payee_uscc", "uscc"),
    )


@dataclass
class _CandidateCheck:
    """What the candidates' chunks showed, added up chunk by chunk."""

    pairs: dict[tuple[str, int, str], None] = field(default_factory=dict)  # (policy, version, item), in order
    nulls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CANDIDATE_COLUMNS, 0))
    negative: bool = False
    above: bool = False  # an amount above its amount before allocation

    def add(self, batch: pa.RecordBatch) -> None:
        keys = pa.Table.from_batches([batch]).group_by(
            ["policy_id", "policy_version", "item_id"], use_threads=False
        )
        for row in keys.aggregate([]).to_pylist():
            self.pairs.setdefault((row["policy_id"], row["policy_version"], row["item_id"]), None)
        for column in CANDIDATE_COLUMNS:
            self.nulls[column] += batch.column(column).null_count
        amount = batch.column("amount")
        self.negative = self.negative or bool(pc.any(pc.less(amount, pa.scalar(Decimal(0), MONEY))).as_py())
        above = pc.any(pc.greater(amount, batch.column("amount_before_allocation"))).as_py()
        self.above = self.above or bool(above)

    def problems(self, manifest: Manifest) -> list[str]:
        problems = []
        known = {p.key: {i.id for i in p.items} for p in manifest.policies}
        for policy_id, version, item_id in self.pairs:
            if policy_id is None or version is None or item_id is None:
                continue  # counted as empty values below
            if (policy_id, version) not in known:
                problems.append(f"候选名单中的政策 {policy_id} 第 {version} 版不在 manifest.json 中")
            elif item_id not in known[(policy_id, version)]:
                problems.append(f"候选名单中的事项 {policy_id}/{item_id} 不在 manifest.json 中")
        problems += [f"candidates 的 {c} 有 {n} 个空值" for c, n in self.nulls.items() if n]
        if self.negative:
            problems.append("candidates 中有负金额")
        if self.above:
            problems.append("candidates 中有分配后金额大于分配前金额的记录")
        return problems


@dataclass
class _PayeeCheck:
    """What the payees' chunks showed, added up chunk by chunk."""

    nulls: dict[str, int] = field(default_factory=lambda: {"uscc": 0, "name": 0})
    bad: dict[str, dict[str, None]] = field(default_factory=lambda: {c: {} for c in PROFILE_KEYS})

    def add(self, batch: pa.RecordBatch) -> None:
        for column in self.nulls:
            self.nulls[column] += batch.column(column).null_count
        for column in PROFILE_KEYS:
            values = pc.cast(batch.column(column), pa.string())
            if column in PROFILE_VALUES:
                good = pc.is_in(values, pa.array(PROFILE_VALUES[column][0]))
            else:  # region_code: six digits
                good = pc.match_substring_regex(values, REGION_RE)
            bad = pc.unique(values.filter(pc.invert(good)).drop_null())
            for value in bad.to_pylist():
                if len(self.bad[column]) < 5:
                    self.bad[column].setdefault(value, None)

    def problems(self) -> list[str]:
        problems = [f"payees 的 {c} 有 {n} 个空值" for c, n in self.nulls.items() if n]
        return problems

    def value_problems(self) -> list[str]:
        problems = []
        for column, (_, what) in {**PROFILE_VALUES, "region_code": ([], REGION_WHAT)}.items():
            if self.bad[column]:
                shown = "、".join(repr(v) for v in self.bad[column])
                problems.append(f"payees 的 {column} 应为 {what} 或空值，却有 {shown}")
        return problems


def _stage(session: Session, run: RunFolder, chunk: int) -> tuple[Table, Table]:
    """Check the run folder's rows chunk by chunk while copying them into the scratch tables, then what
    needs the whole run in the database; raises RunImportError listing every problem found."""
    candidates, payees = _scratch_candidates(session), _scratch_payees(session)
    periods = {f"{p.id}{SEP}{p.version}": p.period for p in run.manifest.policies}
    version_keys = pa.array(list(periods), pa.string())
    period_of = pa.array(list(periods.values()), pa.string())
    checked = _CandidateCheck()
    done = 0
    for batch in run.candidate_chunks(chunk):
        checked.add(batch)
        n = len(batch)
        key = pc.binary_join_element_wise(
            batch.column("policy_id"), pc.cast(batch.column("policy_version"), pa.string()), SEP
        )
        # A public id only for a candidate with an amount, the one that becomes an offer: most
        # candidates (reliefs, loans) pay nothing, and drawing and copying ids for them took seconds.
        paying = pc.fill_null(pc.not_equal(batch.column("amount"), pa.scalar(Decimal(0), MONEY)), False)
        wanted = pc.sum(pc.cast(paying, pa.int64())).as_py() or 0
        ids = pa.array(tokens.public_ids(wanted), pa.string())
        insert_columns(
            session,
            candidates,
            {
                "ord": pa.array(range(done, done + n), pa.int64()),
                "public_id": pc.replace_with_mask(pa.nulls(n, pa.string()), paying, ids),
                **{c: batch.column(c) for c in CANDIDATE_COLUMNS},
                "period": period_of.take(pc.index_in(key, value_set=version_keys)),
            },
        )
        done += n
    payee_check = _PayeeCheck()
    seen = 0
    for batch in run.payee_chunks(chunk):
        payee_check.add(batch)
        n = len(batch)
        account = pc.utf8_trim_whitespace(batch.column("account_no"))
        account = pc.if_else(pc.equal(account, ""), pa.scalar(None, pa.string()), account)
        unsafe = _unsafe_names(pa.Table.from_batches([batch]).filter(pc.is_valid(account)))
        insert_columns(
            session,
            payees,
            {
                "ord": pa.array(range(seen, seen + n), pa.int64()),
                **{c: batch.column(c) for c in (*PAYEE_COLUMNS, *PROFILE_KEYS) if c != "account_no"},
                "account_no": account,
                "unsafe_name": _reasons(batch.column("uscc"), unsafe),
            },
        )
        seen += n
    bulkload.index_scratch(session, candidates)
    bulkload.index_scratch(session, payees)
    c, p = candidates.c, payees.c
    problems = checked.problems(run.manifest)
    if not any(checked.nulls.values()):
        twice = select(literal(1)).select_from(candidates).group_by(c.policy_id, c.item_id, c.uscc)
        dup = session.scalar(select(func.count()).select_from(twice.having(func.count() > 1).subquery()))
        if dup:
            problems.append(f"candidates 中有 {dup} 组重复的（政策、事项、企业）")
    problems += payee_check.problems()
    if session.scalar(select(func.count() - func.count(p.uscc.distinct())).select_from(payees)):
        problems.append("payees 中有重复的统一社会信用代码")
    missing = session.scalar(
        select(func.count(c.uscc.distinct())).where(c.uscc.is_not(None), ~exists().where(p.uscc == c.uscc))
    )
    if missing:
        problems.append(f"{missing} 家候选企业不在 payees 中")
    problems += payee_check.value_problems()
    if problems:
        raise RunImportError(f"{run.path} 不能导入：\n" + "\n".join(f"- {p}" for p in problems))
    return candidates, payees


SEP = "\x1f"  # joins a policy id and its version into one text, for set membership in Arrow


def _reasons(uscc: pa.Array, reasons: dict[str, str]) -> pa.Array:
    """Each payee's hold reason from `_unsafe_names` (NULL for almost all)."""
    if not reasons:
        return pa.nulls(len(uscc), pa.string())
    at = pc.index_in(uscc, value_set=pa.array(list(reasons), pa.string()))
    return pa.array(list(reasons.values()), pa.string()).take(at)


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


def _policy_versions(session: Session, run: RunFolder) -> None:
    """Record the run's policy versions (immutable once seen)."""
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
    if problems:
        raise RunImportError("\n".join(problems))


def import_run(
    session: Session, path: Path, by: str, now: dt.datetime | None = None, *, chunk: int = CHUNK
) -> ImportResult:
    """Import a match run folder as offers: drafted, then held at once where there is no account or the
    account's names cannot go into a bank file exactly (never changed to fit). The files are read
    `chunk` rows at a time; everything is written in the caller's transaction, and a refusal (raised
    before the end) leaves nothing once the caller rolls back."""
    now = now or dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    user = require(session, by, "import")
    run = read_run(path)
    m = run.manifest
    candidates, staged = _stage(session, run, chunk)
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
    _policy_versions(session, run)
    session.flush()
    run_pk = literal(run_row.id, BigInteger)
    stamp = literal(now, UtcDateTime)
    c, k = candidates.c, staged.c
    # One payee record per candidate enterprise.
    payee = Payee.__table__
    wanted = select(*(k[col] for col in PAYEE_COLUMNS), literal("snapshot"), run_pk, stamp).where(
        exists().where(c.uscc == k.uscc)
    )
    session.execute(
        insert(payee).from_select(
            [*PAYEE_COLUMNS, "source", "match_run_id", "created_at"], wanted.order_by(k.ord)
        )
    )
    t2 = time.perf_counter()
    result.seconds["payees"] = t2 - t1

    # One drafted offer per candidate with an amount, unless its (enterprise, policy, item, period)
    # already has a live offer from an earlier run.
    o = Offer.__table__
    result.zero = session.scalar(select(func.count()).where(c.amount == 0)) or 0
    live = (
        select(literal(1))
        .select_from(o)
        .where(
            o.c.uscc == c.uscc,
            o.c.policy_id == c.policy_id,
            o.c.item_id == c.item_id,
            o.c.period == c.period,
            o.c.state.not_in([s.value for s in CLOSED_STATES]),
        )
    )
    p = payee.c
    rows = (
        select(
            c.public_id,
            run_pk,
            c.policy_id,
            c.policy_version,
            c.item_id,
            c.period,
            c.uscc,
            k.industry_section,
            k.size_class,
            k.region_code,
            c.amount,
            c.amount_before_allocation,
            p.id,
            literal(OfferState.DRAFTED.value),
            literal(0),
            stamp,
            stamp,
        )
        .select_from(
            candidates.join(staged, k.uscc == c.uscc).join(
                payee, and_(p.match_run_id == run_row.id, p.uscc == c.uscc)
            )
        )
        .where(c.amount != 0, ~live.exists())
        .order_by(c.ord)
    )
    names = [
        "public_id",
        "match_run_id",
        "policy_id",
        "policy_version",
        "item_id",
        "period",
        "uscc",
        "industry_section",
        "size_class",
        "region_code",
        "amount",
        "amount_before_allocation",
        "payee_id",
        "state",
        "round",
        "created_at",
        "updated_at",
    ]
    session.execute(insert(o).from_select(names, rows))
    # The planner's statistics, with this transaction's rows in them: without, the moves below join the
    # offers as if the tables were as small as they were before.
    bulkload.analyze(session, payee)
    bulkload.analyze(session, o)
    t3 = time.perf_counter()
    result.seconds["offers"] = t3 - t2

    zero = Decimal("0.00")
    of_run = o.c.match_run_id == run_row.id
    for pid, count, amount in session.execute(
        select(o.c.policy_id, func.count(), func.sum(o.c.amount)).where(of_run).group_by(o.c.policy_id)
    ):
        result.by_policy[pid] = {"offers": count, "held": 0, "amount": Decimal(amount).quantize(zero)}
    # Every candidate with an amount has its payee (checked), so those not offered had a live offer.
    nonzero = session.scalar(select(func.count()).where(c.amount != 0)) or 0
    result.skipped = nonzero - sum(s["offers"] for s in result.by_policy.values())
    # One event for every offer created: its members are the offers of this run (their public ids and
    # run never change), so no member rows are needed; its digest is computed while streaming their
    # ids back in order. Then the offers without an account, or whose names cannot go into a bank file
    # exactly, are held with the reason.
    event = Event(by, "import", "offers", m.run_id, None, OfferState.DRAFTED.value, None, {"run": m.run_id})
    audit.append_bulk_query(session, event, select(o.c.public_id).where(of_run), now, listed=False)
    reasons = session.scalars(
        select(k.unsafe_name).where(k.unsafe_name.is_not(None)).distinct().order_by(k.unsafe_name)
    ).all()
    unsafe = [
        (
            select(p.id)
            .select_from(payee.join(staged, k.uscc == p.uscc))
            .where(p.match_run_id == run_row.id, k.unsafe_name == reason),
            reason,
        )
        for reason in reasons
    ]
    no_account = select(p.id).where(p.match_run_id == run_row.id, p.account_no.is_(None))
    for payees_held, reason in [*unsafe, (no_account, NO_ACCOUNT)]:
        offers.move_selected(
            session,
            select(o.c.id).where(of_run, o.c.payee_id.in_(payees_held)),
            OfferState.DRAFTED,
            OfferState.HELD,
            actor=by,
            action="import",
            subject=m.run_id,
            now=now,
            reason=reason,
        )
    held = o.c.state == OfferState.HELD.value
    for pid, count in session.execute(
        select(o.c.policy_id, func.count()).where(of_run, held).group_by(o.c.policy_id)
    ):
        result.by_policy[pid]["held"] = count
    result.offers = sum(s["offers"] for s in result.by_policy.values())
    result.held = sum(s["held"] for s in result.by_policy.values())
    result.amount = sum((s["amount"] for s in result.by_policy.values()), zero)
    run_row.offers, run_row.held, run_row.skipped, run_row.amount = (
        result.offers,
        result.held,
        result.skipped,
        result.amount,
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
