"""The pages region-scoped staff and their administrators use, in a real browser at 1366 px and 360 px:
the users page with each user's department and region (辖区) and the departments; a county reviewer's
queue; an offer in joint review (会签) with the opinions. Screenshots: artifacts/screenshots/regions-*.png."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select, update

from api.auth import set_password
from payouts import departments, users
from payouts.db import transaction
from payouts.models import Offer, PolicyVersion
from tests.api.browser import live_world, look, signed_in
from tests.api.conftest import HR, PASSWORD, World
from tests.api.test_browser_console import WIDTHS, fits
from tests.api.test_regions import NOW, POLICY, regionalise


@pytest.fixture(scope="module")
def live(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with live_world(template, tmp_path_factory.mktemp("live-regions")) as w:
        regionalise(w)
        with transaction(w.app.state.engine) as s:
            s.execute(
                update(PolicyVersion)
                .where(PolicyVersion.policy_id == POLICY)
                .values(reviewers=json.dumps([HR, "淮安市财政局"], ensure_ascii=False))
            )
            add = {"by": "sysadmin", "now": NOW}
            departments.add(s, "淮安市财政局", level="city", region_code="320800", parent=None, **add)
            departments.add(
                s, "淮阴区财政局", level="county", region_code="320804", parent="淮安市财政局", **add
            )
            users.create_user(s, "fin_huaiyin", "reviewer", department="淮阴区财政局", now=NOW)
            set_password(s, "fin_huaiyin", PASSWORD, "system", NOW)
        yield w


@pytest.mark.parametrize("width", WIDTHS)
def test_the_users_page_shows_each_users_department_and_region(
    live: World, browser: Browser, width: str
) -> None:
    page = signed_in(browser, live.base, "sysadmin", **WIDTHS[width])  # type: ignore[attr-defined]
    page.goto(f"{live.base}/console/users")  # type: ignore[attr-defined]
    row = page.locator("#staff tr", has_text="rev_huaiyin")
    expect(row).to_contain_text("淮安市淮阴区人力资源和社会保障局")
    expect(row).to_contain_text("淮阴区（320804）")
    expect(page.locator("#departments")).to_contain_text("江苏省人力资源和社会保障厅")
    assert fits(page)
    look(page, f"regions-users-{width}")
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_county_reviewer_and_a_co_reviewer_see_the_countys_offer_in_joint_review(
    live: World, browser: Browser, width: str
) -> None:
    with transaction(live.app.state.engine) as s:
        one = s.scalar(
            select(Offer.public_id)
            .where(Offer.policy_id == POLICY, Offer.region_code == "320804", Offer.state == "drafted")
            .order_by(Offer.id)
        )
    page = signed_in(browser, live.base, "rev_huaiyin", **WIDTHS[width])  # type: ignore[attr-defined]
    page.goto(f"{live.base}/console/review?policy_id={POLICY}")  # type: ignore[attr-defined]
    assert fits(page)
    look(page, f"regions-review-county-{width}")
    page.context.close()
    co = signed_in(browser, live.base, "fin_huaiyin", **WIDTHS[width])  # type: ignore[attr-defined]
    co.goto(f"{live.base}/console/offers/{one}")  # type: ignore[attr-defined]
    expect(co.locator("#joint-review")).to_contain_text("淮安市财政局")
    look(co, f"regions-offer-joint-{width}")
    co.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_county_reviewer_sees_the_runs_figures_and_the_queues_regions_of_its_county(
    live: World, browser: Browser, width: str
) -> None:
    page = signed_in(browser, live.base, "rev_huaiyin", **WIDTHS[width])  # type: ignore[attr-defined]
    page.goto(f"{live.base}/console/runs/{live.job_id}")  # type: ignore[attr-defined]
    expect(page.locator("#imported")).to_contain_text("属本部门、本辖区的")
    expect(page.locator("#summary")).to_be_visible()
    expect(page.locator("main")).to_contain_text("以上为本辖区企业的数字")
    for shown in (page.locator("#imported"), page.locator("#summary")):
        assert not re.search(r"[A-Za-z_]{2,}", shown.inner_text())  # words and figures, no ids or English
    assert fits(page)
    look(page, f"regions-run-county-{width}")
    page.goto(f"{live.base}/console/runs")  # type: ignore[attr-defined]
    assert fits(page)
    look(page, f"regions-runs-county-{width}")
    page.goto(f"{live.base}/console/review")  # type: ignore[attr-defined]
    region = page.locator("select[name=region] option")
    expect(region).to_have_text(["全部地区", "江苏省淮安市淮阴区"])
    page.select_option("select[name=region]", "320804")
    assert fits(page)
    look(page, f"regions-review-regions-{width}")
    page.context.close()
