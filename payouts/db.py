"""Where the payouts data lives: settings, the engine, the schema migrations and sessions.

The embedded default is an SQLite file under `var/`; production sets `ZHIDA_DATABASE_URL` to a
PostgreSQL URL. The schema is always made by alembic (`migrate`), never by `create_all`.

On PostgreSQL the service connects as a role that owns nothing (`grant_app_role`): it cannot alter
tables, disable the audit log's triggers, or update and delete its rows. The owner role migrates,
through `ZHIDA_MIGRATION_DATABASE_URL`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlmodel import Session

from payouts.tokens import DEVELOPMENT_LINK_KEY, LINK_KEY_ENV, link_key_problem
from rules.errors import PayoutError

DEFAULT_URL = "sqlite:///var/zhida.db"
MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x7A68_6964_6100  # PostgreSQL advisory lock key: one migrating process at a time
_SQLITE_READ_ONLY = "zhida_sqlite_read_only"  # execution option: this SQLite transaction only reads


@dataclass(frozen=True)
class PayoutSettings:
    """Everything payouts reads from the environment (`ZHIDA_` prefix), with working defaults."""

    database_url: str = DEFAULT_URL
    migration_database_url: str | None = None  # the owner's URL; the service's role owns nothing
    app_role: str | None = None  # the service's PostgreSQL role, granted its rights after each migration
    link_base: str = "https://zd.example.gov.cn/c/"  # the public confirm page; the token follows
    link_ttl_days: int = 30
    link_key: str = field(default=DEVELOPMENT_LINK_KEY, repr=False)  # derives the SMS link tokens (tokens.py)
    reminder_days: tuple[int, ...] = (3, 1)
    sms_sign: str = "惠企直达"
    # The service phone SMS and pages give where a policy names none: 12345, the government service hotline.
    service_phone: str = "12345"
    payer_name: str = "某市财政局"
    payer_account: str = "110060149018800012345"
    payer_bank: str = "中国工商银行某市分行营业部"
    # The batch CSV's encoding (payouts.bankfiles.ENCODINGS): UTF-8 with a BOM, or GB18030 where the
    # payer's bank asks for it. One deployment pays from one account, so it is a deployment setting.
    bank_csv_encoding: str = "utf-8-sig"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PayoutSettings:
        """Read the settings from `ZHIDA_*` variables; unset ones keep their defaults."""
        env = os.environ if env is None else env
        d = cls()

        def get(name: str, default: str) -> str:
            return env.get(f"ZHIDA_{name}", default)

        try:
            ttl = int(get("LINK_TTL_DAYS", str(d.link_ttl_days)))
            reminders = tuple(
                int(x) for x in get("SMS_REMINDER_DAYS", ",".join(map(str, d.reminder_days))).split(",") if x
            )
        except ValueError as e:
            raise PayoutError(f"ZHIDA_LINK_TTL_DAYS / ZHIDA_SMS_REMINDER_DAYS 应为整数：{e}") from e
        link_key = env.get(LINK_KEY_ENV) or DEVELOPMENT_LINK_KEY
        if env.get("ZHIDA_ENV") == "production" and (problem := link_key_problem(link_key)):
            raise PayoutError(problem)
        if ttl < 1 or any(r < 1 or r >= ttl for r in reminders):
            raise PayoutError(f"链接有效期 {ttl} 天，提醒应在到期前 1 至 {ttl - 1} 天：{reminders}")
        return cls(
            database_url=get("DATABASE_URL", d.database_url),
            migration_database_url=get("MIGRATION_DATABASE_URL", "") or None,
            app_role=get("APP_ROLE", "") or None,
            link_base=get("LINK_BASE", d.link_base),
            link_ttl_days=ttl,
            link_key=link_key,
            reminder_days=tuple(sorted(set(reminders), reverse=True)),
            sms_sign=get("SMS_SIGN", d.sms_sign),
            service_phone=get("SERVICE_PHONE", d.service_phone),
            payer_name=get("PAYER_NAME", d.payer_name),
            payer_account=get("PAYER_ACCOUNT", d.payer_account),
            payer_bank=get("PAYER_BANK", d.payer_bank),
            bank_csv_encoding=_bank_csv_encoding(get("BANK_CSV_ENCODING", d.bank_csv_encoding)),
        )


def _bank_csv_encoding(value: str) -> str:
    """`ZHIDA_BANK_CSV_ENCODING` as the CSV writer names it; refused, with what it may be, if unknown."""
    named = {"utf-8-sig": "utf-8-sig", "utf-8": "utf-8-sig", "utf8": "utf-8-sig", "gb18030": "gb18030"}
    encoding = named.get(value.strip().lower())
    if encoding is None:
        raise PayoutError(
            f"ZHIDA_BANK_CSV_ENCODING 的值 {value!r} 无效：应为 utf-8（带 BOM，默认）或 gb18030（开户银行要求时）"
        )
    return encoding


def normalize_url(url: str) -> str:
    """Point plain `postgresql://` URLs at the psycopg 3 driver, which is the one installed."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str | None = None, connections: int | None = None, **kwargs: Any) -> Engine:
    """An engine for `url` (default: the settings'), with SQLite made safe for concurrent writers.

    `connections`: how many sessions may be open at once without waiting for a connection (the pool's
    size; SQLAlchemy's 5, plus 10 overflow, when not given). A caller running N sessions in parallel
    must ask for at least N: a session waiting for a connection held by one that waits for it is a
    deadlock that only the pool's timeout ends.
    """
    url = normalize_url(url or PayoutSettings.from_env().database_url)
    parsed = make_url(url)
    in_memory = not parsed.database or parsed.database == ":memory:"
    if connections is not None and not (parsed.get_backend_name() == "sqlite" and in_memory):
        kwargs.setdefault("pool_size", connections)
        kwargs.setdefault("max_overflow", 10)  # background work and the odd extra session
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    if not in_memory:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, start transactions, so that `_on_begin` decides how.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA busy_timeout = 30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A transaction that may write takes the write lock up front: a deferred one that reads, then
        # writes, fails with SQLITE_BUSY when another writer got in between, instead of waiting its
        # turn. A read-only one must not take it: in WAL mode it reads its snapshot beside the one
        # writer, where BEGIN IMMEDIATE would queue every reader behind every other transaction.
        read_only = bool(conn.get_execution_options().get(_SQLITE_READ_ONLY))
        info = conn.connection.info
        if info.get(_SQLITE_READ_ONLY) != read_only:  # writes fail in a read-only transaction
            conn.exec_driver_sql(f"PRAGMA query_only = {int(read_only)}")
            info[_SQLITE_READ_ONLY] = read_only
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def alembic_config() -> Config:
    """The alembic configuration of the payouts migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def schema_state(engine: Engine) -> tuple[str | None, str | None]:
    """The database's migration revision and the latest one the code has (equal when up to date)."""
    from alembic.script import ScriptDirectory

    with engine.connect() as conn:
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    return current, ScriptDirectory.from_config(alembic_config()).get_current_head()


def migrate(target: str | Engine | None = None, revision: str = "head") -> None:
    """Bring the schema of `target` (a URL or an engine; default: the settings') to `revision`."""
    engine = target if isinstance(target, Engine) else make_engine(target)
    cfg = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    if not isinstance(target, Engine):
        engine.dispose()


_engines: dict[str, Engine] = {}


def connect(
    url: str | None = None, connections: int | None = None, migration_url: str | None = None
) -> Engine:
    """The process's engine for `url`, migrated to the latest schema on first use (`connections`: see
    `make_engine`; it counts on first use only).

    `migration_url` (default, when `url` is not given: `ZHIDA_MIGRATION_DATABASE_URL`) is the owner
    role's URL: the migration runs over it, then grants the service's role (`ZHIDA_APP_ROLE`) its rights
    on what the migration made. Without it, the migration runs over `url` (nothing to do at the latest
    revision, so a role that owns nothing can start a service whose schema is up to date).
    """
    settings = PayoutSettings.from_env()
    if url is None:
        migration_url = migration_url or settings.migration_database_url
    url = normalize_url(url or settings.database_url)
    if url not in _engines:
        engine = make_engine(url, connections)
        if migration_url:
            owner = make_engine(migration_url)
            migrate(owner)
            if settings.app_role:
                grant_app_role(owner, settings.app_role)
            owner.dispose()
        else:
            migrate(engine)
        _engines[url] = engine
    return _engines[url]


# What the service's role may do to each table: everything a request does, and no more. The audit log
# is appended to, never changed; its head only moves forward (a trigger, migration 0005).
_APPEND_ONLY = ("audit_event", "audit_member")
_REVOKED = {
    **{table: "UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER" for table in _APPEND_ONLY},
    "audit_head": "INSERT, DELETE, TRUNCATE, REFERENCES, TRIGGER",
    "alembic_version": "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER",
}


def grant_app_role(target: str | Engine, role: str) -> None:
    """Give the service's PostgreSQL role `role` the rights it needs on the schema, run as its owner.

    The role must exist (CREATE ROLE ... LOGIN, by a superuser) and own nothing, and must not be a
    superuser: then it can neither ALTER a table nor disable a trigger. It may read and write the
    tables, append to the audit log, move its head forward, and nothing else. Run again after every
    migration (`connect` does when `ZHIDA_APP_ROLE` is set).
    """
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.begin() as conn:
            if conn.dialect.name != "postgresql":
                raise PayoutError("数据库角色只适用于 PostgreSQL：SQLite 没有角色与权限")
            # One process at a time, like a migration: concurrent GRANTs on a table fail.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            _grant(conn, role)
    finally:
        if not isinstance(target, Engine):
            engine.dispose()


def _grant(conn: Connection, role: str) -> None:
    found = conn.execute(
        text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": role}
    ).first()
    if found is None:
        raise PayoutError(
            f"数据库角色 {role} 不存在：请先由超级用户执行 CREATE ROLE {role} LOGIN PASSWORD '…'"
        )
    if found.rolsuper or found.rolbypassrls:
        raise PayoutError(f"数据库角色 {role} 是超级用户（或可绕过行级安全）：应用角色不能有这些权限")
    owned = (
        conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND pg_has_role(:r, c.relowner, 'USAGE') ORDER BY 1"
            ),
            {"r": role},
        )
        .scalars()
        .all()
    )
    if owned:
        raise PayoutError(
            f"数据库角色 {role} 拥有（或通过角色成员关系拥有）表 {', '.join(owned[:5])}：应用角色不能是表的所有者，"
            "请用另一个角色连接服务"
        )
    quoted = conn.dialect.identifier_preparer.quote(role)
    schema = conn.dialect.identifier_preparer.quote(
        conn.execute(text("SELECT current_schema()")).scalar_one()
    )
    statements = [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {quoted}",
        f"REVOKE CREATE ON SCHEMA {schema} FROM {quoted}",
        f"GRANT USAGE ON SCHEMA {schema} TO {quoted}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}",
        *(f"REVOKE {rights} ON {table} FROM {quoted}" for table, rights in _REVOKED.items()),
    ]
    for statement in statements:
        conn.execute(text(statement))


@contextmanager
def transaction(engine: Engine, read_only: bool = False) -> Iterator[Session]:
    """A session whose work is committed at the end of the block, or rolled back on an error.

    `read_only`: the block only reads. On SQLite it then runs beside the writer instead of queueing for
    the write lock; on both backends a write in it fails (PostgreSQL: a READ ONLY transaction).
    """
    with Session(engine, expire_on_commit=False) as session, session.begin():
        if read_only:
            option = "postgresql_readonly" if engine.dialect.name == "postgresql" else _SQLITE_READ_ONLY
            session.connection(execution_options={option: True})
        yield session
