"""Time to first byte of the console's lists on a large database: `zhida bench console`.

Run it on the database of `zhida bench flow` (e.g. 1,000,000 enterprises on PostgreSQL): `zhida serve`
starts on it, each list is asked for `repeats` times by `clients` signed-in staff at once (after one
request that is not counted), and a table gives the time to the first byte (p50, p95, max), the time
to the last byte and the page's size. The service and the clients share this machine's cores.
Before it starts, the database is vacuumed and analysed, as autovacuum does on a live database soon
after the flow's bulk writes (without it the planner's statistics describe the empty tables).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import select

from devtools import flow
from devtools.load import free_port, ms, start_service, stop


@dataclass
class Page:
    """What one console list took."""

    name: str
    path: str
    first_byte: list[float] = field(default_factory=list)
    last_byte: list[float] = field(default_factory=list)
    size: int = 0
    codes: dict[int, int] = field(default_factory=dict)

    def row(self) -> str:
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(self.codes.items()))
        return (
            f"| {self.name} | `{self.path}` | {ms(self.first_byte, 0.5)} | {ms(self.first_byte, 0.95)} "
            f"| {ms(self.first_byte, 1.0)} | {ms(self.last_byte, 0.95)} | {self.size / 1024:,.0f} | {codes} |"
        )


HEADER = (
    "| list | path | first byte p50 ms | p95 ms | max ms | last byte p95 ms | KiB | answers |\n"
    "|---|---|---:|---:|---:|---:|---:|---|"
)


def pages(url: str) -> list[tuple[str, str, str]]:
    """(name, path, who asks) of the lists to time, with a batch and a deep page of the real data."""
    from payouts.db import transaction
    from payouts.models import Batch, Offer

    with transaction(flow._engine(url)) as s:
        batch = s.scalars(select(Batch.reference).order_by(Batch.id.desc()).limit(1)).first()
        total = s.scalar(select(Offer.id).order_by(Offer.id.desc()).limit(1)) or 0
        paid = s.scalars(select(Offer.uscc).where(Offer.state == "in_batch").limit(1)).first()
    found = [
        ("offers", "/console/offers", flow.REVIEWER),
        ("offers, one state", "/console/offers?state=notified", flow.REVIEWER),
        ("offers, by name", "/console/offers?name=%E7%A7%91%E6%8A%80", flow.REVIEWER),
        ("offers, deep page", f"/console/offers?offset={total // 2}", flow.REVIEWER),
        ("review queue", "/console/review", flow.REVIEWER),
        ("review queue, one industry", "/console/review?industry=C", flow.REVIEWER),
        ("review queue, one size class", "/console/review?size_class=medium", flow.REVIEWER),
        (
            "review queue, rare industry and size",
            "/console/review?industry=M&size_class=large",
            flow.REVIEWER,
        ),
        ("batches", "/console/batches", flow.MAKER),
    ]
    if batch:
        found.append(("one batch", f"/console/batches/{batch}", flow.MAKER))
    found.append(("audit log, one action", "/console/audit?action=release", flow.AUDITOR))
    if paid:
        found.append(("audit log, one enterprise", f"/console/audit?enterprise={paid}", flow.AUDITOR))
    return found


async def measure(base: str, page: Page, token: str, clients: int, repeats: int) -> Page:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as warm:
        await warm.get(page.path)
    left = [repeats]

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as c:
            while left[0] > 0:
                left[0] -= 1
                started = time.monotonic()
                async with c.stream("GET", page.path) as response:
                    page.first_byte.append(time.monotonic() - started)
                    body = await response.aread()
                page.last_byte.append(time.monotonic() - started)
                page.size = len(body)
                page.codes[response.status_code] = page.codes.get(response.status_code, 0) + 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return page


def run(url: str, password: str, clients: int, repeats: int, workers: int, work: Path) -> list[Page]:
    """Time every list; the staff users of the flow benchmark sign in with `password`."""
    work.mkdir(parents=True, exist_ok=True)
    engine = flow._engine(url)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    timed = []
    with tempfile.TemporaryDirectory() as data:
        server = start_service(url, workers, port, Path(data), work / "server.log")
        try:
            tokens = {}
            for name in (flow.REVIEWER, flow.MAKER, flow.AUDITOR):
                signed = httpx.post(
                    f"{base}/api/session", json={"username": name, "password": password}, timeout=60
                )
                tokens[name] = signed.raise_for_status().json()["token"]
            print(HEADER, flush=True)
            for name, path, who in pages(url):
                page = asyncio.run(measure(base, Page(name, path), tokens[who], clients, repeats))
                print(page.row(), flush=True)
                timed.append(page)
        finally:
            stop(server)
    return timed
