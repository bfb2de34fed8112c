"""Random identifiers that leave the system, and the SMS link tokens.

All come from `secrets` (batch line references, made by the database in INSERT ... SELECT, from its
strong random source); none is sequential. Link tokens carry 128 bits and are stored only as their
SHA-256 hash, so a copy of the database cannot be used to confirm anyone's offer.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

from sqlalchemy import ColumnElement, String, literal, literal_column

TOKEN_BYTES = 16  # 128 bits
ID_BYTES = 10  # 80 bits


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


def link_token() -> str:
    """A fresh SMS link token (URL-safe, 22 characters, 128 bits), never starting with `-`: a token
    pasted after `zhida offers confirm` would otherwise be read as an option."""
    while (token := secrets.token_urlsafe(TOKEN_BYTES)).startswith("-"):
        pass
    return token


def token_hash(token: str) -> str:
    """What is stored of a link token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()
