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
# # 二、差一点符合与补数据
#
# 本笔记回答：
# - 每个事项里，**只差一个条件**的企业最常卡在哪一个条件上，离门槛还有多远；
# - 把门槛放宽一点（例如稳岗返还的裁员率 5.5% → 6%）会多覆盖多少企业、多花多少钱（影响模拟）；
# - 因为数据缺失而暂时无法判断的企业，缺的是哪些字段，该找哪个部门补。
#
# 读取 `ZHIDA_RUN`（匹配结果）与 `ZHIDA_SNAPSHOT`（快照）。

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import display

from matcher import analysis
from reports.charts import save_figure, short, use_cjk_font, yuan
from reports.display import zh

RUN = Path(os.environ.get("ZHIDA_RUN", "var/demo/run"))
SNAPSHOT = Path(os.environ.get("ZHIDA_SNAPSHOT", "var/demo/snapshot"))
use_cjk_font()
run = analysis.open_run(RUN, snapshot=SNAPSHOT)

# %% [markdown]
# ## 卡点条件
#
# “占比”是该条件卡住的企业占这个事项全部“差一点”企业的比例；“首要卡点”标出每个事项卡住最多企业的条件。

# %%
blocks = analysis.blockers(run)
display(zh(blocks[blocks["top"]], ["title", "condition_id", "text", "clause", "near_misses", "share"]))

# %%
top = blocks.head(12).iloc[::-1]
fig, ax = plt.subplots(figsize=(10, 0.6 + 0.45 * len(top)))
ax.barh(
    [f"{short(t, 14)}｜{short(c, 16)}" for t, c in zip(top["title"], top["text"], strict=True)],
    top["near_misses"],
    color=["#c0392b" if t else "#e6b0aa" for t in top["top"]],
)
ax.set_xscale("log")
ax.set_xlabel("只差这一个条件的企业（户，对数刻度）")
ax.set_title("差一点符合：卡住企业最多的条件（深色为该事项首要卡点）")
save_figure(fig, "near_miss_blockers")
plt.show()

# %% [markdown]
# ## 离门槛有多远
#
# 对含数值门槛的条件（如 `layoff_rate <= 0.055`），计算每家企业离最近一个未达到的门槛还差多少；
# “差距在10%以内”是差距不超过门槛值 10% 的企业数，这些企业最可能因小幅调整而符合。

# %%
display(zh(analysis.distance_summary(run)))

# %%
dist = analysis.distances(run)
layoff = dist[(dist["policy_id"] == "wengang-2025") & (dist["field"] == "layoff_rate")]
fig, ax = plt.subplots(figsize=(8, 3.8))
ax.hist(layoff["value"], bins=40, range=(0, 0.6), color="#2e86c1")
for limit, text in ((0.055, "5.5%"), (0.2, "20%（30人及以下）")):
    ax.axvline(limit, color="#c0392b", linestyle="--")
    ax.text(limit, ax.get_ylim()[1] * 0.9, f" {text}", color="#c0392b")
ax.set_xlabel("上年度裁员率")
ax.set_ylabel("企业（户）")
ax.set_title("稳岗返还：因裁员率差一点的企业")
save_figure(fig, "near_miss_layoff")
plt.show()

# %% [markdown]
# ## 门槛调整的影响模拟
#
# 用影响模拟（`matcher.simulate`，与 `zhida simulate` 相同）在同一份快照上重算整项政策：
# 新门槛下的企业数、新增与减少的企业、金额变化。这里以稳岗返还中小微企业的裁员率门槛为例。

# %%
SWEEP = (
    "wengang-2025",
    "sme_layoff",
    "layoff_rate",
    ["0.045", "0.05", "0.055", "0.06", "0.065", "0.07", "0.08"],
)
sweep = analysis.sweep(run, *SWEEP)
display(zh(sweep))

# %%
fig, ax = plt.subplots(figsize=(8, 4))
x = [f"{float(t):.1%}" for t in sweep["threshold"]]
ax.bar(x, sweep["gained"] - sweep["lost"], color="#27ae60")
ax.set_xlabel("裁员率门槛")
ax.set_ylabel("企业数变化（户）")
ax2 = ax.twinx()
ax2.plot(x, yuan(sweep["delta_amount"]), color="#c0392b", marker="o")
ax2.set_ylabel("金额变化（万元）", color="#c0392b")
ax.axhline(0, color="#999", linewidth=0.8)
ax.set_title("稳岗返还（中小微企业）：裁员率门槛调整的影响（现行 5.5%）")
save_figure(fig, "near_miss_sweep")
plt.show()

# %% [markdown]
# ## 数据缺失：缺哪些字段，找哪个部门
#
# 这些企业的其他条件都满足，只是某些字段为空、无法判断。按字段和按数据归口部门列出；
# “金额”是这些企业若补齐数据后按事项算得的金额（未经预算分配；金额本身依赖缺失字段的不计入）。

# %%
display(zh(analysis.missing_fields(run)))
departments = analysis.missing_by_department(run)
display(zh(departments))

# %%
fig, ax = plt.subplots(figsize=(9, 0.8 + 0.55 * len(departments)))
bars = ax.barh(departments["department"], yuan(departments["amount"]), color="#8e44ad")
ax.bar_label(bars, labels=[f"{n:,} 户" for n in departments["enterprises"]], padding=3, fontsize=9)
ax.invert_yaxis()
ax.margins(x=0.2)
ax.set_xlabel("因缺数据暂未兑现的金额（万元）")
ax.set_title("数据缺失：按数据归口部门")
save_figure(fig, "missing_departments")
plt.show()
