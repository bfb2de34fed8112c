"""The run folder (docs/contracts.md, Contract 4): its file names and its manifest, written and read here.

A match run writes `candidates.parquet`, the near misses and missing data (compact under `results/`, format
3; `near_misses.parquet` and `missing_data.parquet` before, and besides unless `--compact`),
`payees.parquet`, `contacts.parquet` and `manifest.json` into one folder. Every Parquet output is a single
file (DuckDB) or a folder of part files (Spark); `parquet_source` and `parquet_parts` read both. The
manifest is the `Manifest` below: `write_manifest` writes it, `read_manifest` reads it back and
refuses a missing or malformed one with every problem named (file and key).

The manifest carries a `format` version (`FORMAT`). Manifests written before the field existed have
none and are read as version 1: their keys are the same, so they are accepted as they are. A manifest
of a later format than this code knows is refused: the code that wrote it is newer than the reader.

The JSON on disk is kept exactly as written (`Manifest.to_dict`), so a run folder imported into the
payouts database stores the same text it was made with; the typed fields are a checked view of it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rules.errors import MatchError

# Version 1: the manifests written before the format field existed (same keys). Version 3: the near misses
# and missing data are kept compact (`RESULTS`) instead of as near_misses.parquet and missing_data.parquet;
# a folder of an older format keeps its two files and is read as it is (`matcher.results`).
FORMAT = 3

MANIFEST = "manifest.json"
CANDIDATES = "candidates.parquet"
NEAR_MISSES = "near_misses.parquet"
MISSING_DATA = "missing_data.parquet"
PAYEES = "payees.parquet"  # contact and account of every candidate (the payouts import)
CONTACTS = "contacts.parquet"  # name and phone of every enterprise with a result (the sign-in)

# The compact results (format 3, docs/contracts.md#the-compact-results), in the folder `RESULTS`; read
# through `matcher.results`, never directly.
RESULTS = "results"
RESULT_ENTERPRISES = f"{RESULTS}/enterprises.parquet"  # per enterprise: its keys and pattern per block
RESULT_STATUSES = f"{RESULTS}/statuses.parquet"  # per (block, pattern, item) with a status: what it is
RESULT_ITEMS = f"{RESULTS}/items.parquet"  # per item: its block, year, fields and amount
RESULT_ALLOCATED = f"{RESULTS}/allocated.parquet"  # the candidates of budgeted or grouped items, by uscc
RESULT_PAID = f"{RESULTS}/paid.parquet"  # the (enterprise, item) pairs already paid for the period


def result_profile(year: int) -> str:
    """The profile of one assessment year, only the columns the items read, sorted by uscc."""
    return f"{RESULTS}/profile_{year}.parquet"


def parquet_source(path: Path) -> str:
    """What DuckDB's `read_parquet` reads for one output of a run folder: the file, or every part file of a
    folder (as Spark writes them; its `_SUCCESS` and `.crc` files are not read)."""
    return str(path / "**" / "*.parquet") if path.is_dir() else str(path)


def parquet_parts(path: Path) -> list[Path]:
    """The Parquet files of one output: the file itself, or the part files of a folder in name order (Spark
    numbers the parts of a sorted output in sort order)."""
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*.parquet") if not p.name.startswith((".", "_")))


def has_compact_results(folder: Path) -> bool:
    """Whether the run folder keeps its near misses and missing data compact (format 3 and later)."""
    return (folder / RESULT_STATUSES).exists()


MANIFEST_KEYS = ("run_id", "as_of", "snapshot", "rules", "policies", "over_budget")
POLICY_KEYS = (
    "id",
    "version",
    "title",
    "department",
    "period",
    "budget",
    "allocation",
    "confirmation",
    "items",
)


class ManifestError(MatchError):
    """A run folder's manifest is missing, not JSON, of an unknown format or lacks keys; for keys missing
    or malformed, `problems` lists each (naming manifest.json and the key), else it is empty."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message)


@dataclass(frozen=True)
class Condition:
    """A condition of a policy or an item as the run evaluated it: its text, clause and rule."""

    id: str
    text: str = ""
    clause: str | None = None
    rule: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Condition:
        return cls(str(d["id"]), str(d.get("text") or ""), d.get("clause"), d.get("rule"))


@dataclass(frozen=True)
class PolicyItem:
    """An item of a policy (what is paid for), with its own conditions."""

    id: str
    title: str = ""
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class PolicyEntry:
    """A policy version as the run matched it (the payouts import records it as published)."""

    id: str
    version: int
    title: str
    department: str
    period: str
    budget: str | None  # decimal text, e.g. "100000.00"; None: no budget
    allocation: str
    confirmation: str
    items: tuple[PolicyItem, ...]
    notice_days: int | None = None  # absent in runs made before public notices existed
    notice_working_days: int | None = None  # absent in runs made before notices in working days
    service_phone: str | None = None  # the policy's 咨询电话; absent in older runs
    review_days: int | None = None  # the policy's own time limits (absent in older runs)
    payment_days: int | None = None
    outreach: bool = False
    conditions: tuple[Condition, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # the entry as in the JSON
    reviewers: tuple[str, ...] = ()  # joint review (会签), the lead first; absent in older runs: none

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.version)


@dataclass(frozen=True)
class Source:
    """Where an input of the run was read (snapshot or rules folder) and its fingerprint."""

    path: str
    fingerprint: str


@dataclass(frozen=True)
class Manifest:
    """manifest.json of a run folder, checked and typed. Only the keys in `MANIFEST_KEYS` are required
    (hand-written and older folders may lack the others, which then take their defaults); keys without
    a field (the engine's own details, e.g. `spark`) are kept in `to_dict()`."""

    run_id: str
    as_of: dt.date
    snapshot: Source
    rules: Source
    policies: tuple[PolicyEntry, ...]
    over_budget: tuple[str, ...]
    format: int = FORMAT
    engine: str | None = None
    created_at: str | None = None
    items: tuple[dict[str, Any], ...] = ()  # the per-item summary rows (candidates, near misses, …)
    counts: dict[str, int] = field(default_factory=dict)
    inactive_policies: tuple[str, ...] = ()  # id@version of the directory's policies not active on as_of
    totals: dict[str, str] = field(default_factory=dict)  # policy → money of its candidates (text)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    overrides: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def enterprises(self) -> int:
        return int(self.counts.get("enterprises", 0))

    def policy(self, policy_id: str, version: int) -> PolicyEntry | None:
        return next((p for p in self.policies if p.key == (policy_id, version)), None)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as JSON data, exactly as read or written."""
        copy: dict[str, Any] = json.loads(json.dumps(self.raw))
        return copy

    @classmethod
    def from_dict(cls, data: Any, where: str = MANIFEST) -> Manifest:
        """Check and type the manifest's JSON data; raises ManifestError naming every problem."""
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: 应为 JSON 对象")
        version = data.get("format", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            problem = f"{MANIFEST} 的 format 应为正整数，实为 {version!r}"
            raise ManifestError(f"{where}: {problem}")
        if version > FORMAT:
            problem = f"{MANIFEST} 的格式版本为 {version}，本程序只能读取 {FORMAT} 及以前的版本：请升级 zhida 后再读取"
            raise ManifestError(f"{where}: {problem}")
        problems = [f"{MANIFEST} 缺少 {k}" for k in MANIFEST_KEYS if k not in data]
        policies = data.get("policies", [])
        if not isinstance(policies, list):
            problems.append(f"{MANIFEST} 的 policies 应为列表")
            policies = []
        for p in policies:
            if not isinstance(p, dict):
                problems.append(f"{MANIFEST} 的 policies 中有非对象的条目")
                continue
            problems += [f"{MANIFEST} 政策 {p.get('id', '?')} 缺少 {k}" for k in POLICY_KEYS if k not in p]
            for i in p.get("items") or []:
                if not isinstance(i, dict) or "id" not in i:
                    problems.append(f"{MANIFEST} 政策 {p.get('id', '?')} 的 items 中有缺少 id 的事项")
        for k in ("snapshot", "rules"):
            if k in data and not (isinstance(data[k], dict) and "fingerprint" in data[k]):
                problems.append(f"{MANIFEST} 的 {k} 缺少 fingerprint")
        as_of = None
        if "as_of" in data:
            try:
                as_of = dt.date.fromisoformat(str(data["as_of"]))
            except ValueError:
                problems.append(f"{MANIFEST} 的 as_of 应为日期（YYYY-MM-DD），实为 {data['as_of']!r}")
        if problems:
            raise ManifestError(
                f"{where} 不是有效的匹配结果清单：\n" + "\n".join(f"- {p}" for p in problems), problems
            )
        assert as_of is not None
        return cls(
            run_id=str(data["run_id"]),
            as_of=as_of,
            snapshot=_source(data["snapshot"]),
            rules=_source(data["rules"]),
            policies=tuple(_policy(p) for p in policies),
            over_budget=tuple(str(x) for x in data["over_budget"] or ()),
            format=version,
            engine=data.get("engine"),
            created_at=data.get("created_at"),
            items=tuple(data.get("items") or ()),
            counts=dict(data.get("counts") or {}),
            inactive_policies=tuple(data.get("inactive_policies") or ()),
            totals=dict(data.get("totals") or {}),
            timings=dict(data.get("timings") or {}),
            overrides=dict(data.get("overrides") or {}),
            raw=data,
        )


def _source(d: Mapping[str, Any]) -> Source:
    return Source(str(d.get("path") or ""), str(d["fingerprint"]))


def _conditions(rows: Any) -> tuple[Condition, ...]:
    return tuple(Condition.from_dict(c) for c in rows or ())


def _policy(p: Mapping[str, Any]) -> PolicyEntry:
    return PolicyEntry(
        id=str(p["id"]),
        version=int(p["version"]),
        title=str(p["title"]),
        department=str(p["department"]),
        period=str(p["period"]),
        budget=None if p["budget"] is None else str(p["budget"]),
        allocation=str(p["allocation"]),
        confirmation=str(p["confirmation"]),
        items=tuple(
            PolicyItem(str(i["id"]), str(i.get("title") or ""), _conditions(i.get("conditions")))
            for i in p["items"]
        ),
        notice_days=None if p.get("notice_days") is None else int(p["notice_days"]),
        notice_working_days=None if p.get("notice_working_days") is None else int(p["notice_working_days"]),
        service_phone=None if p.get("service_phone") is None else str(p["service_phone"]),
        review_days=None if p.get("review_days") is None else int(p["review_days"]),
        payment_days=None if p.get("payment_days") is None else int(p["payment_days"]),
        outreach=bool(p.get("outreach", False)),
        conditions=_conditions(p.get("conditions")),
        raw=dict(p),
        reviewers=tuple(str(r) for r in p.get("reviewers") or ()),
    )


def manifest_text(data: Mapping[str, Any]) -> str:
    """manifest.json's text for the manifest data, with the current format version first; checked."""
    full = {"format": FORMAT, **{k: v for k, v in data.items() if k != "format"}}
    Manifest.from_dict(full)
    return json.dumps(full, ensure_ascii=False, indent=2) + "\n"


def write_manifest(folder: Path, manifest: Manifest | Mapping[str, Any]) -> Manifest:
    """Write manifest.json into the run folder (the current format); returns it as read back."""
    data = manifest.to_dict() if isinstance(manifest, Manifest) else dict(manifest)
    text = manifest_text(data)
    (folder / MANIFEST).write_text(text, encoding="utf-8")
    return Manifest.from_dict(json.loads(text), str(folder / MANIFEST))


def parse_manifest(text: str, where: str = MANIFEST) -> Manifest:
    """A manifest from its JSON text (e.g. as stored with an imported run)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: 不是有效的 JSON：{e}") from e
    return Manifest.from_dict(data, where)


def read_manifest(folder: Path) -> Manifest:
    """The run folder's manifest; a folder without one, or with a bad one, is refused by name."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{folder} 不是匹配结果目录：缺少 {MANIFEST}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{path}: 不是有效的 JSON：{e}") from e
    return parse_manifest(text, str(path))


def has_manifest(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()
