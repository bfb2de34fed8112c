"""`zhida finance`: the finance bureau's configuration: payer accounts, and who pays each policy.

Every change is the finance checker's (资金拨付（复核）), from their staff token, kept as a new version with
an audit event; the policy's author cannot change it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import typer
from rich.console import Console
from rich.table import Table

from api.commands import BY, IDENTITY_HELP, actor, now
from payouts import finance
from payouts.db import connect, transaction
from payouts.models import FileFormat
from rules.formats import money_exact_cn

app = typer.Typer(no_args_is_help=True, epilog=IDENTITY_HELP)
console = Console(highlight=False)
FORMATS = "、".join(f"{f.value}（{label}）" for f, label in finance.FORMAT_LABELS.items())


@app.command("payer", help="新增或修改付款账户（每次修改保留历史版本并记入审计日志）", epilog=IDENTITY_HELP)
def payer(
    code: str = typer.Argument(..., help="账户代码，如 city、furong"),
    name: str = typer.Option(..., "--name", help="户名，如 长沙市财政局"),
    account_no: str = typer.Option(..., "--account", help="账号"),
    bank_name: str = typer.Option(..., "--bank", help="开户行（国库）"),
    file_format: str = typer.Option(..., "--format", help=f"拨付文件格式：{FORMATS}"),
    adm_div_code: str | None = typer.Option(
        None, "--adm-div", help="行政区划代码（国库凭证必填），如 430102"
    ),
    disable: bool = typer.Option(False, "--disable", help="停用该账户"),
    reason: str | None = typer.Option(None, "--reason", help="修改依据，如 文件编号"),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        row = finance.set_payer_account(
            s,
            code,
            name=name,
            account_no=account_no,
            bank_name=bank_name,
            file_format=file_format,
            adm_div_code=adm_div_code,
            active=not disable,
            by=by,
            now=now(),
            reason=reason,
        )
    console.print(f"付款账户 {row.code} 已保存（第 {row.version} 版）")


def _part(text: str) -> finance.Part:
    fields = text.split(":")
    usage = (
        f"{text!r} 应为 账户代码:份数:资金来源:预算指标文号[:指标金额]，"
        "如 city:1:市级财政专项资金:长财预〔2025〕101号:5000000.00"
    )
    if len(fields) not in (4, 5) or not fields[1].strip().isdigit():
        raise typer.BadParameter(usage)
    amount = None
    if len(fields) == 5 and fields[4].strip():
        try:
            amount = Decimal(fields[4].strip().replace(",", ""))
        except InvalidOperation:
            raise typer.BadParameter(f"{usage}；指标金额“{fields[4]}”不是金额") from None
    return finance.Part(fields[0].strip(), int(fields[1]), fields[2].strip(), fields[3].strip(), amount)


@app.command("funding", help="设置一项政策由谁拨付、资金来源和分担比例（保留历史版本）", epilog=IDENTITY_HELP)
def funding(
    policy: str = typer.Argument(..., help="政策编号"),
    part: list[str] = typer.Option(
        ...,
        "--part",
        help="账户代码:份数:资金来源:预算指标文号[:指标金额（元）]；市、区 1:1 分担时写两次，各 1 份",
    ),
    reason: str | None = typer.Option(None, "--reason", help="依据，如 政策文件的资金分担条款"),
    claimed: str | None = BY,
) -> None:
    parts = [_part(p) for p in part]
    by = actor(claimed)
    with transaction(connect()) as s:
        rows = finance.set_funding(s, policy, parts, by=by, now=now(), reason=reason)
        balances = {r.budget_no: finance.index_balance(s, r.budget_no) for r in rows}
    total = sum(r.share for r in rows)
    for r in rows:
        b = balances[r.budget_no]
        left = f"，指标金额 {money_exact_cn(b.amount)}，余额 {money_exact_cn(b.left)}" if b else ""
        console.print(f"{r.payer_code}：{r.share}/{total}，{r.fund_source}，预算指标 {r.budget_no}{left}")
    console.print(f"政策 {policy} 的资金来源已保存（第 {rows[0].version} 版）")


@app.command("show", help="列出付款账户，或一项政策的资金来源及其历史")
def show(policy: str | None = typer.Argument(None, help="政策编号（省略时列出付款账户）")) -> None:
    with transaction(connect()) as s:
        if policy is None:
            table = Table(title="付款账户")
            for col in ("代码", "户名", "账号", "开户行", "文件格式", "行政区划", "状态", "版本"):
                table.add_column(col)
            for a in finance.payer_accounts(s):
                table.add_row(
                    a.code,
                    a.name,
                    a.account_no,
                    a.bank_name,
                    finance.FORMAT_LABELS[FileFormat(a.file_format)],
                    a.adm_div_code or "",
                    "在用" if a.active else "停用",
                    str(a.version),
                )
            console.print(table)
            return
        table = Table(title=f"政策 {policy} 的资金来源")
        for col in ("版本", "付款账户", "份数", "资金来源", "预算指标文号", "设置人", "依据"):
            table.add_column(col)
        for r in finance.funding_history(s, policy):
            table.add_row(
                str(r.version),
                r.payer_code,
                str(r.share),
                r.fund_source,
                r.budget_no,
                r.set_by,
                r.reason or "",
            )
        console.print(table)
