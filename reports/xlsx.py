"""The monthly report's workbook: its tables, one sheet each, with Chinese headers; every text a string cell
(never a formula, `reports.spreadsheet`), money as exact numbers with two places.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from reports.display import COLUMN_LABELS, PERCENT_COLUMNS
from rules.formats import CHINA

if TYPE_CHECKING:
    from reports.monthly import MonthlyReport


def write_xlsx(report: MonthlyReport, path: Path) -> None:
    """The report's tables, one sheet each, with Chinese headers; money as exact numbers with two places."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    from reports.spreadsheet import xlsx_row

    sheets = {
        "核心指标": report.headline[["metric", "this_month", "previous_month", "change"]],
        "分部门政策到账": report.paid_by_policy,
        "兑现漏斗": report.funnel[["label", "offers", "share", "amount", "amount_share"]],
        "快申快享漏斗": report.funnel_apply[["label", "offers", "share", "amount", "amount_share"]]
        if not report.funnel_apply.empty
        else pd.DataFrame(columns=["label", "offers", "share", "amount", "amount_share"]),
        "到账用时": report.cash_days[
            ["department", "title", "working_days", "calendar_days", "offers", "amount"]
        ],
        "服务质效": _service(report.service),
        "办理时限": report.sla.drop(columns=["light"], errors="ignore"),
        "月讲评": report.ranking,
        "资金去向晾晒": report.disclosure.drop(columns=["county_code", "county"], errors="ignore"),
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


def _service(table: pd.DataFrame) -> pd.DataFrame:
    """The service figures, apply-free and 快申快享 side by side, shares written as percents."""
    columns = ["metric", "apply_free", "apply"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    out = table.copy()
    share = out["key"].isin(PERCENT_COLUMNS)
    for mode in ("apply_free", "apply"):
        out[mode] = [
            f"{float(v):.1%}" if s and v is not None else v for v, s in zip(out[mode], share, strict=True)
        ]
    return out[columns]


def _cell(v: Any) -> Any:
    if isinstance(v, pd.Timestamp):
        return v.tz_convert(CHINA).tz_localize(None).to_pydatetime()
    if isinstance(v, bool | int | float | str | Decimal) or v is None:
        return None if isinstance(v, float) and pd.isna(v) else v
    if pd.isna(v):
        return None
    return str(v)
