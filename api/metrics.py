"""Prometheus metrics (`GET /metrics`): requests and their latency by route, and, read at each scrape,
offers by state, SMS by kind and status, and durable jobs by kind and state (the queue's depth, its
failures). Each app has its own registry (tests make many apps).

Not public in production: there the endpoint answers only a `Bearer` equal to `ZHIDA_METRICS_TOKEN`,
and does not exist without one.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from payouts.db import transaction
from payouts.models import Job, Offer, SmsMessage

pages = APIRouter(include_in_schema=False)


class _Business(Collector):
    """Offers by state, SMS by kind and status and jobs by kind and state, counted when Prometheus scrapes."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        offers = GaugeMetricFamily("zhida_offers", "Offers by state", labels=["state"])
        sms = GaugeMetricFamily(
            "zhida_sms_messages", "SMS messages by kind and status", labels=["kind", "status"]
        )
        jobs = GaugeMetricFamily("zhida_jobs", "Durable jobs by kind and state", labels=["kind", "state"])
        with transaction(self.engine, read_only=True) as s:
            for kind, state, n in s.execute(
                select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
            ):
                jobs.add_metric([kind, state], n)
            for state, n in s.execute(select(Offer.state, func.count()).group_by(Offer.state)):
                offers.add_metric([state], n)
            for kind, status, n in s.execute(
                select(SmsMessage.kind, SmsMessage.status, func.count()).group_by(
                    SmsMessage.kind, SmsMessage.status
                )
            ):
                sms.add_metric([kind, status], n)
        yield offers
        yield sms
        yield jobs


class Metrics:
    """The app's registry and its request metrics."""

    def __init__(self, engine: Engine) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "zhida_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "zhida_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.registry.register(_Business(engine))

    def observe(self, request: Request, status: int, seconds: float) -> None:
        route = request.scope.get("route")
        name = getattr(route, "path", None) or "unmatched"  # the template (/c/{token}), never the token
        self.requests.labels(request.method, name, str(status)).inc()
        self.latency.labels(request.method, name).observe(seconds)


@pages.get("/metrics")
def metrics(request: Request) -> Response:
    settings = request.app.state.settings
    if settings.env == "production":
        token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
        given = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not token or not hmac.compare_digest(given, token):
            return Response(status_code=404)
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
