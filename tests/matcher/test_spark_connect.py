"""`zhida match --engine spark` through Spark Connect (`SPARK_REMOTE`) gives the DuckDB run's outputs.

A real Spark Connect server (pyspark's own `SparkConnectServer`, `local[2]`) is started for this module;
the command runs in a separate process, as on a client machine, with only `SPARK_REMOTE` set. The run
folder must hold the same Contract 4 files as DuckDB's, row for row, and a manifest naming the remote.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from matcher.results import export_lists
from matcher.run import run_match
from tests.matcher.conftest import require_java
from tests.ports import free_port, listening

CASE = Path(__file__).resolve().parent.parent / "conformance"
AS_OF = dt.date(2025, 9, 30)
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Spark Connect server on a free local port, for this module; its address (`sc://...`)."""
    require_java()
    import pyspark

    home = Path(pyspark.__file__).parent
    port = free_port()
    log = tmp_path_factory.mktemp("connect") / "server.log"
    env = {**os.environ, "SPARK_HOME": str(home)}
    env.pop("SPARK_REMOTE", None)
    command = [str(home / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--master", "local[2]"]
    for setting in (
        f"spark.connect.grpc.binding.port={port}",
        "spark.ui.enabled=false",
        "spark.sql.shuffle.partitions=2",
        "spark.log.level=ERROR",
    ):
        command += ["--conf", setting]
    with log.open("wb") as out:
        server = subprocess.Popen([*command, "spark-internal"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not listening(port):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Spark Connect server did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)


def _rows(path: Path, keys: list[str]) -> list[dict[str, object]]:
    table = ds.dataset(path, format="parquet").to_table()
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


def test_a_match_through_spark_connect_equals_duckdb(remote: str, tmp_path: Path) -> None:
    duck = tmp_path / "duck"
    run_match(CASE / "snapshot", CASE / "policies", duck, AS_OF)
    export_lists(duck)  # DuckDB keeps its near misses and missing data compact; Spark writes the files
    sparked = tmp_path / "connect"
    args = ["match", "--engine", "spark", "--snapshot", str(CASE / "snapshot")]
    args += ["--policies", str(CASE / "policies"), "--as-of", AS_OF.isoformat(), "--out", str(sparked)]
    env = {**os.environ, "SPARK_REMOTE": remote}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("zhida")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "匹配结果" in done.stdout
    for output, keys in [
        ("candidates", ["policy_id", "item_id", "uscc"]),
        ("near_misses", ["policy_id", "item_id", "uscc"]),
        ("missing_data", ["policy_id", "item_id", "uscc"]),
        ("payees", ["uscc"]),
        ("contacts", ["uscc"]),
    ]:
        assert _rows(sparked / f"{output}.parquet", keys) == _rows(duck / f"{output}.parquet", keys), output
    manifest = json.loads((sparked / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["engine"] == "spark"
    assert manifest["spark"]["remote"] == remote
    assert manifest["counts"] == json.loads((duck / "manifest.json").read_text(encoding="utf-8"))["counts"]


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("sc://127.0.0.1:{port}", "无法连接 .* 127.0.0.1:{port}"),
        ("http://127.0.0.1:{port}", "SPARK_REMOTE 无效.*应写成 sc://"),
    ],
)
def test_a_bad_spark_remote_is_refused_at_once_with_its_address(
    monkeypatch: pytest.MonkeyPatch, address: str, said: str
) -> None:
    from matcher.spark_engine import spark_session
    from rules.errors import MatchError

    port = free_port()  # nothing listens there
    monkeypatch.setenv("SPARK_REMOTE", address.format(port=port))
    started = time.monotonic()
    with pytest.raises(MatchError, match=said.format(port=port)):
        spark_session()
    assert time.monotonic() - started < 30
