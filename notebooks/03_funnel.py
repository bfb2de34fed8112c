# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 三、兑现漏斗与到账用时
#
# 本笔记回答：从比对命中到资金到账，每一步还剩多少企业、多少钱；从匹配结果导入到到账用了几个**工作日**
# （按国务院办公厅节假日安排，调休上班日算工作日；`chinese-calendar` 未收录的年份会直接报错，不会猜）；
# 首条短信和到期前提醒各带来多少确认；各环节超过时限的有多少。
#
# 读取兑现数据库（环境变量 `ZHIDA_DATABASE_URL`）。

# %%
import os

import matplotlib.pyplot as plt
from IPython.display import display

from payouts.db import connect, transaction
from reports import funnel as funnels
from reports import sla as reports_sla
from reports import timeline as reports_timeline
from reports.charts import save_figure, use_cjk_font, yuan
from reports.display import zh

DATABASE = os.environ.get("ZHIDA_DATABASE_URL", "sqlite:///var/demo/zhida.db")
use_cjk_font()
with transaction(connect(DATABASE)) as session:
    timeline = reports_timeline.offer_timeline(session)
    answers = reports_timeline.message_answers(session)
    funnel = funnels.table(funnels.stages(session))
print(f"要约 {len(timeline):,} 条，来自 {timeline['run_id'].nunique()} 个匹配批次")

# %% [markdown]
# ## 漏斗：每一步的要约与金额
#
# 无需意愿确认的政策（如稳岗返还“原渠道返还”）在初核发布时直接确认、不发短信，视同通过“短信已发”一步。

# %%
display(zh(funnel, ["label", "offers", "share", "amount", "amount_share"]))

# %%
fig, ax = plt.subplots(figsize=(9, 4))
bars = ax.barh(funnel["label"], yuan(funnel["amount"]), color="#2e86c1")
ax.bar_label(
    bars,
    labels=[
        f"{n:,} 笔（金额 {float(s):.1%}）"
        for n, s in zip(funnel["offers"], funnel["amount_share"], strict=True)
    ],
    padding=3,
    fontsize=9,
)
ax.invert_yaxis()
ax.margins(x=0.12)
ax.set_xlabel("金额（万元）")
ax.set_title("兑现漏斗：比对命中 → 到账")
save_figure(fig, "funnel_stages")
plt.show()

# %% [markdown]
# ## 到账用时（工作日）
#
# 从匹配结果导入兑现系统，到银行回单确认到账，经过的工作日数（当天到账记 0）。目标见 `TARGET_WORKING_DAYS`；
# 改革前的“七步、平均 77 个工作日”是对照。

# %%
paid = reports_sla.days_to_cash(timeline)
summary = reports_sla.cash_summary(paid)
print(
    f"到账 {summary['paid']:,} 笔：中位 {summary['median']:.0f} 个工作日，90% 在 {summary['p90']:.0f} 个工作日内，"
    f"{summary['target']} 个工作日内到账 {summary['on_target']:.1%}"
)
display(
    paid.groupby(["working_days", "calendar_days"])
    .size()
    .rename("笔数")
    .reset_index()
    .rename(columns={"working_days": "工作日", "calendar_days": "自然日"})
)

# %%
fig, ax = plt.subplots(figsize=(9, 3.8))
wd = paid["working_days"]
ax.hist(wd, bins=range(0, int(wd.max()) + 2), align="left", rwidth=0.85, color="#27ae60")
ax.axvline(
    reports_sla.TARGET_WORKING_DAYS,
    color="#c0392b",
    linestyle="--",
    label=f"目标 {reports_sla.TARGET_WORKING_DAYS} 个工作日",
)
ax.set_yscale("log")
ax.set_xlabel("导入至到账（工作日，含调休上班日）")
ax.set_ylabel("笔数（对数刻度）")
ax.set_title("到账用时分布")
ax.legend()
save_figure(fig, "funnel_cash_days")
plt.show()

# %% [markdown]
# ## 首条通知与提醒的确认率
#
# 按企业点击的是哪一条短信里的链接统计；“累计确认率”是收到首条通知的企业中，到这一条为止已确认的比例。

# %%
by_message = reports_timeline.confirmation_by_message(answers)
display(zh(by_message, ["label", "sent", "confirmed", "declined", "rate", "cumulative"]))

# %%
fig, ax = plt.subplots(figsize=(7, 3.8))
ax.bar(by_message["label"], by_message["rate"], color="#f39c12", label="本条短信的确认率")
ax.plot(by_message["label"], by_message["cumulative"], color="#c0392b", marker="o", label="累计确认率")
ax.set_ylim(0, 1)
ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
ax.set_title("短信确认率：首条通知与到期前提醒")
ax.legend()
save_figure(fig, "funnel_reminders")
plt.show()

# %% [markdown]
# ## 各环节时限
#
# 每个环节的时限（工作日）在 `reports.sla.Sla`（按国务院办公厅节假日安排计工作日）；统计截至数据中最后一个时间点。
# “超时完成”是办结了但超过时限，“超时未办”是至今仍在该环节且已超时。

# %%
outcomes = reports_sla.sla_outcomes(timeline)
sla = reports_sla.sla_table(outcomes)
display(zh(sla, ["label", "days", "on_time", "late", "open", "open_late", "breach_share", "light_label"]))
display(
    zh(
        reports_sla.sla_table(outcomes, by_department=True).query("breaches > 0"),
        ["label", "department", "on_time", "late", "open_late", "breach_share", "light_label"],
    )
)

# %%
fig, ax = plt.subplots(figsize=(9, 3.8))
parts = (
    ("on_time", "按时", "#27ae60"),
    ("open", "办理中", "#aed6f1"),
    ("late", "超时完成", "#f39c12"),
    ("open_late", "超时未办", "#c0392b"),
)
total = sla[[c for c, _, _ in parts]].sum(axis=1).astype(float)
left = 0.0
for column, label, color in parts:
    share = sla[column].astype(float) / total
    ax.barh(sla["label"], share, left=left, label=label, color=color)
    left = left + share
for y, (n, s) in enumerate(zip(sla["breaches"], sla["breach_share"], strict=True)):
    ax.text(1.01, y, f"超时 {n:,}（{s:.1%}）", va="center", fontsize=9)
ax.invert_yaxis()
ax.set_xlim(0, 1)
ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
ax.set_xlabel("进入该环节的要约")
ax.set_title("各环节是否在时限内办结")
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4, fontsize=9)
save_figure(fig, "funnel_sla")
plt.show()
