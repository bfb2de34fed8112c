"""`zhida snapshot check` and `zhida snapshot import`: validate a registry snapshot and print the
data-quality report; build one from department exports (Excel, GBK CSV) through a mapping file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console

from matcher.duckdb_engine import connect
from matcher.ingest import import_snapshot, load_mapping
from matcher.snapshot import load_snapshot, report_json
from matcher.snapshot_rules import RULES
from rules.errors import display_path

app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)


@app.command("check")
def check(
    directory: Path = typer.Argument(..., help="快照目录"),
    json_out: Path | None = typer.Option(None, "--json", help="把报告另存为 JSON 文件"),
    today: dt.datetime | None = typer.Option(
        None,
        formats=["%Y-%m-%d"],
        help="判断“未来日期”和年度范围的基准日（默认取 snapshot.yaml 的 taken_at，否则今天）",
    ),
) -> None:
    """校验快照并打印数据质量报告。

    被拒绝的行只计入报告，退出码仍为 0；只有表不可用（缺文件、缺列、类型会丢失信息）时以 1 退出。
    """
    report = load_snapshot(directory, connect(), today=today.date() if today else None)
    console.print(report.to_text(), markup=False)
    if json_out:
        json_out.write_text(report_json(report) + "\n", encoding="utf-8")
        console.print(f"\nJSON 报告：{json_out}", markup=False)


@app.command("import")
def import_(
    sources: list[Path] = typer.Argument(..., help="部门导出文件（.xlsx 或 .csv），可给多个"),
    mapping: Path = typer.Option(..., "--mapping", help="映射文件（YAML）：每个导出文件对应哪张表、哪些列"),
    out: Path = typer.Option(..., "--out", help="新快照目录（不存在或为空）"),
    taken_at: dt.datetime | None = typer.Option(
        None, "--taken-at", formats=["%Y-%m-%d"], help="快照日期（默认取映射文件的 taken_at）"
    ),
) -> None:
    """按映射文件把部门导出的 Excel 和 CSV 导入为快照，并校验。

    任何单元格无法无误转换时列出全部错误（文件、工作表、行、列、字段和改法），不写入任何文件，以 1 退出。
    """
    result = import_snapshot(
        load_mapping(mapping), sources, out, taken_at=taken_at.date() if taken_at else None
    )
    console.print(f"已导入快照 {display_path(result.out)}", markup=False)
    for s in result.sources:
        sheet = f" 工作表「{s.sheet}」" if s.sheet else ""
        console.print(
            f"  {Path(s.file).name}{sheet} → {s.table}：{s.rows:,} 行，SHA-256 {s.sha256[:16]}", markup=False
        )
    report = load_snapshot(result.out, connect(), today=result.taken_at)
    console.print(f"指纹 {report.fingerprint}", markup=False)
    if not report.rejected_total:
        console.print("校验通过：没有被拒绝的行", markup=False)
        return
    console.print(
        f"校验：共拒绝 {report.rejected_total:,} 行（快照已写入；被拒绝的行不参与比对），各规则的前几例：",
        markup=False,
    )
    for t in report.tables.values():
        for rule, examples in t.examples.items():
            for ex in examples:
                where = result.locate(t.name, ex["row"], ex["column"], f"{RULES[rule]}，值为“{ex['value']}”")
                console.print(f"  {where}", markup=False)
    console.print(f"完整报告：zhida snapshot check {display_path(result.out)}", markup=False)


def _more_commands() -> None:
    """`generate` and `profile` live in modules of their own; they are `zhida snapshot` commands."""
    from api.commands import generate, profile

    app.command("generate", help="生成合成快照")(generate.generate)
    app.command("profile", help="构建企业画像并显示字段覆盖率")(profile.profile)


_more_commands()
