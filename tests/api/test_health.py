"""The operator's probes: /healthz says the process answers, /readyz whether it can serve (database,
schema, disk), each check named so that the operator knows what to fix."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest
from sqlalchemy import text

from tests.api.conftest import World, csrf_of


def test_a_running_service_is_alive_and_ready(world: World) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok"}
    ready = world.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "schema": "ok", "disk": "ok"}}


def test_a_database_behind_the_code_is_not_ready_and_says_to_migrate(world: World) -> None:
    with world.app.state.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    ready = world.client.get("/readyz")
    assert ready.status_code == 503
    assert "请先迁移" in ready.json()["checks"]["schema"]
    assert world.client.get("/healthz").status_code == 200  # alive all the same


def test_a_full_disk_is_not_ready(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10 << 30, (10 << 30) - (200 << 20), 200 << 20))
    ready = world.client.get("/readyz")
    assert ready.status_code == 503 and "200 MiB" in ready.json()["checks"]["disk"]


def test_the_probes_are_not_part_of_the_api_schema(world: World) -> None:
    paths = world.client.get("/openapi.json").json()["paths"]
    assert "/healthz" not in paths and "/readyz" not in paths


def test_a_database_that_cannot_be_reached_gets_a_retryable_answer_in_chinese(world: World) -> None:
    from payouts.db import make_engine

    link = world.notify("c-gaoxin")[0]
    page = world.client.get(link)
    assert page.status_code == 200
    working = world.app.state.engine
    world.app.state.engine = make_engine("postgresql://postgres@127.0.0.1:9/zhida_gone", pool_pre_ping=False)
    try:
        for answer in (
            world.client.post(f"{link}/confirm", data={"csrf": csrf_of(page.text)}),
            world.client.get("/api/offers", headers=world.auth("reviewer")),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] == "5"
            assert "请稍候几秒再试" in answer.text and "Traceback" not in answer.text
    finally:
        world.app.state.engine.dispose()
        world.app.state.engine = working
    # Nothing was half done: the same click, once the database is back, confirms.
    again = world.client.get(link)
    assert world.client.post(f"{link}/confirm", data={"csrf": csrf_of(again.text)}).status_code == 200
