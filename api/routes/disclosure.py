"""Public 晾晒: where each policy's money went — a public page per policy and the open-data export (CSV
and JSON), kept after the policy's notices end. No sign-in; no personal data (`reports.disclosure`).

The figures are aggregates over every offer, so they are computed at most once per `CACHE_SECONDS` per
process and policy: a crowd reading the page costs the database one query set a few minutes.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from api.deps import SessionDep
from api.routes import render
from reports import disclosure

public = APIRouter(prefix="/liangshai", tags=["public disclosure"])
CACHE_SECONDS = 300
_POLICY = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_cache: dict[str | None, tuple[float, disclosure.Disclosure]] = {}
_lock = threading.Lock()
HTML = {"content": {"text/html": {}}}


def figures(session: Session, policy_id: str | None) -> disclosure.Disclosure:
    """The public figures of one policy (or all), from this process's cache while fresh."""
    now = time.monotonic()
    with _lock:
        hit = _cache.get(policy_id)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    found = disclosure.figures(session, policy_id=policy_id)
    with _lock:
        _cache[policy_id] = (now, found)
    return found


def _rows(d: disclosure.Disclosure) -> list[dict[str, object]]:
    return [r | {"rate_text": disclosure.rate_text(r["rate"])} for r in d.totals.to_dict("records")]


@public.get("", response_class=HTMLResponse, responses={200: HTML}, summary="惠企资金去向晾晒（各政策）")
def disclosure_list(request: Request, session: SessionDep) -> Response:
    d = figures(session, None)
    rows = [r for r in _rows(d) if r["county_code"] == ""]
    return render(request, "disclosure_list.html", {"rows": rows, "as_of": d.as_of})


@public.get(
    "/open-data.csv",
    summary="开放数据（CSV）：各政策、区县、月份的兑现情况",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def open_data_csv(
    session: SessionDep, policy: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    d = figures(session, _policy(policy))
    return Response(
        disclosure.open_data_csv(d),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="liangshai.csv"'},
    )


@public.get("/open-data.json", summary="开放数据（JSON）：各政策、区县的兑现情况及按月明细")
def open_data_json(
    session: SessionDep, policy: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    d = figures(session, _policy(policy))
    return Response(disclosure.open_data_json(d), media_type="application/json; charset=utf-8")


@public.get(
    "/{policy_id}",
    response_class=HTMLResponse,
    responses={200: HTML, 404: HTML},
    summary="一项政策的资金去向",
)
def disclosure_policy(request: Request, policy_id: str, session: SessionDep) -> Response:
    pid = _policy(policy_id)
    d = figures(session, pid) if pid else None
    if d is None or d.totals.empty:
        return render(request, "disclosure_missing.html", {}, status_code=404)
    rows = _rows(d)
    months = (
        d.by_month[d.by_month["county_code"].notna()]
        .groupby("month", as_index=False)[["matched", "reached", "paid", "paid_amount"]]
        .sum()
    )
    return render(
        request,
        "disclosure_policy.html",
        {
            "total": next(r for r in rows if r["county_code"] == ""),
            "counties": [r for r in rows if r["county_code"] != ""],
            "months": months.to_dict("records"),
            "as_of": d.as_of,
            "policy_id": pid,
        },
    )


def _policy(value: str | None) -> str | None:
    return value if value is not None and _POLICY.fullmatch(value) else None
