"""The SLA lights on the console's front page link to the offers they count."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import update

from payouts.db import transaction
from payouts.models import Offer
from tests.api.conftest import World


def listed(html: str) -> set[str]:
    return set(re.findall(r'href="/console/offers/([A-Za-z0-9]+)"', html))


def review_light_links(html: str) -> dict[str, tuple[int, str]]:
    """The review stage's total row: colour → (count, link)."""
    row = next(r for r in html.split("<tr>") if r.startswith("<td>初核</td>"))
    found = re.findall(r'<a class="light (\w+)" href="([^"]+)"[^>]*>([\d,]+)</a>', row)
    return {colour: (int(n.replace(",", "")), link.replace("&amp;", "&")) for colour, link, n in found}


def test_each_light_lists_exactly_the_offers_it_counts(world: World) -> None:
    late = world.offers("c-wenbao", "drafted")[:3]
    with transaction(world.app.state.engine) as s:  # three offers waiting for review for a month
        month_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        s.execute(update(Offer).where(Offer.public_id.in_(late)).values(created_at=month_ago))
    reviewer = world.browser("reviewer")
    links = review_light_links(reviewer.get("/console").text)
    assert links["red"][0] == 3 and "sla=review" in links["red"][1] and "light=red" in links["red"][1]
    red = reviewer.get(links["red"][1]).text
    assert listed(red) == set(late)
    assert "只列出时限初核环节红灯的要约" in red
    green_count, green_link = links["green"]
    green = reviewer.get(green_link).text
    assert f"<h2>{green_count:,} 条</h2>" in green
    assert not listed(green) & set(late)


def test_a_policys_light_links_to_that_policys_offers_and_shows_its_title(world: World) -> None:
    reviewer = world.browser("reviewer")
    page = reviewer.get("/console").text
    per_policy = page.split("按政策")[1]
    assert "c-wenbao" not in re.sub(r'href="[^"]+"', "", per_policy)  # titles, not ids
    link = re.search(
        r'href="(/console/offers\?sla=review&amp;light=green&amp;policy_id=c-wenbao)"', per_policy
    )
    assert link
    offers = reviewer.get(link.group(1).replace("&amp;", "&")).text
    assert listed(offers) and listed(offers) <= set(world.offers("c-wenbao"))


def test_an_unknown_stage_or_colour_lists_without_the_light(world: World) -> None:
    reviewer = world.browser("reviewer")
    page = reviewer.get("/console/offers", params={"sla": "nap", "light": "purple"})
    assert page.status_code == 200 and "只列出时限" not in page.text
