"""A run's near misses and missing data, kept compact and answered on demand (Contract 4, format 3).

Enterprises share few verdict patterns: an item's status (eligible, near miss, missing data), its one
failing condition and its missing fields are a function of the enterprise's `(f, n)` bits in the item's
block and of the item (`matcher.plan`). So a run keeps, under `results/` (`matcher.runfolder`):

- `enterprises.parquet`: per enterprise, in uscc order, its region, industry section, size class and the
  number of its pattern in every block (`p0`, `p1`, ...);
- `statuses.parquet`: per (block, pattern, item) with a status, the status, the failing condition and
  the fields it read (a near miss), or the NULL fields (missing data);
- `items.parquet`, `allocated.parquet`, `paid.parquet`: what an enterprise's standing needs besides;
- `profile_<year>.parquet`: the profile columns the items read, in uscc order: a near miss's values are
  read from it when it is shown, never written per row.

`write_compact` writes them off a connection that ran the plan. `RunResults` answers: by item (with region
prefix, industry section, size class, condition or uscc prefix, and paging), by enterprise (`standing`), as
SQL for the analysis (`list_sql`), and exports any slice as today's near_misses.parquet /
missing_data.parquet rows (`export`). Folders written before (format 1 and 2) keep their two files; the
same functions read them as they are.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from matcher import runfolder
from matcher.engine import BY_RID, BY_USCC, PAYEE_KEYS, run_profile_name
from matcher.plan import (
    ALLOCATED,
    CONDITIONS,
    FIELD_BIT,
    ITEMS,
    KEYS,
    PAID,
    _missing_fields,
    _status_pairs,
    _value_text,
    patterns_name,
    value_text,
    verdicts_name,
)
from rules.errors import MatchError

ListName = Literal["near_misses", "missing_data"]
STATUS = {"near_misses": "near_miss", "missing_data": "missing_data"}
LISTS: tuple[ListName, ...] = ("near_misses", "missing_data")
ROW_GROUP = 4096  # rows per row group of the files read by uscc: a lookup reads one or two
_STATUS_CODES = ["eligible", "near_miss", "missing_data"]  # a status row's status as its index here
_ELIGIBLE, _NEAR_MISS = (_STATUS_CODES.index(s) for s in ("eligible", "near_miss"))


# --- writing ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompactOutput:
    """One file of `results/`: its path in the run folder, its query (DuckDB SQL, sorted; the Spark engine
    renders it in Spark's dialect) and whether it is looked up by uscc (`by_uscc`: written in small row
    groups, and on Spark as sorted part files; the others are small and written as one file)."""

    path: str
    query: str
    by_uscc: bool = False


def pattern_ids(block: int) -> tuple[str, str]:
    """The table numbering a block's distinct patterns in (f, n) order, and its query: to be made before
    the outputs are written."""
    return (
        f"pattern_ids_{block}",
        f"SELECT f, n, CAST(row_number() OVER (ORDER BY f, n) AS INT) AS pattern FROM {patterns_name(block)}",
    )


def compact_outputs(
    fetch: Callable[[str], list[tuple[Any, ...]]], *, by_rid: bool = False
) -> list[CompactOutput]:
    """The files of `results/` as queries over the tables of a run of the plan (`matcher.engine.match_profiles`,
    on either engine) and the `pattern_ids` tables; `fetch` runs a small query (DuckDB SQL) on the engine.
    `by_rid`: the engine numbers the enterprises in USCC order, so the files in USCC order are sorted by
    `rid` (`matcher.engine.BY_RID`)."""
    order = BY_RID if by_rid else BY_USCC  # over `k`, the enterprise's keys
    blocks = [(int(b), int(y)) for b, y in fetch(f"SELECT DISTINCT block, year FROM {ITEMS} ORDER BY 1")]
    latest = max(y for _, y in blocks)
    joins = "".join(
        f" LEFT JOIN {verdicts_name(b)} AS v{b} ON v{b}.rid = k.rid"
        f" LEFT JOIN {pattern_ids(b)[0]} AS q{b} ON q{b}.f = v{b}.f AND q{b}.n = v{b}.n"
        for b, _ in blocks
    )
    patterns = ", ".join(f"q{b}.pattern AS p{b}" for b, _ in blocks)
    missing = _missing_fields(sorted(FIELD_BIT)).sql("duckdb")
    statuses = " UNION ALL ".join(
        f"SELECT i.policy_id, i.item_id, b.item, CAST({b} AS INT) AS block, q.pattern, "
        "CASE WHEN b.fbits <> 0 THEN 'near_miss' WHEN b.nbits <> 0 THEN 'missing_data' "
        "ELSE 'eligible' END AS status, c.condition_id, c.fields AS read, "
        f"CASE WHEN b.fbits = 0 AND b.nbits <> 0 THEN {missing} END AS fields "
        f"FROM ({_status_pairs(b)}) AS b JOIN {pattern_ids(b)[0]} AS q ON q.f = b.f AND q.n = b.n "
        f"JOIN {ITEMS} AS i ON i.item = b.item "
        f"LEFT JOIN {CONDITIONS} AS c ON c.item = b.item AND c.bit = b.fbits AND b.fbits <> 0"
        for b, _ in blocks
    )
    out = [
        CompactOutput(
            runfolder.RESULT_ENTERPRISES,
            f"SELECT k.uscc, CAST(lp.region_code AS VARCHAR) AS region_code, pk.industry_section, "
            f"pk.size_class, {patterns} FROM {KEYS} AS k "
            f"LEFT JOIN {run_profile_name(latest)} AS lp ON lp.rid = k.rid "
            f"LEFT JOIN {PAYEE_KEYS} AS pk ON pk.rid = k.rid{joins} ORDER BY {order}",
            by_uscc=True,
        ),
        CompactOutput(runfolder.RESULT_STATUSES, f"{statuses} ORDER BY block, pattern, item"),
        CompactOutput(
            runfolder.RESULT_ITEMS,
            "SELECT item, policy_id, item_id, block, year, budget IS NOT NULL OR grp IS NOT NULL AS allocated, "
            f"fields, amount_sql FROM {ITEMS} ORDER BY item",
        ),
        CompactOutput(
            runfolder.RESULT_ALLOCATED,
            "SELECT k.uscc, i.policy_id, i.item_id, a.amount, a.amount_before_allocation "
            f"FROM {ALLOCATED} AS a JOIN {ITEMS} AS i ON i.item = a.item JOIN {KEYS} AS k ON k.rid = a.rid "
            f"ORDER BY {order}, i.item",
            by_uscc=True,
        ),
        CompactOutput(
            runfolder.RESULT_PAID,
            f"SELECT k.uscc, i.policy_id, i.item_id FROM {PAID} AS pd JOIN {ITEMS} AS i ON i.item = pd.item "
            f"JOIN {KEYS} AS k ON k.rid = pd.rid ORDER BY {order}, i.item",
        ),
    ]
    for year in sorted({y for _, y in blocks}):
        fields = sorted(
            {
                f
                for (text,) in fetch(f"SELECT fields FROM {ITEMS} WHERE year = {year}")
                for f in (text or "").split(";")
                if f
            }
        )
        columns = "".join(f', "{f}"' for f in fields)
        out.append(
            CompactOutput(
                runfolder.result_profile(year),
                f"SELECT k.uscc{columns} FROM {run_profile_name(year)} AS k ORDER BY {order}",
                by_uscc=True,
            )
        )
    return out


def write_compact(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """Write `results/` of the run folder `out` off a DuckDB connection that ran the plan
    (`matcher.engine.match_profiles`); the Spark engine writes the same `compact_outputs` itself."""
    (out / runfolder.RESULTS).mkdir(parents=True, exist_ok=True)
    blocks = [int(b) for (b,) in con.execute(f"SELECT DISTINCT block FROM {ITEMS}").fetchall()]
    for b in blocks:
        name, query = pattern_ids(b)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query}")
    for output in compact_outputs(lambda q: con.execute(q).fetchall(), by_rid=True):
        size = f", ROW_GROUP_SIZE {ROW_GROUP}" if output.by_uscc else ""
        con.execute(
            f"COPY ({output.query}) TO '{out / output.path}' (FORMAT PARQUET, COMPRESSION ZSTD{size})"
        )
    for b in blocks:
        con.execute(f"DROP TABLE IF EXISTS {pattern_ids(b)[0]}")


# --- reading ------------------------------------------------------------------------------------------


def _parquet(path: Path) -> str:
    """An output of the run folder as DuckDB reads it (`runfolder.parquet_source`), inside quotes."""
    return runfolder.parquet_source(path).replace("'", "''")


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _enterprise_where(s: Slice) -> list[str]:
    """The slice's conditions on `results/enterprises.parquet` (alias `e`)."""
    where = []
    if s.region:
        where.append(f"starts_with(e.region_code, {_text(s.region)})")
    if s.section:
        where.append(f"e.industry_section = {_text(s.section)}")
    if s.size:
        where.append(f"e.size_class = {_text(s.size)}")
    if s.uscc:
        where.append(f"starts_with(e.uscc, {_text(s.uscc)})")
    return where


def _key_where(alias: str, name: ListName, s: Slice) -> list[str]:
    """The slice's conditions on a list's keys (alias `alias`): its policy and item, the user's policies
    and, for near misses, the failing condition. (The missing field is kept differently in each layout.)"""
    where = [
        f"{alias}.{column} = {_text(value)}"
        for column, value in (("policy_id", s.policy_id), ("item_id", s.item_id))
        if value
    ]
    if s.policy_ids is not None:
        where.append(_policies_in(alias, s.policy_ids))
    if s.condition_id and name == "near_misses":
        where.append(f"{alias}.condition_id = {_text(s.condition_id)}")
    return where


def _policies_in(alias: str, policy_ids: Sequence[str]) -> str:
    """Only the rows of these policies (none at all for an empty list)."""
    return f"{alias}.policy_id IN ({', '.join(_text(p) for p in policy_ids) or 'NULL'})"


class _ByUscc:
    """A Parquet output sorted by uscc, in small row groups: one file, or the sorted part files of a folder
    (Spark). A lookup bisects the row groups' uscc ranges and reads only the one or two that can hold the
    enterprise."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parts = runfolder.parquet_parts(path)
        if not self.parts:
            raise MatchError(f"匹配结果目录缺少 {path}")
        self.metadata = [pq.read_metadata(p) for p in self.parts]
        self.schema = self.metadata[0].schema.to_arrow_schema()
        groups = []  # (min, max, part, row group) of every row group with rows
        for n, meta in enumerate(self.metadata):
            column = meta.schema.to_arrow_schema().get_field_index("uscc")
            for g in range(meta.num_row_groups):
                if meta.row_group(g).num_rows == 0:
                    continue
                stats = meta.row_group(g).column(column).statistics
                low, high = (stats.min, stats.max) if stats is not None and stats.has_min_max else ("", "")
                groups.append((low, high, n, g))
        # Per part, the row where each of its row groups starts.
        self.starts = [
            np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]).tolist()
            for meta in self.metadata
        ]
        groups.sort()  # the parts of a sorted output do not overlap: their maxima are in order too
        self.mins = [g[0] for g in groups]
        self.maxs = [g[1] for g in groups]
        self.groups = [(g[2], g[3]) for g in groups]  # in uscc order: (part, row group in the part)
        self._ranges: dict[str, list[tuple[Any, Any] | None]] = {}

    def ranges(self, column: str) -> list[tuple[Any, Any] | None]:
        """Each row group's (min, max) of a column, None where the file has no statistics."""
        if column not in self._ranges:
            found: list[tuple[Any, Any] | None] = []
            for part, group in self.groups:
                meta = self.metadata[part]
                index = meta.schema.to_arrow_schema().get_field_index(column)
                stats = meta.row_group(group).column(index).statistics
                found.append((stats.min, stats.max) if stats is not None and stats.has_min_max else None)
            self._ranges[column] = found
        return self._ranges[column]

    def groups_with(self, column: str, value: str, *, prefix: bool) -> list[bool]:
        """Per row group, whether it may hold a row whose `column` equals `value` (or starts with it)."""
        out = []
        for r in self.ranges(column):
            if r is None:
                out.append(True)
            elif prefix:  # some x in [lo, hi] starts with value
                out.append(r[1] >= value and (r[0] <= value or r[0].startswith(value)))
            else:
                out.append(r[0] <= value <= r[1])
        return out

    def read_group(self, g: int, columns: Sequence[str]) -> pa.Table:
        """Row group `g` (in uscc order) of the output, some columns."""
        part, group = self.groups[g]
        return pq.ParquetFile(self.parts[part], metadata=self.metadata[part]).read_row_group(
            group, columns=columns, use_threads=False
        )

    def find(self, uscc: str) -> tuple[int, int] | None:
        """The enterprise's row, (part, row in the part), reading only the uscc column of its row group."""
        for g in range(bisect.bisect_left(self.maxs, uscc), bisect.bisect_right(self.mins, uscc)):
            at = pc.index(self.read_group(g, ["uscc"])["uscc"], uscc).as_py()
            if at >= 0:
                part, group = self.groups[g]
                return part, self.starts[part][group] + at
        return None

    def whole(self, columns: Sequence[str]) -> list[list[np.ndarray]]:
        """Some integer columns of every row, per part as numpy arrays (NULL as 0): the file's own memory
        where it has no NULL."""
        out = []
        for part, meta in zip(self.parts, self.metadata, strict=True):
            table = pq.ParquetFile(part, metadata=meta).read(columns=list(columns))
            out.append(
                [
                    (c.fill_null(0) if c.null_count else c).combine_chunks().to_numpy(zero_copy_only=False)
                    for c in table.columns
                ]
            )
        return out

    def rows(self, uscc: str, columns: Sequence[str] | None = None) -> pa.Table:
        return self.rows_of([uscc], columns)

    def rows_of(self, usccs: Sequence[str], columns: Sequence[str] | None = None) -> pa.Table:
        """The rows of some enterprises (`columns` and the uscc, or every column), each row group read once."""
        found: dict[int, set[int]] = {}
        for u in usccs:
            for g in range(bisect.bisect_left(self.maxs, u), bisect.bisect_right(self.mins, u)):
                part, group = self.groups[g]
                found.setdefault(part, set()).add(group)
        wanted = None if columns is None else ["uscc", *(c for c in columns if c != "uscc")]
        if not found:
            schema = self.schema if wanted is None else pa.schema([self.schema.field(c) for c in wanted])
            return schema.empty_table()
        # A file object of its own per lookup: lookups run in parallel threads; the parsed footers are shared.
        # One thread per read: a row group or two gain nothing from more and wait for them on a busy machine.
        table = pa.concat_tables(
            pq.ParquetFile(self.parts[n], metadata=self.metadata[n]).read_row_groups(
                sorted(gs), columns=wanted, use_threads=False
            )
            for n, gs in sorted(found.items())
        )
        if len(usccs) == 1:
            return table.filter(pc.equal(table["uscc"], usccs[0]))
        return table.filter(pc.is_in(table["uscc"], value_set=pa.array(list(usccs), pa.string())))


def _py(value: pa.Scalar) -> Any:
    return value.as_py()


class _SortedByUscc:
    """A small Parquet output read whole, its rows in uscc order (sorted here if the writer's parts were
    not): an enterprise's rows are found by bisecting its uscc column, no Python object per row."""

    def __init__(self, path: Path) -> None:
        table = pq.read_table(path)
        usccs = table["uscc"]
        if len(usccs) > 1 and not pc.all(pc.less_equal(usccs[:-1], usccs[1:])).as_py():
            table = table.sort_by("uscc")
        self.table = table
        self._usccs = table["uscc"].combine_chunks()

    def rows(self, uscc: str) -> list[dict[str, Any]]:
        """The enterprise's rows, as Python dicts."""
        lo = bisect.bisect_left(self._usccs, uscc, key=_py)
        hi = bisect.bisect_right(self._usccs, uscc, lo=lo, key=_py)
        rows: list[dict[str, Any]] = self.table.slice(lo, hi - lo).to_pylist()
        return rows


class _Statuses:
    """The status rows (`results/statuses.parquet`) in (block, pattern, item) order, in memory: tens of
    millions of rows at 10M x 1,000 with few distinct texts, kept without copies. The texts stay
    dictionary-encoded (DuckDB reads them as VARCHAR); a row's policy_id and item_id are its item number
    into the items' (the writer joins them off the item: they are not read). What the lookups search is
    numpy, shared with the table: each row's pattern, item and status, and each block's rows."""

    def __init__(self, path: Path, items: list[dict[str, Any]]) -> None:
        texts = ["status", "condition_id", "read", "fields"]
        file = pq.read_table(path, columns=["item", "block", "pattern", *texts], read_dictionary=texts)
        # DuckDB writes them in this order; Spark's parts need not be: sorted (stably) only if they are not.
        if not _in_order(file, ["block", "pattern", "item"]):
            order = np.lexsort([file[c].to_numpy() for c in ("item", "pattern", "block")])
            file = file.take(order)
        self.pattern = file["pattern"].to_numpy()
        self.item = file["item"].to_numpy()
        columns: dict[str, pa.ChunkedArray | pa.Array] = {
            "block": file["block"],
            "item": pa.array(self.item),  # the same memory
            "pattern": pa.array(self.pattern),
            "status": file["status"],
            # The texts an item's page takes by position, in one chunk (a take over chunks joins them first).
            **{c: file[c].combine_chunks() for c in ("condition_id", "read", "fields")},
        }
        for c in ("policy_id", "item_id"):
            columns[c] = pa.DictionaryArray.from_arrays(
                columns["item"], pa.array([i[c] for i in items], pa.string())
            )
        # Each text column's codes and its words, the last None (a NULL's code is -1 in `of`).
        self._texts = [
            (columns[c].indices, [*columns[c].dictionary.to_pylist(), None])
            for c in ("condition_id", "read", "fields")
        ]
        names = pq.read_schema(runfolder.parquet_parts(path)[0]).names  # the columns in the writer's order
        self.table = pa.table([columns[c] for c in names], names=names)
        self.status = np.concatenate(
            [np.empty(0, np.int8), *(_codes(c, _STATUS_CODES) for c in file["status"].chunks)]
        )
        # Each block's first row and the row after its last: the rows before it, counted a row group at a time.
        blocks = sorted({i["block"] for i in items})
        edges = np.array([[b, b + 1] for b in blocks], np.int64).reshape(-1)
        counts = sum(
            (np.searchsorted(c.to_numpy(), edges) for c in file["block"].chunks), np.zeros_like(edges)
        )
        self.blocks = {
            b: (int(lo), int(hi)) for b, (lo, hi) in zip(blocks, counts.reshape(-1, 2), strict=True)
        }

    def of(
        self, patterns: Sequence[tuple[int, int]]
    ) -> list[tuple[int, int, str | None, str | None, str | None]]:
        """The rows of some (block, pattern)s: each row's item number, status (its index in
        `_STATUS_CODES`), failing condition, fields read and missing fields, off the numpy and the decoded
        dictionaries (a few hundred rows as Python dicts took a millisecond)."""
        out: list[tuple[int, int, str | None, str | None, str | None]] = []
        for block, pattern in patterns:
            first, last = self.blocks.get(block, (0, 0))
            # The values in the column's type: else numpy converts the whole block's patterns to compare.
            wanted = np.array([pattern, pattern + 1], self.pattern.dtype)
            lo, hi = (int(x) for x in np.searchsorted(self.pattern[first:last], wanted) + first)
            if hi > lo:
                texts = [
                    [words[i] for i in pc.fill_null(codes.slice(lo, hi - lo), -1).to_numpy().tolist()]
                    for codes, words in self._texts
                ]
                out += zip(self.item[lo:hi].tolist(), self.status[lo:hi].tolist(), *texts, strict=True)
        return out

    def item_rows(self, block: int, n: int) -> np.ndarray:
        """The positions of item `n`'s rows, in (block, pattern) order: a scan of its block's rows (a few
        milliseconds for millions; an index of every item took a second to build)."""
        first, last = self.blocks.get(block, (0, 0))
        rows: np.ndarray = np.flatnonzero(self.item[first:last] == n) + first
        return rows


def _pylist(table: pa.Table) -> list[dict[str, Any]]:
    """A few rows as Python dicts, their dictionary-encoded columns decoded first (else several times
    slower)."""
    decoded = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    rows: list[dict[str, Any]] = pa.table(decoded, names=table.column_names).to_pylist()
    return rows


def _in_order(table: pa.Table, keys: Sequence[str]) -> bool:
    """Whether the table's rows are in the order of its integer columns `keys`, checked a row group at a
    time (no copy of the whole columns)."""
    last: list[Any] | None = None  # the row before the batch
    for batch in table.select(keys).to_batches():
        columns = [c.to_numpy() for c in batch.columns]
        if last is not None:
            columns = [np.insert(c, 0, v) for c, v in zip(columns, last, strict=True)]
        after = np.zeros(max(len(columns[0]) - 1, 0), bool)  # rows after the one before by an earlier key
        for c in columns:
            if ((c[1:] < c[:-1]) & ~after).any():
                return False
            after |= c[1:] > c[:-1]
        if len(columns[0]):
            last = [c[-1] for c in columns]
    return True


def _codes(array: pa.DictionaryArray, values: Sequence[str]) -> np.ndarray:
    """A dictionary-encoded array as each row's position in `values` (int8), off its dictionary."""
    at = pc.index_in(array.dictionary, value_set=pa.array(values)).to_numpy(False).astype(np.int8)
    codes: np.ndarray = at[array.indices.to_numpy(False)]
    return codes


@dataclass(frozen=True)
class Slice:
    """Which rows of a list: an item (or every item), narrowed by region prefix, industry section, size
    class, failing condition (near misses), missing field (missing data) and uscc prefix; the policies a
    user may see (`policy_ids`, None: every policy)."""

    policy_id: str | None = None
    item_id: str | None = None
    region: str | None = None
    section: str | None = None
    size: str | None = None
    condition_id: str | None = None
    field: str | None = None
    uscc: str | None = None
    policy_ids: Sequence[str] | None = None


class Result(NamedTuple):
    """One enterprise's result on one item: `candidate` (with its amounts, decimal text), `near_miss`
    (the failing condition and the values it read, `field=value; ...`) or `missing_data` (the NULL
    fields)."""

    policy_id: str
    item_id: str
    status: str
    condition_id: str | None = None
    value: str | None = None
    fields: tuple[str, ...] = ()
    amount: str | None = None
    amount_before_allocation: str | None = None


class RunResults:
    """The near misses and missing data of one run folder, answered on demand; one per run and process
    (`open_results`), safe to share between threads (every query runs on a cursor of its own)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.compact = runfolder.has_compact_results(folder)
        self._con = duckdb.connect()
        self._con.execute("SET preserve_insertion_order = true")
        # A database of one thread for the queries over a few rows (a standing's expressions over its
        # profile row, a page's values): threads gain nothing there and cost their scheduling, the more so
        # on a busy machine (a standing's query took a third of the time on 2 busy cores).
        self._few = duckdb.connect(config={"threads": 1})
        self._lock = threading.Lock()
        if self.compact:
            self._open_compact()

    def _open_compact(self) -> None:
        f = self.folder
        # Sorted here whatever wrote them (a Spark folder of parts need not be read in order).
        self.items = pq.read_table(f / runfolder.RESULT_ITEMS).sort_by("item").to_pylist()
        self.by_key = {(i["policy_id"], i["item_id"]): i for i in self.items}
        self.blocks = sorted({(i["block"], i["year"]) for i in self.items})
        # The statuses stay Arrow and numpy: at 10M x 1,000 they are tens of millions of rows, too many to
        # hold as Python objects (a standing converts only its patterns' rows) or to copy into DuckDB (the
        # SQL reads the Arrow table, `register`).
        self._statuses = _Statuses(f / runfolder.RESULT_STATUSES, self.items)
        self.statuses = self._statuses.table
        self.enterprises = _ByUscc(f / runfolder.RESULT_ENTERPRISES)
        # Every enterprise's pattern per block (0: none; they are numbered from 1), in memory (4 bytes an
        # enterprise and block): a standing reads only the uscc column of its enterprise's row group.
        self._patterns = self.enterprises.whole([f"p{b}" for b, _ in self.blocks])
        self.profiles = {y: _ByUscc(f / runfolder.result_profile(y)) for y in {y for _, y in self.blocks}}
        self.allocated = _SortedByUscc(f / runfolder.RESULT_ALLOCATED)
        self.paid = _SortedByUscc(f / runfolder.RESULT_PAID)
        reads = {r for r in pc.unique(self.statuses["read"]).to_pylist() if r}
        self._value = {r: _value_text(tuple(r.split(";")), "p").sql("duckdb") for r in reads}
        # The fields of each list of them (what a near miss read, what missing data lacks), split once.
        self._reads = {
            r: tuple(f for f in r.split(";") if f)
            for r in {"", *reads, *(f for f in pc.unique(self.statuses["fields"]).to_pylist() if f)}
        }
        # The profile columns each item's amount reads (a fixed amount none): of every field the item reads,
        # a standing reads only these from the profile, for its eligible items.
        read = {
            sql: {c.name for c in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Column)}
            for sql in {i["amount_sql"] for i in self.items if i["amount_sql"]}
        }
        self._amount_fields = [
            read.get(i["amount_sql"], set()) & set((i["fields"] or "").split(";")) for i in self.items
        ]
        # Each item's key, year, amount and whether stage 2 allocated it (its amounts are in `allocated`).
        self._facts = [
            ((i["policy_id"], i["item_id"]), i["year"], i["amount_sql"], i["allocated"]) for i in self.items
        ]
        self._fixed_sql = {sql for sql, columns in read.items() if not columns}  # amounts that read no field
        self._fixed: dict[str, Any] = {}  # their values, once computed

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own to the results' database (where `list_sql` runs); close it after use."""
        with self._lock:
            cur = self._con.cursor()
        self.register(cur)
        return cur

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own to the database of one thread, for a query over a few rows."""
        with self._lock:
            return self._few.cursor()

    def close(self) -> None:
        self._con.close()
        self._few.close()

    # -- the lists, by item ----------------------------------------------------------------------------

    def _value_sql(self, alias: str = "s", reads: set[str] | None = None) -> str:
        """The value text of a near miss by the fields it read (`reads`: only these)."""
        values = sorted((r, sql) for r, sql in self._value.items() if reads is None or r in reads)
        if not values:
            return "CAST(NULL AS VARCHAR)"
        cases = " ".join(f"WHEN {_text(r)} THEN {sql}" for r, sql in values)
        return f"CASE {alias}.read {cases} END"

    def _compact_sql(self, name: ListName, s: Slice, values: bool, *, read: bool = False) -> str:
        """The list's rows (policy_id, item_id, uscc, condition_id, value | fields), unordered."""
        status = STATUS[name]
        where = [f"s.status = '{status}'", *_key_where("s", name, s)]
        if s.field and name == "missing_data":
            where.append(f"list_contains(string_split(s.fields, ';'), {_text(s.field)})")
        outer = _enterprise_where(s)
        blocks = self.blocks
        if s.policy_id and s.item_id:
            item = self.by_key.get((s.policy_id, s.item_id))
            blocks = [] if item is None else [(item["block"], item["year"])]
        parts = []
        for b, year in blocks:
            cond = " AND ".join([*where, f"s.block = {b}"])
            filt = (" WHERE " + " AND ".join(outer)) if outer else ""
            sel = "s.condition_id" if name == "near_misses" else "string_split(s.fields, ';') AS fields"
            enterprises = _parquet(self.folder / runfolder.RESULT_ENTERPRISES)
            base = (
                f"SELECT s.policy_id, s.item_id, e.uscc, {sel}, s.read FROM read_parquet('{enterprises}') AS e "
                f"JOIN (SELECT * FROM run_statuses AS s WHERE {cond}) AS s ON s.pattern = e.p{b}{filt}"
            )
            if values and name == "near_misses":
                profile = _parquet(self.folder / runfolder.result_profile(year))
                base = (
                    f"SELECT s.policy_id, s.item_id, s.uscc, s.condition_id, {self._value_sql()} AS value "
                    f"FROM ({base}) AS s JOIN read_parquet('{profile}') AS p ON p.uscc = s.uscc"
                )
            elif name == "near_misses":
                last = "read" if read else "NULL AS value"
                base = f"SELECT policy_id, item_id, uscc, condition_id, {last} FROM ({base})"
            else:
                base = f"SELECT policy_id, item_id, uscc, fields FROM ({base})"
            parts.append(base)
        if not parts:
            empty = (
                "NULL::VARCHAR AS condition_id, NULL::VARCHAR AS value"
                if name == "near_misses"
                else "NULL::VARCHAR[] AS fields"
            )
            return f"SELECT NULL::VARCHAR AS policy_id, NULL::VARCHAR AS item_id, NULL::VARCHAR AS uscc, {empty} WHERE false"
        return " UNION ALL ".join(parts)

    def item_counts(self, s: Slice = Slice()) -> dict[tuple[str, str], dict[str, int]]:
        """Per (policy, item) with any: how many of the slice's enterprises are eligible (before paid pairs
        and allocation), near misses and missing data; only `region`, `section`, `size`, `uscc` and
        `policy_ids` narrow it. A folder of an older format keeps no eligible rows: its counts have none."""
        counts: dict[tuple[str, str], dict[str, int]] = {}
        with self.cursor() as cur:
            if self.compact:
                rows = cur.execute(self._compact_counts_sql(s)).fetchall()
            else:
                whole = replace(s, policy_id=None, item_id=None, condition_id=None, field=None)
                lists = [
                    f"SELECT policy_id, item_id, '{STATUS[name]}' AS status, count(*) "
                    f"FROM ({self._legacy_sql(name, whole)}) GROUP BY ALL"
                    for name in LISTS
                ]
                rows = cur.execute(" UNION ALL ".join(lists)).fetchall()
        names = {"eligible": "eligible", **{v: k for k, v in STATUS.items()}}
        for policy_id, item_id, status, n in rows:
            counts.setdefault((policy_id, item_id), {})[names[status]] = int(n)
        return counts

    def _compact_counts_sql(self, s: Slice) -> str:
        """(policy_id, item_id, status, count): each block's statuses weighted by how many of the slice's
        enterprises have the pattern (a pattern is shared by many, so the enterprises are counted first)."""
        outer = _enterprise_where(s)
        filt = (" WHERE " + " AND ".join(outer)) if outer else ""
        enterprises = _parquet(self.folder / runfolder.RESULT_ENTERPRISES)
        policies = "" if s.policy_ids is None else " AND " + _policies_in("s", s.policy_ids)
        parts = [
            f"SELECT s.policy_id, s.item_id, s.status, e.n FROM (SELECT p{b} AS pattern, count(*) AS n "
            f"FROM read_parquet('{enterprises}') AS e{filt} GROUP BY 1) AS e "
            f"JOIN run_statuses AS s ON s.block = {b} AND s.pattern = e.pattern{policies}"
            for b, _ in self.blocks
        ]
        if not parts:
            return "SELECT NULL, NULL, NULL, 0 WHERE false"
        return f"SELECT policy_id, item_id, status, sum(n) FROM ({' UNION ALL '.join(parts)}) GROUP BY ALL"

    def _legacy_sql(self, name: ListName, s: Slice) -> str:
        path = self.folder / (runfolder.NEAR_MISSES if name == "near_misses" else runfolder.MISSING_DATA)
        if not path.exists():
            raise MatchError(f"匹配结果目录 {self.folder} 缺少 {path.name}")
        if s.section or s.size:
            raise MatchError(
                f"匹配结果目录 {self.folder} 是旧格式（差一点和数据缺失名单逐行写出），不能按行业或规模筛选："
                "请用新版 zhida match 重新匹配"
            )
        columns = "c.condition_id, c.value" if name == "near_misses" else "c.fields"
        sql = f"SELECT c.policy_id, c.item_id, c.uscc, {columns} FROM read_parquet('{_parquet(path)}') AS c"
        where = []
        if s.region:
            contacts = self.folder / runfolder.CONTACTS
            sql += f" JOIN read_parquet('{_parquet(contacts)}') AS e ON e.uscc = c.uscc"
            where.append(f"starts_with(CAST(e.region_code AS VARCHAR), {_text(s.region)})")
        where += _key_where("c", name, s)
        if s.field and name == "missing_data":
            where.append(f"list_contains(c.fields, {_text(s.field)})")
        if s.uscc:
            where.append(f"starts_with(c.uscc, {_text(s.uscc)})")
        return sql + (" WHERE " + " AND ".join(where) if where else "")

    def list_sql(self, name: ListName, s: Slice = Slice(), *, values: bool = True) -> str:
        """SQL of the list's rows as Contract 4 format 2 wrote them (near misses: policy_id, item_id, uscc,
        condition_id, value; missing data: policy_id, item_id, uscc, fields), unordered; for another DuckDB
        connection too (it reads files only, and `run_statuses` when compact: use `register`)."""
        return self._compact_sql(name, s, values) if self.compact else self._legacy_sql(name, s)

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Make `list_sql` runnable on another connection."""
        if self.compact:
            con.register("run_statuses", self.statuses)

    def count(self, name: ListName, s: Slice = Slice()) -> int:
        """How many rows of the list the slice holds."""
        with self.cursor() as cur:
            row = cur.execute(f"SELECT count(*) FROM ({self.list_sql(name, s, values=False)})").fetchone()
        return int(row[0]) if row else 0

    def page(
        self, name: ListName, s: Slice = Slice(), *, offset: int = 0, limit: int = 50
    ) -> list[tuple[Any, ...]]:
        """Rows `offset` to `offset + limit` of the list in (policy_id, item_id, uscc) order, a near miss
        with its values."""
        window = f"ORDER BY policy_id, item_id, uscc LIMIT {int(limit)} OFFSET {int(offset)}"
        if self.compact and s.policy_id and s.item_id:
            keys = self._item_page(name, s, offset, limit)
            if name == "missing_data":
                return keys
            return [(p, i, u, c, v) for (p, i, u, c, _), v in zip(keys, self._page_values(keys), strict=True)]
        with self.cursor() as cur:
            if not (self.compact and name == "near_misses"):
                return cur.execute(f"SELECT * FROM ({self.list_sql(name, s)}) {window}").fetchall()
            # The page first, without the values; then the values of its rows only, from the profile.
            rows = self._compact_sql(name, s, False, read=True)
            keys = cur.execute(
                f"SELECT policy_id, item_id, uscc, condition_id, read FROM ({rows}) {window}"
            ).fetchall()
        return [(p, i, u, c, v) for (p, i, u, c, _), v in zip(keys, self._page_values(keys), strict=True)]

    def _item_page(self, name: ListName, s: Slice, offset: int, limit: int) -> list[tuple[Any, ...]]:
        """One item's rows `offset` to `offset + limit` in uscc order (a near miss: policy_id, item_id, uscc,
        condition_id, the fields it read; missing data: policy_id, item_id, uscc, fields). The enterprises
        file is in uscc order: it is read a row group at a time until the page is full, so a first page
        reads a few thousand enterprises, not all of them."""
        item = self.by_key.get((s.policy_id, s.item_id))
        if item is None or limit <= 0 or (s.policy_ids is not None and s.policy_id not in s.policy_ids):
            return []
        block = item["block"]
        # The item's status rows of this list (and condition or field), by pattern, in numpy: an item can
        # have a status for 100,000 patterns at 10M enterprises; only the page's rows become Python.
        statuses = self._statuses
        rows = statuses.item_rows(block, item["item"])
        rows = rows[statuses.status[rows] == _STATUS_CODES.index(STATUS[name])]
        if s.condition_id and name == "near_misses":
            rows = rows[pc.equal(self.statuses["condition_id"].take(rows), s.condition_id).to_numpy(False)]
        if s.field and name == "missing_data":
            listed = f"(^|;){re.escape(s.field)}(;|$)"  # one of the `;`-separated fields
            found = pc.match_substring_regex(self.statuses["fields"].take(rows).cast(pa.string()), listed)
            rows = rows[pc.fill_null(found, False).to_numpy(False)]
        if not len(rows):
            return []
        rows = rows[np.argsort(statuses.pattern[rows], kind="stable")]
        patterns = statuses.pattern[rows]
        column = f"p{block}"
        narrowing = [
            (c, v)
            for c, v in (
                ("region_code", s.region),
                ("industry_section", s.section),
                ("size_class", s.size),
                ("uscc", s.uscc),
            )
            if v
        ]
        wanted = pa.array(patterns)
        enterprises = self.enterprises
        columns = ["uscc", column, *(c for c, _ in narrowing if c != "uscc")]
        # The row groups whose statistics allow the narrowing (enterprises in uscc order are, mostly, in
        # the order of their registration's region).
        groups = [True] * len(enterprises.groups)
        for c, v in narrowing:
            allowed = enterprises.groups_with(c, v, prefix=c in ("region_code", "uscc"))
            groups = [a and b for a, b in zip(groups, allowed, strict=True)]
        out: list[tuple[Any, ...]] = []
        skip = offset
        for group in (g for g, keep in enumerate(groups) if keep):
            table = enterprises.read_group(group, columns)
            mask = pc.is_in(table[column], value_set=wanted)
            for c, v in narrowing:  # as the SQL: a prefix of the region and uscc, the section and size equal
                test = pc.starts_with(table[c], v) if c in ("region_code", "uscc") else pc.equal(table[c], v)
                mask = pc.and_kleene(mask, test)
            hits = table.filter(mask)
            if skip >= hits.num_rows:
                skip -= hits.num_rows
                continue
            hits = hits.slice(skip, limit - len(out))
            skip = 0
            at = rows[np.searchsorted(patterns, hits[column].to_numpy(False))]
            found = _pylist(self.statuses.select(["condition_id", "read", "fields"]).take(at))
            for uscc, r in zip(hits["uscc"].to_pylist(), found, strict=True):
                condition_id, read, fields = r["condition_id"], r["read"], r["fields"]
                if name == "near_misses":
                    out.append((s.policy_id, s.item_id, uscc, condition_id, read))
                else:
                    out.append((s.policy_id, s.item_id, uscc, None if fields is None else fields.split(";")))
            if len(out) >= limit:
                break
        return out

    def _page_values(self, keys: list[tuple[Any, ...]]) -> list[str | None]:
        """The values each near miss of a page read, off the profile rows of its enterprises."""
        out: list[str | None] = [None] * len(keys)
        by_year: dict[int, list[int]] = {}
        for n, (p, i, _, _, read) in enumerate(keys):
            if read:
                by_year.setdefault(self.by_key[(p, i)]["year"], []).append(n)
        for year, rows in by_year.items():
            usccs = sorted({keys[n][2] for n in rows})
            profile = self.profiles[year].rows_of(usccs)
            cur = self._cursor()
            cur.register("p", profile)
            cur.register(
                "k",
                pa.table(
                    {
                        "n": [n for n in rows],
                        "uscc": [keys[n][2] for n in rows],
                        "read": [keys[n][4] for n in rows],
                    }
                ),
            )
            for n, v in cur.execute(
                f"SELECT k.n, {self._value_sql('k', {keys[n][4] for n in rows})} FROM k JOIN p ON p.uscc = k.uscc"
            ).fetchall():
                out[n] = v
            cur.close()
        return out

    def export(self, name: ListName, path: Path, s: Slice = Slice(), *, by_item: bool = False) -> int:
        """Write the slice of the list with format 2's columns and types: one Parquet file, or with `by_item`
        a folder partitioned by policy_id and item_id (Hive style); the rows written."""
        cur = self.cursor()
        try:
            columns = (
                "policy_id, item_id, uscc, condition_id, value"
                if name == "near_misses"
                else "policy_id, item_id, uscc, fields"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            target = str(path).replace("'", "''")
            options = "FORMAT PARQUET, COMPRESSION ZSTD"
            if by_item:
                options += ", PARTITION_BY (policy_id, item_id), OVERWRITE_OR_IGNORE"
            cur.execute(f"COPY (SELECT {columns} FROM ({self.list_sql(name, s)})) TO '{target}' ({options})")
            source = f"{target}/**/*.parquet" if by_item else target
            row = cur.execute(f"SELECT count(*) FROM read_parquet('{source}')").fetchone()
            return int(row[0]) if row else 0
        finally:
            cur.close()

    # -- by enterprise ---------------------------------------------------------------------------------

    def standing(self, uscc: str, *, values: bool = True) -> list[Result]:
        """The enterprise's results on every item, in (policy_id, item_id) order: candidate, near miss or
        missing data (an item with none of these is left out)."""
        if not self.compact:
            return self._legacy_standing(uscc)
        at = self.enterprises.find(uscc)
        if at is None:
            return []
        part, n = at
        patterns = [
            (b, p)
            for (b, _), column in zip(self.blocks, self._patterns[part], strict=True)
            if (p := int(column[n]))
        ]
        out: dict[tuple[str, str], Result] = {}
        for a in self.allocated.rows(uscc):
            out[(a["policy_id"], a["item_id"])] = Result(
                a["policy_id"],
                a["item_id"],
                "candidate",
                amount=_money(a["amount"]),
                amount_before_allocation=_money(a["amount_before_allocation"]),
            )
        paid = {(p["policy_id"], p["item_id"]) for p in self.paid.rows(uscc)}
        # Per year, the distinct amounts to compute over the enterprise's profile row (items share them) with
        # the items waiting for each, the near misses waiting for their values and the fields both read.
        years: dict[
            int,
            tuple[dict[str, list[tuple[str, str]]], list[tuple[tuple[str, str], str | None, str]], set[str]],
        ]
        years = {y: ({}, [], set()) for y in self.profiles}
        for n, status, condition, read, missing in self._statuses.of(patterns):
            key, year, sql, allocated = self._facts[n]
            if status == _ELIGIBLE:
                if allocated or key in paid:
                    continue
                wanted, _, fields = years[year]
                waiting = wanted.get(sql)
                if waiting is None:
                    wanted[sql] = [key]
                else:
                    waiting.append(key)
                fields.update(self._amount_fields[n])
            elif status == _NEAR_MISS:
                if values and read:
                    _, near, fields = years[year]
                    near.append((key, condition, read))
                    fields.update(self._reads[read])
                else:
                    out[key] = Result(*key, "near_miss", condition_id=condition)
            else:
                out[key] = Result(*key, "missing_data", fields=self._reads[missing or ""])
        for year, (wanted, near, fields) in years.items():
            # A fixed amount is the same for every enterprise: computed by the first standing that needs it.
            known = {sql: self._fixed[sql] for sql in wanted if sql in self._fixed}
            ask = [sql for sql in wanted if sql not in known]
            row: dict[str, Any] = {}
            if ask or near:
                profile = self.profiles[year].rows(uscc, sorted(fields))
                row = profile.to_pylist()[0] if profile.num_rows else {}
            if ask:
                cur = self._cursor()
                cur.register("p", profile)
                got = cur.execute(
                    "SELECT " + ", ".join(f"{sql} AS e{n}" for n, sql in enumerate(ask)) + " FROM p"
                ).fetchone()
                cur.close()
                assert got is not None
                known.update(zip(ask, got, strict=True))
                self._fixed.update(
                    (sql, v) for sql, v in zip(ask, got, strict=True) if sql in self._fixed_sql
                )
            for sql, keys in wanted.items():
                money = _money(known[sql])  # an amount's text, the same for every item of it
                for key in keys:
                    out[key] = Result(*key, "candidate", amount=money, amount_before_allocation=money)
            texts: dict[str, str] = {}  # many near misses read the same fields
            for key, condition, read in near:
                if read not in texts:
                    texts[read] = value_text(self._reads[read], row)
                out[key] = Result(*key, "near_miss", condition_id=condition, value=texts[read])
        return [out[k] for k in sorted(out)]

    def _legacy_standing(self, uscc: str) -> list[Result]:
        cur = self.cursor()
        text = _text(uscc)
        out = [
            Result(p, i, "candidate", amount=_money(a), amount_before_allocation=_money(b))
            for p, i, a, b in cur.execute(
                "SELECT policy_id, item_id, amount, amount_before_allocation FROM "
                f"read_parquet('{_parquet(self.folder / runfolder.CANDIDATES)}') WHERE uscc = {text}"
            ).fetchall()
        ]
        s = Slice(uscc=uscc)
        if (self.folder / runfolder.NEAR_MISSES).exists():
            out += [
                Result(p, i, "near_miss", condition_id=c, value=v)
                for p, i, u, c, v in cur.execute(self._legacy_sql("near_misses", s)).fetchall()
                if u == uscc
            ]
        if (self.folder / runfolder.MISSING_DATA).exists():
            out += [
                Result(p, i, "missing_data", fields=tuple(f))
                for p, i, u, f in cur.execute(self._legacy_sql("missing_data", s)).fetchall()
                if u == uscc
            ]
        return sorted(out, key=lambda r: (r.policy_id, r.item_id))


def _money(value: Any) -> str | None:
    return None if value is None else format(value, "f")


_OPEN: dict[tuple[Path, int], RunResults] = {}
_OPEN_LOCK = threading.Lock()


def open_results(folder: Path) -> RunResults:
    """The run folder's results, opened once per process (the statuses are held in memory); a folder
    written again in the same place (its manifest rewritten) is opened afresh."""
    path = folder.resolve()
    manifest = path / runfolder.MANIFEST
    key = (path, manifest.stat().st_mtime_ns if manifest.exists() else 0)
    with _OPEN_LOCK:
        found = _OPEN.get(key)
        if found is None:
            for stale in [k for k in _OPEN if k[0] == path]:
                del _OPEN[stale]  # not closed: a request may still be reading it
            found = _OPEN[key] = RunResults(path)
        return found


def export_lists(folder: Path, out: Path | None = None) -> dict[str, int]:
    """Write near_misses.parquet and missing_data.parquet of a compact run folder as format 2 wrote them
    (the same rows, compared as sets), into `out` (default: the run folder); rows written per file."""
    target = out or folder
    for name in (runfolder.NEAR_MISSES, runfolder.MISSING_DATA):
        if (target / name).is_dir():  # written row by row by Spark (zhida match without --compact)
            raise MatchError(
                f"{target / name} 已存在（Spark 逐行写出的名单），无需再导出；或用 --out 写到别处"
            )
    results = RunResults(folder)
    try:
        return {
            "near_misses": results.export("near_misses", target / runfolder.NEAR_MISSES),
            "missing_data": results.export("missing_data", target / runfolder.MISSING_DATA),
        }
    finally:
        results.close()
