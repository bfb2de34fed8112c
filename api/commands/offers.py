"""`zhida offers`: import a match run, review (hold, drop, release), correct accounts, see the funnel."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from api.commands import BY, EXPECT_COUNT, EXPECT_TOTAL, IDENTITY_HELP, actor, confirmed_tally, now
from payouts import confirm, offers, payees
from payouts.db import PayoutSettings, connect, transaction
from payouts.models import OfferState
from payouts.selection import OfferFilter, Selection

app = typer.Typer(no_args_is_help=True, epilog=IDENTITY_HELP)
console = Console(highlight=False)


@app.command("import", help="导入一次匹配结果（候选名单）为待初核的兑现要约", epilog=IDENTITY_HELP)
def import_run(
    run_dir: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="匹配结果目录（zhida match --out）"
    ),
    claimed: str | None = BY,
) -> None:
    from payouts import imports  # pyarrow: loaded for an import, not at every start

    by = actor(claimed)
    with transaction(connect()) as s:
        r = imports.import_run(s, run_dir, by, now())
    table = Table(title=f"已导入匹配批次 {r.run_id}")
    for col in ("政策", "要约", "暂缓（无对公账户）", "金额（元）"):
        table.add_column(col, justify="left" if col == "政策" else "right")
    for pid, st in sorted(r.by_policy.items()):
        table.add_row(pid, f"{st['offers']:,}", f"{st['held']:,}", f"{st['amount']:,.2f}")
    table.add_row("合计", f"{r.offers:,}", f"{r.held:,}", f"{r.amount:,.2f}")
    console.print(table)
    if r.skipped:
        console.print(f"已有在办要约、本次跳过：{r.skipped:,} 条（同一企业、事项、期间只兑现一次）")
    if r.zero:
        console.print(f"预算分配后金额为 0、未生成要约：{r.zero:,} 条")
    console.print(f"用时 {r.seconds['total']:.2f} 秒")


@app.command(
    "backfill-profile",
    help="为升级前导入的要约补上企业的行业门类、规模和行政区划（按其匹配批次的快照和政策重算画像），"
    "供初核按行业、规模筛选、按辖区分级审核",
)
def backfill_profile() -> None:
    from sqlalchemy import and_, or_, select

    from payouts import imports  # pyarrow and the matcher: loaded for this repair only
    from payouts.models import MatchRun, Offer
    from rules.errors import MatchError

    with transaction(connect()) as s:
        runs = s.scalars(
            select(MatchRun)
            .where(
                MatchRun.id.in_(
                    select(Offer.match_run_id).where(
                        or_(
                            and_(Offer.industry_section.is_(None), Offer.size_class.is_(None)),
                            Offer.region_code.is_(None),
                        )
                    )
                )
            )
            .order_by(MatchRun.id)
        ).all()
        ids = [(r.id, r.run_id) for r in runs]
    if not ids:
        console.print("所有要约都已有行业门类、规模和行政区划，无需补充")
        return
    for id_, run_id in ids:
        with transaction(connect()) as s:
            run = s.get(MatchRun, id_)
            assert run is not None
            try:
                filled = imports.backfill_profile_keys(s, run)
            except MatchError as e:
                console.print(f"[yellow]匹配批次 {run_id}：未补充。{e}[/yellow]")
                continue
        console.print(f"匹配批次 {run_id}：已补充 {filled:,} 条要约")


def _chosen(offer: list[str] | None, run: str | None, policy: str | None, everything: bool) -> Selection:
    """The offers a command was told to act on: these, or all matching --run/--policy (or --all)."""
    if offer:
        return Selection(offers=tuple(offer))
    if run is None and policy is None and not everything:
        console.print("[red]请用 --offer、--run 或 --policy 指明要约，或用 --all 表示全部待初核的要约[/red]")
        raise typer.Exit(2)
    states = (OfferState.DRAFTED.value, OfferState.HELD.value)
    return Selection(filter=OfferFilter(policy_id=policy, run_id=run, states=states))


@app.command(
    "release",
    help="初核通过：发布所选要约（无需确认的政策直接确认）；先显示笔数和金额，确认后执行",
    epilog=IDENTITY_HELP,
)
def release(
    run: str | None = typer.Option(None, "--run", help="这个匹配批次的待初核要约"),
    policy: str | None = typer.Option(None, "--policy", help="这项政策的待初核要约"),
    offer: list[str] | None = typer.Option(None, "--offer", help="这些要约（可为暂缓的要约）"),
    everything: bool = typer.Option(False, "--all", help="全部待初核的要约"),
    expect_count: int | None = EXPECT_COUNT,
    expect_total: str | None = EXPECT_TOTAL,
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    selection = _chosen(offer, run, policy, everything)
    with transaction(connect()) as s:
        expected = confirmed_tally(
            console, "发布", offers.preview_action(s, selection, "release", by=by), expect_count, expect_total
        )
        r = offers.release(s, by, now(), selection=selection, expected=expected)
    console.print(
        f"已发布 {r.released:,} 条，直接确认 {r.confirmed:,} 条，因无联系电话暂缓 {r.held_no_phone:,} 条，"
        f"合计 {r.tally.total:,.2f} 元"
    )


def _set_aside(
    to: OfferState, offer_ids: list[str], reason: str, count: int | None, total: str | None, by: str
) -> None:
    selection = Selection(offers=tuple(offer_ids))
    word = "暂缓" if to is OfferState.HELD else "剔除"
    with transaction(connect()) as s:
        preview = offers.preview_action(s, selection, "hold" if to is OfferState.HELD else "drop", by=by)
        expected = confirmed_tally(console, word, preview, count, total)
        done = offers.set_aside(s, to, selection, reason, by, now(), expected=expected)
    console.print(f"已{word} {len(done):,} 条，合计 {done.tally.total:,.2f} 元")


@app.command("hold", help="暂缓要约（须写明原因）", epilog=IDENTITY_HELP)
def hold(
    offer_ids: list[str] = typer.Argument(..., help="要约编号"),
    reason: str = typer.Option(..., "--reason", help="原因"),
    expect_count: int | None = EXPECT_COUNT,
    expect_total: str | None = EXPECT_TOTAL,
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    _set_aside(OfferState.HELD, offer_ids, reason, expect_count, expect_total, by)


@app.command("drop", help="剔除要约（须写明原因）", epilog=IDENTITY_HELP)
def drop(
    offer_ids: list[str] = typer.Argument(..., help="要约编号"),
    reason: str = typer.Option(..., "--reason", help="原因"),
    expect_count: int | None = EXPECT_COUNT,
    expect_total: str | None = EXPECT_TOTAL,
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    _set_aside(OfferState.DROPPED, offer_ids, reason, expect_count, expect_total, by)


@app.command("list", help="列出本人可见的要约（本部门及上级部门的政策、本辖区的企业）", epilog=IDENTITY_HELP)
def list_offers(
    state: str | None = typer.Option(None, "--state", help="状态，如 drafted、confirmed、held"),
    policy: str | None = typer.Option(None, "--policy"),
    run: str | None = typer.Option(None, "--run"),
    limit: int = typer.Option(50, "--limit"),
    claimed: str | None = BY,
) -> None:
    from payouts import scope

    by = actor(claimed)
    with transaction(connect()) as s:
        within = scope.of_username(s, by)
        rows = offers.list_offers(s, state=state, policy_id=policy, run_id=run, limit=limit, within=within)
    table = Table()
    for col in ("要约", "政策", "事项", "企业", "金额（元）", "状态", "原因"):
        table.add_column(col, justify="right" if col == "金额（元）" else "left")
    for o in rows:
        table.add_row(
            o.public_id,
            o.policy_id,
            o.item_id,
            o.uscc,
            f"{o.amount:,.2f}",
            offers.label(o.state),
            o.hold_reason or "",
        )
    console.print(table)


@app.command("status", help="兑现漏斗：比对命中 → 初核发布 → 已发短信 → 已确认 → 已组批 → 已复核 → 已到账")
def status(
    run: str | None = typer.Option(None, "--run"),
    policy: str | None = typer.Option(None, "--policy"),
) -> None:
    from reports import funnel  # pandas: loaded when the funnel is asked for, not at every start

    with transaction(connect()) as s:
        scope = None if policy is None else {policy}
        stages = funnel.stages(s, run_id=run, policy_ids=scope)
        states = funnel.by_state(s, run_id=run, policy_ids=scope)
    for title, rows in (("兑现漏斗", stages), ("当前状态", states)):
        table = Table(title=title)
        for col in ("环节", "笔数", "金额（元）"):
            table.add_column(col, justify="left" if col == "环节" else "right")
        for st in rows:
            table.add_row(st.label, f"{st.count:,}", f"{st.amount:,.2f}")
        console.print(table)


@app.command(
    "fix-account",
    help="提出更正企业的对公账户（户名须为企业登记名称）：待另一人审核通过后生效（approve-account-change）",
    epilog=IDENTITY_HELP,
)
def fix_account(
    uscc: str = typer.Argument(..., help="统一社会信用代码"),
    bank: str = typer.Option(..., "--bank", help="开户行"),
    account_no: str = typer.Option(..., "--account-no", help="账号"),
    account_name: str = typer.Option(..., "--account-name", help="户名"),
    reason: str = typer.Option(..., "--reason", help="更正依据"),
    phone: str | None = typer.Option(None, "--phone", help="联系电话（可选）"),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        c = payees.propose_account_change(
            s,
            uscc,
            bank_name=bank,
            account_no=account_no,
            account_name=account_name,
            contact_phone=phone,
            by=by,
            reason=reason,
            now=now(),
        )
        view = next(v for v in payees.account_changes(s) if v.public_id == c.public_id)
    console.print(
        f"已提出账户变更 {view.public_id}：{view.name} {view.old_bank or ''} {view.old_account} → "
        f"{view.new_bank} {view.new_account}，待另一位工作人员审核（zhida offers approve-account-change）",
        soft_wrap=True,
    )


@app.command("account-changes", help="列出对公账户变更申请（默认待审核的），账号脱敏显示")
def account_changes(
    state: str | None = typer.Option("pending", "--state", help="pending、approved、rejected；空为全部"),
) -> None:
    with transaction(connect()) as s:
        rows = payees.account_changes(s, state=state or None)
    table = Table()
    for col in ("申请", "企业", "原账户", "新账户", "原因", "状态", "申请人", "审核人"):
        table.add_column(col)
    for v in rows:
        table.add_row(
            v.public_id,
            f"{v.name}（{v.uscc}）",
            f"{v.old_bank or ''} {v.old_account}",
            f"{v.new_bank} {v.new_account}",
            v.reason,
            v.state_label,
            v.proposed_by,
            v.decided_by or "",
        )
    console.print(table)


@app.command(
    "approve-account-change",
    help="审核通过对公账户变更（审核人不能是申请人），通过后生效",
    epilog=IDENTITY_HELP,
)
def approve_account_change(
    change_id: str = typer.Argument(..., help="变更申请编号"), claimed: str | None = BY
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        p = payees.approve_account_change(s, change_id, by=by, now=now())
        console.print(f"已生效：{p.name} {p.bank_name} {payees.mask_account(p.account_no)}")


@app.command("reject-account-change", help="退回对公账户变更（须写明原因），账户不变", epilog=IDENTITY_HELP)
def reject_account_change(
    change_id: str = typer.Argument(..., help="变更申请编号"),
    reason: str = typer.Option(..., "--reason", help="退回原因"),
    claimed: str | None = BY,
) -> None:
    by = actor(claimed)
    with transaction(connect()) as s:
        payees.reject_account_change(s, change_id, by=by, reason=reason, now=now())
    console.print(f"已退回账户变更 {change_id}")


@app.command("confirm", help="模拟企业点击短信链接确认（测试用；企业实际在手机页面上确认）")
def confirm_link(link: str = typer.Argument(..., help="短信中的链接或其令牌")) -> None:
    token = link.removeprefix(PayoutSettings.from_env().link_base).rsplit("/", 1)[-1]
    with transaction(connect()) as s:
        a = confirm.confirm(s, token, ip="127.0.0.1", user_agent="zhida-cli", now=now())
    console.print(f"要约 {a.public_id} {'此前已确认' if a.repeated else '已确认'}")


@app.command("bench-import", help="测量批量导入速度（合成数据，写入指定数据库）")
def bench_import(
    rows: int = typer.Option(1_000_000, "--rows"),
    url: str | None = typer.Option(None, "--url", help="数据库（默认 ZHIDA_DATABASE_URL）"),
) -> None:
    from devtools.bench_import import bench

    report = bench(rows, url)
    console.print(report)
