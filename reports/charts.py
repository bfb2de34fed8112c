"""Charts: Chinese labels in Noto Sans CJK SC, a chart without data refused, PNG files for the notebooks
and data URIs for the monthly report's self-contained page, so the notebooks and the report draw alike.
"""

from __future__ import annotations

import base64
import io
import os
import warnings
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reports.errors import ReportError
from reports.sla import TARGET_WORKING_DAYS

ZERO = Decimal("0.00")

if TYPE_CHECKING:
    from reports.monthly import MonthlyReport

FONT = "Noto Sans CJK SC"
FIGURES_ENV = "ZHIDA_FIGURES"
DEFAULT_FIGURES = Path("artifacts/notebooks/figures")


def use_cjk_font() -> None:
    """Draw Chinese with Noto Sans CJK SC (Debian: fonts-noto-cjk); a glyph missing from it is an error."""
    import matplotlib
    from matplotlib import font_manager

    try:
        font_manager.findfont(font_manager.FontProperties(family=FONT), fallback_to_default=False)
    except ValueError as e:
        raise ReportError(
            f"找不到中文字体 {FONT}：请安装 fonts-noto-cjk（apt-get install -y fonts-noto-cjk）"
        ) from e
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["font.sans-serif"] = [FONT, "DejaVu Sans"]
    matplotlib.rcParams["axes.unicode_minus"] = False
    matplotlib.rcParams["figure.dpi"] = 100
    matplotlib.rcParams["savefig.dpi"] = 110
    warnings.filterwarnings("error", message=r"Glyph .* missing from")


def _axes_have_data(ax: Any) -> bool:
    if not ax.axison:
        return True  # an axes turned off (a table, a text panel) is not a chart
    if any(len(line.get_xdata()) for line in ax.lines):
        return True
    if any(p.get_width() != 0 and p.get_height() != 0 for p in ax.patches if hasattr(p, "get_height")):
        return True
    if any(len(c.get_offsets()) or len(c.get_paths()) for c in ax.collections):
        return True
    return bool(ax.images)


def check_figure(fig: Any, name: str) -> None:
    """Refuse a figure with no axes, or with an axes that shows no data (no bar, point, line or image)."""
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    if not axes or not all(_axes_have_data(ax) for ax in axes):
        raise ReportError(f"图表 {name} 没有数据")


def save_figure(fig: Any, name: str, directory: Path | None = None) -> Path:
    """Check that `fig` shows data and save it as `<name>.png` under $ZHIDA_FIGURES (or `directory`)."""
    check_figure(fig, name)
    out = directory or Path(os.environ.get(FIGURES_ENV, DEFAULT_FIGURES))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    fig.savefig(path, bbox_inches="tight", facecolor="white")
    return path


def figure_data_uri(fig: Any, name: str) -> str:
    """A checked figure as a `data:image/png;base64,...` URI, for self-contained HTML."""
    check_figure(fig, name)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def yuan(amounts: Iterable[Decimal], unit: Decimal = Decimal(10_000)) -> list[float]:
    """Money as floats in 万元 (or another unit), for drawing only; tables keep Decimal."""
    return [float(Decimal(a) / unit) for a in amounts]


def short(text: str, n: int = 16) -> str:
    """`text` cut to `n` characters with an ellipsis, for chart labels."""
    return text if len(text) <= n else text[: n - 1] + "…"


def draw_charts(report: MonthlyReport) -> dict[str, str]:
    """The report's charts as data URIs; a chart with no data is left out (the table says so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    use_cjk_font()
    charts: dict[str, str] = {}
    if not report.paid_by_policy.empty:
        by_dept = report.paid_by_policy.groupby("department")["amount"].apply(lambda s: sum(s, ZERO))
        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(by_dept)))
        ax.barh(list(by_dept.index), yuan(by_dept.values), color="#c0392b")
        ax.invert_yaxis()
        ax.set_xlabel("到账金额（万元）")
        ax.set_title("本月到账金额（按部门）")
        charts["paid"] = figure_data_uri(fig, "paid")
        plt.close(fig)
    if report.funnel["offers"].iloc[0]:
        fig, ax = plt.subplots(figsize=(7, 3.4))
        bars = ax.barh(report.funnel["label"], yuan(report.funnel["amount"]), color="#2e86c1")
        ax.bar_label(bars, labels=[f"{n:,} 笔" for n in report.funnel["offers"]], padding=3, fontsize=9)
        ax.invert_yaxis()
        ax.margins(x=0.15)
        ax.set_xlabel("金额（万元）")
        ax.set_title("兑现漏斗（截至月末）")
        charts["funnel"] = figure_data_uri(fig, "funnel")
        plt.close(fig)
    if not report.cash_days.empty:
        fig, ax = plt.subplots(figsize=(7, 3))
        wd = report.cash_days["working_days"]
        ax.hist(
            wd,
            bins=range(0, int(wd.max()) + 2),
            weights=report.cash_days["offers"],
            color="#27ae60",
            align="left",
            rwidth=0.85,
        )
        ax.axvline(
            TARGET_WORKING_DAYS, color="#c0392b", linestyle="--", label=f"目标 {TARGET_WORKING_DAYS} 个工作日"
        )
        ax.set_xlabel("导入至到账（工作日）")
        ax.set_ylabel("笔数")
        ax.legend()
        ax.set_title("本月到账用时")
        charts["cash"] = figure_data_uri(fig, "cash")
        plt.close(fig)
    return charts
