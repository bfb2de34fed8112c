"""What the browser tests share: Debian's chromium driven by Playwright (the `browser` fixture in
conftest.py) against the service on a local port. Screenshots go to artifacts/screenshots/.

Every page a browser test looks at goes through `look`: axe-core (the npm package in package.json,
installed by `make system` into node_modules/) checks it for accessibility problems, and the test fails
on any serious or critical one (contrast below 4.5:1, an input without a label, no `lang`, ...); then the
screenshot is saved.
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
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")  # axe-core impacts that fail a test
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


def _axe_source() -> str:
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: run `make system` (or `npm ci`) to install axe-core")
    return AXE.read_text(encoding="utf-8")


def _axe_page(page: Page) -> Page:
    """A page where axe can run on what `page` shows: a JavaScript-enabled copy of its HTML served at the
    same address (its style sheets load as they did), since many tests browse with JavaScript off and axe
    needs timers."""
    html, url = page.content(), page.url
    browser = page.context.browser
    assert browser is not None
    copy = browser.new_context(viewport=page.viewport_size or {"width": 1280, "height": 900}).new_page()
    copy.set_default_timeout(20_000)
    copy.route(
        lambda u: u == url,
        lambda route: route.fulfill(status=200, content_type="text/html; charset=utf-8", body=html),
    )
    copy.goto(url)
    return copy


def accessibility_problems(page: Page) -> list[str]:
    """The serious and critical axe-core violations on the page as it stands, one line each."""
    target = _axe_page(page)
    try:
        target.evaluate(_axe_source())
        violations = target.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                 .map(v => ({id: v.id, impact: v.impact, help: v.help,
                             nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}))"""
        )
    finally:
        target.context.close()
    return [
        f"{v['id']} ({v['impact']}, {v['help']}): " + " | ".join(v["nodes"][:5])
        for v in violations
        if v["impact"] in BLOCKING
    ]


def look(page: Page, name: str, *, full_page: bool = True) -> None:
    """Check the page for serious or critical accessibility problems, then save its screenshot as
    artifacts/screenshots/`name`.png."""
    problems = accessibility_problems(page)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=full_page)
    assert not problems, f"{page.url}:\n" + "\n".join(problems)


def too_small_to_tap(page: Page) -> list[str]:
    """Visible buttons, inputs and selects less than 44 px tall or with text under 16 px (a phone's finger
    and an older eye; iOS zooms into smaller inputs). Checkboxes and radios count by their label."""
    return page.evaluate(
        """() => [...document.querySelectorAll('button, input, select, textarea, a.button')]
             .filter(e => e.type !== 'hidden' && e.offsetParent !== null)
             .map(e => {
               const tick = e.type === 'checkbox' || e.type === 'radio';
               const box = (tick && e.closest('label') ? e.closest('label') : e).getBoundingClientRect();
               const size = parseFloat(getComputedStyle(e).fontSize);
               return {what: e.outerHTML.slice(0, 80), height: box.height, size: tick ? 16 : size};
             })
             .filter(c => c.height < 43.5 || c.size < 16)
             .map(c => `${c.what}: ${Math.round(c.height)} px tall, ${c.size} px text`)"""
    )
