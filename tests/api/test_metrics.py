"""/metrics for the operators' Prometheus: requests by route template (never a link token), offers by
state as the database holds them; in production only for the metrics token."""

from __future__ import annotations

import re

from pydantic import SecretStr
from sqlalchemy import func, select

from payouts.db import transaction
from payouts.models import Offer
from tests.api.conftest import World


def test_requests_are_counted_by_route_template_and_offers_by_state(world: World) -> None:
    token = "A" * 22
    assert world.client.get(f"/c/{token}").status_code in (200, 404, 410)
    assert world.client.get("/api/offers", headers=world.auth("reviewer")).status_code == 200
    text = world.client.get("/metrics").text
    assert 'route="/c/{token}"' in text and token not in text
    assert re.search(r'zhida_requests_total\{method="GET",route="/api/offers",status="200"\} 1\.0', text)
    assert 'zhida_request_seconds_bucket{le="0.005",method="GET",route="/api/offers"}' in text
    with transaction(world.app.state.engine, read_only=True) as s:
        by_state = dict(s.execute(select(Offer.state, func.count()).group_by(Offer.state)).all())
    assert by_state
    for state, n in by_state.items():
        assert f'zhida_offers{{state="{state}"}} {float(n)}' in text
    assert 'zhida_jobs{kind="match",state="done"} 1.0' in text  # the template's match run


def test_in_production_only_the_metrics_token_reads_them(world: World) -> None:
    settings = world.app.state.settings
    world.app.state.settings = settings.model_copy(update={"env": "production", "metrics_token": None})
    assert world.client.get("/metrics").status_code == 404  # no token configured: no endpoint
    world.app.state.settings = settings.model_copy(
        update={"env": "production", "metrics_token": SecretStr("m" * 32)}
    )
    assert world.client.get("/metrics").status_code == 404
    assert world.client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 404
    ok = world.client.get("/metrics", headers={"Authorization": "Bearer " + "m" * 32})
    assert ok.status_code == 200 and "zhida_offers" in ok.text
