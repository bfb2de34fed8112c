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
# # 一、覆盖面：政策惠及了谁
#
# 本笔记回答：每项政策（兑现事项）有多少企业符合、金额多少；按地区、行业门类、企业规模看分布；
# 资金是否集中在少数企业；哪些事项几乎无人符合、哪些几乎人人有份。
#
# 数据来自一次匹配结果（`zhida match --out`，环境变量 `ZHIDA_RUN`）和它所用的快照（`ZHIDA_SNAPSHOT`）。
# 统计口径是候选名单：已经过上限、已拨付剔除、就高不重复和预算分配之后的金额。

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from matcher import analysis
from reports.charts import save_figure, short, use_cjk_font, yuan
from reports.display import zh

RUN = Path(os.environ.get("ZHIDA_RUN", "var/demo/run"))
SNAPSHOT = Path(os.environ.get("ZHIDA_SNAPSHOT", "var/demo/snapshot"))
use_cjk_font()
run = analysis.open_run(RUN, snapshot=SNAPSHOT)
print(f"匹配批次 {run.manifest.run_id}，评估日 {run.as_of}，参与比对企业 {run.enterprises:,} 户")

# %% [markdown]
# ## 各事项的候选企业与金额
#
# “覆盖”一栏：**无人** 表示没有任何企业符合；**极少** 表示不到全部企业的 0.1%；**过半** 表示过半数企业符合。
# 无人符合的事项值得回头看条件是否写得过严、或者数据是否缺失（见第二、四本笔记）。

# %%
items = analysis.item_coverage(run)
display(
    zh(
        items,
        ["title", "department", "candidates", "amount", "share", "reach", "near_misses", "missing_data"],
    )
)

# %%
fig, ax = plt.subplots(figsize=(9, 0.6 + 0.5 * len(items)))
bars = ax.barh(items["title"], yuan(items["amount"]), color="#c0392b")
ax.bar_label(bars, labels=[f"{n:,} 户" for n in items["candidates"]], padding=3, fontsize=9)
ax.invert_yaxis()
ax.set_xlabel("金额（万元）")
ax.set_title("各兑现事项的候选企业与金额")
ax.margins(x=0.15)
save_figure(fig, "coverage_items")
plt.show()

# %% [markdown]
# ## 按地区、行业门类、企业规模
#
# “获得企业”是在该地区（门类、规模）至少获得一项的企业，“占比”是它们占该组全部企业的比例。

# %%
by = {d: analysis.coverage_by(run, d) for d in analysis.DIMENSIONS}
for d, df in by.items():
    print(analysis.DIMENSIONS[d])
    display(zh(df, ["label", "enterprises", "recipients", "share", "amount"]).head(12))

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
for ax, (d, df) in zip(axes, by.items(), strict=True):
    top = df.head(10)
    ax.barh(top["label"], yuan(top["amount"]), color="#2e86c1")
    ax.invert_yaxis()
    ax.set_title(f"按{analysis.DIMENSIONS[d]}（前10）")
    ax.set_xlabel("金额（万元）")
fig.tight_layout()
save_figure(fig, "coverage_dimensions")
plt.show()

# %% [markdown]
# ### 每个事项在各规模企业中的覆盖率

# %%
size = analysis.coverage_by(run, "size_class", per_item=True)
size["item"] = [short(t, 20) for t in size["title"]]
order = [*analysis.SIZE_LABELS.values(), analysis.UNKNOWN]
pivot = size.pivot_table(index="item", columns="label", values="share", aggfunc="first")
pivot = pivot.reindex(columns=[c for c in order if c in pivot.columns]).fillna(0)
fig, ax = plt.subplots(figsize=(10, 0.8 + 0.5 * len(pivot)))
image = ax.imshow(pivot.to_numpy(dtype=float), cmap="Reds", aspect="auto", vmin=0, vmax=1)
ax.set_xticks(range(len(pivot.columns)), pivot.columns)
ax.set_yticks(range(len(pivot.index)), pivot.index)
for (i, j), v in np.ndenumerate(pivot.to_numpy(dtype=float)):
    ax.text(j, i, f"{v:.0%}", ha="center", va="center", fontsize=9, color="white" if v > 0.6 else "black")
fig.colorbar(image, ax=ax, label="该规模企业中获得的比例")
ax.set_title("各事项按企业规模的覆盖率")
save_figure(fig, "coverage_size")
plt.show()

# %% [markdown]
# ## 资金集中度
#
# 把每家企业从各事项得到的金额加总，看前 10% 的企业拿走了多少。洛伦兹曲线越偏离对角线，资金越集中。

# %%
conc = analysis.concentration(run)
display(zh(conc, ["policy_id", "title", "recipients", "amount", "top_share"]))

# %%
curve = analysis.lorenz(run)
overall = conc.iloc[0]
fig, ax = plt.subplots(figsize=(5.5, 5))
ax.plot(curve["recipients"], curve["money"], color="#c0392b", label="实际分布")
ax.plot([0, 1], [0, 1], color="#999", linestyle="--", label="完全平均")
ax.set_xlabel("企业累计占比（从少到多）")
ax.set_ylabel("金额累计占比")
ax.set_title(f"资金集中度：前10%企业获得 {float(overall['top_share']):.0%}")
ax.legend()
save_figure(fig, "coverage_lorenz")
plt.show()
