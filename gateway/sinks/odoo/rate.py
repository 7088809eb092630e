"""Rate awareness for Odoo calls: a token bucket (calls/s) and a cap on calls in flight.

It owns the pace at which one sink talks to Odoo, so a backlog after an outage
is flushed steadily instead of hammering the ERP: each call takes one token of
a bucket refilled at `rate` per second (gateway.sinks.common.TokenBucket) and
one of `max_in_flight` slots. A permanent error of an idempotent call that is
not a business rejection is turned transient here (`protocol.by_kind_of_write`).
It also keeps the latency of every call in a cumulative histogram (plain JSON
data, exported as a Prometheus histogram by the web UI's /metrics).
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.common import TokenBucket
from gateway.sinks.odoo.protocol import by_kind_of_write


#: upper bounds (seconds) of the call latency histogram's buckets
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PacedClient:
    """Wraps an Odoo client: every `execute_kw` waits for a token and a free slot."""

    def __init__(self, client: Any, rate: float, max_in_flight: int) -> None:
        self.inner = client
        self.bucket = TokenBucket(rate)
        self.slots = asyncio.Semaphore(max_in_flight)
        self.calls = 0
        #: cumulative: buckets[le] counts calls that took at most `le` seconds (Prometheus style)
        self.latency: dict[str, Any] = {"count": 0, "sum": 0.0,
                                        "buckets": {str(b): 0 for b in LATENCY_BUCKETS}}

    async def execute_kw(self, model: str, method: str, args: list[Any],
                         kwargs: dict[str, Any] | None = None) -> Any:
        await self.bucket.take()
        async with self.slots:
            self.calls += 1
            started = time.monotonic()
            try:
                return await self.inner.execute_kw(model, method, args, kwargs)
            except PermanentDeliveryError as exc:
                raise by_kind_of_write(method, exc) from exc
            finally:
                self._observe(time.monotonic() - started)

    def _observe(self, seconds: float) -> None:
        self.latency["count"] += 1
        self.latency["sum"] += seconds
        for bound in LATENCY_BUCKETS:
            if seconds <= bound:
                self.latency["buckets"][str(bound)] += 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
