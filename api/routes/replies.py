"""The SMS gateway's callback for upstream messages (an enterprise's reply, e.g. 回复TD退订):
`POST /api/sms/replies`. Not a user's route: the gateway signs each call with the shared secret
`ZHIDA_SMS_REPLY_SECRET` — header `X-Zhida-Timestamp` (Unix seconds) and `X-Zhida-Signature`, the hex
HMAC-SHA-256 of `<timestamp>.<raw body>` — compared in constant time; a call more than 5 minutes off
the clock is refused as a replay. Without the secret the route does not exist (404). Calls are rate
limited per address before anything is read. The domain is `payouts.outbox.take_reply` (idempotent by
the provider's id, audited).

The body: `{"replies": [{"id": "<provider id>", "phone": "13800000002", "text": "TD"}, ...]}`, at most
1,000 replies a call.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError

from api.deps import SessionDep, SettingsDep, client_address
from api.problems import problem_response
from api.routes import now
from payouts import outbox

router = APIRouter(prefix="/api/sms", tags=["sms"])

SKEW_SECONDS = 300
MAX_BODY = 512 * 1024


class ReplyIn(BaseModel):
    id: str = Field(min_length=1, max_length=128, description="短信平台的上行短信编号（幂等键）")
    phone: str = Field(min_length=5, max_length=32)
    text: str = Field(max_length=500)


class RepliesIn(BaseModel):
    replies: list[ReplyIn] = Field(min_length=1, max_length=1000)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The signature the gateway sends for `body` at `timestamp` (hex HMAC-SHA-256)."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _refused(request: Request, status: int, title: str, detail: str) -> Response:
    return problem_response(request, status, title, detail)


@router.post("/replies", summary="短信平台上行短信回调（回复TD退订），须签名")
async def replies(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    x_zhida_timestamp: Annotated[str, Header(max_length=20)] = "",
    x_zhida_signature: Annotated[str, Header(max_length=128)] = "",
) -> Response:
    if settings.sms_reply_secret is None:
        return _refused(request, 404, "不存在", "未启用上行短信回调")
    limiter = request.app.state.limits["sms_reply"]
    ip = client_address(request)
    if not limiter.hit(ip):
        response = _refused(request, 429, "请求过于频繁", "上行短信回调过于频繁，请稍后重试")
        response.headers["Retry-After"] = str(limiter.retry_after(ip))
        return response
    body = await request.body()
    if len(body) > MAX_BODY:
        return _refused(request, 413, "请求过大", f"一次回调不超过 {MAX_BODY // 1024} KiB")
    secret = settings.sms_reply_secret.get_secret_value()
    expected = signature(secret, x_zhida_timestamp, body)
    signed = hmac.compare_digest(expected.encode(), x_zhida_signature.strip().lower().encode())
    fresh = x_zhida_timestamp.isdigit() and abs(time.time() - int(x_zhida_timestamp)) <= SKEW_SECONDS
    if not (signed and fresh):
        return _refused(
            request, 401, "签名无效", "上行短信回调须带有效的 X-Zhida-Timestamp 与 X-Zhida-Signature"
        )
    try:
        given = RepliesIn.model_validate(json.loads(body))
    except (ValueError, ValidationError) as e:
        return _refused(request, 422, "请求参数有误", str(e).splitlines()[0])
    at = now()
    stopped = repeated = ignored = 0
    for r in given.replies:
        phone = outbox.normal_phone(r.phone)
        if phone is None:
            ignored += 1
            continue
        taken = outbox.take_reply(session, r.id, phone, r.text, at)
        stopped += taken.opted_out
        repeated += taken.repeated
    return JSONResponse(
        {
            "taken": len(given.replies) - ignored,
            "opted_out": stopped,
            "repeated": repeated,
            "ignored": ignored,
        }
    )
