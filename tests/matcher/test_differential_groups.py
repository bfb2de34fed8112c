"""The differential test of test_differential.py, for policies in an exclusive group (就高不重复): the
other half of its examples, in a file of its own so that it runs beside the first half."""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.matcher.test_differential import EXAMPLES, check_compiled_sql_equals_reference


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@EXAMPLES
@given(data=st.data())
def test_compiled_sql_equals_reference_in_exclusive_groups(
    con: duckdb.DuckDBPyConnection, data: st.DataObject
) -> None:
    check_compiled_sql_equals_reference(con, data, group="g")
