"""Rate awareness for Odoo calls: a token bucket (calls/s) and a cap on calls in flight.

It owns the pace at which one sink talks to Odoo, so a backlog after an outage
is flushed steadily instead of hammering the ERP. The bucket refills at
`rate` tokens per second up to `burst`; each call takes one token and one of
`max_in_flight` slots. Time comes from an injectable monotonic clock.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable


class TokenBucket:
    def __init__(self, rate: float, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class PacedClient:
    """Wraps an Odoo client: every `execute_kw` waits for a token and a free slot."""

    def __init__(self, client: Any, rate: float, max_in_flight: int) -> None:
        self.inner = client
        self.bucket = TokenBucket(rate)
        self.slots = asyncio.Semaphore(max_in_flight)
        self.calls = 0

    async def execute_kw(self, model: str, method: str, args: list[Any],
                         kwargs: dict[str, Any] | None = None) -> Any:
        await self.bucket.take()
        async with self.slots:
            self.calls += 1
            return await self.inner.execute_kw(model, method, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
