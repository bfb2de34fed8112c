"""The batch page for a batch of 50,000 lines: totals per status on top, one page of lines at a time, and
the failed lines alone on request."""

from __future__ import annotations

import re
from decimal import Decimal

from tests.api.conftest import World


def lines_on(html: str) -> list[int]:
    """The line numbers a batch page lists."""
    table = html.split('id="lines"')[1].split("</table>")[0]
    return [
        int(n) for n in re.findall(r'<td class="n"><a href="/console/offers/[^"]+"[^>]*>(\d+)</a>', table)
    ]


def paid_batch_with_failures(w: World, failures: int) -> tuple[str, int]:
    """A reconciled batch of c-wenbao (no confirmation needed) whose first `failures` lines failed."""
    assert w.bulk("/api/review/release", "release", {"filter": {"policy_id": "c-wenbao"}}).status_code == 200
    made = w.make_batch("c-wenbao")
    assert made.status_code == 201, made.text
    ref, count = made.json()["reference"], made.json()["line_count"]
    assert w.client.post(f"/api/batches/{ref}/approve", headers=w.auth("checker")).status_code == 200
    assert w.client.post(f"/api/batches/{ref}/export", headers=w.auth("checker")).status_code == 200
    back = w.client.get(f"/demo/bank/{ref}/return.csv", params={"fail": failures}, headers=w.auth("checker"))
    r = w.client.post(
        f"/api/batches/{ref}/return",
        files={"file": ("r.csv", back.content, "text/csv")},
        headers=w.auth("checker"),
    )
    assert r.status_code == 200, r.text
    return ref, count


def test_the_batch_page_shows_one_page_of_lines_and_every_line_once_across_pages(world: World) -> None:
    ref, count = paid_batch_with_failures(world, 2)
    assert count > 20
    checker = world.browser("checker")
    first = checker.get(f"/console/batches/{ref}", params={"size": 20}).text
    assert lines_on(first) == list(range(1, 21))
    assert f"共 {count:,} 笔" in first and "下一页" in first
    seen: list[int] = []
    for offset in range(0, count, 20):
        seen += lines_on(checker.get(f"/console/batches/{ref}", params={"size": 20, "offset": offset}).text)
    assert seen == list(range(1, count + 1))


def test_the_totals_are_on_top_and_the_failed_lines_can_be_shown_alone(world: World) -> None:
    ref, count = paid_batch_with_failures(world, 3)
    detail = world.client.get(f"/api/batches/{ref}", headers=world.auth("checker")).json()
    failed = [ln for ln in detail["lines"] if ln["status"] == "failed"]
    paid = [ln for ln in detail["lines"] if ln["status"] == "paid"]
    assert len(failed) == 3 and len(paid) == count - 3
    checker = world.browser("checker")
    page = checker.get(f"/console/batches/{ref}").text
    totals = page.split('id="line-totals"')[1].split("</table>")[0]
    failed_total = sum((Decimal(ln["amount"]) for ln in failed), Decimal("0"))
    assert re.search(rf">失败</a></td><td class=\"n\">3</td><td class=\"n\">{failed_total:,.2f}</td>", totals)
    assert f'<td class="n">{count - 3:,}</td>' in totals
    only = checker.get(f"/console/batches/{ref}", params={"status": "failed"}).text
    assert lines_on(only) == [ln["line_no"] for ln in failed]
    assert "账户已销户" in only and "共 3 笔" in only


def test_a_pending_line_reads_as_waiting_for_the_checker_before_approval(world: World) -> None:
    assert (
        world.bulk("/api/review/release", "release", {"filter": {"policy_id": "c-wenbao"}}).status_code == 200
    )
    ref = world.make_batch("c-wenbao").json()["reference"]
    page = world.browser("checker").get(f"/console/batches/{ref}").text
    assert "待复核" in page.split('id="lines"')[1] and "待回单" not in page


def test_the_downloaded_bank_csv_opens_in_chinese_excel_with_accounts_as_text(world: World) -> None:
    import csv
    import io

    ref, count = paid_batch_with_failures(world, 0)
    got = world.client.get(f"/api/batches/{ref}/files/csv", headers=world.auth("checker"))
    assert got.status_code == 200 and got.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"), newline="")))
    assert rows[1][:5] == ["序号", "付款账号", "付款户名", "收款账号", "收款户名"]
    lines = rows[2:]
    assert len(lines) == count
    # As a bank's upload reads it: the blanks around a field trimmed, the account every digit.
    assert all(r[3].startswith("\t") and r[3].strip().isdigit() for r in lines)
    api_lines = world.client.get(f"/api/batches/{ref}", headers=world.auth("checker")).json()["lines"]
    by_ref = {ln["reference"]: ln for ln in api_lines}
    for r in lines:
        line = by_ref[r[8]]
        assert r[4] == line["account_name"]  # the Chinese name as it is, not mojibake
        assert line["account_masked"].endswith(r[3].strip()[-4:]) and len(r[3].strip()) >= 12


def test_a_line_says_waiting_for_the_bank_only_once_its_batch_is_approved(world: World) -> None:
    assert (
        world.bulk("/api/review/release", "release", {"filter": {"policy_id": "c-wenbao"}}).status_code == 200
    )
    made = world.make_batch("c-wenbao")
    ref = made.json()["reference"]
    checker = world.browser("checker")
    assembled = checker.get(f"/console/batches/{ref}").text
    assert "待复核" in assembled and "待回单" not in assembled
    assert world.client.post(f"/api/batches/{ref}/approve", headers=world.auth("checker")).status_code == 200
    assert world.client.post(f"/api/batches/{ref}/export", headers=world.auth("checker")).status_code == 200
    assert "待回单" in checker.get(f"/console/batches/{ref}").text
