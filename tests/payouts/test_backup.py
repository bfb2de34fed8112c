"""Backup and restore: the copy holds the database, the files and the audit chain whole, and a restore
checks all three before anyone relies on it."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from sqlalchemy import Engine, func, select

from payouts import audit, confirm
from payouts.backup import BackupError, backup, restore
from payouts.db import make_engine, transaction
from payouts.models import Offer
from tests.payouts.conftest import PG_ADMIN

NOW = dt.datetime(2025, 6, 3, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "web"
    (folder / "policies").mkdir(parents=True)
    (folder / "policies" / "wengang.v1.yaml").write_text("id: wengang\n", encoding="utf-8")
    (folder / "evidence").mkdir()
    (folder / "evidence" / "a1b2c3").write_bytes(b"%PDF-1.7 evidence")
    (folder / "enterprise_cache").mkdir()
    (folder / "enterprise_cache" / "standings.parquet").write_bytes(b"cache")
    return folder


@pytest.fixture
def target(engine: Engine, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same kind to restore into."""
    if engine.dialect.name == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    name = f"zhida_restore_{secrets.token_hex(5)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _state(url: str) -> tuple[int, int, str]:
    copy = make_engine(url)
    with transaction(copy, read_only=True) as s:
        confirmed = s.scalar(select(func.count()).select_from(Offer).where(Offer.state == "confirmed"))
        checked = audit.verify(s)
        state = (int(confirmed or 0), checked.head_seq, checked.head_hash)
    copy.dispose()
    return state


def test_a_restored_copy_holds_the_offers_files_and_chain_of_the_original(
    engine: Engine, tx, notified: SimpleNamespace, data_dir: Path, target: str, tmp_path: Path
) -> None:
    with tx() as s:
        confirm.confirm(s, notified.links[1], ip=None, user_agent=None, now=NOW)
    before = _state(_url(engine))
    made = backup(_url(engine), data_dir, tmp_path / "bk", NOW)
    assert made.ok and made.tables["offer"] == 7 and made.head_seq == before[1] > 0
    manifest = json.loads((tmp_path / "bk" / "manifest.json").read_text(encoding="utf-8"))
    kept = {f["restore_to"] for f in manifest["files"]}
    assert {"data/policies/wengang.v1.yaml", "data/evidence/a1b2c3"} <= kept
    assert not any("enterprise_cache" in k for k in kept)  # a cache is rebuilt, not kept
    assert str(notified.run / "manifest.json") in kept  # the imported run folder lives elsewhere

    shutil.rmtree(notified.run)  # the machine is lost: the run folder with it
    restored_dir = tmp_path / "new-web"
    done = restore(tmp_path / "bk", target, restored_dir, say=lambda _: None)
    assert done.ok, done.problems
    assert done.tables == made.tables
    assert _state(target) == before
    assert (restored_dir / "evidence" / "a1b2c3").read_bytes() == b"%PDF-1.7 evidence"
    assert (notified.run / "candidates.parquet").is_file()


def test_a_damaged_file_or_database_in_the_backup_is_named(
    engine: Engine, notified: SimpleNamespace, data_dir: Path, target: str, tmp_path: Path
) -> None:
    backup(_url(engine), data_dir, tmp_path / "bk", NOW)
    stored = next((tmp_path / "bk" / "files" / "data" / "evidence").iterdir())
    stored.write_bytes(b"something else")
    found = restore(tmp_path / "bk", target, tmp_path / "new-web", say=lambda _: None)
    assert not found.ok
    assert any("evidence/a1b2c3" in p and "哈希不符" in p for p in found.problems)
    assert not (tmp_path / "new-web" / "evidence" / "a1b2c3").exists()  # nothing damaged is put back

    dump = next(p for p in (tmp_path / "bk").iterdir() if p.name in ("database.sqlite", "database.dump"))
    dump.write_bytes(dump.read_bytes()[:-10])
    with pytest.raises(BackupError, match="已损坏"):
        restore(tmp_path / "bk", target, tmp_path / "other-web", say=lambda _: None)


def test_a_restore_never_writes_over_a_database_in_use(
    engine: Engine, notified: SimpleNamespace, data_dir: Path, tmp_path: Path
) -> None:
    backup(_url(engine), data_dir, tmp_path / "bk", NOW)
    with pytest.raises(BackupError, match="不是空库"):
        restore(tmp_path / "bk", _url(engine), tmp_path / "new-web", say=lambda _: None)
    with pytest.raises(BackupError, match="不是空目录"):
        backup(_url(engine), data_dir, tmp_path / "bk", NOW)


def test_a_restored_chain_that_does_not_reach_the_checkpoint_is_reported(
    engine: Engine, tx, notified: SimpleNamespace, data_dir: Path, target: str, tmp_path: Path
) -> None:
    backup(_url(engine), data_dir, tmp_path / "old", NOW)
    with tx() as s:
        confirm.confirm(s, notified.links[2], ip=None, user_agent=None, now=NOW)
    backup(_url(engine), data_dir, tmp_path / "new", NOW + dt.timedelta(hours=1))
    # An older database passed off with a newer checkpoint: the events after it are missing.
    shutil.copy(tmp_path / "new" / "checkpoint.json", tmp_path / "old" / "checkpoint.json")
    found = restore(tmp_path / "old", target, tmp_path / "new-web", say=lambda _: None)
    assert any("截断" in p for p in found.problems), found.problems
