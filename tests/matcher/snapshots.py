"""Small hand-made registry snapshots for tests: valid rows by default, every table overridable.

Rows are dicts of text, as a CSV export holds them. `write_snapshot` writes them as CSV (UTF-8, header);
`write_parquet` writes one table as Parquet with the contract's types (or the types a test asks for).
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from stdnum.cn import uscc as uscc_check

MONEY = pa.decimal128(18, 2)
CONTRACT_TYPES: dict[str, dict[str, pa.DataType]] = {
    "enterprises": {
        "uscc": pa.string(),
        "name": pa.string(),
        "reg_date": pa.date32(),
        "region_code": pa.string(),
        "industry_code": pa.string(),
        "status": pa.string(),
        "reg_capital": MONEY,
        "contact_phone": pa.string(),
    },
    "annual_reports": {
        "uscc": pa.string(),
        "year": pa.int32(),
        "employees": pa.int64(),
        "revenue": MONEY,
        "total_assets": MONEY,
    },
    "tax": {
        "uscc": pa.string(),
        "year": pa.int32(),
        "tax_paid": MONEY,
        "rd_expense": MONEY,
        "credit_rating": pa.string(),
    },
    "social_insurance": {
        "uscc": pa.string(),
        "year": pa.int32(),
        "insured_start": pa.int64(),
        "insured_end": pa.int64(),
        "ui_premium_paid": MONEY,
        "ui_arrears": pa.bool_(),
        "new_graduate_hires": pa.int64(),
    },
    "credit": {"uscc": pa.string(), "serious_dishonest": pa.bool_(), "abnormal_operation": pa.bool_()},
    "certifications": {
        "uscc": pa.string(),
        "cert_type": pa.string(),
        "cert_date": pa.date32(),
        "expiry_date": pa.date32(),
    },
    "stats_listing": {"uscc": pa.string(), "year": pa.int32(), "above_scale": pa.bool_()},
    "bank_accounts": {
        "uscc": pa.string(),
        "bank_name": pa.string(),
        "account_no": pa.string(),
        "account_name": pa.string(),
    },
    "payments": {
        "uscc": pa.string(),
        "policy_id": pa.string(),
        "item_id": pa.string(),
        "period": pa.string(),
        "amount": MONEY,
    },
}
"""Arrow types of each table as Contract 2 types it (docs/contracts.md#tables-and-types) (what a careful data office would export)."""


def uscc(n: int, region: str = "320812") -> str:
    """A valid unified social credit code for a small number n."""
    body = f"91{region}{n:09d}"[:17]
    return body + uscc_check.calc_check_digit(body)


def bad_check(code: str) -> str:
    """The same code with a wrong check character."""
    return code[:-1] + ("0" if code[-1] != "0" else "1")


def enterprise(n: int, **kw: Any) -> dict[str, Any]:
    """A valid enterprises row for enterprise n, with the given columns changed."""
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
    """n valid enterprises with one row each in every yearly table (2024), and one certificate for the first.

    `payments` is left out (it is optional)."""
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
    """Write every table as CSV (UTF-8, header row) and, unless taken_at is None, a snapshot.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in tables.items():
        with (directory / f"{name}.csv").open("w", encoding="utf-8", newline="") as f:
            fields = list(rows[0]) if rows else list(CONTRACT_TYPES.get(name, {"uscc": None}))
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    if taken_at:
        (directory / "snapshot.yaml").write_text(f"taken_at: {taken_at}\n", encoding="utf-8")
    return directory


def write_parquet(
    directory: Path,
    name: str,
    rows: list[dict[str, Any]],
    types: dict[str, pa.DataType] | None = None,
) -> Path:
    """Write one table as `<name>.parquet` (removing `<name>.csv`), converting the text values to `types`
    (default: the contract's types; columns not named there stay text)."""
    types = CONTRACT_TYPES[name] | (types or {})
    columns = list(rows[0]) if rows else list(types)
    table = pa.table(
        {
            c: pa.array([_value(r[c], types.get(c, pa.string())) for r in rows], types.get(c, pa.string()))
            for c in columns
        }
    )
    path = directory / f"{name}.parquet"
    pq.write_table(table, path)
    (directory / f"{name}.csv").unlink(missing_ok=True)
    return path


def _value(text: str | None, kind: pa.DataType) -> Any:
    if text is None or text == "":
        return None
    if pa.types.is_string(kind):
        return text
    if pa.types.is_decimal(kind):
        return Decimal(text)
    if pa.types.is_integer(kind):
        return int(text) if text not in ("true", "false") else int(text == "true")
    if pa.types.is_floating(kind):
        return float(text)
    if pa.types.is_boolean(kind):
        return text == "true"
    if pa.types.is_date(kind):
        return dt.date.fromisoformat(text)
    if pa.types.is_timestamp(kind):
        return dt.datetime.fromisoformat(text)
    raise ValueError(f"no conversion to {kind}")
