"""Admission control: a bounded number of requests in flight, a bounded queue, a quick 503 beyond.

The process serves at most `limit` requests at once; the next `queue` wait their turn in arrival order,
each for at most `wait` seconds; any other request, and one that waited too long, gets
`503 Service Unavailable` with `Retry-After` at once, instead of piling up until clients time out and
the server goes on working for nobody. A request counts from its arrival until its response is sent
(background tasks that run after it, such as a match run, do not hold its place).

Each request in flight holds at most one database connection and one worker thread at a time, so the
engine's pool and the thread pool are sized from the same `limit` (`pool_size`, `thread_tokens`):
then no request waits for a connection or a thread held by one that waits for it.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import problem_response

BACKGROUND_THREADS = 24  # worker threads beyond the requests in flight: background tasks, file I/O
BUSY_TITLE = "服务繁忙"
BUSY_DETAIL = "当前访问人数较多，请稍候几秒再试。"


def thread_tokens(limit: int) -> int:
    """Worker threads for `limit` requests in flight (never fewer than anyio's default 40)."""
    return max(40, limit + BACKGROUND_THREADS)


class Admission:
    """ASGI middleware: at most `limit` requests in flight, `queue` waiting up to `wait` s; 503 beyond."""

    def __init__(self, app: ASGIApp, limit: int, queue: int, wait: float) -> None:
        self.app = app
        self.limit = limit
        self.queue = queue
        self.wait = wait
        self.in_flight = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # The event loop's thread pool: every request in flight must be able to get a thread.
            anyio.to_thread.current_default_thread_limiter().total_tokens = thread_tokens(self.limit)
        if scope["type"] != "http" or scope["path"] == "/healthz":  # liveness answers even when saturated
            await self.app(scope, receive, send)
            return
        if not await self._enter():
            await self._refuse(scope, receive, send)
            return
        done = False

        def leave() -> None:
            nonlocal done
            if not done:
                done = True
                self._leave()

        async def send_then_leave(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                leave()  # the response is out: what runs after it does not hold a place

        try:
            await self.app(scope, receive, send_then_leave)
        finally:
            leave()

    async def _enter(self) -> bool:
        """Take a place, waiting in line if there is room in it; False when refused."""
        if self.in_flight < self.limit and not self._waiting:
            self.in_flight += 1
            return True
        if len(self._waiting) >= self.queue:
            return False
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            async with asyncio.timeout(self.wait):
                await turn
            return True
        except TimeoutError:
            if turn.done() and not turn.cancelled():  # handed a place as the time ran out
                return True
            self._forget(turn)
            return False
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._leave()  # pass on the place it was handed
            else:
                self._forget(turn)
            raise

    def _leave(self) -> None:
        """Hand the place to the first request still waiting, or free it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.in_flight -= 1

    def _forget(self, turn: asyncio.Future[None]) -> None:
        try:
            self._waiting.remove(turn)
        except ValueError:
            pass

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        """503 with Retry-After: a page in the browser, problem+json on the API."""
        retry = max(1, math.ceil(self.wait / 2))
        response = problem_response(Request(scope, receive), 503, BUSY_TITLE, BUSY_DETAIL, retry_after=retry)
        await response(scope, receive, send)
