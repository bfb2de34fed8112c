"""What the browser tests share: Debian's chromium driven by Playwright (the `browser` fixture in
conftest.py) against the service on a local port. Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, Page, expect

from tests.api.conftest import PASSWORD, ROOT, World, copy_world
from tests.ports import free_port

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


@contextmanager
def live_world(template: Any, folder: Path) -> Iterator[World]:
    """A copy of the test world in `folder`, served on a free port (its public URL)."""
    port = free_port()
    world = copy_world(template, folder, public_url=f"http://127.0.0.1:{port}")
    with served(world, port):
        yield world


def sign_in(page: Page, base: str, user: str) -> None:
    """Sign `user` in on the console's login page, in `page`."""
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("header .who")).to_contain_text(user)


def signed_in(browser: Browser, base: str, user: str, width: int = 1280, height: int = 900) -> Page:
    """A new browser window `width` px wide with `user` signed in to the console."""
    page = browser.new_context(viewport={"width": width, "height": height}).new_page()
    sign_in(page, base, user)
    return page
