"""`zhida batch`: assemble (maker), approve or reject (checker), export bank files, reconcile."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from api.commands import BY, IDENTITY_HELP, actor, now
from payouts import batches
from payouts.db import connect, transaction

app = typer.Typer(no_args_is_help=True, epilog=IDENTITY_HELP)
console = Console(highlight=False)


@app.command("create", help="制单：把一项政策已确认的要约组成拨付批次", epilog=IDENTITY_HELP)
def create(
    policy: str = typer.Option(..., "--policy", help="政策编号"),
    period: str | None = typer.Option(None, "--period", help="期间（政策只有一个期间时可省略）"),
    offer: list[str] | None = typer.Option(None, "--offer", help="只组这些要约"),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        made = batches.create_batches(s, policy, by, now(), public_ids=offer or None, period=period)
        money = batches.budget(s, made[0].policy_id, made[0].period)
    for b in made:
        payer = f"，付款方 {b.payer_name}" + (f"（分担 {b.share}）" if b.share else "")
        console.print(f"批次 {b.reference}：{b.line_count:,} 笔，{b.total:,.2f} 元{payer}，待复核")
    if money.remaining is not None:
        console.print(
            f"政策预算 {money.budget:,.2f} 元，已占用 {money.committed:,.2f} 元，剩余 {money.remaining:,.2f} 元"
        )


@app.command("approve", help="复核通过（复核人不能是制单人）", epilog=IDENTITY_HELP)
def approve(reference: str = typer.Argument(..., help="批次号"), claimed: str | None = BY) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        b = batches.approve(s, reference, by, now())
    console.print(f"批次 {b.reference} 复核通过，可以导出银行文件")


@app.command("reject", help="退回批次：要约回到已确认", epilog=IDENTITY_HELP)
def reject(
    reference: str = typer.Argument(..., help="批次号"),
    reason: str = typer.Option(..., "--reason"),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        b = batches.reject(s, reference, by, reason, now())
    console.print(f"批次 {b.reference} 已退回")


@app.command(
    "export",
    help="导出拨付文件：批量代发 CSV 和 ISO 20022 pain.001.001.09，或国库集中支付电子凭证",
    epilog=IDENTITY_HELP,
)
def export(
    reference: str = typer.Argument(..., help="批次号"),
    out: Path = typer.Option(Path("var/bank"), "--out", help="输出目录"),
    file_format: str | None = typer.Option(
        None,
        "--format",
        help="bank_csv 或 pain001（批量代发 CSV 和 pain.001）、treasury（国库集中支付电子凭证）；默认按付款账户的格式",
    ),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        e = batches.export(s, reference, by, out, now(), file_format=file_format)
    for path, digest in (
        (e.csv_path, e.csv_sha256),
        (e.xml_path, e.xml_sha256),
        (e.voucher_path, e.voucher_sha256),
    ):
        if path is not None:
            console.print(f"{path}  sha256 {digest}")


@app.command("reconcile", help="导入银行回单，逐笔标记到账或失败", epilog=IDENTITY_HELP)
def reconcile(
    reference: str = typer.Argument(..., help="批次号"),
    return_file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="银行回单 CSV，或国库支付回单 XML"
    ),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s, return_file.open("rb") as data:
        r = batches.reconcile(s, reference, data, by, now(), filename=return_file.name)
    console.print(
        f"批次 {r.batch}：到账 {r.paid:,} 笔 {r.paid_amount:,.2f} 元，失败 {r.failed:,} 笔 {r.failed_amount:,.2f} 元，"
        f"待回单 {r.pending:,} 笔"
    )
    for public_id, reason in r.failures:
        console.print(f"  [red]失败[/red] {public_id}：{reason}")


@app.command(
    "list", help="列出本人可见的拨付批次（本部门及上级部门的政策、本辖区的批次）", epilog=IDENTITY_HELP
)
def list_batches(
    policy: str | None = typer.Option(None, "--policy"),
    state: str | None = typer.Option(None, "--state"),
    claimed: str | None = BY,
) -> None:
    from payouts import scope

    by = actor(claimed)
    with transaction(connect()) as s:
        rows = batches.batches(s, policy_id=policy, state=state, within=scope.of_username(s, by))
    table = Table()
    for col in ("批次号", "政策", "期间", "付款方", "状态", "笔数", "金额（元）"):
        table.add_column(col, justify="right" if col in ("笔数", "金额（元）") else "left")
    for b in rows:
        table.add_row(
            b.reference, b.policy_id, b.period, b.payer_name, b.state, f"{b.line_count:,}", f"{b.total:,.2f}"
        )
    console.print(table)
