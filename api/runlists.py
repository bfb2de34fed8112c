"""Reading a match run's lists (Contract 4) for people: filtered, with Chinese headers, as rows, CSV or Excel.

The candidates are a Parquet file in the run folder; DuckDB reads it with the filters pushed down. The near
misses and missing data are read on demand through `matcher.results` (compact in format 3, files before).
A user of one department only ever gets the rows of that department's policies (`policy_ids`), and a user
of a region only those of its enterprises (`region`, payouts/scope.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import duckdb
from openpyxl import Workbook

from matcher import runfolder
from matcher.results import Slice, open_results
from reports.spreadsheet import csv_row, xlsx_row
from rules.errors import MatchError

ListName = Literal["candidates", "near_misses", "missing_data"]
EXCEL_MAX_ROWS = 1_048_575  # one sheet, less the header
LIST_LABELS = {"candidates": "候选名单", "near_misses": "差一点名单", "missing_data": "数据缺失名单"}
FILES = {
    "candidates": runfolder.CANDIDATES,
    "near_misses": runfolder.NEAR_MISSES,
    "missing_data": runfolder.MISSING_DATA,
}
_QUERIES: dict[str, tuple[str, list[str]]] = {
    "candidates": (
        "SELECT c.policy_id, c.policy_version, c.item_id, c.uscc, p.name, c.amount, c.amount_before_allocation "
        "FROM read_parquet($file) c LEFT JOIN read_parquet($payees) p USING (uscc)",
        ["政策", "版本", "事项", "统一社会信用代码", "企业名称", "金额（元）", "分配前金额（元）"],
    ),
    "near_misses": (
        "SELECT policy_id, item_id, uscc, condition_id, value FROM ({rows}) c",
        ["政策", "事项", "统一社会信用代码", "未满足的条件", "取值"],
    ),
    "missing_data": (
        "SELECT policy_id, item_id, uscc, array_to_string(fields, '、') AS fields FROM ({rows}) c",
        ["政策", "事项", "统一社会信用代码", "缺少的字段"],
    ),
}


@dataclass(frozen=True)
class Filters:
    """What to keep of a list: policies the user may see, and the optional narrowing of the page."""

    policy_ids: list[str] | None  # None: every policy
    policy_id: str | None = None
    item_id: str | None = None
    condition_id: str | None = None  # near misses
    field: str | None = None  # missing data
    uscc: str | None = None  # prefix
    # The user's region (GB/T 2260 prefix, payouts/scope.py): only enterprises registered there, as the run's
    # contacts list gives their region code; None: every region.
    region: str | None = None


def _slice(f: Filters) -> Slice:
    return Slice(
        policy_id=f.policy_id,
        item_id=f.item_id,
        condition_id=f.condition_id,
        field=f.field,
        uscc=f.uscc,
        policy_ids=f.policy_ids,
        region=f.region,
    )


def _select(run_dir: Path, name: str, f: Filters) -> tuple[str, dict[str, Any]]:
    sql, _ = _QUERIES[name]
    if name != "candidates":  # filtered by `matcher.results`, in (policy_id, item_id, uscc) order
        rows = open_results(run_dir).list_sql(name, _slice(f))  # type: ignore[arg-type]
        return sql.format(rows=rows) + " ORDER BY c.policy_id, c.item_id, c.uscc", {}
    params: dict[str, Any] = {
        "file": runfolder.parquet_source(run_dir / FILES[name]),
        "payees": runfolder.parquet_source(run_dir / runfolder.PAYEES),
    }
    where = _candidate_where(run_dir, f, params)
    order = " ORDER BY c.policy_id, c.item_id, c.uscc"
    return sql + (" WHERE " + " AND ".join(where) if where else "") + order, params


def _candidate_where(run_dir: Path, f: Filters, params: dict[str, Any]) -> list[str]:
    """The filter's conditions on the candidates (alias `c`), their parameters added to `params`."""
    where = []
    if f.policy_ids is not None:
        where.append("list_contains($scope, c.policy_id)")
        params["scope"] = f.policy_ids
    for column, value in (("policy_id", f.policy_id), ("item_id", f.item_id)):
        if value:
            where.append(f"c.{column} = ${column}")
            params[column] = value
    if f.uscc:
        where.append("starts_with(c.uscc, $uscc)")
        params["uscc"] = f.uscc
    if f.region is not None:
        contacts = run_dir / runfolder.CONTACTS
        if not contacts.exists():  # a folder without the regions: nothing is known to be the user's
            where.append("false")
        else:
            where.append(
                "c.uscc IN (SELECT uscc FROM read_parquet($contacts) WHERE starts_with(region_code, $region))"
            )
            params["contacts"], params["region"] = runfolder.parquet_source(contacts), f.region
    return where


def _connect(run_dir: Path, name: str) -> duckdb.DuckDBPyConnection:
    if name != "candidates" and runfolder.has_compact_results(run_dir):
        return open_results(run_dir).cursor()  # the compact statuses are tables of its database
    if not (run_dir / FILES[name]).exists():
        raise MatchError(f"匹配结果中没有 {LIST_LABELS[name]}")
    return duckdb.connect()


def headers(name: str) -> list[str]:
    return _QUERIES[name][1]


def page(run_dir: Path, name: str, f: Filters, limit: int = 200) -> tuple[int, list[tuple[Any, ...]]]:
    """How many rows match, and the first `limit` of them."""
    if name != "candidates" and runfolder.has_compact_results(run_dir):
        results, narrow = open_results(run_dir), _slice(f)
        rows = results.page(name, narrow, limit=limit) if limit else []  # type: ignore[arg-type]
        if name == "missing_data":
            rows = [(p, i, u, "、".join(fields)) for p, i, u, fields in rows]
        return results.count(name, narrow), rows  # type: ignore[arg-type]
    con = _connect(run_dir, name)
    try:
        sql, params = _select(run_dir, name, f)
        total = con.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()
        rows = con.execute(f"{sql} LIMIT {int(limit)}", params).fetchall()
    finally:
        con.close()
    return (total[0] if total else 0), rows


def summary(run_dir: Path, items: Sequence[Mapping[str, Any]], f: Filters) -> list[dict[str, Any]]:
    """The run's summary rows (`items`, as the manifest has them) counted again over the filter's policies
    and region only: eligible, candidates, near misses, missing data and money per item. `eligible` is None
    for a run folder that keeps no eligible rows (written before the compact results)."""
    whole = Filters(f.policy_ids, region=f.region, uscc=f.uscc)
    counts = open_results(run_dir).item_counts(_slice(whole))
    con = _connect(run_dir, "candidates")
    try:
        params: dict[str, Any] = {"file": runfolder.parquet_source(run_dir / FILES["candidates"])}
        where = _candidate_where(run_dir, whole, params)
        money = {
            (p, i): (int(n), amount, before)
            for p, i, n, amount, before in con.execute(
                "SELECT c.policy_id, c.item_id, count(*), coalesce(sum(c.amount), 0), "
                "coalesce(sum(c.amount_before_allocation), 0) FROM read_parquet($file) c"
                + (" WHERE " + " AND ".join(where) if where else "")
                + " GROUP BY ALL",
                params,
            ).fetchall()
        }
    finally:
        con.close()
    compact = runfolder.has_compact_results(run_dir)
    out = []
    for row in items:
        if f.policy_ids is not None and row["policy_id"] not in f.policy_ids:
            continue
        key = (row["policy_id"], row["item_id"])
        n, amount, before = money.get(key, (0, 0, 0))
        got = counts.get(key, {})
        out.append(
            {
                "policy_id": key[0],
                "item_id": key[1],
                "eligible": got.get("eligible", 0) if compact else None,
                "candidates": n,
                "near_misses": got.get("near_misses", 0),
                "missing_data": got.get("missing_data", 0),
                "amount": _yuan(amount),
                "amount_before_allocation": _yuan(before),
            }
        )
    return out


def _yuan(value: Any) -> str:
    return format(Decimal(value).quantize(Decimal("0.01")), "f")


def csv_chunks(run_dir: Path, name: str, f: Filters) -> Iterator[bytes]:
    """The list as UTF-8 CSV with a byte-order mark (so that Excel reads the Chinese), in chunks."""
    con = _connect(run_dir, name)
    sql, params = _select(run_dir, name, f)
    cursor = con.execute(sql, params)

    def chunks() -> Iterator[bytes]:
        try:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\r\n")
            writer.writerow(headers(name))
            yield ("\ufeff" + buffer.getvalue()).encode()
            while rows := cursor.fetchmany(10_000):
                buffer = io.StringIO()
                writer = csv.writer(buffer, lineterminator="\r\n")
                writer.writerows(csv_row(row) for row in rows)
                yield buffer.getvalue().encode()
        finally:
            con.close()

    return chunks()


def workbook(run_dir: Path, name: str, f: Filters) -> bytes:
    """The list as an Excel workbook; refused with MatchError beyond one sheet's rows."""
    total, _ = page(run_dir, name, f, limit=0)
    if total > EXCEL_MAX_ROWS:
        raise MatchError(f"{LIST_LABELS[name]}有 {total:,} 行，超过 Excel 一张表的上限：请筛选，或下载 CSV")
    con = _connect(run_dir, name)
    try:
        sql, params = _select(run_dir, name, f)
        book = Workbook(write_only=True)
        sheet = book.create_sheet(LIST_LABELS[name])
        sheet.append(headers(name))
        cursor = con.execute(sql, params)
        while rows := cursor.fetchmany(10_000):
            for row in rows:
                sheet.append(xlsx_row(sheet, row))
    finally:
        con.close()
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def rows_workbook(title: str, header: list[str], rows: list[list[Any]]) -> bytes:
    """A one-sheet workbook of plain rows (reports)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)
    sheet.append(header)
    for row in rows:
        sheet.append(xlsx_row(sheet, row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
