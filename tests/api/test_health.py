"""The operator's probes: /healthz says the process answers, /readyz whether it can serve (database,
schema, disk), each check named so that the operator knows what to fix."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest
from sqlalchemy import text

from tests.api.conftest import World


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
