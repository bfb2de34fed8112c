"""What the browser tests share: Debian's chromium driven by Playwright (the `browser` fixture in
conftest.py) against the service on a local port. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from tests.api.conftest import ROOT, World

CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "artifacts" / "screenshots"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def served(world: World, port: int) -> Iterator[World]:
    """The world's app served by uvicorn on `port` (give the world that public URL); `world.base` is
    its address."""
    server = uvicorn.Server(
        uvicorn.Config(world.app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    world.base = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    try:
        yield world
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        world.app.state.engine.dispose()
