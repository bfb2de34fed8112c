"""The minutes after an SMS wave, on this machine (loopback only): `zhida bench wave`.

A fresh database (PostgreSQL; its name must start with `zhida_bench`) gets a synthetic snapshot matched,
imported and released, and `--links + --doubles` notices sent through an in-memory gateway that keeps
the links. Then `zhida serve --workers N` starts on that database (the confirmation page's rate limits
raised, so that the service, not the limiter, is measured), and `--clients` concurrent browsers, each
from its own loopback address and with its own cookies, take the links one after another: open the
page (GET), then confirm (POST with the page's CSRF token). For `--doubles` of the links the browser
sends the confirmation twice at once, as a double click does. A busy answer (503, when the service
has more requests than it serves at once) is tried again after its Retry-After, as the busy page does.

It prints the latency of each kind of request (p50, p95, p99), the confirmations per second, the
answers by status, and what the database holds afterwards: confirmations and
offers confirmed more than once (must be 0). Every loop is bounded in count and time; the server is
stopped (SIGTERM) at the end.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from devtools import confirm_rate, flow
from devtools.load import free_port, ms, source_address, start_service, stop

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
BUSY_TRIES = 5
CONFIRMED = "已确认"  # the receipt's headline word; the neutral page never says it


@dataclass
class Wave:
    """What the clients of the wave got."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    codes: dict[str, dict[str, int]] = field(default_factory=dict)
    busy: dict[str, int] = field(default_factory=dict)  # 503 answers, each tried again
    seconds: float = 0.0
    receipts: int = 0

    def note(self, kind: str, started: float, code: str) -> None:
        self.latencies.setdefault(kind, []).append(time.monotonic() - started)
        codes = self.codes.setdefault(kind, {})
        codes[code] = codes.get(code, 0) + 1

    def server_errors(self) -> int:
        """Final answers 500–599: a busy answer that stayed busy after every try counts here too."""
        return sum(n for c in self.codes.values() for k, n in c.items() if k.startswith("5"))

    def rows(self) -> list[str]:
        out = [
            "| request | count | p50 ms | p95 ms | p99 ms | max ms | final answers | busy (503), tried again |",
            "|---|---:|---:|---:|---:|---:|---|---:|",
        ]
        for kind, lat in self.latencies.items():
            answers = ", ".join(f"{k}: {n}" for k, n in sorted(self.codes[kind].items()))
            out.append(
                f"| {kind} | {len(lat)} | {ms(lat, 0.5)} | {ms(lat, 0.95)} | {ms(lat, 0.99)} | {ms(lat, 1.0)} | {answers} "
                f"| {self.busy.get(kind, 0)} |"
            )
        return out


async def _request(
    wave: Wave, kind: str, send: Callable[[], Coroutine[Any, Any, httpx.Response]], timeout: float
) -> httpx.Response | None:
    """One request as a person sees it: a busy answer (503) is tried again after its Retry-After, as
    the service's busy page does by itself, up to `BUSY_TRIES` times; the latency runs from the first
    try to the last answer, and each busy answer is counted."""
    started = time.monotonic()
    for attempt in range(1, BUSY_TRIES + 1):
        try:
            async with asyncio.timeout(timeout):
                response = await send()
        except (TimeoutError, httpx.TimeoutException):
            wave.note(kind, started, "timeout")
            return None
        except httpx.HTTPError as e:
            wave.note(kind, started, type(e).__name__)
            return None
        if response.status_code != 503 or attempt == BUSY_TRIES:
            break
        wave.busy[kind] = wave.busy.get(kind, 0) + 1
        await asyncio.sleep(min(5.0, float(response.headers.get("Retry-After", "1"))))
    wave.note(kind, started, str(response.status_code))
    return response


async def run_wave(base: str, links: list[str], doubles: set[str], clients: int, timeout: float) -> Wave:
    """`clients` browsers open and confirm every link once (the `doubles` with two clicks at once)."""
    wave = Wave()
    queue = list(reversed(links))
    browsers = [
        httpx.AsyncClient(
            base_url=base,
            timeout=timeout,
            transport=httpx.AsyncHTTPTransport(local_address=source_address(i)),
        )
        for i in range(clients)
    ]

    async def browser(c: httpx.AsyncClient) -> None:
        while queue:
            link = queue.pop()
            page = await _request(wave, "open (GET)", partial(c.get, link), timeout)
            found = CSRF.search(page.text) if page is not None and page.status_code == 200 else None
            if found is None:
                continue
            form = {"csrf": found.group(1)}
            clicks = 2 if link in doubles else 1
            kind = "confirm, double click (POST ×2)" if clicks == 2 else "confirm (POST)"
            answers = await asyncio.gather(
                *(
                    _request(wave, kind, partial(c.post, f"{link}/confirm", data=form), timeout)
                    for _ in range(clicks)
                )
            )
            if any(a is not None and a.status_code == 200 and CONFIRMED in a.text for a in answers):
                wave.receipts += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*(browser(c) for c in browsers))
    finally:
        wave.seconds = time.monotonic() - started
        await asyncio.gather(*(c.aclose() for c in browsers))
    return wave


def tally(url: str) -> dict[str, int]:
    """Confirmations in the database, and offers confirmed more than once."""
    from sqlalchemy import func, select

    from payouts.db import transaction
    from payouts.models import Confirmation

    with transaction(flow._engine(url)) as s:
        per_offer = (
            select(Confirmation.offer_id, func.count().label("n"))
            .where(Confirmation.kind == "confirm")
            .group_by(Confirmation.offer_id)
            .subquery()
        )
        return {
            "confirmations": s.scalar(select(func.coalesce(func.sum(per_offer.c.n), 0))) or 0,
            "twice": s.scalar(select(func.count()).select_from(per_offer).where(per_offer.c.n > 1)) or 0,
        }


def run(
    url: str,
    enterprises: int,
    links: int,
    doubles: int,
    clients: int,
    workers: int,
    timeout: float,
    work: Path,
) -> int:
    flow._check_url(url)
    if not url.startswith("postgresql"):
        raise SystemExit("the wave runs against PostgreSQL (several workers share one database)")
    work.mkdir(parents=True, exist_ok=True)
    print(f"preparing {enterprises:,} enterprises and {links + doubles:,} notices …", flush=True)
    tokens = confirm_rate.notified_links(
        enterprises, work, url, at=dt.datetime.now(dt.UTC), limit=links + doubles
    )
    if len(tokens) < links + doubles:
        raise SystemExit(
            f"only {len(tokens):,} offers need a confirmation at {enterprises:,} enterprises: "
            f"raise --enterprises"
        )
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        server = start_service(url, workers, port, Path(data), work / "server.log")
        try:
            paths = [f"/c/{t}" for t in tokens[: links + doubles]]
            wave = asyncio.run(
                run_wave(f"http://127.0.0.1:{port}", paths, set(paths[links:]), clients, timeout)
            )
        finally:
            took = stop(server)
    found = tally(url)
    print(
        f"\n{workers} workers, {clients} clients, {links:,} links + {doubles:,} double clicks "
        f"in {wave.seconds:.1f} s: {wave.receipts / wave.seconds:.0f} confirmations/s"
    )
    print("\n".join(wave.rows()))
    print(
        f"\nreceipts {wave.receipts:,}; in the database: {found['confirmations']:,} confirmations, "
        f"{found['twice']} offers confirmed twice; "
        f"server errors {wave.server_errors()}; "
        + (f"stopped in {took:.1f} s after SIGTERM" if took is not None else "not stopped in 30 s")
    )
    ok = found["twice"] == 0 and wave.server_errors() == 0 and found["confirmations"] == links + doubles
    return 0 if ok else 1
