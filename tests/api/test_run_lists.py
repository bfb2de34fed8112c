"""A match run's page: its lists filtered by item, condition and field chosen from lists in Chinese, and its
rows read in words (titles, condition texts, field labels), never in ids."""

from __future__ import annotations

import re

from tests.api.conftest import World


def options(html: str, name: str) -> list[tuple[str, str]]:
    select = html.split(f'<select name="{name}">')[1].split("</select>")[0]
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select)


def list_rows(html: str) -> list[list[str]]:
    body = html.split('id="list"')[1].split("</table>")[0].split("<tbody>")[1]
    return [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in body.split("<tr>")[1:]]


def test_items_and_conditions_are_chosen_from_lists_in_chinese_and_narrow_the_list(shared: World) -> None:
    reviewer = shared.browser("reviewer")
    page = reviewer.get(f"/console/runs/{shared.job_id}", params={"name": "near_misses"}).text
    items = [(v, t) for v, t in options(page, "item") if v]
    conditions = [(v, t) for v, t in options(page, "condition_id") if v]
    assert items and conditions
    assert all("/" in v and not re.fullmatch(r"[a-z0-9_-]+", t) for v, t in items)  # titles, not ids
    assert all(t != v for v, t in conditions)  # condition texts, not their ids
    rows = list_rows(page)
    assert rows
    pairs = {(r[0], r[1], r[3]) for r in rows}
    assert not any(re.fullmatch(r"[a-z0-9_-]+", cell) for p in pairs for cell in p)
    assert not any(re.search(r"[a-z]_[a-z]|=", r[4]) for r in rows)  # 高新技术企业 否, not is_high_tech=false
    # Narrowed to one item and one of its failed conditions: only those rows.
    item_title, condition_text = rows[0][1], rows[0][3]
    item = next(v for v, t in items if t == item_title)
    condition = next(v for v, t in conditions if t == condition_text)
    narrowed = reviewer.get(
        f"/console/runs/{shared.job_id}",
        params={"name": "near_misses", "item": item, "condition_id": condition},
    ).text
    kept = list_rows(narrowed)
    assert kept and all((r[1], r[3]) == (item_title, condition_text) for r in kept)
    assert f'<option value="{item}" selected>' in narrowed


def test_missing_fields_are_chosen_and_shown_by_their_catalog_labels(shared: World) -> None:
    reviewer = shared.browser("reviewer")
    page = reviewer.get(f"/console/runs/{shared.job_id}", params={"name": "missing_data"}).text
    fields = dict(options(page, "field"))
    assert fields.get("ui_arrears") and fields["ui_arrears"] != "ui_arrears"
    rows = list_rows(page)
    assert rows and not any(re.search(r"[a-z]_[a-z]", r[3]) for r in rows)  # labels, never field names
