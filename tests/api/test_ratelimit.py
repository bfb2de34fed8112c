"""Rate limits in Redis hold across the service's workers: two limiters of the same name (two processes
of one service) share one count; a request over the limit waits its turn."""

from __future__ import annotations

import os
import secrets

import pytest

from api.ratelimit import RateLimiter, RedisRateLimiter, limiter

REDIS = os.environ.get("ZHIDA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    redis = pytest.importorskip("redis")
    c = redis.Redis.from_url(REDIS)
    try:
        c.ping()
    except redis.ConnectionError as e:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not reachable at {REDIS} ({e})")
        pytest.skip(f"Redis is not reachable at {REDIS}")
    yield c
    for key in c.scan_iter("zhida:rl:test-*"):
        c.delete(key)


def test_two_workers_share_one_limit(client) -> None:  # type: ignore[no-untyped-def]
    name = f"test-{secrets.token_hex(4)}"
    worker_a = RedisRateLimiter(client, name, limit=3, window=60)
    worker_b = RedisRateLimiter(client, name, limit=3, window=60)
    hits = [worker_a.hit("203.0.113.7"), worker_b.hit("203.0.113.7"), worker_a.hit("203.0.113.7")]
    assert hits == [True, True, True]
    assert not worker_b.hit("203.0.113.7")  # the fourth, on the other worker, is refused
    assert 1 <= worker_a.retry_after("203.0.113.7") <= 61
    assert worker_b.hit("198.51.100.1")  # another address has its own count


def test_a_limit_frees_up_when_its_window_passes(client) -> None:  # type: ignore[no-untyped-def]
    name = f"test-{secrets.token_hex(4)}"
    short = RedisRateLimiter(client, name, limit=1, window=0.2)
    assert short.hit("k") and not short.hit("k")
    import time

    time.sleep(0.3)
    assert short.hit("k")


def test_without_redis_each_process_keeps_its_own() -> None:
    assert isinstance(limiter(None, "ip", 5, 60), RateLimiter)
