"""Build the demo data the notebooks read, then execute every notebook and write its HTML.

    python notebooks/execute.py [--data var/notebooks] [--enterprises 20000]
                                [--html artifacts/notebooks] [--figures artifacts/notebooks/figures]

The data: a synthetic snapshot (`devtools.generate`), a match run over the policy library
(`matcher.run.run_match`, what `zhida match` runs), and a payouts database with about a month of history: `devtools.demo.demo_flow` carries the
run from import to the first payments, then `add_reminder_month` sends the reminders before the links
expire, lets some enterprises confirm late, expires the rest and pays a second round of batches, with
checkers who are sometimes slow (SLA breaches to look at). Data already built under `--data` is reused.

Each notebook (`notebooks/NN_*.py`, jupytext percent format) runs in a fresh kernel from the repository
root with ZHIDA_SNAPSHOT, ZHIDA_RUN, ZHIDA_DATABASE_URL and ZHIDA_FIGURES set; a cell that raises, or a
chart with no data (`reports.charts.save_figure` refuses it), fails the run. `make figures` runs this with
`--readme-figures notebooks/figures` to regenerate the PNGs the README shows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(ROOT.glob("notebooks/[0-9][0-9]_*.py"))
AS_OF = dt.date(2025, 9, 30)
START = dt.datetime(2025, 10, 9, 1, 0, tzinfo=dt.UTC)
"""The demo's import: Thursday 9:00 in Beijing, right after the National Day holiday (Saturday 11
October 2025 is an adjusted working day, so working days and calendar days differ)."""
README_FIGURES = {
    "01_coverage": "coverage_items",
    "02_near_misses": "near_miss_sweep",
    "03_funnel": "funnel_stages",
    "04_data_quality": "quality_rejections",
}
"""The chart of each notebook that the README shows (committed under notebooks/figures/)."""


def build_demo(data: Path, enterprises: int = 20_000, seed: int = 42) -> dict[str, str]:
    """Snapshot, match run and payouts database under `data` (reused when present); returns the env."""
    from payouts.db import connect, transaction

    data = data.resolve()
    snapshot, run, db = data / "snapshot", data / "run", data / "zhida.db"
    env = {
        "ZHIDA_SNAPSHOT": str(snapshot),
        "ZHIDA_RUN": str(run),
        "ZHIDA_DATABASE_URL": f"sqlite:///{db}",
    }
    if (data / "built").exists():
        return env
    data.mkdir(parents=True, exist_ok=True)
    from devtools.generate import generate_snapshot
    from matcher.run import run_match

    generate_snapshot(snapshot, enterprises, seed)
    run_match(snapshot, ROOT / "data" / "policies", run, AS_OF)
    engine = connect(env["ZHIDA_DATABASE_URL"])
    from devtools.demo import demo_flow

    with transaction(engine) as s:
        demo_flow(s, run, data / "bank", confirm_share=0.7, fail_share=0.04, seed=seed, now=START)
    add_reminder_month(engine, data / "bank", seed)
    (data / "built").write_text(START.isoformat() + "\n", encoding="utf-8")
    return env


def add_reminder_month(engine: object, bank: Path, seed: int) -> None:
    """After `demo_flow`: reminders 3 days and 1 day before the links expire, late answers, expiry of
    the silent rest, and a second round of batches whose approval takes 1 to 6 days."""
    from sqlalchemy import select

    from payouts import batches, confirm, sms
    from payouts.bankfiles import render_return
    from payouts.db import PayoutSettings, transaction
    from payouts.models import Offer, OfferState

    settings = PayoutSettings()
    rng = random.Random(seed + 1)
    deadline = START + dt.timedelta(hours=2, days=settings.link_ttl_days)
    phone = sms.MemoryGateway()
    for days, share in ((3, 0.35), (1, 0.3)):
        sent_at = deadline - dt.timedelta(days=days) + dt.timedelta(hours=1)
        with transaction(engine) as s:
            before = len(phone.sent)
            sms.send_reminders(s, phone, sent_at, settings)
            for message in phone.sent[before:]:
                token = message.params["link"].removeprefix(settings.link_base)
                answer_at = sent_at + dt.timedelta(hours=rng.uniform(1, 20))
                roll = rng.random()
                if roll < share:
                    confirm.confirm(
                        s, token, ip="203.0.113.9", user_agent="Mozilla/5.0 (Android)", now=answer_at
                    )
                elif roll < share + 0.03:
                    confirm.decline(
                        s, token, ip="203.0.113.9", user_agent="Mozilla/5.0", now=answer_at, reason="不需要"
                    )
    with transaction(engine) as s:
        sms.expire_overdue(s, deadline + dt.timedelta(hours=1))
    made_at = deadline + dt.timedelta(days=2)  # Monday 10 November, 11:00 in Beijing
    with transaction(engine) as s:
        policies = sorted(
            set(s.scalars(select(Offer.policy_id).where(Offer.state == OfferState.CONFIRMED.value)).all())
        )
    for policy_id in policies:
        with transaction(engine) as s:
            batch = batches.create_batch(s, policy_id, "demo-maker", made_at, settings=settings)
            approved_at = made_at + dt.timedelta(days=rng.choice((1, 2, 3, 6, 8)), hours=2)
            batches.approve(s, batch.reference, "demo-checker", approved_at)
            batches.export(s, batch.reference, "demo-maker", bank, approved_at + dt.timedelta(hours=1))
            content = batches.bank_file_of(s, batch)
            failures = {ln.reference: "账户已销户" for ln in content.lines if rng.random() < 0.03}
            returned = bank / f"{batch.reference}.return.csv"
            returned.write_bytes(render_return(content, failures))
            batches.reconcile(
                s,
                batch.reference,
                returned.read_bytes(),
                "demo-maker",
                approved_at + dt.timedelta(days=1, hours=3),
                filename=returned.name,
            )


def execute(notebook: Path, html_dir: Path, env: dict[str, str], timeout: int = 600) -> Path:
    """Run one notebook in a fresh kernel from the repository root; write `<name>.html`; return its path.

    A cell that raises stops the run with nbclient's CellExecutionError (the cell and the traceback)."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = jupytext.read(notebook)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(
            nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
        ).execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    html_dir.mkdir(parents=True, exist_ok=True)
    body, _ = HTMLExporter().from_notebook_node(nbformat.from_dict(nb))
    out = html_dir / f"{notebook.stem}.html"
    out.write_text(body, encoding="utf-8")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description="Build the notebooks' demo data and execute every notebook.")
    parser.add_argument("--data", type=Path, default=ROOT / "var" / "notebooks")
    parser.add_argument("--enterprises", type=int, default=20_000)
    parser.add_argument("--html", type=Path, default=ROOT / "artifacts" / "notebooks")
    parser.add_argument("--figures", type=Path, default=ROOT / "artifacts" / "notebooks" / "figures")
    parser.add_argument(
        "--readme-figures", type=Path, help="also copy the charts the README shows (README_FIGURES) here"
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="only these notebooks (default: all)")
    args = parser.parse_args()
    started = time.perf_counter()
    env = build_demo(args.data, args.enterprises) | {"ZHIDA_FIGURES": str(args.figures.resolve())}
    print(f"数据就绪：{args.data}（{time.perf_counter() - started:.1f} 秒）")
    for notebook in args.notebooks or NOTEBOOKS:
        t = time.perf_counter()
        out = execute(notebook.resolve(), args.html, env)
        print(f"{notebook.name} → {out}（{time.perf_counter() - t:.1f} 秒）")
    print(f"图表：{args.figures}")
    if args.readme_figures:
        args.readme_figures.mkdir(parents=True, exist_ok=True)
        for name in README_FIGURES.values():
            shutil.copyfile(args.figures / f"{name}.png", args.readme_figures / f"{name}.png")
        print(f"README 图表：{args.readme_figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
