"""Verified overrides over a loaded snapshot: values the owning department checked, applied in DuckDB.

An override names one stored column of one snapshot table for one enterprise (and, for a yearly table,
one year) and the value to use. `apply_overrides` runs after `load_snapshot` and before the profiles are
built: it fills the cell in the accepted tables in the connection (inserting the row when the enterprise
has none for that year), never the snapshot's files, and returns what it changed (old and new value) for
the run's manifest. Overrides fill missing data only: where a later snapshot delivers the value, the
registry's value stands and the override is listed as skipped. The matcher does not know where overrides come from: the service reads them from
its database and hands them over as plain records (or a Parquet/JSON file of them).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from matcher.snapshot_rules import SPECS
from rules.errors import MatchError

# The tables whose columns are profile fields an enterprise can supply (Contract 2 and 3).
OVERRIDABLE = ("enterprises", "annual_reports", "tax", "social_insurance", "credit")

OverrideSource = Path | Sequence[Mapping[str, Any]] | None


@dataclass(frozen=True)
class Override:
    """One value to put over the snapshot: which enterprise, table, column and year, and its id."""

    id: str
    uscc: str
    table: str
    column: str
    year: int | None
    value: str | None

    @property
    def yearly(self) -> bool:
        return "year" in SPECS[self.table].key


def _override(record: Mapping[str, Any], where: str) -> Override:
    try:
        year = record.get("year")
        value = record.get("value")
        o = Override(
            id=str(record["id"]),
            uscc=str(record["uscc"]),
            table=str(record["table"]),
            column=str(record["column"]),
            year=None if year is None else int(year),
            value=None if value is None else str(value),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MatchError(f"{where}: 覆盖记录应有 id、uscc、table、column、year、value：{e}") from e
    if o.table not in OVERRIDABLE:
        raise MatchError(f"{where}: 覆盖 {o.id} 的表 {o.table} 不能覆盖，可选：{', '.join(OVERRIDABLE)}")
    spec = SPECS[o.table]
    if o.column not in spec.columns or o.column in spec.key:
        raise MatchError(f"{where}: 覆盖 {o.id}：表 {o.table} 没有可覆盖的列 {o.column}")
    if o.yearly and o.year is None:
        raise MatchError(f"{where}: 覆盖 {o.id}：{o.table} 是按年度的表，须指明年度")
    if not o.yearly and o.year is not None:
        raise MatchError(f"{where}: 覆盖 {o.id}：{o.table} 不分年度，不能指明年度")
    return o


def load_overrides(source: OverrideSource) -> list[Override]:
    """The overrides of a Parquet or JSON file (a list of records), or of records given directly."""
    if source is None:
        return []
    if isinstance(source, Path):
        if not source.is_file():
            raise MatchError(f"没有覆盖文件 {source}")
        if source.suffix == ".parquet":
            records: Sequence[Mapping[str, Any]] = pq.read_table(source).to_pylist()
        else:
            try:
                loaded = json.loads(source.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise MatchError(f"{source}: 不是有效的 JSON：{e}") from e
            if not isinstance(loaded, list):
                raise MatchError(f"{source}: 应为覆盖记录的列表")
            records = loaded
        where = str(source)
    else:
        records, where = source, "覆盖记录"
    return [_override(r, f"{where}[{n}]") for n, r in enumerate(records)]


def _text(
    con: duckdb.DuckDBPyConnection, o: Override, key: str, params: list[Any]
) -> tuple[bool, str | None]:
    rows = con.execute(f'SELECT CAST("{o.column}" AS VARCHAR) FROM {o.table} WHERE {key}', params).fetchall()
    return (True, rows[0][0]) if rows else (False, None)


def apply_overrides(con: duckdb.DuckDBPyConnection, overrides: Sequence[Override]) -> dict[str, Any]:
    """Fill the empty cells that `overrides` name in the loaded snapshot tables in `con`, in order.

    Returns the manifest entry: how many were applied and, for each, the enterprise, table, column,
    year, old and new value (as text) and its id. Overrides of enterprises the snapshot does not hold
    (or rejected), and of cells the snapshot now fills itself, are listed as skipped, with the reason.
    """
    applied: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for o in overrides:
        entry = {"id": o.id, "uscc": o.uscc, "table": o.table, "column": o.column, "year": o.year}
        if not con.execute("SELECT 1 FROM enterprises WHERE uscc = ?", [o.uscc]).fetchall():
            skipped.append(entry | {"reason": "快照中没有这家企业（或其登记信息被拒收）"})
            continue
        key = "uscc = ? AND year = ?" if o.yearly else "uscc = ?"
        params: list[Any] = [o.uscc, o.year] if o.yearly else [o.uscc]
        exists, old = _text(con, o, key, params)
        if old is not None:  # the registry delivers the value now: it is the source, the override is stale
            skipped.append(entry | {"reason": f"快照已有该值（{old}），以登记数据为准"})
            continue
        kind = SPECS[o.table].columns[o.column]
        try:
            if exists:
                con.execute(
                    f'UPDATE {o.table} SET "{o.column}" = CAST(? AS {kind}) WHERE {key}', [o.value, *params]
                )
            else:
                columns = ["uscc", "year"] if o.yearly else ["uscc"]
                marks = ", ".join("?" for _ in columns)
                con.execute(
                    f'INSERT INTO {o.table} ({", ".join(columns)}, "{o.column}") '
                    f"VALUES ({marks}, CAST(? AS {kind}))",
                    [*params, o.value],
                )
        except duckdb.Error as e:
            raise MatchError(f"覆盖 {o.id}（{o.table}.{o.column}）的值 {o.value!r} 不是 {kind}：{e}") from e
        _, new = _text(con, o, key, params)
        applied.append(entry | {"old": old, "new": new, "inserted_row": not exists})
    return {"count": len(applied), "applied": applied, "skipped": skipped}
