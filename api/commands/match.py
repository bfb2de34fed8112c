"""`zhida match` and `zhida explain`: run the matcher and say why."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from devtools.bench_match import BenchResult, run_bench
from matcher.duckdb_engine import connect, fetch_one
from matcher.explain import explain as explain_items
from matcher.run import run_match
from matcher.simulate import simulate as run_simulation
from matcher.snapshot import load_snapshot
from rules.catalog import CATALOG
from rules.formats import field_value
from rules.ruleset import load_ruleset
from rules.validate import load_policy

console = Console(highlight=False)

_STATUS = {"eligible": "符合", "near_miss": "差一点", "missing_data": "数据缺失", "ineligible": "不符合"}


def _as_of(value: str | None) -> dt.date:
    if value is None:
        return dt.date.today()
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"日期应为 YYYY-MM-DD，收到 {value!r}", param_hint="--as-of") from None


def match(
    snapshot: str = typer.Option(
        ..., help="登记数据快照目录；Spark 引擎还可用 Spark 能读的 URI（hdfs://、s3a://）或表映射文件 .yaml"
    ),
    policies: Path = typer.Option(..., help="政策文件目录"),
    out: str = typer.Option(..., help="输出目录；Spark 引擎还可用 URI"),
    as_of: str | None = typer.Option(None, "--as-of", help="评估日期 YYYY-MM-DD，默认今天"),
    engine: str = typer.Option("duckdb", "--engine", help="计算引擎：duckdb（单机，默认）或 spark（集群）"),
    spark_master: str = typer.Option(
        "local[*]", "--spark-master", help="Spark master（设置了 SPARK_REMOTE 时改用 Spark Connect）"
    ),
    conf: list[str] = typer.Option([], "--conf", help="Spark 设置 key=value，可重复"),
    overrides: Path | None = typer.Option(
        None,
        "--overrides",
        help="已核实的企业补充数据（JSON 或 Parquet 的覆盖记录），只覆盖载入后的表，不改快照文件",
    ),
    export_lists: bool = typer.Option(
        True,
        "--lists/--compact",
        help="是否另把差一点名单和数据缺失名单逐行写出为 near_misses.parquet、missing_data.parquet（默认写出；"
        "全国规模的运行用 --compact 只保留紧凑结果，需要时用 zhida results 导出）",
    ),
) -> None:
    """一次性对全部有效政策进行数据比对，写出候选名单、差一点名单和数据缺失名单。"""
    day = _as_of(as_of)
    if engine not in ("duckdb", "spark"):
        raise typer.BadParameter(f"引擎应为 duckdb 或 spark，收到 {engine!r}", param_hint="--engine")
    if engine == "duckdb" and conf:
        raise typer.BadParameter("--conf 只用于 --engine spark", param_hint="--conf")
    if engine == "spark" and overrides is not None:
        raise typer.BadParameter("--overrides 目前只用于 --engine duckdb", param_hint="--overrides")
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("准备", total=None)
        if engine == "spark":
            from matcher.spark_engine import parse_conf, run_match_spark, spark_session

            bar.update(task, description="启动 Spark")
            session = spark_session(spark_master, parse_conf(conf))
            result = run_match_spark(
                snapshot,
                policies,
                out,
                day,
                spark=session,
                step=lambda s: bar.update(task, description=s),
                lists=export_lists,
            )
        else:
            result = run_match(
                Path(snapshot),
                policies,
                Path(out),
                day,
                step=lambda s: bar.update(task, description=s),
                overrides=overrides,
            )
            if (
                export_lists
            ):  # the compact lists also row by row, as Contract 4 (Spark writes them in the run)
                from matcher.results import export_lists as write_lists

                bar.update(task, description="逐行写出差一点名单和数据缺失名单")
                write_lists(Path(out))
    m = result.manifest
    table = Table(title=f"匹配结果（评估日 {m.as_of}，{m.enterprises:,} 户企业）")
    for col in ("政策", "事项", "符合", "候选", "差一点", "数据缺失", "金额（元）"):
        table.add_column(col, justify="right" if col not in ("政策", "事项") else "left")
    for row in m.items:
        table.add_row(
            row["policy_id"],
            row["item_id"],
            f"{row['eligible']:,}",
            f"{row['candidates']:,}",
            f"{row['near_misses']:,}",
            f"{row['missing_data']:,}",
            f"{float(row['amount']):,.2f}",
        )
    console.print(table)
    if m.over_budget:
        console.print(f"[red]超出预算（allocation: none），不能发布：{', '.join(m.over_budget)}[/red]")
    if m.inactive_policies:
        console.print(f"未在有效期内、未参与匹配：{', '.join(m.inactive_policies)}")
    t = m.timings
    console.print(
        f"用时 {t['total']:.2f} 秒（载入 {t['load']:.2f}，画像 {t['profile']:.2f}，匹配 {t['match']:.2f}，"
        f"分配 {t['allocate']:.2f}，写出 {t['write']:.2f}）；结果在 {out}"
    )
    console.print(f"快照指纹 {m.snapshot.fingerprint}\n规则指纹 {m.rules.fingerprint}")
    if m.overrides.get("count") or m.overrides.get("skipped"):
        o = m.overrides
        console.print(
            f"采用已核实的补充数据 {o['count']} 项，跳过 {len(o['skipped'])} 项（见 manifest.json 的 overrides）"
        )


def explain(
    snapshot: Path = typer.Option(..., help="登记数据快照目录"),
    policies: Path = typer.Option(..., help="政策文件目录"),
    uscc: str = typer.Option(..., help="统一社会信用代码"),
    as_of: str | None = typer.Option(None, "--as-of", help="评估日期 YYYY-MM-DD，默认今天"),
) -> None:
    """逐条说明一户企业对每个兑现事项的每个条件：条款、读取的数据和结论。"""
    day = _as_of(as_of)
    ruleset = load_ruleset(policies)
    con = connect()
    report = load_snapshot(snapshot, con)
    items = explain_items(
        con, [m for p in ruleset.active(day) if (m := p.matchable()) is not None], day, uscc
    )
    if items is None:
        console.print(
            f"[red]快照中没有可用的企业 {uscc}[/red]（不存在，或该行未通过校验：运行 zhida snapshot check 查看）"
        )
        raise typer.Exit(1)
    name = fetch_one(con, "SELECT name FROM enterprises WHERE uscc = ?", [uscc])
    console.print(
        f"[bold]{name[0] if name else ''}[/bold]（{uscc}），评估日 {day}，快照 {report.fingerprint[:19]}…"
    )
    marks = {True: "[green]✓ 满足[/green]", False: "[red]✗ 不满足[/red]", None: "[yellow]? 数据缺失[/yellow]"}
    for ex in items:
        status = _STATUS[ex.result.status]
        console.print(
            f"\n[bold]{ex.policy.title} · {ex.item.title}[/bold]（{ex.policy.id}/{ex.item.id}）：{status}"
        )
        table = Table(show_header=True)
        for col in ("条件", "条款", "读取的数据", "结论"):
            table.add_column(col)
        for v in ex.verdicts:
            values = "；".join(f"{CATALOG[f].label} {field_value(f, x)}" for f, x in v.read.items())
            table.add_row(Text(v.condition.text), v.condition.clause or "—", Text(values), marks[v.value])
        console.print(table)
        if ex.result.status == "eligible":
            console.print(f"  金额：{ex.result.amount:,} 元（{ex.item.amount}）")
        elif ex.result.status == "missing_data":
            console.print(
                "  缺少数据："
                + "、".join(f"{CATALOG[f].label}（{CATALOG[f].department}）" for f in ex.result.missing)
            )
    console.print("\n注：以上为资格判定；已兑现、就高不重复和预算分配见 zhida match 的候选名单。")


def simulate(
    snapshot: Path = typer.Option(..., help="登记数据快照目录"),
    policy: Path = typer.Option(..., help="新版本政策文件"),
    against: Path | None = typer.Option(None, help="对比的旧版本政策文件；不给则与“无此政策”对比"),
    as_of: str | None = typer.Option(None, "--as-of", help="评估日期 YYYY-MM-DD，默认今天"),
) -> None:
    """影响测算：新版本比旧版本多覆盖、少覆盖多少企业和资金，按地区、行业门类、企业规模分列。"""
    day = _as_of(as_of)
    new = load_policy(policy)
    old = load_policy(against) if against else None
    con = connect()
    load_snapshot(snapshot, con)
    impact = run_simulation(con, new, old, day)
    console.print(
        f"[bold]{new.title}[/bold]：第 {new.version} 版"
        + (f" 对比第 {old.version} 版" if old else " 对比无此政策")
    )
    console.print(
        f"覆盖企业 {impact.old_enterprises:,} → {impact.new_enterprises:,}（新增 {impact.gained:,}，减少 {impact.lost:,}）；"
        f"资金 {impact.old_amount:,} → {impact.new_amount:,} 元（{impact.delta_amount:+,} 元）"
    )
    labels = {"region": "地区（地市）", "industry_section": "行业门类", "size_class": "企业规模"}
    for dim, rows in impact.breakdown.items():
        table = Table(title=labels[dim])
        for col in (labels[dim], "原企业数", "新企业数", "原金额（元）", "新金额（元）"):
            table.add_column(col, justify="left" if col == labels[dim] else "right")
        for key, o, n, oa, na in rows:
            table.add_row(str(key or "未知"), f"{o:,}", f"{n:,}", f"{oa:,}", f"{na:,}")
        console.print(table)


def bench(
    enterprises: int = typer.Option(1_000_000, help="合成企业户数"),
    policies: int = typer.Option(200, help="合成兑现事项数（按政策库的形态生成）"),
    work: Path = typer.Option(Path("var/bench"), help="合成快照与溢写目录"),
    memory_limit: str = typer.Option("16GB", help="DuckDB 内存上限，超出则溢写到磁盘"),
    seed: int = typer.Option(0),
    engine: str = typer.Option("duckdb", "--engine", help="计算引擎：duckdb 或 spark"),
    spark_master: str = typer.Option("local[*]", "--spark-master", help="Spark master"),
    conf: list[str] = typer.Option([], "--conf", help="Spark 设置 key=value，可重复"),
    write: bool = typer.Option(True, "--write/--no-write", help="是否计时写出 Contract 4 文件（仅 DuckDB）"),
    statements: int = typer.Option(
        0,
        "--statements",
        min=0,
        help="另列用时最长的 N 条语句（按所建表或视图）及其余的 Python 用时（仅 DuckDB）",
    ),
) -> None:
    """基准测试：原始扫描、匹配、二者之比、峰值内存，以及逐户 rule-engine 参照实现的外推和加速比。

    两个引擎的结果各自存入 work 目录；两个都跑过时，列出 Spark 与 DuckDB 的用时之比。
    """
    import json
    import os

    if engine not in ("duckdb", "spark"):
        raise typer.BadParameter(f"引擎应为 duckdb 或 spark，收到 {engine!r}", param_hint="--engine")
    figures = {e: work / f"bench-{e}-{enterprises}x{policies}-{seed}.json" for e in ("duckdb", "spark")}
    table = Table(title=f"{enterprises:,} 户 × {policies} 个事项（{engine}）")
    table.add_column("指标")
    table.add_column("数值", justify="right")
    if engine == "spark":
        from devtools.bench_spark import run_spark_bench
        from matcher.spark_engine import parse_conf, spark_session

        session = spark_session(spark_master, parse_conf(conf), app_name="zhida-bench")
        if os.environ.get("SPARK_REMOTE"):  # Spark Connect has no SparkContext to ask
            cores = int(session.conf.get("spark.default.parallelism", "1") or "1")
        else:
            cores = int(session.sparkContext.defaultParallelism)
        s = run_spark_bench(
            enterprises, policies, work, spark=session, cores=cores, seed=seed, say=console.print
        )
        mine = s.to_json()
        rows = [
            ("Spark 核数", f"{s.cores}"),
            ("载入并校验快照", f"{s.load_s:.2f} s"),
            ("构建画像", f"{s.profile_s:.2f} s"),
            ("匹配（每户每条件一次）", f"{s.match_s:.2f} s"),
            ("分配（已兑现/就高/预算）", f"{s.allocate_s:.2f} s"),
            ("汇总（每事项计数与金额）", f"{s.summary_s:.2f} s"),
            ("峰值内存（驱动 + JVM RSS）", f"{s.peak_rss_gib:.2f} GiB"),
            ("每核每秒（企业×事项）", f"{s.pairs_per_core_second:,.0f}"),
            ("每核每秒（载入+画像，企业）", f"{s.enterprises_per_core_second:,.0f}"),
        ]
    else:
        r = run_bench(
            enterprises, policies, work, seed=seed, memory_limit=memory_limit, write=write, say=console.print
        )
        mine = {
            "engine": "duckdb",
            "load_s": round(r.load_s, 3),
            "profile_s": round(r.profile_s, 3),
            "match_s": round(r.match_s, 3),
            "allocate_s": round(r.allocate_s, 3),
            "summary_s": round(r.summary_s, 3),
            "write_s": None if r.write_s is None else round(r.write_s, 3),
            "peak_rss_gib": round(r.peak_rss_gib, 3),
            "total_s": round(r.total_s, 3),
            "files": {k: round(v, 3) for k, v in r.files.items()},
        }
        rows = [
            ("载入并校验快照", f"{r.load_s:.2f} s"),
            ("构建画像", f"{r.profile_s:.2f} s"),
            ("原始扫描（所用列）", f"{r.scan_s:.3f} s"),
            ("匹配（每户每条件一次）", f"{r.match_s:.2f} s"),
            ("分配（已兑现/就高/预算）", f"{r.allocate_s:.2f} s"),
            ("汇总（每事项计数与金额）", f"{r.summary_s:.2f} s"),
            ("写出结果（视图 + Contract 4 文件）", "未写出" if r.write_s is None else f"{r.write_s:.2f} s"),
            *((f"  写出 {name}", f"{seconds:.2f} s") for name, seconds in r.files.items()),
            ("匹配 ÷ 原始扫描", f"{r.match_vs_scan:.1f}×"),
            ("峰值内存（RSS）", f"{r.peak_rss_gib:.2f} GiB"),
            ("rule-engine 逐户（每对）", f"{r.reference_per_pair_s * 1e6:.1f} µs"),
            ("rule-engine 外推总时长", f"{r.reference_extrapolated_s:,.0f} s"),
            ("向量化加速比（匹配 + 分配 + 汇总）", f"{r.speedup:,.0f}×"),
            (
                "向量化加速比（连同写出）",
                "—" if r.speedup_with_write is None else f"{r.speedup_with_write:,.0f}×",
            ),
        ]
    work.mkdir(parents=True, exist_ok=True)
    figures[engine].write_text(json.dumps(mine, indent=2) + "\n", encoding="utf-8")
    other = "duckdb" if engine == "spark" else "spark"
    if figures[other].exists():
        theirs = json.loads(figures[other].read_text(encoding="utf-8"))
        spark_f, duck_f = (mine, theirs) if engine == "spark" else (theirs, mine)
        for stage, label in (
            ("load_s", "载入"),
            ("profile_s", "画像"),
            ("match_s", "匹配"),
            ("allocate_s", "分配"),
            ("summary_s", "汇总"),
        ):
            rows.append((f"Spark ÷ DuckDB（{label}）", f"{spark_f[stage] / max(duck_f[stage], 1e-9):.1f}×"))
        rows.append(
            (
                "Spark ÷ DuckDB（峰值内存）",
                f"{spark_f['peak_rss_gib'] / max(duck_f['peak_rss_gib'], 1e-9):.1f}×",
            )
        )
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    if statements and engine == "duckdb":
        console.print(_statements_table(r, statements))
    if engine == "duckdb":  # last: from the snapshot on disk to every output (its generation excluded)
        console.print(f"total: {r.total_s:.1f} s, peak RSS: {r.peak_rss_gib:.2f} GiB")


def _statements_table(r: BenchResult, top: int) -> Table:
    """The `top` slowest statements of the match (by the table or view each made), then the rest: Python."""
    table = Table(title="各语句用时（匹配、分配、汇总、视图）")
    table.add_column("表或视图")
    table.add_column("用时", justify="right")
    for name, seconds in sorted(r.statements.items(), key=lambda kv: -kv[1])[:top]:
        table.add_row(name, f"{seconds * 1000:.1f} ms")
    table.add_row("其余语句", f"{sum(sorted(r.statements.values())[:-top] or [0.0]) * 1000:.1f} ms")
    table.add_row("Python（构建与渲染语句树）", f"{r.python_s * 1000:.1f} ms")
    return table
