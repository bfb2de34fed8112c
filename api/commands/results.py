"""`zhida results`: a run's near misses and missing data, read on demand from its compact form (Contract 4,
format 3): one item's list in a region, by condition or enterprise, a page at a time or exported to
Parquet; and `export`, which writes near_misses.parquet and missing_data.parquet as format 2 did."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from matcher import runfolder
from matcher.results import ListName, RunResults, Slice, export_lists
from rules.errors import MatchError, display_path

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)

_HEADERS = {
    "near_misses": ["政策", "事项", "统一社会信用代码", "未满足的条件", "取值"],
    "missing_data": ["政策", "事项", "统一社会信用代码", "缺少的字段"],
}


def _show(
    name: ListName, run: Path, s: Slice, out: Path | None, page: int, limit: int, by_item: bool
) -> None:
    runfolder.read_manifest(run)  # a folder that is not a run is refused by name
    if s.item_id and not s.policy_id:
        raise MatchError("--item 需与 --policy 一起给出：事项编号只在其政策内唯一")
    results = RunResults(run)
    try:
        if out is not None:
            if by_item and out.exists():
                raise MatchError(f"--out {out} 已存在：按事项分区写出需要一个新目录")
            if not by_item and out.suffix != ".parquet":
                raise MatchError(
                    f"--out {out}：请给出 .parquet 文件名（或加 --by-item 写成按事项分区的目录）"
                )
            rows = results.export(name, out, s, by_item=by_item)
            console.print(f"已写出 {rows:,} 行：{display_path(out)}", markup=False)
            return
        total = results.count(name, s)
        table = Table(*_HEADERS[name], title=f"共 {total:,} 行，第 {page} 页")
        for row in results.page(name, s, offset=(page - 1) * limit, limit=limit):
            table.add_row(*("、".join(v) if isinstance(v, list) else str(v or "") for v in row))
        console.print(table)
    finally:
        results.close()


_RUN = typer.Option(..., "--run", help="匹配结果目录（zhida match --out）")
_POLICY = typer.Option(None, "--policy", help="政策编号")
_ITEM = typer.Option(None, "--item", help="事项编号（与 --policy 同用）")
_REGION = typer.Option(None, "--region", help="行政区划代码前缀，如 4301")
_SECTION = typer.Option(None, "--section", help="国民经济行业门类，如 C")
_SIZE = typer.Option(None, "--size", help="企业规模：large medium small micro")
_USCC = typer.Option(None, "--uscc", help="统一社会信用代码（或其前缀）")
_OUT = typer.Option(None, "--out", help="把所选行全部写成一个 Parquet 文件（列同 near_misses.parquet）")
_PAGE = typer.Option(1, "--page", min=1, help="第几页")
_LIMIT = typer.Option(50, "--limit", min=1, max=10_000, help="每页行数")
_BY_ITEM = typer.Option(False, "--by-item", help="与 --out 同用：写成按政策、事项分区的目录")


@app.command("near-misses")
def near_misses(
    run: Path = _RUN,
    policy: str | None = _POLICY,
    item: str | None = _ITEM,
    region: str | None = _REGION,
    section: str | None = _SECTION,
    size: str | None = _SIZE,
    condition: str | None = typer.Option(None, "--condition", help="未满足的条件编号"),
    uscc: str | None = _USCC,
    out: Path | None = _OUT,
    page: int = _PAGE,
    limit: int = _LIMIT,
    by_item: bool = _BY_ITEM,
) -> None:
    """差一点名单：只差一项条件的企业，及该条件读取的数据。"""
    s = Slice(policy, item, region, section, size, condition_id=condition, uscc=uscc)
    _show("near_misses", run, s, out, page, limit, by_item)


@app.command("missing-data")
def missing_data(
    run: Path = _RUN,
    policy: str | None = _POLICY,
    item: str | None = _ITEM,
    region: str | None = _REGION,
    section: str | None = _SECTION,
    size: str | None = _SIZE,
    field: str | None = typer.Option(None, "--field", help="缺少的字段名"),
    uscc: str | None = _USCC,
    out: Path | None = _OUT,
    page: int = _PAGE,
    limit: int = _LIMIT,
    by_item: bool = _BY_ITEM,
) -> None:
    """数据缺失名单：无不满足条件、但缺少数据而无法判断的企业，及缺少的字段。"""
    s = Slice(policy, item, region, section, size, field=field, uscc=uscc)
    _show("missing_data", run, s, out, page, limit, by_item)


@app.command("export")
def export(
    run: Path = _RUN,
    out: Path | None = typer.Option(None, "--out", help="写入的目录（默认：匹配结果目录本身）"),
) -> None:
    """把差一点名单和数据缺失名单逐行写出为 near_misses.parquet 和 missing_data.parquet（与格式 2 相同）。"""
    runfolder.read_manifest(run)
    if not runfolder.has_compact_results(run):
        raise MatchError(f"{display_path(run)} 是旧格式，已逐行保存两份名单，无需导出")
    counts = export_lists(run, out)
    target = display_path(out or run)
    console.print(
        f"已写出 {target}/near_misses.parquet（{counts['near_misses']:,} 行）和 "
        f"missing_data.parquet（{counts['missing_data']:,} 行）",
        markup=False,
    )
