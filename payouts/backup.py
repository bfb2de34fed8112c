"""Backup and restore: the database, the files it refers to, and proof that the copy is whole.

A backup is a folder:
- `database.dump` (PostgreSQL, `pg_dump` custom format) or `database.sqlite` (SQLite's online backup);
- `files/`: the service's data folder (match runs, evidence, bank files; caches
  left out) and every imported run folder kept elsewhere, each under the path it is restored to;
- `checkpoint.json`: a signed checkpoint of the audit chain's head, taken in the same snapshot as the
  dump (so the copy holds exactly the events up to it);
- `manifest.json`: the format, the time, the row count of every table (same snapshot), the audit
  head, and the size and SHA-256 of every file, the database's included.

`restore` loads it into an empty database and puts the files back (never over a different file),
then checks the copy: every file against its hash, every table's count against the manifest, and the
audit chain, recomputed under the audit key, against the checkpoint. Nothing is trusted that it did
not check.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, func, inspect, make_url, select, table, text
from sqlmodel import Session

from payouts import audit, checkpoints
from payouts.db import make_engine, migrate, normalize_url
from payouts.models import MatchRun
from rules.errors import PayoutError

FORMAT = "zhida-backup/1"
SKIPPED_DIRS = ("enterprise_cache",)  # caches the service rebuilds: not worth keeping
CHUNK = 1 << 20


class BackupError(PayoutError):
    """A backup that cannot be made or a copy that does not check out."""


@dataclass
class Report:
    """What a backup or a restore did and found."""

    folder: Path
    tables: dict[str, int] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    head_seq: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _libpq(url: str) -> str:
    """The URL as libpq (pg_dump, pg_restore) reads it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _schema(conn: Connection) -> str | None:
    """The migration the database is at (alembic's revision)."""
    if "alembic_version" not in inspect(conn).get_table_names():
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def _counts(conn: Connection) -> dict[str, int]:
    names = sorted(n for n in inspect(conn).get_table_names() if n != "alembic_version")
    return {n: int(conn.execute(select(func.count()).select_from(table(n))).scalar_one()) for n in names}


@contextmanager
def _postgres_snapshot(engine: Engine) -> Iterator[tuple[Connection, str]]:
    """A repeatable-read transaction kept open, and its exported snapshot id for `pg_dump --snapshot`."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        yield conn, str(snapshot)


def _run_files(conn: Connection, data_dir: Path) -> list[Path]:
    """Imported run folders kept outside the data folder."""
    inside = data_dir.resolve()
    found = []
    for (path,) in conn.execute(select(MatchRun.__table__.c.path)):
        folder = Path(path).resolve()
        if folder.is_dir() and not folder.is_relative_to(inside):
            found.append(folder)
    return sorted(set(found))


def _copy_tree(source: Path, out: Path, stored: str, restore_to: str, entries: list[dict[str, Any]]) -> None:
    """Copy the files under `source` to `out/stored`, listing each with where it is restored to
    (`restore_to` + its relative path; "data/…" means inside the restored data folder)."""
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(source)
        if relative.parts[0] in SKIPPED_DIRS:
            continue
        target = out / stored / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        entries.append(
            {
                "path": f"{stored}/{relative.as_posix()}",
                "restore_to": f"{restore_to}/{relative.as_posix()}",
                "size": target.stat().st_size,
                "sha256": _sha256(target),
            }
        )


def backup(url: str, data_dir: Path, out: Path, now: dt.datetime, key: bytes | None = None) -> Report:
    """Back up the database at `url` and the files to `out` (a new or empty folder)."""
    url = normalize_url(url)
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"备份目录 {out} 不是空目录：请指定一个新目录")
    out.mkdir(parents=True, exist_ok=True)
    key = key or audit.chain_key()
    engine = make_engine(url)
    report = Report(out)
    files: list[dict[str, Any]] = []
    try:
        if engine.dialect.name == "postgresql":
            with _postgres_snapshot(engine) as (conn, snapshot):
                report.tables, schema = _counts(conn), _schema(conn)
                cp = _checkpoint(conn, now, key)
                dump = out / "database.dump"
                done = subprocess.run(
                    ["pg_dump", "--format=custom", f"--snapshot={snapshot}", f"--file={dump}", _libpq(url)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if done.returncode != 0:
                    raise BackupError(f"pg_dump 失败：{done.stderr.strip()}")
                runs = _run_files(conn, data_dir)
        else:
            dump = out / "database.sqlite"
            source = make_url(url).database or ""
            with sqlite3.connect(source) as src, sqlite3.connect(dump) as dst:
                src.backup(dst)  # a consistent copy, taken while the service runs
                dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
            copy = create_engine(f"sqlite:///file:{dump}?mode=ro&uri=true")  # read without changing it
            with copy.connect() as conn:
                report.tables, schema = _counts(conn), _schema(conn)
                cp = _checkpoint(conn, now, key)
                runs = _run_files(conn, data_dir)
            copy.dispose()
        checkpoints.write(cp, out / "checkpoint.json")
        report.head_seq = cp.seq
        database = {
            "kind": engine.dialect.name,
            "file": dump.name,
            "size": dump.stat().st_size,
            "schema": schema,
        }
        database["sha256"] = _sha256(dump)
        if data_dir.is_dir():
            _copy_tree(data_dir, out, "files/data", "data", files)
        for i, folder in enumerate(runs):
            _copy_tree(folder, out, f"files/runs/{i:04d}", str(folder), files)
    finally:
        engine.dispose()
    manifest = {
        "format": FORMAT,
        "created_at": now.astimezone(dt.UTC).isoformat(),
        "database": database,
        "tables": report.tables,
        "audit": {"seq": cp.seq, "hash": cp.hash},
        "files": files,
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    report.files = len(files)
    report.bytes = database["size"] + sum(f["size"] for f in files)
    return report


def _checkpoint(conn: Connection, now: dt.datetime, key: bytes) -> checkpoints.Checkpoint:
    with Session(bind=conn) as s:
        return audit.take_checkpoint(s, now, key)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The backup's manifest; a folder that is not a backup is refused by name."""
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BackupError(f"{folder} 不是备份目录：无法读取 {path.name}（{e}）") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f'{path} 不是备份清单（应含 "format": "{FORMAT}"）')
    return manifest


def _empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return not inspect(conn).get_table_names()


def restore(
    folder: Path, url: str, data_dir: Path, *, key: bytes | None = None, say: Callable[[str], Any] = print
) -> Report:
    """Load the backup in `folder` into the empty database at `url` and the data folder `data_dir`,
    then check it whole (files, counts, audit chain against the checkpoint); returns what it found."""
    url = normalize_url(url)
    manifest = read_manifest(folder)
    report = Report(folder)
    database = manifest["database"]
    dump = folder / database["file"]
    if not dump.is_file() or _sha256(dump) != database["sha256"]:
        raise BackupError(
            f"备份中的数据库文件 {dump.name} 缺失或与清单中的哈希不符：备份已损坏，请换用其他备份"
        )
    engine = make_engine(url)
    try:
        if engine.dialect.name != database["kind"]:
            raise BackupError(f"这是 {database['kind']} 数据库的备份，不能恢复到 {engine.dialect.name}")
        if not _empty(engine):
            raise BackupError("目标数据库不是空库：只能恢复到新建的空数据库，以免覆盖现有数据")
        say(f"恢复数据库（{database['kind']}）")
        if database["kind"] == "postgresql":
            done = subprocess.run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--no-privileges",
                    "--single-transaction",
                    "--exit-on-error",
                    f"--dbname={_libpq(url)}",
                    str(dump),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise BackupError(f"pg_restore 失败：{done.stderr.strip()}")
        else:
            engine.dispose()
            target = Path(make_url(url).database or "")
            target.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(f"file:{dump}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
                src.backup(dst)
        say("升级数据库结构（备份来自旧版本时）")
        migrate(engine)
        say("恢复文件")
        _restore_files(folder, manifest["files"], data_dir, report)
        say("核对行数与审计链")
        with engine.connect() as conn:
            report.tables = _counts(conn)
            for name, expected in manifest["tables"].items():
                if report.tables.get(name) != expected:
                    report.problems.append(
                        f"表 {name} 恢复后有 {report.tables.get(name, 0):,} 行，清单为 {expected:,} 行"
                    )
            with Session(bind=conn) as s:
                checked = audit.verify(s, key=key, against=[checkpoints.load(folder / "checkpoint.json")])
            report.head_seq = checked.head_seq
            report.problems += checked.problems
            if checked.head_seq != manifest["audit"]["seq"]:
                report.problems.append(
                    f"审计链头为第 {checked.head_seq} 条，清单为第 {manifest['audit']['seq']} 条"
                )
    finally:
        engine.dispose()
    return report


def _restore_files(folder: Path, entries: list[dict[str, Any]], data_dir: Path, report: Report) -> None:
    for entry in entries:
        source = folder / entry["path"]
        place = entry["restore_to"]
        target = data_dir / place.removeprefix("data/") if place.startswith("data/") else Path(place)
        if not source.is_file() or _sha256(source) != entry["sha256"]:
            report.problems.append(f"备份中的文件 {entry['path']} 缺失或已损坏（哈希不符）")
            continue
        if target.exists():
            if _sha256(target) != entry["sha256"]:
                report.problems.append(f"{target} 已存在且内容不同：未覆盖，请核对后手工处理")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        report.files += 1
        report.bytes += entry["size"]
