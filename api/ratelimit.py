"""Sliding-window rate limits: in the process (one worker), or in Redis (`ZHIDA_REDIS_URL`), where every
worker of the service counts against the same limits.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol


class Limiter(Protocol):
    def hit(self, key: str) -> bool: ...

    def retry_after(self, key: str) -> int: ...


class RateLimiter:
    """At most `limit` hits per key within `window` seconds; `hit` says whether this one is allowed."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> bool:
        now = self._clock()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > 100_000:  # forget idle keys so that the table cannot grow without end
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.window}
            return True

    def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again."""
        with self._lock:
            hits = self._hits.get(key)
            if not hits or len(hits) < self.limit:
                return 0
            return max(1, int(hits[0] + self.window - self._clock()) + 1)


# One hit, atomically: drop the hits older than the window, count, add this one if under the limit.
# KEYS[1] the key's sorted set; ARGV: now (ms), window (ms), limit, a unique member. Returns 1 or 0.
_HIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""


class RedisRateLimiter:
    """The same limit kept in Redis, shared by every worker; `name` keeps limits apart (`zhida:rl:<name>:`)."""

    def __init__(self, client: Any, name: str, limit: int, window: float) -> None:
        self.client = client
        self.prefix = f"zhida:rl:{name}:"
        self.limit = limit
        self.window_ms = int(window * 1000)
        self._hit = client.register_script(_HIT)

    def hit(self, key: str) -> bool:
        now = int(time.time() * 1000)
        member = f"{now}-{secrets.token_hex(4)}"
        return bool(self._hit(keys=[self.prefix + key], args=[now, self.window_ms, self.limit, member]))

    def retry_after(self, key: str) -> int:
        oldest = self.client.zrange(self.prefix + key, 0, 0, withscores=True)
        if not oldest or self.client.zcard(self.prefix + key) < self.limit:
            return 0
        return max(1, int((oldest[0][1] + self.window_ms - time.time() * 1000) / 1000) + 1)


def limiter(redis_url: str | None, name: str, limit: int, window: float) -> Limiter:
    """The rate limiter the settings ask for: in Redis when `redis_url` is set, else in the process."""
    if not redis_url:
        return RateLimiter(limit, window)
    import redis

    return RedisRateLimiter(redis.Redis.from_url(redis_url), name, limit, window)
