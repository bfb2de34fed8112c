"""Writing many rows at once: COPY (CSV rendered by Arrow) on PostgreSQL, executemany elsewhere.

Used for the large writes (a match run's payees and offers, and their audit events), where going
through the ORM one object at a time would take minutes for a million offers. Columns come as Arrow
arrays or Python lists; on SQLite the values go through the column types (`Money`, `UtcDateTime`).

Also the two tools of set-based work on many rows: `among` (a list of values as one bound parameter,
since drivers refuse more than 65,535 of them in a statement) and `scratch_table` (a temporary table
of the transaction, to hold a set of rows that later statements join with).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from itertools import islice
from typing import TYPE_CHECKING, Any

from psycopg import sql
from sqlalchemy import Column as SqlColumn
from sqlalchemy import (
    ColumnElement,
    Index,
    MetaData,
    Select,
    Table,
    any_,
    bindparam,
    delete,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import Session

from payouts.sqltypes import Money

if TYPE_CHECKING:  # pyarrow is loaded by the functions that use it: a command's start stays quick
    import pyarrow as pa

    Column = Sequence[Any] | pa.Array | pa.ChunkedArray

CHUNK = 50_000


def insert_columns(session: Session, table: Table, columns: Mapping[str, Column]) -> int:
    """Insert the rows whose values are given column by column (all of one length) into `table`."""
    import pyarrow as pa

    conn = session.connection()
    if conn.dialect.name == "postgresql":
        data = pa.table({name: _arrow(values) for name, values in columns.items()})
        return _copy(conn.connection.driver_connection, table.name, data)
    # Elsewhere (SQLite): the values go through their columns' types (`Money`, `UtcDateTime`) a column
    # at a time, and to the driver as plain tuples, several times quicker than one dict per row.
    dialect = conn.dialect
    lists = []
    for name, values in columns.items():
        kind = table.c[name].type
        if isinstance(kind, Money) and isinstance(values, pa.Array | pa.ChunkedArray):
            lists.append(_fen(values).to_pylist())  # what Money stores on SQLite, computed in Arrow
            continue
        items = values.to_pylist() if isinstance(values, pa.Array | pa.ChunkedArray) else list(values)
        process = kind.dialect_impl(dialect).bind_processor(dialect)
        lists.append(items if process is None else [process(v) for v in items])
    quote = dialect.identifier_preparer.quote
    statement = (
        f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, columns))}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    it = zip(*lists, strict=True)
    n = 0
    while chunk := list(islice(it, CHUNK)):
        conn.exec_driver_sql(statement, chunk)
        n += len(chunk)
    return n


def _fen(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Yuan with at most two places (DECIMAL) as integer fen; an amount with a third place is refused,
    as `Money` refuses it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    hundred = pa.scalar(Decimal(100), pa.decimal128(3, 0))
    return pc.cast(pc.multiply(values, hundred), pa.int64())  # a safe cast: fails on a fraction of a fen


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Insert rows given as tuples in the order of `columns`."""
    if not rows:
        return 0
    return insert_columns(session, table, dict(zip(columns, map(list, zip(*rows, strict=True)), strict=True)))


def _arrow(values: Column) -> pa.Array | pa.ChunkedArray:
    import pyarrow as pa

    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    array = pa.array(values)
    if pa.types.is_timestamp(array.type) and array.type.tz is None:
        raise ValueError("naive datetimes cannot be bulk loaded: give them a time zone")
    return array


def _copy(raw: Any, table: str, data: pa.Table) -> int:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    options = pacsv.WriteOptions(include_header=False, batch_size=CHUNK)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, data.column_names))
    )
    with raw.cursor() as cur, cur.copy(statement) as copy:
        for batch in data.to_batches(CHUNK):
            buf = io.BytesIO()
            pacsv.write_csv(pa.Table.from_batches([batch]), buf, options)
            copy.write(buf.getbuffer())
    return data.num_rows


def among(session: Session, column: ColumnElement[Any], values: Iterable[str | int]) -> ColumnElement[bool]:
    """`column IN (values)` with the values as one bound parameter, however many there are.

    An array on PostgreSQL (`= ANY(:values)`), a JSON array on SQLite (`IN (SELECT value FROM
    json_each(:values))`): a plain `in_()` binds one parameter per value, and drivers refuse more
    than 65,535 (SQLite 32,766) of them.
    """
    items = list(values)
    if session.connection().dialect.name == "postgresql":
        return column == any_(bindparam(None, items, type_=ARRAY(column.type)))
    rows = select(literal_column("value")).select_from(func.json_each(bindparam(None, json.dumps(items))))
    return column.in_(rows.scalar_subquery())


_scratch = MetaData()


def scratch_table(session: Session, name: str, *columns: SqlColumn[Any] | Index) -> Table:
    """An empty temporary table `name` for this transaction (dropped at commit on PostgreSQL, emptied
    before each use on SQLite, where temporary tables live as long as the connection).

    The same `name` must always come with the same columns. Indexes given with the columns are not made
    here but by `index_scratch`, once the table is filled, and only where they are needed (SQLite).
    """
    table = _scratch.tables.get(name)
    if table is None:
        table = Table(name, _scratch, *columns, prefixes=["TEMPORARY"], postgresql_on_commit="DROP")
    conn = session.connection()
    conn.execute(CreateTable(table, if_not_exists=True))
    conn.execute(delete(table))
    return table


def index_scratch(session: Session, table: Table) -> None:
    """Make a filled scratch table ready for joins: on SQLite, which joins by nested loops, build the
    indexes declared with it (once filled: quicker than keeping them up to date row by row); on
    PostgreSQL, which hashes, give the planner its statistics instead."""
    conn = session.connection()
    if conn.dialect.name != "sqlite":
        analyze(session, table)
        return
    for index in sorted(table.indexes, key=lambda i: i.name or ""):
        conn.execute(CreateIndex(index, if_not_exists=True))


def analyze(session: Session, table: Table, columns: Iterable[str] | None = None) -> None:
    """Give PostgreSQL's planner the statistics of a freshly filled (temporary) table, or, given
    `columns`, of just those columns of a table a bulk change rewrote (a fraction of the time: the
    other columns' statistics are not computed again)."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        quote = conn.dialect.identifier_preparer.quote
        named = f" ({', '.join(map(quote, sorted(set(columns))))})" if columns else ""
        conn.exec_driver_sql(f"ANALYZE {quote(table.name)}{named}")


def lock_rows(session: Session, query: Select[Any]) -> int:
    """Run `query` (a SELECT ... FOR UPDATE) for its locks only, counted in the database: no row
    comes back to Python, so memory stays bounded. Returns how many rows it locked."""
    session.flush()
    return int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
