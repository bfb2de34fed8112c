"""`zhida snapshot profile`: build the enterprise profile, show each field's coverage, export it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from matcher.duckdb_engine import connect
from matcher.profile import build_profile, catalog_columns, coverage
from matcher.snapshot import load_snapshot
from rules.catalog import FIELDS

console = Console(highlight=False)


def profile(
    directory: Path = typer.Argument(..., help="登记数据快照目录"),
    year: int = typer.Option(..., "--year", help="考核年度（年度数据取该年）"),
    as_of: str = typer.Option(..., "--as-of", help="评估日期 YYYY-MM-DD（资质有效期、成立年限按此日计算）"),
    out: Path | None = typer.Option(None, help="把画像导出为 Parquet 文件"),
) -> None:
    """构建企业画像，显示每个字段的覆盖率（非空比例），可导出为 Parquet。"""
    day = dt.date.fromisoformat(as_of)
    con = connect()
    load_snapshot(directory, con)
    table = build_profile(con, year, day)
    total, counts = coverage(con, table)
    t = Table(title=f"企业画像字段覆盖率（{year} 年度，评估日 {day}，{total:,} 户）")
    for col in ("字段", "名称", "有值", "覆盖率", "来源"):
        t.add_column(col, justify="right" if col in ("有值", "覆盖率") else "left")
    for f in FIELDS:
        share = counts[f.name] / total if total else 0.0
        style = "red" if share < 0.8 else ""
        t.add_row(
            f.name,
            f.label,
            f"{counts[f.name]:,}",
            f"[{style}]{share:.1%}[/{style}]" if style else f"{share:.1%}",
            f.department,
        )
    console.print(t)
    if out is not None:
        con.execute(f"COPY (SELECT {catalog_columns()} FROM {table}) TO '{out}' (FORMAT PARQUET)")
        console.print(f"已导出 {out}")
