"""Writing many rows at once: COPY (CSV rendered by Arrow) on PostgreSQL, executemany elsewhere.

Used for the large writes (a match run's payees and offers, and their audit events), where going
through the ORM one object at a time would take minutes for a million offers. Columns come as Arrow
arrays or Python lists; on SQLite the values go through the column types (`Money`, `UtcDateTime`).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from itertools import islice
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql
from sqlalchemy import Table
from sqlmodel import Session

CHUNK = 50_000
_CSV = pacsv.WriteOptions(include_header=False, batch_size=CHUNK)

Column = Sequence[Any] | pa.Array | pa.ChunkedArray


def insert_columns(session: Session, table: Table, columns: Mapping[str, Column]) -> int:
    """Insert the rows whose values are given column by column (all of one length) into `table`."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        data = pa.table({name: _arrow(values) for name, values in columns.items()})
        return _copy(conn.connection.driver_connection, table.name, data)
    names = list(columns)
    lists = [v.to_pylist() if isinstance(v, pa.Array | pa.ChunkedArray) else v for v in columns.values()]
    it = zip(*lists, strict=True)
    n = 0
    while chunk := list(islice(it, CHUNK)):
        conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in chunk])
        n += len(chunk)
    return n


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Insert rows given as tuples in the order of `columns`."""
    if not rows:
        return 0
    return insert_columns(session, table, dict(zip(columns, map(list, zip(*rows, strict=True)), strict=True)))


def _arrow(values: Column) -> pa.Array | pa.ChunkedArray:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    array = pa.array(values)
    if pa.types.is_timestamp(array.type) and array.type.tz is None:
        raise ValueError("naive datetimes cannot be bulk loaded: give them a time zone")
    return array


def _copy(raw: Any, table: str, data: pa.Table) -> int:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, data.column_names))
    )
    with raw.cursor() as cur, cur.copy(statement) as copy:
        for batch in data.to_batches(CHUNK):
            buf = io.BytesIO()
            pacsv.write_csv(pa.Table.from_batches([batch]), buf, _CSV)
            copy.write(buf.getbuffer())
    return data.num_rows
