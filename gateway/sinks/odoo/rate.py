"""Rate awareness for Odoo calls: a token bucket (calls/s) and a cap on calls in flight.

It owns the pace at which one sink talks to Odoo, so a backlog after an outage
is flushed steadily instead of hammering the ERP: each call takes one token of
a bucket refilled at `rate` per second (gateway.sinks.common.TokenBucket) and
one of `max_in_flight` slots.
"""
from __future__ import annotations

import asyncio
from typing import Any

from gateway.sinks.common import TokenBucket


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
