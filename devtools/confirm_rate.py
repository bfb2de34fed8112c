"""How many one-click confirmations per second the database takes, and what the audit chain costs them:
`zhida bench confirm`.

Enterprises confirm one request each; every confirmation appends one audit event, and appends take
turns on the chain's head row (SELECT ... FOR UPDATE). For each number of concurrent clients (threads,
each with its own connection and one transaction per confirmation, as the service does), the
benchmark confirms distinct offers for a few seconds, twice: with the real audit append, and with the
append replaced by nothing. The ratio of the two rates says how much the head row costs; if the head
were the bottleneck, the rate with it would stop growing with clients while the rate without it grew.

The offers come from the flow benchmark's stages on a small synthetic snapshot (match, import, release,
notices through an in-memory gateway that keeps the links). The database is recreated as in
`devtools.flow` (on PostgreSQL its name must start with `zhida_bench`).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools import flow


@dataclass(frozen=True)
class Rate:
    clients: int
    chain: bool
    confirmed: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.confirmed / self.seconds if self.seconds else 0.0


def notified_links(
    enterprises: int, work: Path, url: str, *, at: dt.datetime | None = None, limit: int | None = None
) -> list[str]:
    """A fresh database with the confirmation-needing offers notified (`limit` of them, else all) at
    `at` (default: the flow's clock); their link tokens."""
    from payouts import sms
    from payouts.db import PayoutSettings

    flow._check_url(url)
    flow.prepare(work, enterprises, 0, url)
    for stage in ("match", "import", "release"):
        flow._RUNNERS[stage](work, enterprises, 0, url)
    phone = sms.MemoryGateway()
    settings = PayoutSettings(database_url=url)
    when = at or flow.T0 + dt.timedelta(hours=2)
    sms.send_notices_in_chunks(flow._engine(url), phone, when, settings, limit=limit)
    return [m.params["link"].removeprefix(settings.link_base) for m in phone.sent]


@contextmanager
def _without_chain() -> Iterator[None]:
    """Audit appends do nothing for the block (a measurement of what they cost, never the product)."""
    from payouts import audit

    real = audit.append
    audit.append = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        yield
    finally:
        audit.append = real  # type: ignore[assignment]


def measure(url: str, tokens: list[str], clients: int, seconds: float, *, chain: bool) -> Rate:
    """`clients` threads confirm the next unused token, each in its own transaction, for `seconds`."""
    from payouts import confirm
    from payouts.db import make_engine, transaction

    engine = make_engine(url, connections=clients)
    lock = threading.Lock()
    done = [0]
    stop = time.monotonic() + seconds
    now = flow.T0 + dt.timedelta(days=1)

    def client() -> None:
        while time.monotonic() < stop:
            with lock:
                if not tokens:
                    return
                token = tokens.pop()
            with transaction(engine) as s:
                confirm.confirm(s, token, ip="203.0.113.7", user_agent="bench", now=now)
            with lock:
                done[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    with nullcontext() if chain else _without_chain():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    engine.dispose()
    return Rate(clients, chain, done[0], time.monotonic() - started)


def run(
    enterprises: int,
    work: Path,
    url: str | None,
    levels: list[int],
    seconds: float,
    report: Callable[[Rate], Any],
) -> list[Rate]:
    url = url or f"sqlite:///{(work / 'confirm.db').resolve()}"
    work.mkdir(parents=True, exist_ok=True)
    tokens = notified_links(enterprises, work, url)
    share = len(tokens) // (2 * len(levels))  # each run confirms offers of its own
    rates = []
    for clients in levels:
        for chain in (True, False):
            mine, tokens = tokens[:share], tokens[share:]
            rate = measure(url, mine, clients, seconds, chain=chain)
            report(rate)
            rates.append(rate)
    return rates
