"""Tables for people: Chinese column headers, money with separators, shares as percents (the notebooks,
the monthly report's page and its workbook use the same labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pandas as pd

from rules.formats import money

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
    "working_days": "工作日",
    "calendar_days": "自然日",
    "rank": "名次",
    "steps": "计时事项",
    "red": "红灯环节",
    "amber": "黄灯环节",
    "green": "绿灯环节",
    "eligible": "应享企业（户）",
    "reached": "已告知企业（户）",
    "paid": "已到账企业（户）",
    "paid_amount": "到账金额（元）",
    "median_days": "比对至到账中位工作日",
    "mode": "方式",
    "apply_free": "免申即享",
    "apply": "快申快享",
    "ratings": "评价（条）",
    "satisfied_share": "满意及以上占比",
    "poor": "不满意评价",
    "poor_late": "不满意评价逾期答复",
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
    "satisfied_share",
}


def zh(df: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A table for people: chosen columns, Chinese headers, money with separators, shares as percents."""
    out = df[list(columns)] if columns is not None else df.copy()
    out = out.copy()
    for c in out.columns:
        if c in PERCENT_COLUMNS:
            out[c] = [_percent(v) for v in out[c]]
        elif len(out[c]) and all(isinstance(v, Decimal) for v in out[c]):
            out[c] = [money(v) for v in out[c]]
    return out.rename(columns={c: COLUMN_LABELS.get(c, c) for c in out.columns})


def _percent(v: Any) -> str:
    return "" if v is None or pd.isna(v) else f"{float(v):.1%}"
