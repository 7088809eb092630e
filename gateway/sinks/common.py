"""What every sink worker shares: its statistics, a stop-aware wait and a token bucket.

It owns the small pieces the Odoo and MQTT sinks both need, so neither sink
imports the other: `SinkStats` (the figures progress lines, the heartbeat and
the demo read, with each sink's service levels), `wait_any` (wait for the first of several events, or a
timeout) and `TokenBucket` (calls or messages per second, for throttled
flushes after an outage).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from gateway.servicelevel import ServiceLevels


@dataclass
class SinkStats:
    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    state: str = "starting"
    last_error: str | None = None
    last_delivery: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    levels: ServiceLevels = field(default_factory=ServiceLevels)

    def as_dict(self) -> dict[str, Any]:
        return ({k: v for k, v in self.__dict__.items() if k not in ("extra", "levels")} | self.extra
                | {"service_levels": self.levels.snapshot()})

    def acknowledged(self, events: Iterable[Any]) -> None:
        """The one hook where a sink's acknowledgements count: `events` (each `Stored`) are delivered now."""
        self.last_delivery = time.time()
        self.levels.acknowledged((s.event for s in events), self.last_delivery)


async def wait_any(*events: asyncio.Event, timeout: float | None) -> None:
    """Return when any of `events` is set or after `timeout` seconds (None: no timeout)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take()` waits for one. Time from an injectable clock."""

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
