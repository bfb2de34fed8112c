"""Random identifiers that leave the system, and the SMS link tokens.

All come from `secrets` (batch line references, made by the database in INSERT ... SELECT, from its
strong random source); none is sequential. Link tokens carry 128 bits and are stored only as their
SHA-256 hash, so a copy of the database cannot be used to confirm anyone's offer.

An SMS link token is not drawn at random but derived (HMAC-SHA-256) from the link key
(`ZHIDA_LINK_KEY`, held by the application, never stored in the database) and the identity of the
outbox row's attempt (the offer's random public id, its round, the message kind, the attempt number):
a message re-sent after a crash carries the same token, so the enterprise's link works whichever
copy the provider kept, and a database reader without the key still cannot build a link. The
provider-side idempotency key of the message is derived the same way, under another label.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from sqlalchemy import ColumnElement, String, literal, literal_column

TOKEN_BYTES = 16  # 128 bits
ID_BYTES = 10  # 80 bits
LINK_KEY_ENV = "ZHIDA_LINK_KEY"
# Development only, and public: with it, anyone holding the database could build the open links.
DEVELOPMENT_LINK_KEY = "zhida-development-link-key/public/never-use-in-production"
MIN_LINK_KEY_CHARS = 32


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def public_id() -> str:
    """An offer's public id: 20 hexadecimal characters (80 bits)."""
    return secrets.token_hex(ID_BYTES)


def public_ids(n: int) -> list[str]:
    """`n` public ids at once (one call to the random source, for bulk imports)."""
    raw = secrets.token_bytes(ID_BYTES * n).hex()
    width = 2 * ID_BYTES
    return [raw[i : i + width] for i in range(0, width * n, width)]


def reference(prefix: str) -> str:
    """A bank reference: `prefix` and 16 upper-case base32 characters (fits ISO 20022 Max35Text)."""
    return prefix + _b32(secrets.token_bytes(ID_BYTES))


def reference_sql(dialect: str, prefix: str) -> ColumnElement[str]:
    """A bank reference made by the database for each row of an INSERT ... SELECT: `prefix` and 20
    upper-case hexadecimal characters (80 bits) from the database's strong random source
    (PostgreSQL's gen_random_uuid, SQLite's randomblob)."""
    if dialect == "postgresql":
        random = "upper(substr(md5(gen_random_uuid()::text), 1, 20))"
    else:
        random = "hex(randomblob(10))"
    return literal(prefix, String) + literal_column(random, String)


def token_hash(token: str) -> str:
    """What is stored of a link token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def link_key_problem(value: str | None) -> str | None:
    """Why `value` cannot be the production link key, or None when it can."""
    if not value or value == DEVELOPMENT_LINK_KEY or len(value) < MIN_LINK_KEY_CHARS:
        return (
            f"生产环境须设置 {LINK_KEY_ENV}（短信链接密钥，至少 {MIN_LINK_KEY_CHARS} 个字符的随机值，"
            "不得存入数据库；更换后，发送中断的短信无法按原样重发）"
        )
    return None


def _derive(key: str, label: str, identity: str) -> bytes:
    return hmac.new(key.encode(), f"{label}\0{identity}".encode(), hashlib.sha256).digest()


def derived_link_token(key: str, identity: str) -> str:
    """The SMS link token of one outbox attempt (`identity`): 22 URL-safe characters (128 bits), the
    same every time for the same key and identity, never starting with `-`: a token
    pasted after `zhida offers confirm` would otherwise be read as an option."""
    token = base64.urlsafe_b64encode(_derive(key, "link", identity)[:TOKEN_BYTES]).decode().rstrip("=")
    return "_" + token[1:] if token.startswith("-") else token


def sms_key(key: str, identity: str) -> str:
    """The provider-side idempotency key of one outbox attempt: 32 hexadecimal characters, the same for
    every hand-over of that attempt, telling nothing of its link token."""
    return _derive(key, "sms-key", identity)[:16].hex()
