"""`zhida supermarket`: the public policy supermarket's search index: rebuild it, search it, measure it."""

from __future__ import annotations

import datetime as dt

import typer
from rich.console import Console
from rich.table import Table

from api.policystore import PolicyStore
from api.settings import Settings
from devtools.bench_search import bench as run_bench
from payouts.db import connect, transaction
from portal import supermarket
from portal.supermarket import Search

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)


def _store(settings: Settings) -> PolicyStore:
    return PolicyStore(connect(settings.database_url))


@app.command(
    "reindex", help="按已发布政策的最新版本重建政策超市的搜索索引（ZHIDA_DATA_DIR、ZHIDA_DATABASE_URL）"
)
def reindex() -> None:
    settings = Settings()
    with transaction(connect(settings.database_url)) as s:
        n = _store(settings).rebuild_index(s, dt.datetime.now(dt.UTC))
    console.print(f"政策超市索引已重建：{n} 项政策")


@app.command("search", help="在政策超市中搜索（与公开页面 /policies 相同）")
def search(
    q: str = typer.Argument("", help="搜索词，如 稳岗"),
    category: str | None = typer.Option(None, "--category", help="政策分类"),
    region: str | None = typer.Option(None, "--region", help="行政区划代码前缀，如 43、4301"),
    industry: str | None = typer.Option(None, "--industry", help="行业门类字母"),
    size: str | None = typer.Option(None, "--size", help="large | medium | small | micro"),
    open_only: bool = typer.Option(False, "--open", help="只看仍在有效期内的"),
    sort: str = typer.Option("relevance", "--sort", help="relevance | amount"),
) -> None:
    settings = Settings()
    wanted = Search(q, category, None, region, industry, size, open_only, sort)
    with transaction(connect(settings.database_url)) as s:
        results = supermarket.search(s, wanted, settings.default_as_of())
    table = Table(title=f"共 {results.total} 项")
    for col in ("政策", "标题", "分类", "部门", "单户最高（元）", "状态", "相关度"):
        table.add_column(col, justify="right" if col in ("单户最高（元）", "相关度") else "left")
    for h in results.hits:
        amount = f"{h.max_amount:,.2f}" if h.max_amount is not None else "按公式"
        table.add_row(h.policy_id, h.title, h.category or "", h.department, amount, h.status, str(h.score))
    console.print(table)


@app.command(
    "bench", help="基准测试：合成政策建索引后计时搜索，报告 p50/p95（SQLite，及可连接时的 PostgreSQL）"
)
def bench(
    policies: int = typer.Option(5000, "--policies", min=1, help="合成政策数（政策库的变体）"),
    rounds: int = typer.Option(10, "--rounds", min=1, help="典型搜索各执行几轮"),
    postgres: bool = typer.Option(
        True, "--postgres/--no-postgres", help="PostgreSQL（127.0.0.1:5432）可连接时也测"
    ),
) -> None:
    results = run_bench(policies, rounds, postgres)
    for r in results:
        table = Table(
            title=f"{r.backend}：{r.policies:,} 项政策，{r.tokens:,} 个索引词，建索引 {r.index_s} 秒"
        )
        table.add_column("搜索")
        table.add_column("中位数（毫秒）", justify="right")
        for label, ms in r.per_query_ms.items():
            table.add_row(label, f"{ms:.1f}")
        console.print(table)
        console.print(
            f"[bold]{r.backend}[/bold]：{r.searches} 次搜索，p50 {r.p50_ms:.1f} ms，p95 {r.p95_ms:.1f} ms，"
            f"最慢 {r.max_ms:.1f} ms（目标：{r.policies:,} 项政策 100 ms 以内）"
        )
    if postgres and len(results) < 2:
        console.print("PostgreSQL（127.0.0.1:5432）不可连接，只测了 SQLite")
