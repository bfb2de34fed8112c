"""A bounded load test of a zhida server on this machine (loopback only): a table per endpoint.

    python -m devtools.load --serve                 # start `zhida serve --demo`, measure, stop it
    python -m devtools.load --base http://127.0.0.1:8000 --clients 1,5,20
    python -m devtools.load --url postgresql://postgres@127.0.0.1:5432/zhida_bench_load --workers 2

For each endpoint and each number of clients, that many clients send requests one after another (each on
its own keep-alive connection, from its own loopback address 127.0.x.y, so that per-IP rate limits do
not meet all of them) for `--seconds` seconds, each request with a `--timeout` second limit; then one
more request, alone, shows whether the server recovered at once. Endpoints: the public search, a policy
page, the confirmation page (links from the demo phone) and the console's offer list (signed in).

With `--serve` the server is the demo (`zhida serve --demo` on a free port) with the confirmation page's
rate limits raised, so that the page, not the limiter, is measured; at the end it is sent SIGTERM and
the time it took to stop is printed. With `--url` (a PostgreSQL database named zhida_bench…, dropped
and created again) a synthetic snapshot of `--enterprises` is matched, imported, released and its
notices sent (links kept), the library published and the reviewer given a password; then `zhida serve
--workers N` starts on it and is measured and stopped the same way. Traffic never leaves 127.0.0.0/8, every loop is bounded in time
and count, and the script stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

SEARCH = "/api/public/policies?q=稳岗"
DEMO_USER, DEMO_PASSWORD = "demo-reviewer", "zhida-demo-2025"
MAX_REQUESTS = 50_000  # per endpoint and level, whatever the time
LINK = re.compile(r"/c/[A-Za-z0-9_-]{16,64}")


def ms(seconds: list[float], q: float, none: str = "-") -> str:
    """The `q` quantile of `seconds` (nearest rank from below; 1.0 is the largest) in whole
    milliseconds, or `none` when there are none: the benchmarks' one way to read latencies."""
    if not seconds:
        return none
    ordered = sorted(seconds)
    return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:.0f}"


@dataclass
class Level:
    """What the clients of one run got."""

    endpoint: str
    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    recovery_ms: float | None = None

    def count(self, *kinds: str) -> int:
        return sum(n for k, n in self.codes.items() if k in kinds or (k[:1] in kinds))

    def row(self) -> str:
        lat = self.latencies
        ok = self.count("2", "3")
        other5xx = sum(n for k, n in self.codes.items() if k.startswith("5") and k != "503")
        cells = [
            self.endpoint,
            self.clients,
            len(lat),
            ok,
            f"{ok / self.seconds:.0f}" if self.seconds else "-",
            ms(lat, 0.5, none="0"),
            ms(lat, 0.99, none="0"),
            self.codes.get("timeout", 0),
            self.codes.get("503", 0),
            other5xx,
            self.codes.get("429", 0),
            self.codes.get("error", 0),
            f"{self.recovery_ms:.0f}" if self.recovery_ms is not None else "timeout",
        ]
        return "| " + " | ".join(str(c) for c in cells) + " |"


HEADER = (
    "| endpoint | clients | requests | ok | ok/s | p50 ms | p99 ms | timeouts | 503 | other 5xx | 429 "
    "| errors | alone after, ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def loopback(base: str) -> str:
    host = urlsplit(base).hostname or ""
    address = ipaddress.ip_address(socket.gethostbyname(host))
    if not address.is_loopback:
        raise SystemExit(f"refused: {base} is not a loopback address (load goes to 127.0.0.0/8 only)")
    return base.rstrip("/")


def source_address(i: int) -> str:
    """A distinct loopback address for client `i` (127.0.1.1, 127.0.1.2, …)."""
    n = i + 257
    return f"127.0.{n // 254}.{n % 254 + 1}"


async def run_level(
    base: str,
    endpoint: str,
    paths: list[str],
    headers: dict[str, str],
    n: int,
    seconds: float,
    timeout: float,
) -> Level:
    level = Level(endpoint, n)
    clients = [
        httpx.AsyncClient(
            base_url=base,
            headers=headers,
            timeout=timeout,
            transport=httpx.AsyncHTTPTransport(local_address=source_address(i)),
        )
        for i in range(n)
    ]
    budget = [MAX_REQUESTS]
    stop = time.monotonic() + seconds

    async def client(i: int, c: httpx.AsyncClient) -> None:
        k = i
        while time.monotonic() < stop and budget[0] > 0:
            budget[0] -= 1
            path = paths[k % len(paths)]
            k += n
            started = time.monotonic()
            try:
                async with asyncio.timeout(timeout):  # the whole request, not each phase of it
                    response = await c.get(path)
                kind = str(response.status_code)
            except (TimeoutError, httpx.TimeoutException):
                kind = "timeout"
            except httpx.HTTPError:
                kind = "error"
            level.latencies.append(time.monotonic() - started)
            level.codes[kind] = level.codes.get(kind, 0) + 1

    t0 = time.monotonic()
    try:
        await asyncio.gather(*(client(i, c) for i, c in enumerate(clients)))
    finally:
        level.seconds = time.monotonic() - t0
        await asyncio.gather(*(c.aclose() for c in clients))
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout) as alone:
        started = time.monotonic()
        try:
            await alone.get(paths[0])
            level.recovery_ms = (time.monotonic() - started) * 1000
        except httpx.HTTPError:
            level.recovery_ms = None
    return level


def targets(
    base: str, user: str, password: str, links: list[str] | None = None
) -> dict[str, tuple[list[str], dict[str, str]]]:
    """The endpoints to load: paths (taken in turn) and headers; confirmation links from the demo phone
    unless given."""
    with httpx.Client(base_url=base, timeout=30) as c:
        hits = c.get(SEARCH).raise_for_status().json()["hits"]
        policy = hits[0]["url"] if hits else "/policies"
        if links is None:
            links = sorted(set(LINK.findall(c.get("/demo/phone").text)))
        signed = c.post("/api/session", json={"username": user, "password": password})
        token = signed.json()["token"] if signed.status_code == 200 else None
    found: dict[str, tuple[list[str], dict[str, str]]] = {
        "search": ([SEARCH], {}),
        "policy page": ([policy], {}),
    }
    if links:
        found["confirm page"] = (links, {})
    else:
        print("no confirmation links at /demo/phone: confirm page left out", file=sys.stderr)
    if token:
        found["console offers"] = (["/console/offers"], {"Authorization": f"Bearer {token}"})
    else:
        print(f"could not sign in as {user}: console left out", file=sys.stderr)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(
    args: list[str], env: dict[str, str], probe: str, minutes: int, log: Path
) -> subprocess.Popen[bytes]:
    """`zhida ARGS` with the confirmation page's rate limits out of the way, once `probe` answers 200."""
    env = {**os.environ, "ZHIDA_CONFIRM_IP_LIMIT": "1000000", "ZHIDA_CONFIRM_TOKEN_LIMIT": "1000000", **env}
    zhida = Path(sys.executable).with_name("zhida")
    out = log.open("wb")
    server = subprocess.Popen([str(zhida), *args], env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + minutes * 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server stopped at start; see {log}")
        try:
            if httpx.get(probe, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit(f"the server did not start in {minutes} minutes; see {log}")


def start_demo(port: int, log: Path) -> subprocess.Popen[bytes]:
    """`zhida serve --demo` on `port` (a first demo generates its snapshot: up to 10 minutes)."""
    args = ["serve", "--demo", "--port", str(port)]
    return _start(args, {}, f"http://127.0.0.1:{port}/demo/phone", 10, log)


def start_service(url: str, workers: int, port: int, data: Path, log: Path) -> subprocess.Popen[bytes]:
    """`zhida serve --workers N` on the database at `url` (the benchmarks' own, with its data folder
    `data`)."""
    env = {
        "ZHIDA_DATABASE_URL": url,
        "ZHIDA_DATA_DIR": str(data),
        # One secret for every worker: a form signed by one is accepted by the other.
        "ZHIDA_SECRET_KEY": secrets.token_urlsafe(32),
    }
    args = ["serve", "--port", str(port)] + (["--workers", str(workers)] if workers > 1 else [])
    return _start(args, env, f"http://127.0.0.1:{port}/healthz", 2, log)


def stop(server: subprocess.Popen[bytes], grace: float = 30) -> float | None:
    """SIGTERM, and the seconds until the process ended (None: killed after `grace`)."""
    started = time.monotonic()
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(grace)
        return time.monotonic() - started
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        return None


def prepare_database(url: str, enterprises: int, links: int, work: Path) -> tuple[list[str], str, str]:
    """Not timed: a fresh benchmark database with `links` notices sent, the library published and the
    flow's reviewer given a password; the confirmation paths, the user and the password."""
    from api.auth import set_password
    from api.policystore import PolicyStore
    from devtools import confirm_rate, flow
    from payouts.db import transaction
    from rules.ruleset import library_dir

    now = dt.datetime.now(dt.UTC)  # live links and policies, as on the day of a wave
    tokens = confirm_rate.notified_links(enterprises, work, url, at=now, limit=links)
    password = "Bench-" + secrets.token_urlsafe(12)
    engine = flow._engine(url)
    with transaction(engine) as s:
        PolicyStore(engine).seed(library_dir(), s, "system", now)
        set_password(s, flow.REVIEWER, password, "system", now)
    engine.dispose()
    return [f"/c/{t}" for t in tokens], flow.REVIEWER, password


async def measure(args: argparse.Namespace, base: str, links: list[str] | None = None) -> None:
    found = targets(base, args.user, args.password, links)
    wanted = [e for e in found if not args.endpoints or e in args.endpoints]
    print(HEADER, flush=True)
    for endpoint in wanted:
        paths, headers = found[endpoint]
        for n in args.clients:
            level = await run_level(base, endpoint, paths, headers, n, args.seconds, args.timeout)
            print(level.row(), flush=True)
            await asyncio.sleep(args.pause)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", help="a running server, e.g. http://127.0.0.1:8000 (loopback only)")
    parser.add_argument("--serve", action="store_true", help="start `zhida serve --demo` for the run")
    parser.add_argument("--url", help="a PostgreSQL database zhida_bench… to fill and serve (dropped first)")
    parser.add_argument("--workers", type=int, default=2, help="with --url: `zhida serve --workers N`")
    parser.add_argument("--enterprises", type=int, default=100_000, help="with --url: snapshot size")
    parser.add_argument("--links", type=int, default=5_000, help="with --url: notices sent (confirm links)")
    parser.add_argument("--clients", default="1,5,20,50,100,500", help="numbers of clients, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each run sends requests")
    parser.add_argument("--timeout", type=float, default=10.0, help="each request's time limit")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
    parser.add_argument(
        "--endpoints", nargs="*", help="search, 'policy page', 'confirm page', 'console offers'"
    )
    parser.add_argument("--user", default=DEMO_USER)
    parser.add_argument("--password", default=DEMO_PASSWORD)
    parser.add_argument("--log", type=Path, default=Path("var/load-server.log"), help="the server's output")
    args = parser.parse_args(argv)
    args.clients = [int(x) for x in args.clients.split(",") if x]
    if not 0 < args.seconds <= 60 or not 0 < args.timeout <= 60 or max(args.clients) > 2000:
        parser.error("at most 60 s per run, 60 s per request and 2000 clients")
    if sum(map(bool, (args.base, args.serve, args.url))) != 1:
        parser.error("give one of --base, --serve and --url")
    if args.base:
        asyncio.run(measure(args, loopback(args.base)))
        return
    args.log.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    links = None
    with tempfile.TemporaryDirectory() as data:
        if args.url:
            links, args.user, args.password = prepare_database(
                args.url, args.enterprises, args.links, args.log.parent / "load-work"
            )
            server = start_service(args.url, args.workers, port, Path(data), args.log)
        else:
            server = start_demo(port, args.log)
        _measure_and_stop(args, server, f"http://127.0.0.1:{port}", links)


def _measure_and_stop(
    args: argparse.Namespace, server: subprocess.Popen[bytes], base: str, links: list[str] | None
) -> None:
    try:
        asyncio.run(measure(args, base, links))
    finally:
        took = stop(server)
        print(
            f"\nSIGTERM: the server stopped in {took:.1f} s"
            if took is not None
            else "\nSIGTERM: not stopped in 30 s"
        )


if __name__ == "__main__":
    main()
