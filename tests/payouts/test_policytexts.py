"""The policy store's table: drafts published once, in increasing versions, by any number of workers at
once; and the one-time import of a store kept as files by earlier releases."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from payouts import policytexts
from payouts.db import transaction
from payouts.errors import NotFoundError
from payouts.models import AuditEvent, PolicyText
from rules.errors import StateError
from tests.payouts.test_concurrency import run_together

T0 = dt.datetime(2025, 6, 2, 9, 0, tzinfo=dt.UTC)


def draft(policy_id: str, version: int, text: str = "id: x\n") -> PolicyText:
    return PolicyText(
        policy_id=policy_id,
        version=version,
        status="draft",
        text=text,
        sha256="0" * 64,
        title=f"{policy_id} 补贴",
        department="市科学技术局",
        valid_from=dt.date(2025, 1, 1),
        valid_to=dt.date(2025, 12, 31),
        file_name=f"{policy_id}.yaml",
        uploaded_by="policy",
        uploaded_at=T0,
    )


def published_in_order(engine: Engine, policy_id: str) -> list[int]:
    """The versions of `policy_id` in the order their publish events were recorded."""
    with transaction(engine) as s:
        ids = s.scalars(
            select(AuditEvent.entity_id)
            .where(AuditEvent.action == "publish", AuditEvent.entity_id.like(f"{policy_id}@%"))
            .order_by(AuditEvent.seq)
        )
        return [int(i.split("@")[1]) for i in ids]


def test_a_draft_published_by_many_workers_at_once_is_published_once(engine: Engine) -> None:
    with transaction(engine) as s:
        assert policytexts.save_draft(s, draft("gaoxin", 1))

    def publish(k: int) -> PolicyText:
        with transaction(engine) as s:
            return policytexts.publish(s, "gaoxin", 1, f"worker{k}", T0)

    results, errors = run_together(6, publish)
    assert len(results) == 1
    assert len(errors) == 5 and all(isinstance(e, StateError) for e in errors), errors
    assert "已发布到第 1 版" in str(errors[0])
    assert published_in_order(engine, "gaoxin") == [1]


def test_competing_versions_published_at_once_never_go_below_the_latest(engine: Engine) -> None:
    with transaction(engine) as s:
        for v in range(1, 9):
            policytexts.save_draft(s, draft("wengang", v))

    def publish(k: int) -> PolicyText:
        with transaction(engine) as s:
            return policytexts.publish(s, "wengang", k + 1, "policy", T0)

    results, errors = run_together(8, publish)
    assert all(isinstance(e, StateError) for e in errors), errors
    order = published_in_order(engine, "wengang")
    assert order == sorted(order) and len(set(order)) == len(order) == len(results)
    with transaction(engine) as s:
        latest = policytexts.latest_published(s, "wengang")
    assert latest is not None and latest.version == 8


def test_a_published_version_cannot_be_uploaded_again_or_published_twice(engine: Engine) -> None:
    with transaction(engine) as s:
        policytexts.save_draft(s, draft("kexing", 1, "first"))
        assert policytexts.save_draft(s, draft("kexing", 1, "second"))  # a draft is replaced
        assert policytexts.publish(s, "kexing", 1, "policy", T0).text == "second"
        assert not policytexts.save_draft(s, draft("kexing", 1, "third"))
        with pytest.raises(StateError):
            policytexts.publish(s, "kexing", 1, "policy", T0)
        with pytest.raises(NotFoundError):
            policytexts.publish(s, "kexing", 2, "policy", T0)
        assert policytexts.find(s, "kexing", 1, "published").text == "second"


def _old_store(root: Path) -> None:
    """A store as earlier releases kept it: YAML files beside JSON records, drafts and published."""
    for folder, key, status, published in (
        ("published", "gaoxin@1", "published", ("policy", "2025-05-01T08:00:00+00:00")),
        ("published", "gaoxin@2", "published", ("policy", "2025-05-20T08:00:00+00:00")),
        ("drafts", "gaoxin@3", "draft", (None, None)),
    ):
        pid, version = key.split("@")
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / f"{key}.yaml").write_text(f"id: {pid}\nversion: {version}\n", encoding="utf-8")
        record = {
            "id": pid,
            "version": int(version),
            "status": status,
            "title": "高新技术企业认定奖励",
            "department": "市科学技术局",
            "valid_from": "2025-01-01",
            "valid_to": "2025-12-31",
            "file_name": f"{pid}.yaml",
            "sha256": "a" * 64,
            "uploaded_by": "policy",
            "uploaded_at": "2025-04-30T08:00:00+00:00",
            "published_by": published[0],
            "published_at": published[1],
        }
        (root / folder / f"{key}.json").write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")


def test_a_store_kept_as_files_is_imported_once_with_nothing_lost(engine: Engine, tmp_path: Path) -> None:
    _old_store(tmp_path / "policies")
    with transaction(engine) as s:
        assert policytexts.import_folder(s, tmp_path / "policies") == 3
    with transaction(engine) as s:
        assert policytexts.import_folder(s, tmp_path / "policies") == 0  # once: the table is not empty
        latest = policytexts.latest_published(s, "gaoxin")
        assert latest is not None and latest.version == 2
        assert latest.text == "id: gaoxin\nversion: 2\n"
        assert latest.published_at == dt.datetime(2025, 5, 20, 8, 0, tzinfo=dt.UTC)
        assert [r.version for r in policytexts.listed(s, "draft")] == [3]
        assert policytexts.departments(s) == {"gaoxin": "市科学技术局"}


def test_no_folder_imports_nothing(engine: Engine, tmp_path: Path) -> None:
    with transaction(engine) as s:
        assert policytexts.import_folder(s, tmp_path / "missing") == 0
