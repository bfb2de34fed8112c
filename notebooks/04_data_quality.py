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
# # 四、数据质量
#
# 本笔记回答：快照检查拒绝了哪些行、为什么；各表各字段的空值率；缺数据让多少钱暂时发不出去。
# 拒绝的行不会被悄悄丢掉：每条规则都有计数和示例（`zhida snapshot check` 的同一份报告）。
#
# 读取 `ZHIDA_SNAPSHOT`（快照）与 `ZHIDA_RUN`（匹配结果，用于计算被缺失数据卡住的金额）。

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import display

from matcher import analysis
from reports.charts import save_figure, use_cjk_font, yuan
from reports.display import zh

RUN = Path(os.environ.get("ZHIDA_RUN", "var/demo/run"))
SNAPSHOT = Path(os.environ.get("ZHIDA_SNAPSHOT", "var/demo/snapshot"))
use_cjk_font()
run = analysis.open_run(RUN, snapshot=SNAPSHOT)
report = run.snapshot
print(f"快照 {report.directory}，指纹 {report.fingerprint}，共拒绝 {report.rejected_total:,} 行")

# %% [markdown]
# ## 各表的读入、接受与拒绝

# %%
tables = analysis.table_quality(report)
display(
    zh(
        tables,
        [
            "table",
            "table_label",
            "department",
            "rows_read",
            "rows_accepted",
            "rows_rejected",
            "rejected_share",
        ],
    )
)

# %% [markdown]
# ## 拒绝原因
#
# “企业不在已接受的企业表中”（orphan）多是企业表本身的行被拒绝后，其年报、纳税等行随之无主。

# %%
rejected = analysis.rejections(report)
display(zh(rejected))

# %%
pivot = rejected.pivot_table(
    index="table_label", columns="rule_name", values="rows", aggfunc="sum", fill_value=0
)
fig, ax = plt.subplots(figsize=(10, 0.8 + 0.5 * len(pivot)))
pivot.plot.barh(stacked=True, ax=ax, colormap="tab20")
ax.invert_yaxis()
ax.set_xlabel("拒绝行数")
ax.set_ylabel("")
ax.set_title("快照检查：各表拒绝行数与原因")
ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
save_figure(fig, "quality_rejections")
plt.show()

# %% [markdown]
# ## 空值率
#
# 在接受的行中，每个字段为空的比例。条件读到空字段时结果是“未知”而不是“否”，企业会进入数据缺失名单。

# %%
nulls = analysis.null_rates(report)
display(zh(nulls[nulls["nulls"] > 0]))

# %%
shown = nulls[nulls["nulls"] > 0].head(15).iloc[::-1]
fig, ax = plt.subplots(figsize=(8, 0.8 + 0.4 * len(shown)))
ax.barh(
    [f"{t}.{c}" for t, c in zip(shown["table"], shown["column"], strict=True)], shown["rate"], color="#8e44ad"
)
ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.1%}"))
ax.set_xlabel("空值率（接受的行中）")
ax.set_title("空值率最高的字段")
save_figure(fig, "quality_nulls")
plt.show()

# %% [markdown]
# ## 缺数据卡住的金额
#
# 其他条件都满足、只因字段为空而无法判断的企业，按事项算得的金额（未经预算分配）；
# “金额也无法计算”是连金额依赖的字段也缺失的企业数。

# %%
held = analysis.money_held_back(run)
display(zh(held, ["title", "department", "pairs", "amount", "amount_unknown"]))

# %%
fig, ax = plt.subplots(figsize=(9, 0.8 + 0.5 * len(held)))
bars = ax.barh(held["title"], yuan(held["amount"]), color="#d35400")
ax.bar_label(bars, labels=[f"{n:,} 户" for n in held["pairs"]], padding=3, fontsize=9)
ax.invert_yaxis()
ax.margins(x=0.15)
ax.set_xlabel("补齐数据后可兑现的金额（万元）")
ax.set_title("因数据缺失暂未兑现的金额（按事项）")
save_figure(fig, "quality_held_back")
plt.show()
