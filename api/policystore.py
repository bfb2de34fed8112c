"""Where uploaded (draft) and published policy versions are kept: the `policy_text` table
(`payouts.policytexts`), shared by every worker of the service.

`PolicyStore` checks an uploaded file as the CLI does, keeps it as a draft, and publishes it: the version
becomes immutable, a new version must be higher than the latest published one, publishing is an audit
event and lists the policy in the policy supermarket. A match run uses the latest published version of
every policy, written into the run's own folder (`copy_latest`). A store kept as files by earlier
releases (`<data dir>/policies/{drafts,published}/<id>@<version>.yaml` + `.json`) is imported once at
start (`import_files`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine
from sqlmodel import Session

from payouts import policytexts
from payouts.db import transaction
from payouts.errors import NotFoundError, RoleError
from payouts.models import PolicyText
from portal import supermarket
from rules.errors import PolicyError, Problem
from rules.policy import Policy
from rules.ruleset import RuleSet, load_ruleset
from rules.validate import parse_policy_text

Status = Literal["draft", "published"]
log = logging.getLogger("zhida.policies")
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
    """Draft and published policy versions, kept in the database (`payouts.policytexts`), and what
    publishing does beyond the table: the audit event and the policy supermarket's index."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _read(self) -> AbstractContextManager[Session]:
        return transaction(self.engine, read_only=True)

    def list(self, status: Status, department: str | None = None) -> list[StoredPolicy]:
        """Versions in `status`, newest version first within each policy; only `department`'s if given."""
        with self._read() as s:
            return [_stored(r) for r in policytexts.listed(s, status, department)]

    def get(self, policy_id: str, version: int, status: Status) -> StoredPolicy:
        row = None
        if _KEY.match(f"{policy_id}@{version}"):
            with self._read() as s:
                row = policytexts.find(s, policy_id, version, status)
        if row is None:
            raise NotFoundError(
                f"没有{'草稿' if status == 'draft' else '已发布的'}政策 {policy_id} 第 {version} 版"
            )
        return _stored(row)

    def text(self, record: StoredPolicy) -> str:
        with self._read() as s:
            row = policytexts.find(s, record.id, record.version, "published") or policytexts.find(
                s, record.id, record.version, "draft"
            )
        if row is None:
            raise NotFoundError(f"没有政策 {record.id} 第 {record.version} 版")
        return row.text

    def parsed(self, record: StoredPolicy) -> Policy:
        return parse_policy_text(self.text(record), record.file_name)

    def latest_published(self, policy_id: str) -> StoredPolicy | None:
        with self._read() as s:
            row = policytexts.latest_published(s, policy_id)
        return _stored(row) if row is not None else None

    def departments(self) -> dict[str, str]:
        """Policy id → department, from every stored version (published ones win)."""
        with self._read() as s:
            return policytexts.departments(s)

    def upload(
        self, session: Session, data: bytes, file_name: str, by: str, department: str | None, now: dt.datetime
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
        latest = policytexts.latest_published(session, policy.id)
        row = PolicyText(
            policy_id=policy.id,
            version=policy.version,
            status="draft",
            text=text,
            sha256=hashlib.sha256(data).hexdigest(),
            title=policy.title,
            department=policy.department,
            valid_from=policy.valid_from,
            valid_to=policy.valid_to,
            file_name=file_name,
            uploaded_by=by,
            uploaded_at=now,
        )
        if (latest is not None and policy.version <= latest.version) or not policytexts.save_draft(
            session, row
        ):
            newest = latest.version if latest is not None else policy.version
            raise PolicyError(
                [
                    Problem(
                        file_name,
                        _line_of(data, "version"),
                        policy.id,
                        f"第 {policy.version} 版不能上传：已发布到第 {newest} 版，已发布的版本不可更改",
                        f"请把 version 改为 {newest + 1}",
                    )
                ]
            )
        return _stored(row), policy

    def publish(self, session: Session, record: StoredPolicy, by: str, now: dt.datetime) -> StoredPolicy:
        """Publish a draft: it becomes immutable, and match runs use it from now on. Of two workers
        publishing at once, one wins; the other gets a StateError (payouts.policytexts.publish)."""
        row = policytexts.publish(session, record.id, record.version, by, now)
        # The public policy supermarket lists the latest published version from now on.
        supermarket.index_policy(session, parse_policy_text(row.text, row.file_name), now, now)
        return _stored(row)

    def sync_index(self, session: Session, now: dt.datetime) -> tuple[int, int]:
        """List in the policy supermarket what is published but not listed (or listed in an older version),
        and take off what is no longer published; (listed, removed)."""
        latest = {r.policy_id: r for r in policytexts.latest_of_all(session)}
        stale, gone = supermarket.sync_plan(
            {pid: r.version for pid, r in latest.items()}, supermarket.listed_versions(session)
        )
        for pid in stale:
            r = latest[pid]
            supermarket.index_policy(session, _parse(r), r.published_at or now, now)
        return len(stale), supermarket.remove(session, gone)

    def rebuild_index(self, session: Session, now: dt.datetime) -> int:
        """Make the policy supermarket's index again from the latest published version of every policy."""
        latest = policytexts.latest_of_all(session)
        return supermarket.rebuild(session, [(_parse(r), r.published_at or now) for r in latest], now)

    def copy_latest(self, dest: Path, as_of: dt.date) -> RuleSet:
        """Write the latest published version of every policy active on `as_of` into `dest` (the run's
        own copy, `<id>@<version>.yaml`); the rule set."""
        dest.mkdir(parents=True, exist_ok=True)
        with self._read() as s:
            latest = policytexts.latest_of_all(s)
        for r in latest:
            if r.valid_from <= as_of <= r.valid_to:
                (dest / f"{r.policy_id}@{r.version}.yaml").write_text(r.text, encoding="utf-8")
        return load_ruleset(dest)

    def seed(self, directory: Path, session: Session, by: str, now: dt.datetime) -> int:
        """Publish every policy file of `directory` newer than what is published (the demo's library)."""
        done = 0
        for path in sorted(directory.glob("*.yaml")):
            policy = parse_policy_text(path.read_text(encoding="utf-8"), path.name)
            latest = policytexts.latest_published(session, policy.id)
            if latest is not None and latest.version >= policy.version:
                continue
            record, _ = self.upload(session, path.read_bytes(), path.name, by, None, now)
            self.publish(session, record, by, now)
            done += 1
        return done

    def import_files(self, session: Session, root: Path) -> int:
        """Once, at start: copy a policy store kept as files under `root` (before the table existed) into
        the table when the table is empty; the number of versions copied."""
        done = policytexts.import_folder(session, root)
        if done:
            log.warning(
                "policy store: %d versions imported from %s (the folder is no longer read)", done, root
            )
        return done


def _stored(row: PolicyText) -> StoredPolicy:
    return StoredPolicy(
        id=row.policy_id,
        version=row.version,
        status="published" if row.status == "published" else "draft",
        title=row.title,
        department=row.department,
        valid_from=row.valid_from.isoformat(),
        valid_to=row.valid_to.isoformat(),
        file_name=row.file_name,
        sha256=row.sha256,
        uploaded_by=row.uploaded_by,
        uploaded_at=row.uploaded_at.isoformat(timespec="seconds"),
        published_by=row.published_by,
        published_at=row.published_at.isoformat(timespec="seconds") if row.published_at else None,
    )


def _parse(row: PolicyText) -> Policy:
    return parse_policy_text(row.text, row.file_name)


def _line_of(data: bytes, key: str) -> int | None:
    """The line of a top-level `key:` in a file, for messages about it."""
    for n, line in enumerate(data.decode("utf-8-sig", errors="replace").splitlines(), start=1):
        if line.startswith(f"{key}:"):
            return n
    return None
