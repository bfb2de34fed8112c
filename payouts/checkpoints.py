"""Signed checkpoints of the audit chain's head, kept outside the database.

A checkpoint is a small JSON file: the head's `seq` and `hash`, the time it was taken, and an
HMAC-SHA256 signature over them under the audit key (`ZHIDA_AUDIT_KEY`, see `payouts.audit.chain_key`).
Whoever owns the database can cut the end of the log and set `audit_head` back, but cannot change a
file kept elsewhere: `zhida audit verify --checkpoint` then finds the head behind the checkpoint, or
the event at the checkpoint's `seq` with another hash.

This module only signs, writes and reads the files; `payouts.audit` takes them (when a batch is
approved, and once a day) and checks the chain against them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path

from rules.errors import PayoutError

FORMAT = "zhida-audit-checkpoint/1"
DIR_ENV = "ZHIDA_AUDIT_CHECKPOINT_DIR"
_DOMAIN = b"zhida audit checkpoint\n"  # a checkpoint signature is never a valid chain hash, nor back


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain's head at one moment, signed: event `seq` had hash `hash` at time `at` (UTC)."""

    seq: int
    hash: str
    at: str
    signature: str
    source: str = ""  # the file it was read from, to name it in messages

    @staticmethod
    def signed(key: bytes, seq: int, head_hash: str, at: dt.datetime) -> Checkpoint:
        at_text = at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Checkpoint(seq, head_hash, at_text, _signature(key, seq, head_hash, at_text))

    def valid(self, key: bytes) -> bool:
        """Whether the signature is the audit key's over this seq, hash and time."""
        return hmac.compare_digest(self.signature, _signature(key, self.seq, self.hash, self.at))

    def to_json(self) -> str:
        body = {"format": FORMAT, "seq": self.seq, "hash": self.hash, "at": self.at, "hmac": self.signature}
        return json.dumps(body, indent=2) + "\n"


def _signature(key: bytes, seq: int, head_hash: str, at_text: str) -> str:
    message = _DOMAIN + f"{FORMAT}\n{seq}\n{head_hash}\n{at_text}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def write(checkpoint: Checkpoint, path: Path) -> Path:
    """Write `checkpoint` to `path` whole or not at all (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(checkpoint.to_json(), encoding="utf-8")
    os.replace(partial, path)
    return path


def file_name(checkpoint: Checkpoint) -> str:
    """`audit-<UTC time>-<seq>.json`: the names of a directory sort by time."""
    stamp = checkpoint.at.replace("-", "").replace(":", "")
    return f"audit-{stamp}-{checkpoint.seq:012d}.json"


def write_into(directory: Path, checkpoint: Checkpoint) -> Path:
    """Add `checkpoint` to a checkpoint directory."""
    return write(checkpoint, directory / file_name(checkpoint))


def taken_on(directory: Path, day: dt.date) -> bool:
    """Whether `directory` holds a checkpoint taken on `day` (UTC)."""
    return any(directory.glob(f"audit-{day:%Y%m%d}T*.json"))


def directory(env: dict[str, str] | None = None) -> Path | None:
    """The checkpoint directory (`ZHIDA_AUDIT_CHECKPOINT_DIR`), or None when none is set."""
    value = (os.environ if env is None else env).get(DIR_ENV, "").strip()
    return Path(value) if value else None


def load(path: Path) -> Checkpoint:
    """Read one checkpoint file; a file that is not one is refused by name."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PayoutError(f"无法读取审计检查点 {path}：{e}") from e
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise PayoutError(f'{path} 不是审计检查点文件（应含 "format": "{FORMAT}"）')
    seq, head_hash, at, signature = (body.get(k) for k in ("seq", "hash", "at", "hmac"))
    if not (type(seq) is int and seq >= 0 and all(isinstance(v, str) for v in (head_hash, at, signature))):
        raise PayoutError(f"审计检查点 {path} 缺少或写错了字段（seq 为整数，hash、at、hmac 为文本）")
    return Checkpoint(seq, str(head_hash), str(at), str(signature), source=str(path))


def load_all(paths: list[Path]) -> list[Checkpoint]:
    """Read checkpoint files and directories (every `audit-*.json` in them), in the order given."""
    found: list[Checkpoint] = []
    for path in paths:
        if path.is_dir():
            found += [load(p) for p in sorted(path.glob("audit-*.json"))]
        else:
            found.append(load(path))
    return found
