"""Reports over the payouts database: the funnel with money, working days to cash, confirmations by
reminder, SLA breaches per stage, and the monthly report for leaders (HTML and .xlsx).

The analysis notebooks and `zhida report` call these functions; the notebooks hold narrative and charts.
Every question is answered from two queries: `offer_timeline` (one row per offer with the time it
reached each stage) and `message_answers` (SMS sent per kind and the confirmations their links brought).

Working days follow the State Council's holiday schedule with its adjusted working days (调休上班), from
the `chinese-calendar` package; a date outside the years it covers is refused with the fix.
Chart helpers (`use_cjk_font`, `save_figure`) live here too, so the notebooks and the report draw alike.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import chinese_calendar
import jinja2
import pandas as pd
from sqlalchemy import and_, func, select
from sqlmodel import Session

from matcher.analysis import blockers, open_run
from payouts.models import (
    Batch,
    BatchLine,
    Confirmation,
    MatchRun,
    Offer,
    OfferState,
    PolicyVersion,
    SmsMessage,
)
from rules.errors import ZhidaError

CHINA = dt.timezone(dt.timedelta(hours=8))
ZERO = Decimal("0.00")
TARGET_WORKING_DAYS = 10
"""Target from a run's import to the money in the account, in working days (the old process took 77)."""


class ReportError(ZhidaError):
    """A report cannot be made as asked (bad month, calendar year not covered, no chart data)."""


# --- the two queries -------------------------------------------------------------------------------------

TIMELINE_COLUMNS = [
    "offer_id",
    "public_id",
    "run_id",
    "policy_id",
    "item_id",
    "title",
    "department",
    "confirmation",
    "uscc",
    "amount",
    "state",
    "imported_at",
    "released_at",
    "notified_at",
    "confirmed_at",
    "batched_at",
    "approved_at",
    "paid_at",
]
STAMPS = ["imported_at", "released_at", "notified_at", "confirmed_at", "batched_at", "approved_at", "paid_at"]


def offer_timeline(session: Session, *, run_id: str | None = None) -> pd.DataFrame:
    """One row per offer: its policy, department, amount (Decimal), state and when it reached each stage.

    `batched_at` and `approved_at` are those of the first batch the offer was put in. Times are UTC.
    """
    first_batch = (
        select(
            BatchLine.offer_id,
            func.min(Batch.created_at).label("batched_at"),
            func.min(Batch.approved_at).label("approved_at"),
        )
        .join(Batch, Batch.id == BatchLine.batch_id)
        .group_by(BatchLine.offer_id)
        .subquery()
    )
    query = (
        select(
            Offer.id,
            Offer.public_id,
            MatchRun.run_id,
            Offer.policy_id,
            Offer.item_id,
            PolicyVersion.title,
            PolicyVersion.department,
            PolicyVersion.confirmation,
            Offer.uscc,
            Offer.amount,
            Offer.state,
            MatchRun.imported_at,
            Offer.released_at,
            Offer.notified_at,
            Offer.confirmed_at,
            first_batch.c.batched_at,
            first_batch.c.approved_at,
            Offer.paid_at,
        )
        .join(MatchRun, MatchRun.id == Offer.match_run_id)
        .join(
            PolicyVersion,
            and_(PolicyVersion.policy_id == Offer.policy_id, PolicyVersion.version == Offer.policy_version),
        )
        .outerjoin(first_batch, first_batch.c.offer_id == Offer.id)
        .order_by(Offer.id)
    )
    if run_id is not None:
        query = query.where(MatchRun.run_id == run_id)
    df = pd.DataFrame.from_records(session.execute(query).all(), columns=TIMELINE_COLUMNS)
    for column in STAMPS:
        df[column] = pd.to_datetime(df[column], utc=True)
    return df


def message_answers(session: Session) -> pd.DataFrame:
    """Per SMS kind (notice, reminder_3d, ...): messages sent and the answers their links brought."""
    confirmed = func.count(Confirmation.id).filter(Confirmation.kind == "confirm")
    declined = func.count(Confirmation.id).filter(Confirmation.kind == "decline")
    rows = session.execute(
        select(SmsMessage.kind, func.count(SmsMessage.id), confirmed, declined)
        .outerjoin(Confirmation, Confirmation.sms_message_id == SmsMessage.id)
        .where(SmsMessage.status == "sent")
        .group_by(SmsMessage.kind)
    ).all()
    return pd.DataFrame.from_records(rows, columns=["kind", "sent", "confirmed", "declined"])


# --- working days ----------------------------------------------------------------------------------------


def china_date(t: dt.datetime | pd.Timestamp) -> dt.date:
    """The calendar day in China (UTC+8) of a point in time."""
    return t.astimezone(CHINA).date()


def china_days(stamps: pd.Series) -> pd.Series:
    """The calendar days in China (UTC+8) of a column of UTC times, as midnight timestamps."""
    return stamps.dt.tz_convert(CHINA).dt.tz_localize(None).dt.normalize()


@dataclass(frozen=True)
class WorkCalendar:
    """Working days between dates by the official schedule (调休 included), for `first` to `last`."""

    first: dt.date
    last: dt.date
    ordinal: pd.Series = field(repr=False)  # day → working days from `first` up to and including it

    @classmethod
    def covering(cls, first: dt.date, last: dt.date) -> WorkCalendar:
        """A calendar for [first, last]; refuses years `chinese-calendar` has no schedule for."""
        days = pd.date_range(first, last, freq="D")
        try:
            flags = [chinese_calendar.is_workday(d.date()) for d in days]
        except NotImplementedError as e:
            raise ReportError(
                f"chinese-calendar {chinese_calendar.__version__} 没有这一年的节假日安排（{e}），"
                "无法按工作日计算：请升级 chinese-calendar（pip install -U chinese-calendar）"
            ) from e
        return cls(first, last, pd.Series(pd.Series(flags, dtype="int64").cumsum().to_numpy(), index=days))

    def between(self, start: dt.date, end: dt.date) -> int:
        """Working days after `start` up to and including `end` (0 when done the same day)."""
        return int(self.ordinal[pd.Timestamp(end)] - self.ordinal[pd.Timestamp(start)])

    def spans(self, start: pd.Series, end: pd.Series) -> pd.Series:
        """`between` for columns of days (midnight timestamps, see `china_days`)."""
        begin = self.ordinal.reindex(start.to_numpy()).to_numpy()
        finish = self.ordinal.reindex(end.to_numpy()).to_numpy()
        return pd.Series(finish - begin, index=start.index, dtype="int64")


def working_days(start: dt.date, end: dt.date) -> int:
    """Working days after `start` up to and including `end`, adjusted working days included."""
    return WorkCalendar.covering(min(start, end), max(start, end)).between(start, end)


def _calendar_for(days: Iterable[pd.Series]) -> WorkCalendar | None:
    known = [d.dropna() for d in days]
    known = [d for d in known if len(d)]
    if not known:
        return None
    return WorkCalendar.covering(min(d.min() for d in known).date(), max(d.max() for d in known).date())


def days_to_cash(timeline: pd.DataFrame) -> pd.DataFrame:
    """Every paid offer with the working and calendar days from its run's import to the payment."""
    paid = timeline[timeline["paid_at"].notna()].copy()
    start, end = china_days(paid["imported_at"]), china_days(paid["paid_at"])
    cal = _calendar_for([start, end])
    paid["working_days"] = cal.spans(start, end) if cal else pd.Series(dtype="int64")
    paid["calendar_days"] = (end - start).dt.days
    paid["on_target"] = paid["working_days"] <= TARGET_WORKING_DAYS
    return paid


def cash_summary(paid: pd.DataFrame) -> dict[str, Any]:
    """Median and 90th percentile of working days to cash, and the share within the target."""
    if paid.empty:
        return {"paid": 0, "median": None, "p90": None, "on_target": None, "target": TARGET_WORKING_DAYS}
    wd = paid["working_days"]
    return {
        "paid": len(paid),
        "median": float(wd.median()),
        "p90": float(wd.quantile(0.9)),
        "on_target": float(paid["on_target"].mean()),
        "target": TARGET_WORKING_DAYS,
    }


# --- funnel ----------------------------------------------------------------------------------------------

FUNNEL = (
    ("matched", "比对命中"),
    ("released", "初核发布"),
    ("sms", "已发短信（含免确认）"),
    ("confirmed", "企业已确认"),
    ("batched", "已组批"),
    ("approved", "已复核"),
    ("paid", "已到账"),
)


def _reached(timeline: pd.DataFrame, stage: str, at: pd.Timestamp | None) -> pd.Series:
    def by(column: str) -> pd.Series:
        s = timeline[column]
        return s.notna() if at is None else s.notna() & (s <= at)

    if stage == "matched":
        return by("imported_at")
    if stage == "sms":
        # Offers of policies without 意愿确认 are confirmed at release and get no SMS: they pass this stage.
        return by("notified_at") | ((timeline["confirmation"] == "none") & by("released_at"))
    return by(f"{stage}_at")


def funnel(timeline: pd.DataFrame, at: dt.datetime | None = None) -> pd.DataFrame:
    """Offers and money that reached each stage (by `at`, when given), and their share of the matched."""
    when = pd.Timestamp(at) if at is not None else None
    rows = []
    for stage, label in FUNNEL:
        hit = timeline[_reached(timeline, stage, when)]
        rows.append((stage, label, len(hit), sum(hit["amount"], ZERO)))
    df = pd.DataFrame(rows, columns=["stage", "label", "offers", "amount"])
    first_n, first_amount = df["offers"].iloc[0], df["amount"].iloc[0]
    df["share"] = [n / first_n if first_n else None for n in df["offers"]]
    df["amount_share"] = [a / first_amount if first_amount else None for a in df["amount"]]
    return df


# --- confirmations by reminder ---------------------------------------------------------------------------


def _kind_label(kind: str) -> str:
    if kind == "notice":
        return "首条通知"
    if kind.startswith("reminder_") and kind.endswith("d"):
        return f"到期前{kind[len('reminder_') : -1]}天提醒"
    return kind


def _kind_order(kind: str) -> tuple[int, int]:
    if kind == "notice":
        return (0, 0)
    digits = kind.removeprefix("reminder_").removesuffix("d")
    return (1, -int(digits)) if digits.isdigit() else (2, 0)


def confirmation_by_message(answers: pd.DataFrame) -> pd.DataFrame:
    """Per SMS kind, in the order they go out: sent, confirmed through that link, and the rate.

    `cumulative` is the share of notified offers confirmed by that message or an earlier one.
    """
    df = answers.copy()
    df["order"] = [_kind_order(k) for k in df["kind"]]
    df = df.sort_values("order", ignore_index=True).drop(columns="order")
    df.insert(1, "label", [_kind_label(k) for k in df["kind"]])
    df["rate"] = [c / s if s else 0.0 for c, s in zip(df["confirmed"], df["sent"], strict=True)]
    notified = int(df.loc[df["kind"] == "notice", "sent"].sum())
    df["cumulative"] = df["confirmed"].cumsum() / notified if notified else 0.0
    return df


# --- SLA -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaStage:
    """One step with a time limit in working days: from one timeline column to the next, and who owns it."""

    id: str
    label: str
    start: str
    end: str
    days: int
    owner: str
    waiting: tuple[OfferState, ...]  # the offer states that mean "still in this step"


S = OfferState
SLA_STAGES = (
    SlaStage("review", "初核发布", "imported_at", "released_at", 2, "政策部门初核", (S.DRAFTED,)),
    SlaStage("notify", "发送短信", "released_at", "notified_at", 1, "平台", (S.RELEASED,)),
    SlaStage("confirm", "企业确认", "notified_at", "confirmed_at", 10, "企业", (S.NOTIFIED,)),
    SlaStage("batch", "组批", "confirmed_at", "batched_at", 3, "财政制单", (S.CONFIRMED,)),
    SlaStage("approve", "复核", "batched_at", "approved_at", 2, "财政复核", (S.IN_BATCH,)),
    SlaStage("pay", "银行到账", "approved_at", "paid_at", 2, "开户银行", (S.IN_BATCH,)),
)
LIGHTS = ((0.05, "green", "绿灯"), (0.2, "amber", "黄灯"), (1.0, "red", "红灯"))
"""Breach share up to 5% is green, up to 20% amber, above that red."""
OUTCOME_COLUMNS = ["stage", "label", "days", "department", "amount", "working_days", "outcome"]


def sla_outcomes(
    timeline: pd.DataFrame, at: dt.datetime | None = None, since: dt.datetime | None = None
) -> pd.DataFrame:
    """One row per offer and SLA stage it entered: finished on time, late, or still open (and overdue?).

    As of `at` (default: the latest time in the timeline). With `since`, only steps that finished in
    [since, at] or were still open at `at`. An offer that left a step another way (declined, expired,
    held, payment failed) is not counted for that step.
    """
    at_ts = pd.Timestamp(at) if at is not None else timeline[STAMPS].max().max()
    since_ts = pd.Timestamp(since) if since is not None else None
    if timeline.empty or pd.isna(at_ts):
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    at_day = pd.Timestamp(china_date(at_ts))
    local = {c: china_days(timeline[c]) for c in STAMPS}
    cal = _calendar_for([*local.values(), pd.Series([at_day])])
    assert cal is not None
    parts = []
    for st in SLA_STAGES:
        start, end = timeline[st.start], timeline[st.end]
        entered = start.notna() & (start <= at_ts)
        if st.id == "notify":
            entered &= timeline["confirmation"] != "none"
        done = entered & end.notna() & (end <= at_ts)
        waiting = timeline["state"].isin([w.value for w in st.waiting])
        if st.id == "approve":
            waiting &= timeline["approved_at"].isna()
        if st.id == "pay":
            waiting &= timeline["approved_at"].notna()
        still = entered & ~done & ((end.notna() & (end > at_ts)) | (end.isna() & waiting))
        if since_ts is not None:
            done &= end >= since_ts
        keep = done | still
        if not keep.any():
            continue
        rows = timeline[keep]
        finished = done[keep]
        finish = local[st.end][keep].where(finished, at_day)
        taken = cal.spans(local[st.start][keep], finish)
        late = taken > st.days
        outcome = late.map({True: "late", False: "on_time"}).where(
            finished, late.map({True: "open_late", False: "open"})
        )
        parts.append(
            pd.DataFrame(
                {
                    "stage": st.id,
                    "label": st.label,
                    "days": st.days,
                    "department": rows["department"].to_numpy(),
                    "amount": rows["amount"].to_numpy(),
                    "working_days": taken.to_numpy(),
                    "outcome": outcome.to_numpy(),
                }
            )
        )
    if not parts:
        return pd.DataFrame(
            columns=["stage", "label", "days", "department", "amount", "working_days", "outcome"]
        )
    return pd.concat(parts, ignore_index=True)


def sla_table(outcomes: pd.DataFrame, by_department: bool = False) -> pd.DataFrame:
    """Per stage (and department): on time, late, open, open and overdue, breaches and the light."""
    keys = ["stage", "label", "days", *(["department"] if by_department else [])]
    if outcomes.empty:
        return pd.DataFrame(
            columns=[
                *keys,
                "on_time",
                "late",
                "open",
                "open_late",
                "breaches",
                "breach_share",
                "light",
                "light_label",
            ]
        )
    counts = outcomes.pivot_table(
        index=keys, columns="outcome", values="amount", aggfunc="size", fill_value=0
    )
    for c in ("on_time", "late", "open", "open_late"):
        if c not in counts.columns:
            counts[c] = 0
    df = counts[["on_time", "late", "open", "open_late"]].reset_index()
    df.columns.name = None
    order = {st.id: n for n, st in enumerate(SLA_STAGES)}
    df = df.sort_values(
        by=["stage", *keys[3:]], key=lambda s: s.map(order) if s.name == "stage" else s, ignore_index=True
    )
    df["breaches"] = df["late"] + df["open_late"]
    total = df[["on_time", "late", "open", "open_late"]].sum(axis=1)
    df["breach_share"] = df["breaches"] / total.where(total > 0, 1)
    lights = [_light(s) for s in df["breach_share"]]
    df["light"] = [x[0] for x in lights]
    df["light_label"] = [x[1] for x in lights]
    return df


def _light(share: float) -> tuple[str, str]:
    return next((c, label) for limit, c, label in LIGHTS if share <= limit)


# --- chart helpers ---------------------------------------------------------------------------------------

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


# --- display ---------------------------------------------------------------------------------------------

COLUMN_LABELS = {
    "policy_id": "政策",
    "item_id": "事项",
    "title": "名称",
    "department": "部门",
    "candidates": "候选企业",
    "amount": "金额（元）",
    "near_misses": "差一点",
    "missing_data": "数据缺失",
    "share": "占比",
    "reach": "覆盖",
    "key": "代码",
    "label": "名称",
    "enterprises": "企业数",
    "recipients": "获得企业",
    "top_share": "前10%企业所得占比",
    "condition_id": "条件",
    "text": "条件内容",
    "clause": "条款",
    "top": "首要卡点",
    "field": "字段",
    "threshold": "门槛",
    "measured": "可计算距离",
    "median_gap": "距离中位数",
    "close": "差距在10%以内",
    "current": "现行门槛",
    "gained": "新增企业",
    "lost": "减少企业",
    "delta_amount": "金额变化（元）",
    "table": "表",
    "table_label": "表名",
    "column_label": "字段名",
    "pairs": "企业×事项",
    "items": "涉及事项",
    "amount_unknown": "金额也无法计算",
    "fields": "缺失字段",
    "file": "文件",
    "rows_read": "读入行",
    "rows_accepted": "接受行",
    "rows_rejected": "拒绝行",
    "rejected_share": "拒绝率",
    "rule": "规则",
    "rule_name": "规则说明",
    "rows": "行数",
    "example": "示例",
    "column": "列",
    "nulls": "空值",
    "rate": "比率",
    "stage": "环节",
    "offers": "要约",
    "amount_share": "金额占比",
    "kind": "短信",
    "sent": "发送",
    "confirmed": "确认",
    "declined": "放弃",
    "cumulative": "累计确认率",
    "days": "时限（工作日）",
    "on_time": "按时",
    "late": "超时完成",
    "open": "办理中",
    "open_late": "超时未办",
    "breaches": "超时",
    "breach_share": "超时率",
    "light_label": "亮灯",
    "metric": "指标",
    "this_month": "本月",
    "previous_month": "上月",
    "change": "变化",
}
PERCENT_COLUMNS = {
    "share",
    "top_share",
    "rejected_share",
    "rate",
    "amount_share",
    "cumulative",
    "breach_share",
    "on_target",
}


def zh(df: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A table for people: chosen columns, Chinese headers, money with separators, shares as percents."""
    out = df[list(columns)] if columns is not None else df.copy()
    out = out.copy()
    for c in out.columns:
        if c in PERCENT_COLUMNS:
            out[c] = [_percent(v) for v in out[c]]
        elif len(out[c]) and all(isinstance(v, Decimal) for v in out[c]):
            out[c] = [f"{v:,.2f}" for v in out[c]]
    return out.rename(columns={c: COLUMN_LABELS.get(c, c) for c in out.columns})


def short(text: str, n: int = 16) -> str:
    """`text` cut to `n` characters with an ellipsis, for chart labels."""
    return text if len(text) <= n else text[: n - 1] + "…"


def _percent(v: Any) -> str:
    return "" if v is None or pd.isna(v) else f"{float(v):.1%}"


# --- the monthly report ----------------------------------------------------------------------------------


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime]:
    """[first instant, first instant of the next month) of a `YYYY-MM` month, in China time."""
    try:
        first = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=CHINA)
    except ValueError as e:
        raise ReportError(f"月份应写成 YYYY-MM（如 2025-10），收到 {month!r}") from e
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return first, nxt


def previous_month(month: str) -> str:
    first, _ = month_bounds(month)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


@dataclass
class MonthlyReport:
    """Everything the monthly report shows, as tables (money Decimal) and chart images."""

    month: str
    generated_at: dt.datetime
    headline: pd.DataFrame
    paid_by_policy: pd.DataFrame
    funnel: pd.DataFrame
    cash: dict[str, Any]
    cash_days: pd.DataFrame
    sla: pd.DataFrame
    near_misses: pd.DataFrame
    run_id: str | None
    charts: dict[str, str] = field(default_factory=dict)


def _in(series: pd.Series, start: dt.datetime, end: dt.datetime) -> pd.Series:
    return series.notna() & (series >= pd.Timestamp(start)) & (series < pd.Timestamp(end))


def _month_figures(timeline: pd.DataFrame, month: str) -> dict[str, Any]:
    """The headline figures of one month."""
    start, end = month_bounds(month)
    paid = timeline[_in(timeline["paid_at"], start, end)]
    cash = cash_summary(days_to_cash(paid)) if not paid.empty else cash_summary(paid)
    notified = timeline[_in(timeline["notified_at"], start, end)]
    confirmed_of_notified = notified["confirmed_at"].notna().mean() if len(notified) else None
    return {
        "paid_amount": sum(paid["amount"], ZERO),
        "paid_offers": len(paid),
        "paid_enterprises": paid["uscc"].nunique(),
        "confirmed": int(_in(timeline["confirmed_at"], start, end).sum()),
        "confirm_rate": confirmed_of_notified,
        "median_days": cash["median"],
        "on_target": cash["on_target"],
    }


HEADLINE = (
    ("paid_amount", "到账金额（元）"),
    ("paid_enterprises", "到账企业（户）"),
    ("paid_offers", "到账笔数"),
    ("confirmed", "企业确认（笔）"),
    ("confirm_rate", "本月通知的确认率"),
    ("median_days", "导入至到账中位工作日"),
    ("on_target", f"{TARGET_WORKING_DAYS}个工作日内到账占比"),
)


def _headline(timeline: pd.DataFrame, month: str) -> pd.DataFrame:
    this, prev = _month_figures(timeline, month), _month_figures(timeline, previous_month(month))
    rows = []
    for key, label in HEADLINE:
        a, b = this[key], prev[key]
        change = None if a is None or b is None else a - b
        rows.append({"key": key, "metric": label, "this_month": a, "previous_month": b, "change": change})
    return pd.DataFrame(rows)


def _paid_by_policy(timeline: pd.DataFrame, month: str) -> pd.DataFrame:
    start, end = month_bounds(month)
    paid = timeline[_in(timeline["paid_at"], start, end)]
    if paid.empty:
        return pd.DataFrame(columns=["department", "policy_id", "title", "offers", "enterprises", "amount"])
    g = paid.groupby(["department", "policy_id", "title"], as_index=False).agg(
        offers=("offer_id", "size"),
        enterprises=("uscc", "nunique"),
        amount=("amount", lambda s: sum(s, ZERO)),
    )
    return g.sort_values(["amount", "policy_id"], ascending=[False, True], ignore_index=True)


def monthly_report(session: Session, month: str, run_dir: Path | None = None) -> MonthlyReport:
    """The monthly report's tables: headline against the previous month, money paid per department and
    policy, the funnel at month end, working days to cash, SLA lights per department, and the conditions
    that block most near-misses in the latest run imported by month end (or `run_dir`).
    """
    start, end = month_bounds(month)
    timeline = offer_timeline(session)
    timeline = timeline[timeline["imported_at"] < pd.Timestamp(end)].reset_index(drop=True)
    cut = end - dt.timedelta(microseconds=1)
    paid = days_to_cash(timeline[_in(timeline["paid_at"], start, end)])
    sla = sla_table(sla_outcomes(timeline, at=cut, since=start), by_department=True)
    run_id = None
    if run_dir is None:
        latest = session.execute(
            select(MatchRun.run_id, MatchRun.path)
            .where(MatchRun.imported_at < end)
            .order_by(MatchRun.imported_at.desc())
            .limit(1)
        ).first()
        if latest is not None:
            run_id, run_dir = latest[0], Path(latest[1])
    near = pd.DataFrame()
    if run_dir is not None:
        if not (run_dir / "manifest.json").is_file():
            raise ReportError(f"找不到匹配结果目录 {run_dir}（差一点符合的统计需要它）：请用 --run 指定")
        run = open_run(run_dir)
        near = blockers(run).head(10)
        run_id = run_id or run.manifest["run_id"]
    return MonthlyReport(
        month=month,
        generated_at=dt.datetime.now(CHINA),
        headline=_headline(timeline, month),
        paid_by_policy=_paid_by_policy(timeline, month),
        funnel=funnel(timeline, at=cut),
        cash=cash_summary(paid),
        cash_days=paid,
        sla=sla,
        near_misses=near,
        run_id=run_id,
    )


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
        ax.hist(wd, bins=range(0, int(wd.max()) + 2), color="#27ae60", align="left", rwidth=0.85)
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


def _fmt(value: Any, key: str = "") -> str:
    if value is None or (not isinstance(value, str | Decimal) and pd.isna(value)):
        return "—"
    if key in ("confirm_rate", "on_target") or key in PERCENT_COLUMNS:
        return f"{float(value):.1%}"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _change(value: Any, key: str) -> str:
    if value is None or (not isinstance(value, Decimal) and pd.isna(value)):
        return "—"
    sign = "+" if value > 0 else ""
    if key in ("confirm_rate", "on_target"):
        return f"{sign}{float(value) * 100:.1f} 个百分点"
    return sign + _fmt(value, key)


TEMPLATE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>惠企政策直达月度报告 {{ r.month }}</title>
<style>
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2em auto;
       max-width: 980px; color: #222; line-height: 1.5; }
h1 { border-bottom: 3px solid #c0392b; padding-bottom: .3em; }
h2 { margin-top: 1.8em; border-left: 5px solid #c0392b; padding-left: .5em; }
table { border-collapse: collapse; width: 100%; margin: .5em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 10px 14px; min-width: 200px; flex: 1; }
.card .v { font-size: 22px; font-weight: bold; }
.card .p { color: #666; font-size: 13px; }
.light { display: inline-block; width: 12px; height: 12px; border-radius: 50%; margin-right: 4px; }
.green { background: #27ae60; } .amber { background: #f39c12; } .red { background: #c0392b; }
.grey { background: #bbb; }
.note { color: #666; font-size: 13px; }
img { max-width: 100%; }
</style></head><body>
<h1>惠企政策直达（免申即享）月度报告 · {{ r.month[:4] }}年{{ r.month[5:]|int }}月</h1>
<p class="note">生成时间 {{ r.generated_at.strftime("%Y-%m-%d %H:%M") }}（北京时间）。
金额单位：元。工作日按国务院办公厅节假日安排计算（含调休上班日）。</p>

<h2>一、核心指标（与上月比较）</h2>
<div class="cards">
{% for h in headline %}<div class="card"><div>{{ h.metric }}</div><div class="v">{{ h.this }}</div>
<div class="p">上月 {{ h.prev }}，变化 {{ h.change }}</div></div>
{% endfor %}</div>

<h2>二、本月到账资金（按部门、政策）</h2>
{% if charts.get("paid") %}<img src="{{ charts.paid }}" alt="按部门到账金额">{% endif %}
{% if paid %}<table><tr><th>部门</th><th>政策</th><th>笔数</th><th>企业</th><th>金额（元）</th></tr>
{% for p in paid %}<tr><td>{{ p.department }}</td><td>{{ p.title }}</td><td class="num">{{ p.offers }}</td>
<td class="num">{{ p.enterprises }}</td><td class="num">{{ p.amount }}</td></tr>{% endfor %}
</table>{% else %}<p>本月没有到账的资金。</p>{% endif %}

<h2>三、兑现漏斗（截至月末）</h2>
{% if charts.get("funnel") %}<img src="{{ charts.funnel }}" alt="兑现漏斗">{% endif %}
<table><tr><th>环节</th><th>笔数</th><th>占比</th><th>金额（元）</th><th>金额占比</th></tr>
{% for f in funnel %}<tr><td>{{ f.label }}</td><td class="num">{{ f.offers }}</td><td class="num">{{ f.share }}</td>
<td class="num">{{ f.amount }}</td><td class="num">{{ f.amount_share }}</td></tr>{% endfor %}</table>

<h2>四、到账用时（工作日）</h2>
{% if r.cash.paid %}<p>本月到账 {{ cash.paid }} 笔：导入至到账中位 <b>{{ cash.median }}</b> 个工作日，90% 在 {{ cash.p90 }} 个工作日内；
目标 {{ cash.target }} 个工作日，达标 {{ cash.on_target }}。改革前平均 77 个工作日。</p>
{% else %}<p>本月没有到账的要约。</p>{% endif %}
{% if charts.get("cash") %}<img src="{{ charts.cash }}" alt="到账用时分布">{% endif %}

<h2>五、各部门办理时限（亮灯）</h2>
<p class="note">各环节时限：{% for s in stages %}{{ s.label }} {{ s.days }} 个工作日（{{ s.owner }}）{% if not loop.last %}；{% endif %}{% endfor %}。
超时率不高于 5% 为绿灯，不高于 20% 为黄灯，其余为红灯；统计本月办结及月末仍在办的事项。</p>
{% if sla_rows %}<table><tr><th>部门</th>{% for s in stages %}<th>{{ s.label }}</th>{% endfor %}</tr>
{% for d in sla_rows %}<tr><td>{{ d.department }}</td>{% for c in d.cells %}<td>{% if c %}<span class="light {{ c.light }}"></span>{{ c.text }}{% else %}<span class="light grey"></span>无{% endif %}</td>{% endfor %}</tr>
{% endfor %}</table>{% else %}<p>本月没有需要计时的事项。</p>{% endif %}

<h2>六、差一点符合：主要卡点条件</h2>
{% if near %}<p class="note">来自匹配批次 {{ r.run_id }}：只差一个条件的企业，按卡住它们的条件统计（前 10 项）。</p>
<table><tr><th>政策事项</th><th>条件</th><th>条款</th><th>企业数</th><th>占该事项差一点企业</th></tr>
{% for n in near %}<tr><td>{{ n.title }}</td><td>{{ n.text }}</td><td>{{ n.clause }}</td>
<td class="num">{{ n.near_misses }}</td><td class="num">{{ n.share }}</td></tr>{% endfor %}</table>
{% else %}<p>没有可用的匹配结果。</p>{% endif %}
</body></html>
"""


def render_html(report: MonthlyReport) -> str:
    """The report as one self-contained HTML page (styles inline, charts as data URIs)."""
    headline = [
        {
            "metric": h["metric"],
            "this": _fmt(h["this_month"], h["key"]),
            "prev": _fmt(h["previous_month"], h["key"]),
            "change": _change(h["change"], h["key"]),
        }
        for h in report.headline.to_dict("records")
    ]
    paid = [{k: _fmt(v, k) for k, v in p.items()} for p in report.paid_by_policy.to_dict("records")]
    funnel_rows = [{k: _fmt(v, k) for k, v in f.items()} for f in report.funnel.to_dict("records")]
    cash = {k: _fmt(v, k) for k, v in report.cash.items()}
    sla_rows = []
    for dept, group in report.sla.groupby("department", sort=True) if not report.sla.empty else []:
        by_stage = {r["stage"]: r for r in group.to_dict("records")}
        cells = []
        for st in SLA_STAGES:
            r = by_stage.get(st.id)
            cells.append(
                None
                if r is None
                else {
                    "light": r["light"],
                    "text": f"{r['light_label']} 超时 {r['breaches']}/{r['on_time'] + r['late'] + r['open'] + r['open_late']}",
                }
            )
        sla_rows.append({"department": dept, "cells": cells})
    near = [
        {k: ("" if v is None or (isinstance(v, float) and pd.isna(v)) else _fmt(v, k)) for k, v in n.items()}
        for n in report.near_misses.to_dict("records")
    ]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(
        r=report,
        headline=headline,
        paid=paid,
        funnel=funnel_rows,
        cash=cash,
        stages=SLA_STAGES,
        sla_rows=sla_rows,
        near=near,
        charts=report.charts,
    )


def write_xlsx(report: MonthlyReport, path: Path) -> None:
    """The report's tables, one sheet each, with Chinese headers; money as exact numbers with two places."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    from api.spreadsheet import xlsx_row

    sheets = {
        "核心指标": report.headline[["metric", "this_month", "previous_month", "change"]],
        "分部门政策到账": report.paid_by_policy,
        "兑现漏斗": report.funnel[["label", "offers", "share", "amount", "amount_share"]],
        "到账用时": report.cash_days[
            [
                "public_id",
                "department",
                "title",
                "amount",
                "imported_at",
                "paid_at",
                "working_days",
                "calendar_days",
            ]
        ]
        if not report.cash_days.empty
        else pd.DataFrame(columns=["public_id"]),
        "办理时限": report.sla.drop(columns=["light"], errors="ignore"),
        "差一点符合": report.near_misses,
    }
    wb = Workbook()
    wb.remove(wb.active)
    for name, df in sheets.items():
        ws = wb.create_sheet(name)
        ws.append([COLUMN_LABELS.get(c, c) for c in df.columns])
        for row in df.itertuples(index=False):
            ws.append(xlsx_row(ws, [_cell(v) for v in row]))
        for n, column in enumerate(df.columns, start=1):
            letter = get_column_letter(n)
            ws.column_dimensions[letter].width = 14 if column not in ("title", "text", "department") else 36
            if len(df) and all(isinstance(v, Decimal) for v in df[column]):
                for cell in ws[letter][1:]:
                    cell.number_format = "#,##0.00"
    wb.save(path)


def _cell(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.tz_convert(CHINA).tz_localize(None).to_pydatetime()
    if isinstance(v, bool | int | float | str | Decimal) or v is None:
        return None if isinstance(v, float) and pd.isna(v) else v
    if pd.isna(v):
        return None
    return str(v)


@dataclass(frozen=True)
class WrittenReport:
    """Where the monthly report was written."""

    html: Path
    xlsx: Path


def write_report(session: Session, month: str, out: Path, run_dir: Path | None = None) -> WrittenReport:
    """Make the monthly report and write `zhida-report-YYYY-MM.html` and `.xlsx` into `out`."""
    report = monthly_report(session, month, run_dir)
    report.charts = draw_charts(report)
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"zhida-report-{month}.html"
    html.write_text(render_html(report), encoding="utf-8")
    xlsx = out / f"zhida-report-{month}.xlsx"
    write_xlsx(report, xlsx)
    return WrittenReport(html, xlsx)
