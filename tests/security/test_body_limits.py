"""Attack: huge request bodies (a 1 GB "evidence" file, a 100 MB "policy", a chunked upload with no
length) that the service spools to disk or memory before any route can refuse them; and a production
service reachable over plain HTTP (no HSTS).

Bodies are capped before the application reads them (api/bodylimit.py): 413 with a Chinese message,
on the declared Content-Length and on the streamed size of a chunked body. Production answers carry
Strict-Transport-Security.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import HSTS
from api.bodylimit import DEFAULT_BODY, ENVELOPE
from api.routes.policies import MAX_UPLOAD
from api.settings import Settings
from portal.supplied import MAX_EVIDENCE
from tests.api.conftest import World, copy_world

MB = 1 << 20


def _multipart(size: int, name: str = "file", filename: str = "x.yaml") -> tuple[bytes, str]:
    boundary = secrets.token_hex(8)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"a" * size
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_an_oversized_evidence_upload_is_refused_before_it_is_read(shared: World) -> None:
    body, kind = _multipart(MAX_EVIDENCE + ENVELOPE + 1, "evidence", "proof.pdf")
    r = shared.client.post("/e/supplied", content=body, headers={"Content-Type": kind})
    assert r.status_code == 413 and "证明材料不能超过 10 MB" in r.text


def test_evidence_up_to_its_limit_reaches_the_route(shared: World) -> None:
    body, kind = _multipart(MAX_EVIDENCE, "evidence", "proof.pdf")
    r = shared.client.post(
        "/e/supplied", content=body, headers={"Content-Type": kind}, follow_redirects=False
    )
    assert r.status_code != 413  # the route answers (here: not signed in)


def test_an_oversized_policy_upload_is_refused_on_the_api_and_the_console(shared: World) -> None:
    body, kind = _multipart(MAX_UPLOAD + ENVELOPE + 1)
    r = shared.client.post(
        "/api/policies", content=body, headers={"Content-Type": kind, **shared.auth("policy_sci")}
    )
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "请求内容过大" and "政策文件不能超过 1 MB" in r.json()["detail"]
    page = shared.browser("policy_sci").post(
        "/console/policies/upload", content=body, headers={"Content-Type": kind}
    )
    assert page.status_code == 413 and "政策文件不能超过 1 MB" in page.text


def test_any_other_body_is_capped_at_the_default(shared: World) -> None:
    blob = json.dumps({"username": "x" * (DEFAULT_BODY + 1), "password": "y"})
    r = shared.client.post("/api/session", content=blob, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "提交的内容不能超过 1 MB" in r.json()["detail"]


def test_a_chunked_body_without_a_length_is_refused_once_it_passes_the_cap(shared: World) -> None:
    body, kind = _multipart(3 * MB)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 64 << 10):
            yield body[i : i + (64 << 10)]

    r = shared.client.post(
        "/api/policies", content=chunks(), headers={"Content-Type": kind, **shared.auth("policy_sci")}
    )
    assert "content-length" not in r.request.headers and r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 413 and "政策文件不能超过 1 MB" in r.json()["detail"]


def test_the_application_stops_reading_a_chunked_body_at_the_cap(shared: World) -> None:
    """Straight at the ASGI application, as a server streams a chunked body in: it is not read to the end."""
    body, kind = _multipart(20 * MB)
    chunk = 64 << 10
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        start = pulled * chunk
        pulled += 1
        piece = body[start : start + chunk]
        return {"type": "http.request", "body": piece, "more_body": start + chunk < len(body)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    token = shared.tokens["policy_sci"]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/policies",
        "raw_path": b"/api/policies",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", kind.encode()),
            (b"transfer-encoding", b"chunked"),
            (b"authorization", f"Bearer {token}".encode()),
        ],
        "client": ("198.51.100.9", 1234),
        "server": ("testserver", 80),
    }
    asyncio.run(shared.app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert pulled * chunk <= MAX_UPLOAD + ENVELOPE + 2 * chunk  # 1 MB and a little, of 20 MB


# --- HSTS ---


def test_no_hsts_outside_production(shared: World) -> None:
    assert "strict-transport-security" not in shared.client.get("/e/login").headers


@pytest.fixture
def production(template: Any, tmp_path: Path) -> Iterator[World]:
    """The service in production mode, on a throw-away PostgreSQL database."""
    name = f"zhida_hsts_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(
            "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as e:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432 ({e})")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        # Whatever else production asks of the settings (where the service has such settings).
        more = {
            "audit_key": secrets.token_urlsafe(32),
            "link_key": secrets.token_urlsafe(32),
            "audit_checkpoint_dir": tmp_path / "checkpoints",
        }
        w = copy_world(
            template,
            tmp_path,
            env="production",
            database_url=f"postgresql://postgres@127.0.0.1:5432/{name}",
            cookie_secure=True,
            demo_phone=False,
            public_url="https://zd.example.gov.cn",
            **{k: v for k, v in more.items() if k in Settings.model_fields},
        )
        yield w
        w.app.state.engine.dispose()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_production_answers_carry_hsts_on_every_response(production: World) -> None:
    client = TestClient(production.app, base_url="https://zd.example.gov.cn")
    body, kind = _multipart(MAX_UPLOAD + ENVELOPE + 1)
    answers = [
        client.get("/e/login"),  # a page
        client.get("/api/offers"),  # refused: not signed in
        client.get("/no-such-page"),  # 404
        client.get("/static/console.css"),  # a static file
        client.post("/api/policies", content=body, headers={"Content-Type": kind}),  # 413
    ]
    for r in answers:
        assert r.headers.get("strict-transport-security") == HSTS, (r.request.url, r.status_code)
    assert "max-age=31536000" in HSTS
