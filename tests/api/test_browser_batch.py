"""A finance checker opens a batch of 50,000 lines in Chromium, at 1366 px and on a 360 px phone: the
totals on top, one page of lines, the next page, and the failed lines alone after the bank's return."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest
from playwright.sync_api import Browser, Page, expect

from payouts import bankfiles, batches, imports, offers
from payouts.db import transaction
from tests.api.browser import live_world, look, signed_in
from tests.api.conftest import World
from tests.payouts.conftest import payee, policy, write_run

N = 50_000
FAILED = 7  # lines the bank returns as failed
NOW = dt.datetime(2025, 10, 9, 2, 0, tzinfo=dt.UTC)


def _amount(n: int) -> str:
    return f"{1000 + n % 997}.{n % 100:02d}"


@pytest.fixture(scope="module")
def big(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, str]]:  # type: ignore[no-untyped-def]
    """A served world with an approved, exported batch of 50,000 lines of a policy paid without
    confirmation, whose bank answered with `FAILED` failed lines."""
    root = tmp_path_factory.mktemp("big-batch")
    run = write_run(
        root / "run",
        [policy("daguimo", budget=None, confirmation="none")],
        [("daguimo", "main", n, _amount(n)) for n in range(1, N + 1)],
        [payee(n) for n in range(1, N + 1)],
    )
    with live_world(template, root / "world") as w:
        engine = w.app.state.engine
        with transaction(engine) as s:
            imports.import_run(s, run, "reviewer", NOW)
            offers.release(s, "reviewer", NOW, policy_id="daguimo")
            ref = batches.create_batch(s, "daguimo", "maker", NOW).reference
        with transaction(engine) as s:
            batches.approve(s, ref, "checker", NOW)
            batches.export(s, ref, "checker", root / "bank", NOW)
        with transaction(engine) as s:
            content = batches.bank_file_of(s, batches.get_batch(s, ref))
            failing = {ln.reference: "账户已销户" for ln in content.lines[:FAILED]}
            batches.reconcile(s, ref, bankfiles.render_return(content, failing), "checker", NOW)
        yield w, ref


def _lines(page: Page) -> list[int]:
    return [int(n) for n in page.locator("#lines tbody td.n a").all_inner_texts()]


@pytest.mark.parametrize("width", [1366, 360])
def test_a_batch_of_50000_lines_opens_with_its_totals_and_one_page_of_lines(
    big: tuple[World, str], browser: Browser, width: int
) -> None:
    w, ref = big
    page = signed_in(browser, w.base, "checker", width=width, height=768 if width > 360 else 740)  # type: ignore[attr-defined]
    page.goto(f"{w.base}/console/batches/{ref}")  # type: ignore[attr-defined]
    total = sum(Decimal(_amount(n)) for n in range(1, N + 1))
    failed = sum(Decimal(_amount(n)) for n in range(1, FAILED + 1))
    rows = page.locator("#line-totals tbody tr")
    expect(rows.filter(has_text="已到账")).to_contain_text(f"{N - FAILED:,}")
    expect(rows.filter(has_text="已到账")).to_contain_text(f"{total - failed:,.2f}")
    expect(rows.filter(has_text="失败")).to_contain_text(f"{failed:,.2f}")
    first = _lines(page)
    assert first == list(range(1, len(first) + 1)) and 0 < len(first) <= 500
    look(page, f"batch-50000-{width}px", full_page=False)
    page.click("text=下一页")
    assert _lines(page) == list(range(len(first) + 1, 2 * len(first) + 1))
    page.goto(f"{w.base}/console/batches/{ref}?status=failed")  # type: ignore[attr-defined]
    assert len(_lines(page)) == FAILED
    expect(page.locator("#lines tbody")).to_contain_text("账户已销户")
    assert not re.search(r"下一页", page.locator("nav").last.inner_text())
    look(page, f"batch-50000-failed-{width}px", full_page=False)
    page.context.close()
