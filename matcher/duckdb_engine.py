"""The DuckDB engine, the embedded default: `matcher.engine.Engine` on a DuckDB connection, and the writers
of the run folder's Parquet files (the candidates byte-identical run after run)."""

from __future__ import annotations

import datetime as dt
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from matcher import engine
from matcher.engine import LISTS, OUTPUT_QUERIES, Engine, ordered_query
from matcher.overrides import OverrideSource, apply_overrides, load_overrides
from matcher.plan import (
    ITEMS,
    KEYS,
    MATCHES,
    PAID,
    TOTALS,
    ItemPlan,
    Rows,
    keyed_name,
    keyed_query,
    keys_query,
    matches_query,
    unpriced_error,
)
from matcher.profile import build_profile
from matcher.snapshot import SnapshotReport, load_snapshot
from rules.errors import MatchError
from rules.policy import Policy

BATCH = 50  # items per statement of stage 1


def connect(memory_limit: str | None = None, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that spills to disk rather than running out of memory."""
    con = duckdb.connect()
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_dir is not None:
        con.execute(f"SET temp_directory = '{temp_dir}'")
    # Every output is written with an explicit ORDER BY on its key, so insertion order need not be kept.
    con.execute("SET preserve_insertion_order = false")
    return con


@contextmanager
def insertion_order(con: duckdb.DuckDBPyConnection, keep: bool = True) -> Iterator[None]:
    """While inside, DuckDB keeps the order rows come in (a table stored as its query gives them, a scan
    read in the table's order) if `keep`; `connect` lets it drop the order elsewhere, where it costs."""
    if not keep:
        yield
        return
    (before,) = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0]
    con.execute("SET preserve_insertion_order = true")
    try:
        yield
    finally:
        con.execute(f"SET preserve_insertion_order = {str(bool(before)).lower()}")


class DuckDBEngine(Engine):
    """The plan on a DuckDB connection: tables created at once, the stored rows in batches of items."""

    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__()
        self.con = con

    def create(self, name: str, tree: exp.Expr, *, view: bool = False, ordered: bool = False) -> None:
        t0 = time.perf_counter()
        kind = "VIEW" if view else "TABLE"
        with insertion_order(self.con, ordered and not view):
            self.con.execute(f"CREATE OR REPLACE {kind} {name} AS {tree.sql('duckdb', copy=False)}")
        self.timed(name, t0)

    def load_rows(self, table: Rows) -> None:
        load_rows(self.con, table)

    def fetch(self, tree: exp.Expr) -> list[tuple[Any, ...]]:
        return self.con.execute(tree.sql("duckdb", copy=False)).fetchall()

    def load_snapshot(self, location: str) -> SnapshotReport:
        return load_snapshot(Path(location), self.con, ordered=False)  # the run orders what it reads

    def apply_overrides(self, source: OverrideSource) -> dict[str, Any] | None:
        return apply_overrides(self.con, load_overrides(source))  # verified values, over the loaded tables

    def write_outputs(self, out: str) -> None:
        write_outputs(self.con, Path(out))

    def write_text(self, location: str, text: str) -> None:
        Path(location).write_text(text, encoding="utf-8")

    def build_profile(self, assessment_year: int, as_of: dt.date) -> str:
        return build_profile(self.con, assessment_year, as_of)  # numbered in USCC order, as `rid`

    def number(self, profiles: Mapping[int, str]) -> dict[int, str]:
        first = profiles[min(profiles)]
        if "rid" in _columns(self.con, first):  # `build_profile` numbers the enterprises; other tables do not
            self.create(KEYS, exp.select("uscc", "rid").from_(first))
            return dict(profiles)
        self.create(KEYS, keys_query(first))
        keyed = {year: keyed_name(profile) for year, profile in profiles.items()}
        for year, profile in profiles.items():
            self.create(keyed[year], keyed_query(profile))
        return keyed

    def create_matches(self, plans: list[ItemPlan]) -> None:
        """In statements of `BATCH` items: the same trees, smaller statements to plan."""
        for n in range(0, len(plans), BATCH):
            batch = plans[n : n + BATCH]
            sql = matches_query(batch).sql("duckdb", copy=False)
            t0 = time.perf_counter()
            try:
                self.con.execute(
                    f"INSERT INTO {MATCHES} {sql}" if n else f"CREATE OR REPLACE TABLE {MATCHES} AS {sql}"
                )
            except duckdb.Error as e:
                if culprit := _unpriced_item(self.con, batch):
                    raise unpriced_error(culprit.policy.id, culprit.item.id) from e
                raise
            self.timed(MATCHES, t0)


def execute(
    con: duckdb.DuckDBPyConnection,
    policies: list[Policy],
    as_of: dt.date,
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, float]:
    """`matcher.engine.execute` in `con`: the profiles, then the plan; timings in seconds."""
    return engine.execute(DuckDBEngine(con), policies, as_of, step)


def match_profiles(
    con: duckdb.DuckDBPyConnection,
    policies: list[Policy],
    profiles: dict[int, str],
    payments: str = "payments",
    step: Callable[[str], None] = lambda _: None,
    statements: dict[str, float] | None = None,
) -> dict[str, float]:
    """`matcher.engine.match_profiles` in `con`, over existing profile tables; adds the seconds of each
    statement, by the table or view it makes, to `statements` if given (what is left of a stage is
    Python: building and rendering trees)."""
    driver = DuckDBEngine(con)
    timings = engine.match_profiles(driver, policies, profiles, payments, step)
    if statements is not None:
        for name, seconds in driver.statements.items():
            statements[name] = statements.get(name, 0.0) + seconds
    return timings


def _arrow_type(t: exp.DataType) -> pa.DataType:
    if t.this == exp.DataType.Type.DECIMAL:
        precision, scale = (int(e.name) for e in t.expressions)
        return pa.decimal128(precision, scale)
    return _ARROW[t.this]


_ARROW = {
    exp.DataType.Type.INT: pa.int32(),
    exp.DataType.Type.BIGINT: pa.int64(),
    exp.DataType.Type.VARCHAR: pa.string(),
}


def load_rows(con: duckdb.DuckDBPyConnection, table: Rows) -> None:
    """Create (or replace) the plan's data table `table.name` from its rows, through Arrow."""
    columns = list(zip(*table.rows, strict=True)) or [() for _ in table.types]
    arrow = pa.table(
        [pa.array(c, type=_arrow_type(t)) for c, t in zip(columns, table.types.values(), strict=True)],
        names=list(table.types),
    )
    con.register("plan_rows", arrow)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table.name} AS SELECT * FROM plan_rows")
    finally:
        con.unregister("plan_rows")


def _unpriced_item(con: duckdb.DuckDBPyConnection, plans: list[ItemPlan]) -> ItemPlan | None:
    """The first stored item whose amount fails on its own eligible rows (run only after stage 1 failed:
    an amount too big for DECIMAL(18,2) is an error there, not NULL)."""
    for plan in plans:
        if plan.allocated:
            try:
                fetch_one(con, f"SELECT max(amount) FROM ({plan.eligible().sql('duckdb')})")
            except duckdb.Error:
                return plan
    return None


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]


def fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> tuple[Any, ...] | None:
    """The first row of a query, with the result fully consumed (DuckDB keeps an unfinished one open)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path, row_group: int | None = None) -> None:
    size = f", ROW_GROUP_SIZE {row_group}" if row_group else ""
    con.execute(f"COPY ({query}) TO '{path}' (FORMAT PARQUET, COMPRESSION ZSTD{size})")


def write_outputs(con: duckdb.DuckDBPyConnection, out: Path, timings: dict[str, float] | None = None) -> None:
    """The Parquet files of Contract 4 (candidates, payees, contacts and the compact results) from a
    connection that ran the plan; seconds per file into `timings` if given."""
    from matcher.results import write_compact  # it imports this module's neighbours

    payees = None
    for name in OUTPUT_QUERIES:
        t = time.perf_counter()
        if name == "candidates":
            payees = write_candidates(con, out / f"{name}.parquet")
        elif name in LISTS:
            continue  # kept compact: matcher.results
        else:  # sorted by uscc in small row groups: the enterprise pages look one up (`matcher.results`)
            if name == "payees" and payees is not None:
                # The enterprises with a candidate, as the candidates were written: computing `payable`
                # again only for its rids cost as much as the payees file.
                con.register("payee_rids_arrow", pa.table({"rid": pa.array(payees, pa.int64())}))
                con.execute("CREATE OR REPLACE TEMP TABLE payee_rids AS SELECT rid FROM payee_rids_arrow")
                con.unregister("payee_rids_arrow")
                _copy(con, ordered_query(name, "payee_rids", by_rid=True), out / f"{name}.parquet", 4096)
                con.execute("DROP TABLE payee_rids")
            else:
                _copy(con, ordered_query(name, by_rid=True), out / f"{name}.parquet", 4096)
        if timings is not None:
            timings[name] = time.perf_counter() - t
    t = time.perf_counter()
    write_compact(con, out)
    if timings is not None:
        timings["results"] = time.perf_counter() - t


CHUNK_ROWS = 50_000_000  # candidates per layout chunk (and part file): a row group never spans two
# Candidates per Parquet row group: what DuckDB's Arrow reader gave for batches of 1 << 17, which the file
# was written in before the sort was split from the layout (so the bytes stayed the same).
BATCH_ROWS = 122_880
AHEAD = 32  # row groups built ahead of the one being encoded
# Part files written at once. Encoding a Parquet file is single-threaded (at 10M x 1,000 it was three
# quarters of writing the candidates, mostly the USCC column), so two parts at once use both cores.
PARTS_AT_ONCE = 2


def write_candidates(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    chunk_rows: int = CHUNK_ROWS,
    parts_at_once: int = PARTS_AT_ONCE,
) -> np.ndarray:
    """candidates.parquet in (policy_id, item_id, uscc) order, byte-identical for the same run, in bounded
    memory. DuckDB numbers the items in (policy_id, item_id) order and the enterprises (`rid`, 1 to N) in
    USCC order, so each item's rows (`rid` and amounts, its `payable_sql`) are read on their own and put in
    `rid` order (`_rid_order`), and the ids and USCC are looked up by position. Nothing is sorted
    across items: at 10M x 1,000 (915 M candidates) DuckDB's sort of the narrow rows was a third of the
    writing, and a single sort carrying the texts ran out of 16 GiB. An open item none of whose pairs was
    paid before has its eligible rows as candidates (`eligible_sql`): read off its verdict table, which is
    stored in `rid` order, they come in that order (a join would mix them) and need no sort.

    The layout does not depend on how the rows were read: the rows are cut into chunks of at most
    `chunk_rows` (whole items), and the row groups hold `BATCH_ROWS` rows each, restarting at every chunk.
    One chunk is written as one file; more are written as a folder of part files (`part-00000.parquet`,
    ..., one per chunk, in order: Contract 4 allows a folder, as Spark writes it), `parts_at_once` at a
    time, each byte-identical for the same run. Per part, one thread reads and builds the row groups while
    another encodes them. Each item's rows must number what the summary counted (`item_totals`). Returns
    the `rid`s with a candidate (the payees), in order."""
    if con.execute(f"SELECT count(*) = max(rid) AND min(rid) = 1 FROM {KEYS}").fetchall() == [(False,)]:
        raise MatchError("内部错误：企业编号不连续，无法写出 candidates.parquet")
    usccs = con.sql(f"SELECT uscc FROM {KEYS} ORDER BY rid").to_arrow_table().column("uscc").combine_chunks()
    uscc_of = _gather(usccs)
    items = con.sql(
        f"SELECT i.item, i.policy_id, i.policy_version, i.item_id, i.payable_sql, "
        f"CASE WHEN i.item NOT IN (SELECT item FROM {PAID}) THEN i.eligible_sql END AS eligible_sql, "
        f"COALESCE(t.candidates, 0) AS rows "
        f"FROM {ITEMS} AS i LEFT JOIN {TOTALS} AS t ON t.item = i.item ORDER BY i.item"
    ).to_arrow_table()
    if items.column("item").to_pylist() != list(range(items.num_rows)):
        raise MatchError("内部错误：事项编号不连续，无法写出 candidates.parquet")
    counts = items.column("rows").to_pylist()
    sources = items.column("payable_sql").to_pylist()
    unpaid = items.column("eligible_sql").to_pylist()  # where every eligible row is a candidate
    version = items.column("policy_version").to_numpy()
    # The ids as dictionaries of their distinct values (the Parquet dictionary, written as it is) and each
    # item's index into them.
    texts = []
    for name in ("policy_id", "item_id"):
        values = items.column(name).combine_chunks()
        distinct = pc.unique(values)
        texts.append((pc.index_in(values, value_set=distinct).to_numpy(), distinct))
    # The amounts are written from their fen (DECIMAL(18, 2) is stored as a 64-bit integer of fen: the
    # same Parquet bytes as from Arrow's decimal128, without its 16-byte values and their conversion).
    money = pa.decimal64(18, 2)
    schema = pa.schema(
        [
            pa.field(name, t, nullable=False)
            for name, t in [
                ("policy_id", pa.dictionary(pa.int32(), pa.string())),
                ("policy_version", pa.int32()),
                ("item_id", pa.dictionary(pa.int32(), pa.string())),
                ("uscc", pa.string()),
                ("amount", money),
                ("amount_before_allocation", money),
            ]
        ]
    )
    with_candidate = np.zeros(len(usccs) + 1, dtype=np.bool_)  # by rid (1 to N): the payees
    fen = "CAST({} * 100 AS BIGINT)".format

    def item_rows(cur: duckdb.DuckDBPyConnection, item: int) -> list[np.ndarray]:
        """The item's (item, rid, amount in fen, amount before allocation in fen), in `rid` order."""
        # An open item read off its eligible rows (`unpaid`) has no amount before allocation of its own:
        # it is the amount.
        before = "" if unpaid[item] else f", {fen('amount_before_allocation')} AS before"
        found = cur.execute(
            f"SELECT rid, {fen('amount')} AS amount{before} FROM ({unpaid[item] or sources[item]})"
        ).fetchnumpy()
        if len(found["rid"]) != counts[item] or any(np.ma.is_masked(c) for c in found.values()):
            raise MatchError(
                f"内部错误：事项 {item} 的候选行（{len(found['rid'])} 行）与汇总（{counts[item]} 行）不符，"
                "无法写出 candidates.parquet"
            )
        columns = [np.ma.getdata(c) for c in found.values()]
        order = _rid_order(columns[0])
        if order is not None:
            columns = [c[order] for c in columns]
        rid, amount, *rest = columns
        return [np.full(len(rid), item, np.int32), rid, amount, rest[0] if rest else amount]

    def narrow(cur: duckdb.DuckDBPyConnection, first: int, last: int) -> Iterator[list[np.ndarray]]:
        """(item, rid, amounts) of the items first to last, in order, one row group at a time."""
        held: deque[list[np.ndarray]] = deque()
        rows = 0
        for item in range(first, last + 1):
            held.append(item_rows(cur, item))
            rows += len(held[-1][0])
            while rows >= BATCH_ROWS or (item == last and rows):
                group, need = [], min(rows, BATCH_ROWS)
                while need:
                    columns = held[0]
                    if len(columns[0]) <= need:
                        group.append(held.popleft())
                        need -= len(columns[0])
                    else:
                        group.append([c[:need] for c in columns])
                        held[0] = [c[need:] for c in columns]
                        need = 0
                rows -= min(rows, BATCH_ROWS)
                yield [np.concatenate(c) for c in zip(*group, strict=True)]

    def row_groups(first: int, last: int) -> Iterator[pa.RecordBatch]:
        cur = con.cursor()  # a connection of its own: parts are read in parallel
        try:
            for item, rid, amount, before in narrow(cur, first, last):
                with_candidate[rid] = True
                policy_id, item_id = (
                    pa.DictionaryArray.from_arrays(pa.array(index[item]), distinct)
                    for index, distinct in texts
                )
                columns = [
                    policy_id,
                    pa.array(version[item]),
                    item_id,
                    uscc_of(rid - 1),
                    *(
                        pa.Array.from_buffers(money, len(f), [None, pa.py_buffer(f)])
                        for f in (amount, before)
                    ),
                ]
                yield pa.record_batch(columns, schema=schema)
        finally:
            cur.close()

    def write(target: Path, first: int, last: int) -> None:
        with pq.ParquetWriter(
            target,
            schema,
            compression="zstd",
            use_dictionary=["policy_id", "item_id"],
            store_schema=False,
            store_decimal_as_integer=True,
        ) as writer:
            for batch in _ahead(row_groups(first, last), AHEAD):
                writer.write_batch(batch)

    chunks = _chunks(counts, chunk_rows)
    _remove(path)
    with insertion_order(con):  # the reads keep the verdict tables' order
        _write_parts(path, chunks, write, parts_at_once)
    return np.flatnonzero(with_candidate)


def _write_parts(
    path: Path, chunks: list[tuple[int, int]], write: Callable[[Path, int, int], None], at_once: int
) -> None:
    """One chunk as the file `path`, more as its part files, `at_once` at a time."""
    if len(chunks) == 1:
        write(path, *chunks[0])
    else:
        path.mkdir()
        with ThreadPoolExecutor(at_once, thread_name_prefix="candidates") as pool:
            parts = [pool.submit(write, path / f"part-{n:05d}.parquet", *c) for n, c in enumerate(chunks)]
            try:
                for part in parts:
                    part.result()
            finally:  # on an error, the parts not yet started are not written
                for part in parts:
                    part.cancel()


def _rid_order(rid: np.ndarray) -> np.ndarray | None:
    """The order that puts an item's rows in `rid` order (a `rid` is there once), or None if they are.
    Rows read through a join (an allocated item's, or an item's with pairs paid before) come in the order
    DuckDB's threads produced them, mostly a few ordered runs, which a stable sort (timsort) merges in one
    pass."""
    if len(rid) < 2 or bool((rid[1:] > rid[:-1]).all()):
        return None
    return np.argsort(rid, kind="stable")


USCC_BYTES = 18  # a USCC's length (GB 32100-2015), ASCII


def _gather(texts: pa.StringArray) -> Callable[[np.ndarray], pa.StringArray]:
    """A function giving the texts at some positions, as an Arrow string array. Where every text is a
    USCC (18 ASCII bytes: the snapshot's check guarantees it), they are gathered as fixed-width records,
    one memory access each instead of two (the offsets, then the bytes); the array is the same as
    `pc.take` gives, so the Parquet bytes are too."""
    n = len(texts)
    lengths = pc.binary_length(texts)
    if n == 0 or texts.null_count or pc.min_max(lengths).as_py() != {"min": USCC_BYTES, "max": USCC_BYTES}:
        return lambda at: pc.take(texts, pa.array(at))
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32, count=n + 1, offset=texts.offset * 4)
    data = np.frombuffer(texts.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    records = data.view(f"S{USCC_BYTES}")
    steps = np.arange(0, USCC_BYTES * (BATCH_ROWS + 1), USCC_BYTES, dtype=np.int32)

    def gather(at: np.ndarray) -> pa.StringArray:
        m = len(at)
        if m > BATCH_ROWS:
            return pc.take(texts, pa.array(at))
        picked = np.ascontiguousarray(records[at])
        return pa.Array.from_buffers(
            pa.string(), m, [None, pa.py_buffer(steps[: m + 1]), pa.py_buffer(picked)]
        )

    return gather


def _remove(path: Path) -> None:
    """An earlier output at `path` (a file or a folder of parts), so that no stale part stays beside the new."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


_DONE = object()


def _ahead(source: Iterator[Any], depth: int) -> Iterator[Any]:
    """The items of `source`, produced in a thread of their own up to `depth` ahead of the caller (DuckDB and
    Arrow release the GIL: the two run on both cores). An error in `source` is raised here; a caller that
    stops early stops the thread."""
    found: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()

    def put(value: Any) -> bool:
        while not stop.is_set():
            try:
                found.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for value in source:
                if not put(value):
                    return
            put(_DONE)
        except BaseException as e:  # raised in the caller's thread
            put(e)

    thread = threading.Thread(target=produce, name="write-ahead", daemon=True)
    thread.start()
    try:
        while (value := found.get()) is not _DONE:
            if isinstance(value, BaseException):
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _chunks(rows: list[int], limit: int) -> list[tuple[int, int]]:
    """Ranges (first, last) of consecutive item numbers of at most `limit` rows (at least one item)."""
    out: list[tuple[int, int]] = []
    first, total = 0, 0
    for item, n in enumerate(rows):
        if item > first and total + n > limit:
            out.append((first, item - 1))
            first, total = item, 0
        total += n
    if rows:
        out.append((first, len(rows) - 1))
    return out
