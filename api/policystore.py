"""Where uploaded (draft) and published policy versions are kept: YAML files with a small JSON record each.

An adapter until payouts has a table for policy texts (see the report of issue 6): the interface is
`PolicyStore`, the files are `<root>/drafts/<id>@<version>.yaml` and `<root>/published/<id>@<version>.yaml`,
each beside `<same name>.json` (who, when, digest, title, department, validity). A published version is
immutable; a new version must be higher than the latest published one. Publishing is an audit event.
A match run uses the latest published version of every policy, copied into the run's own folder.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from sqlmodel import Session

from payouts import audit
from payouts.errors import NotFoundError, RoleError
from portal import supermarket
from rules.errors import PolicyError, Problem, StateError
from rules.policy import Policy
from rules.ruleset import RuleSet, load_ruleset
from rules.validate import parse_policy_text

Status = Literal["draft", "published"]
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}@[1-9][0-9]{0,8}$")


@dataclass(frozen=True)
class StoredPolicy:
    """One stored policy version and what is known about it without reading the YAML again."""

    id: str
    version: int
    status: Status
    title: str
    department: str
    valid_from: str
    valid_to: str
    file_name: str
    sha256: str
    uploaded_by: str
    uploaded_at: str
    published_by: str | None = None
    published_at: str | None = None

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"


def _decode(data: bytes, file_name: str) -> str:
    """The text of an uploaded file, refused as the CLI refuses a file that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PolicyError(
            [Problem(file_name, line, "?", "文件不是 UTF-8 编码", "用编辑器把文件另存为 UTF-8")]
        ) from None


class PolicyStore:
    """Draft and published policy versions under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _dir(self, status: Status) -> Path:
        path = self.root / ("drafts" if status == "draft" else "published")
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _read(self, status: Status) -> list[StoredPolicy]:
        records = []
        for meta in sorted(self._dir(status).glob("*.json")):
            records.append(StoredPolicy(**json.loads(meta.read_text(encoding="utf-8"))))
        return records

    def _write(self, record: StoredPolicy, text: str) -> None:
        folder = self._dir(record.status)
        (folder / f"{record.key}.yaml").write_text(text, encoding="utf-8")
        (folder / f"{record.key}.json").write_text(
            json.dumps(asdict(record), ensure_ascii=False, indent=2), encoding="utf-8"
        )

    def list(self, status: Status, department: str | None = None) -> list[StoredPolicy]:
        """Versions in `status`, newest version first within each policy; only `department`'s if given."""
        rows = [r for r in self._read(status) if department is None or r.department == department]
        return sorted(rows, key=lambda r: (r.id, -r.version))

    def get(self, policy_id: str, version: int, status: Status) -> StoredPolicy:
        key = f"{policy_id}@{version}"
        meta = self._dir(status) / f"{key}.json"
        if not _KEY.match(key) or not meta.is_file():
            raise NotFoundError(
                f"没有{'草稿' if status == 'draft' else '已发布的'}政策 {policy_id} 第 {version} 版"
            )
        return StoredPolicy(**json.loads(meta.read_text(encoding="utf-8")))

    def text(self, record: StoredPolicy) -> str:
        return (self._dir(record.status) / f"{record.key}.yaml").read_text(encoding="utf-8")

    def parsed(self, record: StoredPolicy) -> Policy:
        return parse_policy_text(self.text(record), record.file_name)

    def latest_published(self, policy_id: str) -> StoredPolicy | None:
        versions = [r for r in self._read("published") if r.id == policy_id]
        return max(versions, key=lambda r: r.version) if versions else None

    def departments(self) -> dict[str, str]:
        """Policy id → department, from every stored version (published ones win)."""
        out = {r.id: r.department for r in self._read("draft")}
        out.update({r.id: r.department for r in self._read("published")})
        return out

    def upload(
        self, data: bytes, file_name: str, by: str, department: str | None, now: dt.datetime
    ) -> tuple[StoredPolicy, Policy]:
        """Check an uploaded file as the CLI does and keep it as a draft of its (id, version).

        `department`, when given, is the only department the uploader may write for. Refuses a version
        that is published already or older than the latest published one.
        """
        file_name = Path(file_name or "policy.yaml").name
        text = _decode(data, file_name)
        policy = parse_policy_text(text, file_name)
        if department is not None and policy.department != department:
            raise RoleError(f"只能上传本部门（{department}）的政策，此文件属于“{policy.department}”")
        latest = self.latest_published(policy.id)
        if latest is not None and policy.version <= latest.version:
            raise PolicyError(
                [
                    Problem(
                        file_name,
                        _line_of(data, "version"),
                        policy.id,
                        f"第 {policy.version} 版不能上传：已发布到第 {latest.version} 版，已发布的版本不可更改",
                        f"请把 version 改为 {latest.version + 1}",
                    )
                ]
            )
        record = StoredPolicy(
            id=policy.id,
            version=policy.version,
            status="draft",
            title=policy.title,
            department=policy.department,
            valid_from=policy.valid_from.isoformat(),
            valid_to=policy.valid_to.isoformat(),
            file_name=file_name,
            sha256=hashlib.sha256(data).hexdigest(),
            uploaded_by=by,
            uploaded_at=now.isoformat(timespec="seconds"),
        )
        with self._lock:
            self._write(record, text)
        return record, policy

    def publish(self, session: Session, record: StoredPolicy, by: str, now: dt.datetime) -> StoredPolicy:
        """Publish a draft: it becomes immutable, and match runs use it from now on."""
        with self._lock:
            latest = self.latest_published(record.id)
            if latest is not None and latest.version >= record.version:
                raise StateError(
                    f"政策 {record.id} 已发布到第 {latest.version} 版，不能再发布第 {record.version} 版"
                )
            draft = self._dir("draft") / f"{record.key}.yaml"
            text = draft.read_text(encoding="utf-8")
            published = StoredPolicy(
                **{
                    **asdict(record),
                    "status": "published",
                    "published_by": by,
                    "published_at": now.isoformat(timespec="seconds"),
                }
            )
            self._write(published, text)
            draft.unlink()
            draft.with_suffix(".json").unlink()
        audit.record(
            session, now, by, "publish", "policy", record.key, "draft", "published", sha256=record.sha256
        )
        # The public policy supermarket lists the latest published version from now on.
        supermarket.index_policy(session, parse_policy_text(text, record.file_name), now, now)
        return published

    def _latest(self) -> dict[str, StoredPolicy]:
        latest: dict[str, StoredPolicy] = {}
        for r in self._read("published"):
            if r.id not in latest or r.version > latest[r.id].version:
                latest[r.id] = r
        return latest

    def sync_index(self, session: Session, now: dt.datetime) -> tuple[int, int]:
        """List in the policy supermarket what is published but not listed (or listed in an older version),
        and take off what is no longer published; (listed, removed)."""
        latest = self._latest()
        stale, gone = supermarket.sync_plan(
            {pid: r.version for pid, r in latest.items()}, supermarket.listed_versions(session)
        )
        for pid in stale:
            r = latest[pid]
            supermarket.index_policy(session, self.parsed(r), _published_at(r, now), now)
        return len(stale), supermarket.remove(session, gone)

    def rebuild_index(self, session: Session, now: dt.datetime) -> int:
        """Make the policy supermarket's index again from the latest published version of every policy."""
        latest = sorted(self._latest().values(), key=lambda r: r.id)
        return supermarket.rebuild(session, [(self.parsed(r), _published_at(r, now)) for r in latest], now)

    def copy_latest(self, dest: Path, as_of: dt.date) -> RuleSet:
        """Copy the latest published version of every policy active on `as_of` into `dest`; the rule set."""
        dest.mkdir(parents=True, exist_ok=True)
        latest: dict[str, StoredPolicy] = {}
        for r in self._read("published"):
            if r.id not in latest or r.version > latest[r.id].version:
                latest[r.id] = r
        for r in latest.values():
            if r.valid_from <= as_of.isoformat() <= r.valid_to:
                shutil.copyfile(self._dir("published") / f"{r.key}.yaml", dest / f"{r.key}.yaml")
        return load_ruleset(dest)

    def seed(self, directory: Path, session: Session, by: str, now: dt.datetime) -> int:
        """Publish every policy file of `directory` newer than what is published (the demo's library)."""
        done = 0
        for path in sorted(directory.glob("*.yaml")):
            policy = parse_policy_text(path.read_text(encoding="utf-8"), path.name)
            latest = self.latest_published(policy.id)
            if latest is not None and latest.version >= policy.version:
                continue
            record, _ = self.upload(path.read_bytes(), path.name, by, None, now)
            self.publish(session, record, by, now)
            done += 1
        return done


def _line_of(data: bytes, key: str) -> int | None:
    """The line of a top-level `key:` in a file, for messages about it."""
    for n, line in enumerate(data.decode("utf-8-sig", errors="replace").splitlines(), start=1):
        if line.startswith(f"{key}:"):
            return n
    return None


def _published_at(record: StoredPolicy, default: dt.datetime) -> dt.datetime:
    return dt.datetime.fromisoformat(record.published_at) if record.published_at else default
