"""`make demo`: the main job end to end on the embedded defaults, printing what happened.

Validates the policy library, shows the field catalog and one policy, generates a 100,000-enterprise
snapshot, checks it, matches every active policy, explains one candidate, then carries the run through
offers, SMS, confirmation, a maker-checker batch, the bank files and the bank's return file; meanwhile one
enterprise applies for a 快申快享 item and is paid with the others.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("COLUMNS", "140")  # wide tables in logs and pipes, where rich would assume 80
# The demo's own payouts database, which the report and the notebooks read by default.
os.environ["ZHIDA_DATABASE_URL"] = "sqlite:///var/demo/zhida.db"

from decimal import Decimal

import duckdb
from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from api.cli import app
from matcher import runfolder
from rules.catalog import CATALOG
from rules.formats import CHINA

VAR = Path("var/demo")
SNAPSHOT = VAR / "snapshot"
RUN = VAR / "run"
AS_OF = "2025-09-30"
ENTERPRISES = 100_000

console = Console(highlight=False)


def step(title: str, *args: str) -> float:
    console.print(Rule(f"[bold]{title}[/bold]"))
    console.print(f"$ zhida {' '.join(args)}", style="dim")
    started = time.perf_counter()
    try:
        app(list(args), standalone_mode=False)
    except SystemExit as e:
        if e.code not in (0, None):
            raise
    return time.perf_counter() - started


def payouts_flow() -> dict[str, float]:
    """Import the run, release, SMS, confirmations, a maker batch, a checker approval, bank and return files."""
    from devtools.demo import DEMO_APPLY_ITEM, DEMO_APPLY_POLICY, DemoApplication, demo_flow
    from payouts.db import connect, transaction
    from rules.ruleset import library_dir
    from rules.validate import load_policy

    console.print(Rule("[bold]9. 意愿确认与拨付到账（SQLite：var/demo/zhida.db）[/bold]"))
    database = VAR / "zhida.db"
    database.unlink(missing_ok=True)
    bank = VAR / "bank"
    shutil.rmtree(bank, ignore_errors=True)
    bank.mkdir(parents=True)
    evidence = VAR / "evidence"
    shutil.rmtree(evidence, ignore_errors=True)
    application = DemoApplication(
        policy=load_policy(library_dir() / f"{DEMO_APPLY_POLICY}.yaml"),
        item_id=DEMO_APPLY_ITEM,
        snapshot=SNAPSHOT,
        as_of=dt.date.fromisoformat(AS_OF),
        evidence_dir=evidence,
    )
    started = time.perf_counter()
    with transaction(connect()) as session:
        result = demo_flow(
            session, RUN, bank, confirm_share=0.8, fail_share=0.05, seed=0, application=application
        )
    elapsed = time.perf_counter() - started
    imported = result["imported"]
    console.print(
        f"导入要约 {imported['offers']:,} 个（无对公账户暂缓 {imported['held']:,}，此前已兑现跳过 {imported['skipped']:,}）；"
        f"短信 {result['sms']['sent']:,} 条；确认 {result['answers'].get('confirmed', 0):,} 户"
    )
    table = Table(title="兑现漏斗（数据比对 → 要约 → 确认 → 拨付）")
    for col in ("环节", "户数", "金额（元）"):
        table.add_column(col, justify="left" if col == "环节" else "right")
    for stage in result["funnel"]["stages"]:
        table.add_row(stage["label"], f"{stage['count']:,}", f"{Decimal(stage['amount']):,.2f}")
    console.print(table)
    for b in result["batches"]:
        console.print(
            f"批次 {b['reference']}（{b['policy_id']}）：{b['lines']:,} 笔，成功 {b['paid']:,}，失败 {b['failed']:,}；"
            f"银行文件 {', '.join(Path(f).name for f in b['files'])}"
        )
    console.print(application_line(result["application"]))
    console.print("各环节用时（秒）：" + "，".join(f"{k} {v:.2f}" for k, v in result["timings"].items()))
    return {"意愿确认与拨付": elapsed}


def application_line(applied: dict[str, Any] | None) -> str:
    """The demo's one line on its 快申快享 application, in the words an enterprise would use."""
    if applied is None or not applied["accepted"]:
        return "快申快享：快照中没有可申请的演示企业，本次未演示申请"
    paid = (
        "已拨付到账" if applied.get("offer_state") == "paid" else f"尚未到账（{applied.get('offer_state')}）"
    )
    reviewers = applied["reviewers"]
    review = f"经{'、'.join(reviewers)}会签通过" if len(reviewers) > 1 else f"经{reviewers[0]}审核通过"
    known = "、".join(CATALOG[f].label for f in applied["prefilled"])
    return (
        f"快申快享：一户四川企业申请“{applied['title']}”，已掌握的 {len(applied['prefilled'])} 项数据"
        f"（{known}）自动填入，回答 {applied['answers']} 个问题、上传 {applied['materials']} 份材料，"
        f"按一次性告知补正 {applied['returned_for']} 项后再次提交，{review}，"
        f"核定 {Decimal(applied['amount']):,.2f} 元，并入批次 {applied['batch']} 与其他要约一同拨付，{paid}"
    )


def main() -> None:
    timings: dict[str, float] = {}
    timings["校验政策库"] = step("1. 校验政策库", "rules", "validate", "data/policies")
    step("2. 字段目录（企业画像）", "fields")
    step("3. 政策摘要", "rules", "show", "data/policies/wengang-2025.yaml")
    if not (SNAPSHOT / "enterprises.parquet").exists():
        shutil.rmtree(SNAPSHOT, ignore_errors=True)
        timings["生成快照"] = step(
            "4. 生成合成快照",
            "snapshot",
            "generate",
            "--enterprises",
            str(ENTERPRISES),
            "--seed",
            "42",
            "--out",
            str(SNAPSHOT),
        )
    else:
        console.print(Rule("[bold]4. 生成合成快照[/bold]"))
        console.print(f"已存在 {SNAPSHOT}，沿用（删除该目录可重新生成）")
    timings["检查快照"] = step("5. 检查快照（数据质量报告）", "snapshot", "check", str(SNAPSHOT))
    timings["画像"] = step(
        "6. 企业画像字段覆盖率", "snapshot", "profile", str(SNAPSHOT), "--year", "2024", "--as-of", AS_OF
    )
    shutil.rmtree(RUN, ignore_errors=True)
    timings["数据比对"] = step(
        "7. 数据比对（全部有效政策，一次执行）",
        "match",
        "--snapshot",
        str(SNAPSHOT),
        "--policies",
        "data/policies",
        "--as-of",
        AS_OF,
        "--out",
        str(RUN),
    )
    first = duckdb.sql(
        f"SELECT uscc FROM read_parquet('{RUN / runfolder.CANDIDATES}') ORDER BY amount DESC, uscc LIMIT 1"
    ).fetchall()
    first = first[0] if first else None
    if first:
        step(
            "8. 逐条解释一户候选企业",
            "explain",
            "--snapshot",
            str(SNAPSHOT),
            "--policies",
            "data/policies",
            "--uscc",
            first[0],
            "--as-of",
            AS_OF,
        )
    timings |= payouts_flow()
    month = dt.datetime.now(CHINA).strftime("%Y-%m")
    timings["月度报告"] = step("10. 月度报告", "report", "--month", month, "--out", str(VAR / "reports"))
    console.print(Rule("[bold]用时[/bold]"))
    for k, v in timings.items():
        console.print(f"{k}：{v:.2f} 秒")
    public = os.environ.get("ZHIDA_PUBLIC_URL", "http://127.0.0.1:8000")
    console.print(Rule("[bold]政策超市[/bold]"))
    console.print(
        f"接着启动的服务（zhida serve --demo）上，政策超市（公开，无需登录）：[bold]{public}/policies[/bold]"
        f"，例如搜索“稳岗”：{public}/policies?q=稳岗"
    )
    console.print(
        f"企业登录（我的政策、资金进度）：{public}/e/login ；服务启动时打印一户演示企业（有要约也有“差一点”），"
        f"验证码发到演示手机 {public}/demo/phone"
    )


if __name__ == "__main__":
    sys.exit(main())
