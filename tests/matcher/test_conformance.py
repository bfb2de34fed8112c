"""The conformance case (tests/conformance/, copied from shared/conformance): the real command, exact result.

`zhida match --snapshot snapshot --policies policies --as-of 2025-09-30 --out RUN` must give the expected
candidates (with version, amount and amount before allocation, to the fen), near-misses and missing-data
rows, compared as sets. The run also keeps them compact (format 3, what zhida's readers use); with `--compact`
it keeps only that, and `zhida results export` writes the same two files from it.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from matcher.runfolder import parquet_parts, parquet_source

CASE = Path(__file__).resolve().parent.parent / "conformance"


def _expected(name: str) -> list[dict[str, str]]:
    with (CASE / "expected" / f"{name}.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def match_into(out: Path, *options: str) -> Path:
    """Run the real `zhida match` on the conformance case into `out`."""
    cmd = [
        sys.executable,
        "-m",
        "api",
        "match",
        "--snapshot",
        str(CASE / "snapshot"),
        "--policies",
        str(CASE / "policies"),
        "--as-of",
        "2025-09-30",
        "--out",
        str(out),
        *options,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    assert (out / "results").is_dir()  # the compact form, beside the two lists
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return match_into(tmp_path_factory.mktemp("run"))


def _rows(path: Path, columns: str) -> list[tuple[object, ...]]:
    return duckdb.sql(f"SELECT {columns} FROM read_parquet('{parquet_source(path)}')").fetchall()


def _parts(path: Path) -> list[tuple[str, bytes]]:
    """An output's file, or each part file of its folder, by name and bytes."""
    return [(p.name, p.read_bytes()) for p in parquet_parts(path)]


def test_candidates_match_exactly(run: Path) -> None:
    got = {
        (p, i, u): (v, a, b)
        for p, v, i, u, a, b in _rows(
            run / "candidates.parquet",
            "policy_id, policy_version, item_id, uscc, amount, amount_before_allocation",
        )
    }
    want = {
        (r["policy_id"], r["item_id"], r["uscc"]): (
            int(r["policy_version"]),
            Decimal(r["amount"]),
            Decimal(r["amount_before_allocation"]),
        )
        for r in _expected("candidates")
    }
    assert len(want) == 599
    assert got == want


def test_near_misses_match_exactly(run: Path) -> None:
    got = set(_rows(run / "near_misses.parquet", "policy_id, item_id, uscc, condition_id"))
    want = {(r["policy_id"], r["item_id"], r["uscc"], r["condition_id"]) for r in _expected("near_misses")}
    assert len(want) == 3312
    assert got == want


def test_missing_data_match_exactly(run: Path) -> None:
    got = {
        (p, i, u, frozenset(f))
        for p, i, u, f in _rows(run / "missing_data.parquet", "policy_id, item_id, uscc, fields")
    }
    want = {
        (r["policy_id"], r["item_id"], r["uscc"], frozenset(r["fields"].split(";")))
        for r in _expected("missing_data")
    }
    assert len(want) == 45
    assert got == want


def test_contacts_cover_every_enterprise_with_a_result(run: Path) -> None:
    """contacts.parquet: the registered name and phone of every candidate, near miss or missing data (the
    enterprise sign-in sends its code there); payees.parquet stays the candidates' only."""
    contacts = {u: (n, p) for u, n, p in _rows(run / "contacts.parquet", "uscc, name, contact_phone")}
    with_result = {
        r["uscc"] for name in ("candidates", "near_misses", "missing_data") for r in _expected(name)
    }
    assert set(contacts) == with_result
    assert contacts["91321302N37DJHMYJR"] == ("江苏测试企业00565有限公司", "13906789613")  # no candidate
    payees = {u for (u,) in _rows(run / "payees.parquet", "uscc")}
    assert payees == {r["uscc"] for r in _expected("candidates")}  # a row for every enterprise with money
    assert "91321302N37DJHMYJR" not in payees and payees < set(contacts)


def test_candidates_are_byte_identical_across_runs(run: Path, tmp_path: Path) -> None:
    match_into(tmp_path)
    assert (tmp_path / "candidates.parquet").read_bytes() == (run / "candidates.parquet").read_bytes()
    import json

    first = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    second = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert first["snapshot"]["fingerprint"] == second["snapshot"]["fingerprint"]
    assert first["rules"]["fingerprint"] == second["rules"]["fingerprint"]


def test_candidates_are_sorted_by_policy_item_and_uscc_in_any_chunking(tmp_path: Path) -> None:
    """The candidates are read an item at a time (`write_candidates`): however small the chunks, the
    output holds the same rows in (policy_id, item_id, uscc) order, and the same bytes on every run. More
    than one chunk is written as a folder of part files, one per chunk, whether one or two are written at
    once; one chunk is the single file a run writes."""
    import datetime as dt

    from matcher.duckdb_engine import connect
    from matcher.run import run_match, write_candidates

    con = connect()
    whole = run_match(
        CASE / "snapshot", CASE / "policies", tmp_path / "run", dt.date(2025, 9, 30), con=con
    ).out
    rows = _rows(whole / "candidates.parquet", "*")
    assert rows == sorted(rows, key=lambda r: (r[0], r[2], r[3]))
    assert len({(r[0], r[2]) for r in rows}) > 5  # several items, so small chunks split them
    for n in (1, 2):
        write_candidates(con, tmp_path / f"chunked{n}.parquet", chunk_rows=50, parts_at_once=n)
    chunked = tmp_path / "chunked1.parquet"
    assert chunked.is_dir() and len(parquet_parts(chunked)) > 2
    assert _rows(chunked, "*") == rows
    assert _parts(chunked) == _parts(tmp_path / "chunked2.parquet")
    # Written again in one chunk over the folder: the run's file, and no part left beside it.
    write_candidates(con, chunked)
    assert chunked.is_file() and chunked.read_bytes() == (whole / "candidates.parquet").read_bytes()
    # The writer reads the verdict tables in their stored order, and leaves the connection free to
    # drop the order again, as `connect` set it.
    assert con.execute("SELECT current_setting('preserve_insertion_order')").fetchall() == [(False,)]


def test_a_compact_run_exports_the_same_two_lists(tmp_path: Path) -> None:
    """`zhida match --compact` (a national run) writes no lists; `zhida results export` writes them from the
    compact form, the same rows as the expected files."""
    out = match_into(tmp_path / "run", "--compact")
    assert not (out / "near_misses.parquet").exists() and not (out / "missing_data.parquet").exists()
    export = [sys.executable, "-m", "api", "results", "export", "--run", str(out)]
    done = subprocess.run(export, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    got = set(_rows(out / "near_misses.parquet", "policy_id, item_id, uscc, condition_id"))
    assert got == {
        (r["policy_id"], r["item_id"], r["uscc"], r["condition_id"]) for r in _expected("near_misses")
    }
    columns = "policy_id, item_id, uscc, fields"
    fields = {(p, i, u, frozenset(f)) for p, i, u, f in _rows(out / "missing_data.parquet", columns)}
    assert fields == {
        (r["policy_id"], r["item_id"], r["uscc"], frozenset(r["fields"].split(";")))
        for r in _expected("missing_data")
    }


def test_an_items_rows_are_put_in_rid_order_however_duckdb_gives_them() -> None:
    """An item's rows read through a join come in the order DuckDB's threads produced them: the writer
    orders them by `rid`, and leaves rows already in order as they are."""
    import numpy as np

    from matcher.duckdb_engine import _rid_order

    rid = np.array([5, 6, 9, 1, 2, 3, 12, 7])  # three scanned runs
    order = _rid_order(rid)
    assert order is not None and rid[order].tolist() == sorted(rid.tolist())
    assert _rid_order(np.sort(rid)) is None and _rid_order(rid[:1]) is None


def test_candidates_that_do_not_number_what_the_summary_counted_are_not_written(tmp_path: Path) -> None:
    """The summary's counts (the manifest's) and the candidates file come from the same rows: if an item's
    rows ever numbered otherwise, the writer stops with an internal error instead of writing a file that
    disagrees with the manifest."""
    import datetime as dt

    from matcher.duckdb_engine import connect
    from matcher.plan import TOTALS
    from matcher.run import run_match, write_candidates
    from rules.errors import MatchError

    con = connect()
    run_match(CASE / "snapshot", CASE / "policies", tmp_path / "run", dt.date(2025, 9, 30), con=con)
    con.execute(
        f"UPDATE {TOTALS} SET candidates = candidates + 1 WHERE item = (SELECT max(item) FROM {TOTALS})"
    )
    with pytest.raises(MatchError, match=r"与汇总.*不符"):
        write_candidates(con, tmp_path / "again.parquet")


def test_the_uscc_gather_gives_what_take_gives() -> None:
    """The candidates writer gathers USCCs as fixed-width records (`_gather`): the same Arrow array as
    `pc.take`, so the same Parquet bytes; texts that are not all 18 bytes are taken as before."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from matcher.duckdb_engine import _gather

    usccs = pa.array([f"91320{n:012d}X" for n in range(1000)]).slice(3)  # an array with an offset
    at = np.array([0, 1, 5, 5, 996, 42])
    assert _gather(usccs)(at).equals(pc.take(usccs, pa.array(at)))
    mixed = pa.array(["91320000000000001X", "短", "913200000000000020"])
    assert _gather(mixed)(np.array([2, 1, 0])).equals(pc.take(mixed, pa.array([2, 1, 0])))
