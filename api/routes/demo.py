"""Demo-only pages (`ZHIDA_DEMO_PHONE=true`, refused in production): the enterprises' phone, showing the
SMS this process sent with their links, and a simulated bank that answers an exported batch with a
return file. They let a newcomer walk the whole flow in the browser.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import BankFiles, BatchDep, SessionDep
from api.routes import render
from payouts import batches, vouchers
from payouts.bankfiles import render_return
from payouts.models import BatchState
from rules.errors import StateError

pages = APIRouter(prefix="/demo", include_in_schema=False)


@pages.get("/phone")
def phone(request: Request) -> Response:
    sent = list(reversed(request.app.state.phone.sent))
    return render(request, "demo_phone.html", {"messages": sent[:200], "total": len(sent)})


@pages.get("/bank/{reference}/return.csv")
def bank_return(
    batch: BatchDep,
    user: BankFiles,
    session: SessionDep,
    fail: Annotated[int, Query(ge=0, le=1000)] = 0,
) -> Response:
    """The bank's answer to an exported batch: every line paid, except the first `fail` lines."""
    if batch.state != BatchState.EXPORTED.value:
        raise StateError(f"批次 {batch.reference} 尚未导出银行文件，银行无法回单")
    content = batches.bank_file_of(session, batch)
    failures = {ln.reference: "账户已销户" for ln in content.lines[:fail]}
    return Response(
        render_return(content, failures),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{batch.reference}.return.csv"'},
    )


@pages.get("/bank/{reference}/return.xml")
def treasury_return(
    batch: BatchDep,
    user: BankFiles,
    session: SessionDep,
    fail: Annotated[int, Query(ge=0, le=1000)] = 0,
) -> Response:
    """The treasury's answer to a batch exported as vouchers: every voucher paid, except the first `fail`."""
    if batch.state != BatchState.EXPORTED.value or batch.voucher_sha256 is None:
        raise StateError(f"批次 {batch.reference} 尚未导出国库支付凭证，国库无法回单")
    content = batches.bank_file_of(session, batch)
    failures = {ln.reference: "收款账户状态异常" for ln in content.lines[:fail]}
    return Response(
        vouchers.render_return(content, failures),
        media_type="application/xml; charset=GBK",
        headers={"Content-Disposition": f'attachment; filename="{batch.reference}.return.xml"'},
    )
