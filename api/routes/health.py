"""Health for the operator's probes: `/healthz` (the process answers) and `/readyz` (it can serve: the
database answers, its schema is the code's, the data folder has room). Not in the API schema; they say
nothing about users or money."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from payouts.db import schema_state

pages = APIRouter(include_in_schema=False)
MIN_FREE_BYTES = 1 << 30  # 1 GiB for run folders, bank files and evidence


@pages.get("/healthz")
def alive() -> dict[str, str]:
    return {"status": "ok"}


@pages.get("/readyz")
def ready(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        current, head = schema_state(request.app.state.engine)
        checks["database"] = "ok"
        checks["schema"] = "ok" if current == head else f"数据库结构为 {current}，程序需要 {head}：请先迁移"
    except Exception as e:
        checks["database"] = f"无法连接数据库：{type(e).__name__}"
    folder = request.app.state.settings.data_dir
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    checks["disk"] = (
        "ok" if free >= MIN_FREE_BYTES else f"数据目录剩余空间 {free / 2**20:,.0f} MiB，不足 1 GiB"
    )
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
    )
