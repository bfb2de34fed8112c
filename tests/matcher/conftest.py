"""Shared fixtures for the matcher tests: one local Spark session for the whole test run.

Starting a JVM costs seconds, so every Spark test shares this session (`local[2]`, ANSI mode on, as
`matcher.spark_engine.spark_session` makes it). Without Java the Spark tests are skipped with the reason,
except in CI (`CI` set), where they fail: CI installs openjdk-17-jre-headless.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


def require_java() -> None:
    """Skip the test without Java, except in CI (`CI` set), where it fails: CI installs it."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        if os.environ.get("CI"):
            pytest.fail("Java 17 is required for the Spark tests (apt-get install openjdk-17-jre-headless)")
        pytest.skip("no Java on this machine: the Spark tests need openjdk-17-jre-headless")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    require_java()
    from matcher.spark_engine import spark_session

    session = spark_session(
        "local[2]",
        {
            "spark.ui.enabled": "false",
            "spark.log.level": "ERROR",
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
        },
        app_name="zhida-tests",
    )
    yield session
    session.stop()
