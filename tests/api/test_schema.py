"""Schemathesis generates requests from the OpenAPI schema for every operation and checks the answers:
no server error, and status codes, content types and bodies as the schema documents them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import World, copy_world

# A schema-valid request may still be refused by the domain (a YAML file that is not a policy: 422),
# so "positive data acceptance" is not checked; everything else is.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzzed(template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    w = copy_world(template, Path(tmp_path_factory.mktemp("fuzz")))
    yield w
    w.app.state.engine.dispose()


def user_for(method: str, path: str) -> str:
    """A user whose role may call the operation, so that requests get past the role check."""
    if path.startswith("/api/policies") and method != "GET":
        return "policy_sci"
    if path.startswith(("/api/review", "/api/sms")) or (path == "/api/runs" and method == "POST"):
        return "reviewer"
    if path.startswith("/api/batches"):
        return "checker" if path.endswith("/approve") else "maker"
    if path.startswith("/api/audit"):
        return "auditor"
    if path == "/api/notices" and method == "POST":
        return "maker"
    return "reviewer"  # reads policies, runs, offers, reports, notices and supplied data; payee changes


def test_the_api_answers_as_its_schema_says(fuzzed: World) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def check(case) -> None:  # type: ignore[no-untyped-def]
            headers = fuzzed.auth(user_for(case.method, case.path)) if case.path != "/api/session" else {}
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            check()
        except (
            Exception,
            BaseExceptionGroup,
        ) as e:  # collected, so that one run reports every operation that fails
            failures[operation.label] = " / ".join(
                line
                for line in str(e).splitlines()
                if "rror" in line or "Expected" in line or "rejected" in line
            )[:300]
    assert operations >= 30
    assert failures == {}
