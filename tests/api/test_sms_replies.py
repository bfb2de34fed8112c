"""The SMS gateway's reply callback (回复TD退订): a signed reply with a stop word opts the number out of
every SMS, once however often the gateway retries, audited; a forged, stale or unsigned call changes
nothing; calls are rate limited; without the shared secret the callback does not exist."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sqlalchemy import func, select

from api.routes.replies import signature
from payouts import outbox
from payouts.db import transaction
from payouts.models import AuditEvent, SmsOptOut, SmsReply
from tests.api.conftest import copy_world

SECRET = "sms-reply-secret-of-the-gateway-0123456789"


def _post(w, body: dict, *, secret: str = SECRET, ts: int | None = None, sig: str | None = None):
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()) if ts is None else ts)
    headers = {
        "content-type": "application/json",
        "x-zhida-timestamp": stamp,
        "x-zhida-signature": signature(secret, stamp, raw) if sig is None else sig,
    }
    return w.client.post("/api/sms/replies", content=raw, headers=headers)


def _counts(w) -> tuple[int, int, int]:
    with transaction(w.app.state.engine) as s:
        return (
            s.scalar(select(func.count()).select_from(SmsOptOut)) or 0,
            s.scalar(select(func.count()).select_from(SmsReply)) or 0,
            s.scalar(select(func.count()).where(AuditEvent.action == "sms_opt_out")) or 0,
        )


def test_a_signed_td_reply_opts_the_number_out_once_and_is_audited_masked(template, tmp_path: Path) -> None:
    w = copy_world(template, tmp_path, sms_reply_secret=SECRET)
    body = {
        "replies": [
            {"id": "up-1", "phone": "+86 138-0000-0002", "text": " td "},
            {"id": "up-2", "phone": "13800000003", "text": "谢谢，已收到"},
            {"id": "up-3", "phone": "13800000004", "text": "退订"},
        ]
    }
    r = _post(w, body)
    assert r.status_code == 200, r.text
    assert r.json() == {"taken": 3, "opted_out": 2, "repeated": 0, "ignored": 0}
    again = _post(w, body)  # the gateway retries the callback
    assert again.json()["repeated"] == 3 and again.json()["opted_out"] == 0
    assert _counts(w) == (2, 3, 2)
    with transaction(w.app.state.engine) as s:
        assert outbox.opted_out(s, ["13800000002", "13800000003", "13800000004"]) == {
            "13800000002",
            "13800000004",
        }
        ids = set(s.scalars(select(AuditEvent.entity_id).where(AuditEvent.action == "sms_opt_out")))
    assert ids == {"138****0002", "138****0004"}  # the audit names the number masked
    w.app.state.engine.dispose()


def test_a_forged_stale_or_unsigned_callback_is_refused_and_changes_nothing(template, tmp_path: Path) -> None:
    w = copy_world(template, tmp_path, sms_reply_secret=SECRET)
    body = {"replies": [{"id": "up-9", "phone": "13800000002", "text": "TD"}]}
    forged = _post(w, body, secret="a-guess-at-the-secret-of-the-gateway-000")
    assert forged.status_code == 401 and "签名" in forged.json()["title"]
    assert _post(w, body, sig="").status_code == 401
    assert _post(w, body, ts=int(time.time()) - 3600).status_code == 401  # a replayed old call
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))
    tampered = w.client.post(
        "/api/sms/replies",
        content=raw.replace(b"up-9", b"up-8"),  # signed for another body
        headers={"x-zhida-timestamp": stamp, "x-zhida-signature": signature(SECRET, stamp, raw)},
    )
    assert tampered.status_code == 401
    assert _counts(w) == (0, 0, 0)
    w.app.state.engine.dispose()


def test_reply_callbacks_are_rate_limited_and_absent_without_a_secret(template, tmp_path: Path) -> None:
    w = copy_world(template, tmp_path / "on", sms_reply_secret=SECRET, sms_reply_limit=3)
    body = {"replies": [{"id": "up-1", "phone": "13800000002", "text": "hi"}]}
    codes = [_post(w, body, sig="0" * 64).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]  # forgeries count against the limit too
    w.app.state.engine.dispose()
    off = copy_world(template, tmp_path / "off")
    assert _post(off, body).status_code == 404
    off.app.state.engine.dispose()
