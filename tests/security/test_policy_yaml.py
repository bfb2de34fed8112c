"""Policy YAML bombs: a few hundred bytes of nested aliases expand exponentially when composed (7 levels
of ten references each took 20 s and 2.4 GB to validate, the same through the upload API). Policies
need no anchors, so any anchor or alias is refused at its line, before anything is built, and a
document's nodes and depth are capped."""

from __future__ import annotations

import resource
import time

import pytest

from rules.errors import PolicyError
from rules.validate import MAX_DEPTH, MAX_NODES, parse_policy_text
from tests.api.conftest import World


def alias_bomb(levels: int) -> str:
    lines = ["id: bomb", 'lol0: &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * 10)
        lines.append(f"lol{i}: &l{i} [{refs}]")
    return "\n".join(lines) + "\n"


def test_the_440_byte_alias_bomb_is_refused_at_once_at_its_line() -> None:
    bomb = alias_bomb(7)
    assert len(bomb.encode()) < 500
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(PolicyError) as e:
        parse_policy_text(bomb, "bomb.yaml")
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50_000  # KiB: nothing expanded
    [problem] = e.value.problems
    assert problem.line == 2 and "锚点和别名" in problem.message and problem.file == "bomb.yaml"


def test_a_single_alias_is_refused_too() -> None:
    text = "id: p\ntitle: &t 标题\nsummary: *t\n"
    with pytest.raises(PolicyError) as e:
        parse_policy_text(text, "p.yaml")
    assert [p.line for p in e.value.problems] == [2]


def test_documents_too_deep_or_too_large_are_refused() -> None:
    deep = "id: p\nx: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"
    with pytest.raises(PolicyError, match="嵌套超过"):
        parse_policy_text(deep, "deep.yaml")
    wide = "id: p\nx: [" + ", ".join(["1"] * (MAX_NODES + 1)) + "]\n"
    with pytest.raises(PolicyError, match="文件过大"):
        parse_policy_text(wide, "wide.yaml")


def test_the_upload_api_refuses_the_bomb_and_stays_small(shared: World) -> None:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = shared.client.post(
        "/api/policies",
        files={"file": ("bomb.yaml", alias_bomb(7).encode())},
        headers=shared.auth("policy_sci"),
    )
    assert r.status_code == 422
    assert "锚点和别名" in r.json()["problems"][0]["message"]
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 50_000
