"""Small hand-made registry snapshots for tests: valid rows by default, each table overridable."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from stdnum.cn import uscc as uscc_check


def uscc(n: int, region: str = "320812") -> str:
    """A valid unified social credit code for a small number n."""
    body = f"91{region}{n:09d}"[:17]
    return body + uscc_check.calc_check_digit(body)


def bad_check(code: str) -> str:
    """The same code with a wrong check character."""
    return code[:-1] + ("0" if code[-1] != "0" else "1")


def enterprise(n: int, **kw: Any) -> dict[str, Any]:
    row = {
        "uscc": uscc(n),
        "name": f"淮安测试企业{n:03d}有限公司",
        "reg_date": "2015-06-01",
        "region_code": "320812",
        "industry_code": "C3911",
        "status": "存续",
        "reg_capital": "1000000.00",
        "contact_phone": "13900000000",
    }
    return row | kw


def default_tables(n: int = 3) -> dict[str, list[dict[str, Any]]]:
    codes = [uscc(i) for i in range(n)]
    return {
        "enterprises": [enterprise(i) for i in range(n)],
        "annual_reports": [
            {
                "uscc": c,
                "year": "2024",
                "employees": "50",
                "revenue": "10000000.00",
                "total_assets": "8000000.00",
            }
            for c in codes
        ],
        "tax": [
            {
                "uscc": c,
                "year": "2024",
                "tax_paid": "100000.00",
                "rd_expense": "500000.00",
                "credit_rating": "A",
            }
            for c in codes
        ],
        "social_insurance": [
            {
                "uscc": c,
                "year": "2024",
                "insured_start": "50",
                "insured_end": "48",
                "ui_premium_paid": "12345.67",
                "ui_arrears": "false",
                "new_graduate_hires": "2",
            }
            for c in codes
        ],
        "credit": [{"uscc": c, "serious_dishonest": "false", "abnormal_operation": "false"} for c in codes],
        "certifications": [
            {
                "uscc": codes[0],
                "cert_type": "high_tech",
                "cert_date": "2023-01-01",
                "expiry_date": "2025-12-31",
            }
        ],
        "bank_accounts": [
            {
                "uscc": c,
                "bank_name": "中国工商银行淮安分行",
                "account_no": f"11{i:08d}",
                "account_name": f"淮安测试企业{i:03d}有限公司",
            }
            for i, c in enumerate(codes)
        ],
    }


def write_snapshot(
    directory: Path, tables: dict[str, list[dict[str, Any]]], taken_at: str | None = "2025-09-30"
) -> Path:
    """Write every table as CSV (UTF-8, header row)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        with (directory / f"{name}.csv").open("w", encoding="utf-8", newline="") as f:
            fields = list(rows[0]) if rows else ["uscc"]
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    if taken_at:
        (directory / "snapshot.yaml").write_text(f"taken_at: {taken_at}\n", encoding="utf-8")
    return directory
