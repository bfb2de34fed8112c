"""Rewriting the audit log as its database owner: caught by the keyed chain and signed checkpoints.

The attacker owns the tables (as the migrations' role does): they can disable the append-only
triggers, cut the end of the log and set `audit_head` back, change a row and recompute every later
hash, or delete a row and re-link the chain. They do not hold `ZHIDA_AUDIT_KEY`, and cannot change
the checkpoint files kept outside the database. The service itself connects as a role that owns
nothing, and can do none of this.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from api.commands import audit as audit_cmd
from api.commands import db as db_cmd
from api.settings import Settings
from payouts import audit, batches, checkpoints, confirm
from payouts.db import _engines as db_engines
from payouts.db import connect, grant_app_role, make_engine, migrate, normalize_url, transaction
from payouts.models import AuditEvent
from rules.errors import PayoutError
from tests.payouts.conftest import PG_ADMIN, T0, add_staff

KEY = "test-audit-key-" + "k" * 40
NOW = dt.datetime(2026, 12, 7, 3, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(audit.KEY_ENV, KEY)
    monkeypatch.delenv(checkpoints.DIR_ENV, raising=False)


def _url(name: str, user: str) -> str:
    return f"postgresql://{user}@127.0.0.1:5432/{name}"


@pytest.fixture(scope="module")
def roles() -> Iterator[SimpleNamespace]:
    """A PostgreSQL database whose tables an owner role (no superuser) made, and an app role granted
    by `grant_app_role`; both roles get a random suffix and are dropped at the end."""
    suffix = secrets.token_hex(4)
    name, owner, app = f"zhida_test_{suffix}", f"zhida_owner_{suffix}", f"zhida_app_{suffix}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({e})")
    admin.execute(f'CREATE ROLE "{owner}" LOGIN')
    admin.execute(f'CREATE ROLE "{app}" LOGIN')
    admin.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    engines: list[Engine] = []
    try:
        as_owner = make_engine(_url(name, owner))
        migrate(as_owner)  # migrations run as the owner
        grant_app_role(as_owner, app)
        as_app = make_engine(_url(name, app))
        as_admin = make_engine(_url(name, "postgres"))
        engines += [as_owner, as_app, as_admin]
        yield SimpleNamespace(
            owner=as_owner, app=as_app, admin=as_admin, name=name, app_role=app, owner_role=owner
        )
    finally:
        for e in engines:
            e.dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{app}"')
        admin.execute(f'DROP ROLE IF EXISTS "{owner}"')
        admin.close()


@pytest.fixture
def log(roles: SimpleNamespace) -> SimpleNamespace:
    """The roles' database emptied, then 6 staff users and 14 notes written by the service's role."""
    with roles.admin.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("DELETE FROM audit_member"))
        conn.execute(text("DELETE FROM audit_event"))
        conn.execute(text("DELETE FROM staff_user"))
        conn.execute(text("UPDATE audit_head SET seq = 0, hash = :h"), {"h": audit.GENESIS})
    with transaction(roles.app) as s:
        add_staff(s)
    for i in range(14):
        with transaction(roles.app) as s:
            audit.record(s, T0 + dt.timedelta(minutes=i), "rev", "note", "user", f"u{i}", reason=f"第 {i} 次")
    return roles


def _checkpoint(engine: Engine, path: Path, *, into: bool = False) -> Path:
    with transaction(engine) as s:
        cp = audit.take_checkpoint(s, NOW)
    return checkpoints.write_into(path, cp) if into else checkpoints.write(cp, path)


def _rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        table = AuditEvent.__table__
        return [dict(r) for r in conn.execute(select(table).order_by(table.c.seq)).mappings()]


Hash = Callable[[str, dict[str, Any], str | None], str]


def _rewrite_as_owner(
    owner: Engine, rows: list[dict[str, Any]], start: int, hashing: Hash | None, chain: int
) -> None:
    """As the tables' owner: disable the triggers, replace every event from seq `start` on with `rows`
    (renumbered and, with `hashing`, re-linked and re-hashed), set the head to the last, enable them."""
    new = [dict(r) for r in rows]
    prev = new[start - 2]["hash"] if start > 1 else audit.GENESIS
    for i, row in enumerate(new[start - 1 :], start=start):
        row["seq"] = i
        if hashing is not None:
            row["prev_hash"], row["chain"] = prev, chain
            row["hash"] = prev = hashing(prev, row, None)
    with owner.begin() as conn:
        for table in ("audit_event", "audit_member", "audit_head"):
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        conn.execute(text("DELETE FROM audit_event WHERE seq >= :s"), {"s": start})
        if new[start - 1 :]:
            conn.execute(AuditEvent.__table__.insert(), new[start - 1 :])
        last = new[-1]
        conn.execute(text("UPDATE audit_head SET seq = :q, hash = :h"), {"q": last["seq"], "h": last["hash"]})
        for table in ("audit_event", "audit_member", "audit_head"):
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))


def _verify(engine: Engine, *files: Path) -> audit.Verification:
    with transaction(engine, read_only=True) as s:
        return audit.verify(s, against=checkpoints.load_all(list(files)))


def _cli_verify(roles: SimpleNamespace, file: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """`zhida audit verify --checkpoint FILE`, connected as the service's role: exit code and output."""
    monkeypatch.setenv("ZHIDA_DATABASE_URL", _url(roles.name, roles.app_role))
    result = CliRunner().invoke(audit_cmd.app, ["verify", "--checkpoint", str(file)])
    return SimpleNamespace(exit_code=result.exit_code, output=result.output.replace("\n", ""))


def test_an_untampered_log_verifies_against_its_checkpoints(log, tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "checkpoints"
    _checkpoint(log.app, folder, into=True)
    with transaction(log.app) as s:
        audit.record(s, T0, "rev", "note", "user", "later")
    _checkpoint(log.app, folder, into=True)
    report = _verify(log.app, folder)
    assert report.ok, report.problems
    assert (report.events, report.checkpoints) == (21, 2)
    result = _cli_verify(log, folder, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "审计日志完整" in result.output and "对照 2 个签名检查点" in result.output


def test_a_cut_tail_with_the_head_set_back_is_caught_by_the_checkpoint(
    log, tmp_path: Path, monkeypatch
) -> None:
    file = _checkpoint(log.app, tmp_path / "cp.json")
    _rewrite_as_owner(log.owner, _rows(log.owner)[:17], 18, None, audit.KEYED)
    assert _verify(log.app).ok  # the shorter chain holds: only the checkpoint can tell
    report = _verify(log.app, file)
    assert any(
        "日志末尾被截断" in p and "记录到第 20 条，库中最后一条是第 17 条" in p for p in report.problems
    ), report.problems
    result = _cli_verify(log, file, monkeypatch)
    assert result.exit_code == 1
    assert "审计日志校验失败" in result.output and "第 20 条" in result.output


@pytest.mark.parametrize(
    ("hashing", "chain"),
    [(audit.legacy_hash, audit.LEGACY), (audit.hasher(b"a key the attacker guessed"), audit.KEYED)],
    ids=["unkeyed", "wrong-key"],
)
def test_a_changed_row_with_every_later_hash_recomputed_is_caught(
    log, tmp_path: Path, monkeypatch, hashing: Hash, chain: int
) -> None:
    file = _checkpoint(log.app, tmp_path / "cp.json")
    rows = _rows(log.owner)
    rows[9]["reason"] = "改过"
    _rewrite_as_owner(log.owner, rows, 10, hashing, chain)
    report = _verify(log.app, file)
    assert not report.ok
    assert any(p.startswith("第 10 条") for p in report.problems), report.problems  # where it breaks
    assert any("第 20 条的哈希与检查点" in p for p in report.problems), report.problems
    result = _cli_verify(log, file, monkeypatch)
    assert result.exit_code == 1 and "第 10 条" in result.output


def test_a_deleted_middle_row_with_the_chain_relinked_is_caught(log, tmp_path: Path, monkeypatch) -> None:
    file = _checkpoint(log.app, tmp_path / "cp.json")
    rows = _rows(log.owner)
    del rows[11]  # seq 12 goes; 13..20 become 12..19, re-linked and re-hashed without the key
    _rewrite_as_owner(log.owner, rows, 12, audit.hasher(b"not the key"), audit.KEYED)
    report = _verify(log.app, file)
    assert any(p.startswith("第 12 条的内容与其哈希不符") for p in report.problems), report.problems
    assert any("日志末尾被截断" in p and "第 20 条" in p for p in report.problems), report.problems
    assert _cli_verify(log, file, monkeypatch).exit_code == 1


def test_a_checkpoint_file_changed_by_hand_is_refused(log, tmp_path: Path) -> None:
    file = _checkpoint(log.app, tmp_path / "cp.json")
    body = json.loads(file.read_text())
    body["seq"] = 17  # to match a cut tail
    file.write_text(json.dumps(body))
    report = _verify(log.app, file)
    assert any("签名不符" in p for p in report.problems), report.problems


def test_the_service_role_can_append_but_not_rewrite_the_log(log) -> None:
    for statement in (
        "ALTER TABLE audit_event DISABLE TRIGGER ALL",
        "ALTER TABLE audit_event DISABLE TRIGGER USER",
        "ALTER TABLE audit_head ADD COLUMN note text",
        "UPDATE audit_event SET reason = 'x' WHERE seq = 3",
        "DELETE FROM audit_event WHERE seq = 20",
        "TRUNCATE audit_event",
        "DELETE FROM audit_member",
        "UPDATE audit_head SET seq = 17, hash = (SELECT hash FROM audit_event WHERE seq = 17)",
        "UPDATE audit_head SET seq = 21, hash = repeat('0', 64)",
        "DELETE FROM audit_head",
        "SET session_replication_role = replica",
        "UPDATE alembic_version SET version_num = '0001'",
    ):
        with pytest.raises(DBAPIError), log.app.begin() as conn:
            conn.execute(text(statement))
    with transaction(log.app) as s:  # appends still work, and the chain holds
        audit.record(s, T0, "rev", "note", "user", "after")
    report = _verify(log.app)
    assert report.ok and report.events == 21, report.problems


def test_grant_refuses_a_role_that_owns_the_tables(roles) -> None:
    owner = roles.owner.url.username
    with pytest.raises(PayoutError, match="不能是表的所有者"):
        grant_app_role(roles.owner, owner)


def test_approving_a_batch_writes_a_checkpoint_of_the_head(
    engine, tx, notified, t0, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv(checkpoints.DIR_ENV, str(tmp_path / "cps"))
    hour = dt.timedelta(hours=1)
    with tx() as s:
        for n in (1, 2, 3, 4):
            confirm.confirm(s, notified.links[n], ip="203.0.113.1", user_agent="t", now=t0 + hour)
    with tx() as s:
        ref = batches.create_batch(s, "wengang", "maker", t0 + 2 * hour).reference
    with tx() as s:
        batches.approve(s, ref, "checker", t0 + 3 * hour)
        head = (s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)),)
    written = checkpoints.load_all([tmp_path / "cps"])
    assert [cp.seq for cp in written][-1:] == [head[0]]  # the approval's own event, signed
    with tx() as s:
        assert audit.verify(s, against=written).ok


def test_a_checkpoint_is_written_at_most_once_a_day_besides_approvals(
    engine, tmp_path: Path, monkeypatch
) -> None:
    folder = tmp_path / "daily"
    monkeypatch.setenv(checkpoints.DIR_ENV, str(folder))
    for i in range(3):
        with transaction(engine) as s:
            audit.record(s, T0, "rev", "note", "user", f"d{i}")
    written = checkpoints.load_all([folder])
    assert len(written) == 1  # the first transaction of the day that recorded an event
    with transaction(engine) as s:
        assert audit.verify(s, against=written).ok


def test_verify_with_another_key_says_the_key_is_wrong(engine) -> None:
    with transaction(engine) as s:
        report = audit.verify(s, key=b"another key")
    assert not report.ok and any("ZHIDA_AUDIT_KEY 不是写入日志时的密钥" in p for p in report.problems)


def test_production_refuses_a_missing_or_development_audit_key(monkeypatch) -> None:
    monkeypatch.delenv(audit.KEY_ENV)
    safe = {
        "env": "production",
        "secret_key": "x" * 40,
        "database_url": "postgresql://db/zhida",
        "cookie_secure": True,
        "public_url": "https://zd.example.gov.cn",
        "audit_checkpoint_dir": "/srv/zhida-checkpoints",
        "link_key": "l" * 40,
    }
    for key in (None, "short", audit.DEVELOPMENT_KEY):
        with pytest.raises(ValidationError, match="ZHIDA_AUDIT_KEY"):
            Settings(**safe, **({"audit_key": key} if key else {}))
    with pytest.raises(ValidationError, match="ZHIDA_AUDIT_CHECKPOINT_DIR"):
        Settings(**{**safe, "audit_checkpoint_dir": None}, audit_key="k" * 40)
    assert Settings(**safe, audit_key="k" * 40).env == "production"
    # The core refuses it too, for the command line.
    monkeypatch.setenv("ZHIDA_ENV", "production")
    with pytest.raises(PayoutError, match="ZHIDA_AUDIT_KEY"):
        audit.chain_key()


def test_the_checkpoint_command_signs_a_sound_head_and_refuses_a_broken_one(
    log, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("ZHIDA_DATABASE_URL", _url(log.name, log.app_role))
    runner = CliRunner()
    out = tmp_path / "cp.json"
    result = runner.invoke(audit_cmd.app, ["checkpoint", "--out", str(out)])
    assert result.exit_code == 0, result.output
    cp = checkpoints.load(out)
    assert cp.seq == 20 and cp.valid(KEY.encode())
    rows = _rows(log.owner)
    rows[4]["actor"] = "someone"
    _rewrite_as_owner(log.owner, rows, 5, audit.legacy_hash, audit.LEGACY)
    refused = runner.invoke(audit_cmd.app, ["checkpoint", "--out", str(tmp_path / "after.json")])
    assert refused.exit_code == 1 and "不签发检查点" in refused.output
    assert not (tmp_path / "after.json").exists()


def test_db_grant_gives_the_service_role_its_rights_again(roles) -> None:
    owner_url = roles.owner.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(db_cmd.app, ["grant", "--app-role", roles.app_role, "--url", owner_url])
    assert result.exit_code == 0, (result.output, result.exception)
    with pytest.raises(DBAPIError), roles.app.begin() as conn:
        conn.execute(text("DELETE FROM audit_event"))


def test_the_service_migrates_as_the_owner_and_runs_as_the_role_that_owns_nothing(roles, monkeypatch) -> None:
    name = f"zhida_test_{secrets.token_hex(4)}"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}" OWNER "{roles.owner_role}"')
    monkeypatch.setenv("ZHIDA_APP_ROLE", roles.app_role)
    app_url = normalize_url(_url(name, roles.app_role))
    try:
        service = connect(app_url, migration_url=_url(name, roles.owner_role))
        with transaction(service) as s:
            audit.record(s, T0, "rev", "note", "user", "u1")
        with pytest.raises(DBAPIError, match="must be owner"), service.begin() as conn:
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
        with transaction(service) as s:
            assert audit.verify(s).ok
    finally:
        db_engines.pop(app_url).dispose()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
