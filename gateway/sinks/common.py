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

from gateway.board import MAX_MACHINES
from gateway.servicelevel import ServiceLevels


@dataclass
class SinkStats:
    """A sink's figures. `last_error` carries its time (`last_error_at`, epoch seconds) and is
    cleared by `delivered_clean`; `dead_lettering` says the last pass dead-lettered events, so the
    sink shows that error rather than a quiet "idle" while letters pile up."""

    delivered: int = 0
    dead_lettered: int = 0
    retries: int = 0
    state: str = "starting"
    last_error: str | None = None
    last_error_at: float | None = None
    last_delivery: float | None = None
    dead_lettering: bool = False
    #: when the sink's retry wait ends (epoch seconds), None when it is not waiting
    next_retry_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    levels: ServiceLevels = field(default_factory=ServiceLevels)
    #: machine -> when an event of it was last acknowledged (at most MAX_MACHINES machines)
    machine_deliveries: dict[str, float] = field(default_factory=dict)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "last_error" and value != self.__dict__.get("last_error"):
            self.__dict__["last_error_at"] = None if value is None else time.time()
        super().__setattr__(name, value)

    def dead(self, letters: list[tuple[Any, str]]) -> None:
        """Count dead letters; the last one's reason becomes the sink's error."""
        if not letters:
            return
        self.dead_lettered += len(letters)
        self.dead_lettering = True
        self.last_error = f"{len(letters)} event(s) dead-lettered: {letters[-1][1]}"

    def delivered_clean(self) -> None:
        """A pass delivered without a dead letter: the sink has recovered, its error goes."""
        self.dead_lettering = False
        self.last_error = None

    def settle(self, state: str) -> None:
        """`state` after a pass ("idle", "running"), or "dead-lettering" while that goes on."""
        self.state = "dead-lettering" if self.dead_lettering else state

    def as_dict(self) -> dict[str, Any]:
        return ({k: v for k, v in self.__dict__.items()
                 if k not in ("extra", "levels", "dead_lettering", "machine_deliveries")} | self.extra
                | {"service_levels": self.levels.snapshot()})

    def acknowledged(self, events: Iterable[Any]) -> None:
        """The one hook where a sink's acknowledgements count: `events` (each `Stored`) are delivered now."""
        events = list(events)
        self.last_delivery = time.time()
        self.levels.acknowledged((s.event for s in events), self.last_delivery)
        for s in events:
            machine = (s.event.get("context") or {}).get("machine")
            if machine and (machine in self.machine_deliveries or len(self.machine_deliveries) < MAX_MACHINES):
                self.machine_deliveries[machine] = self.last_delivery


async def retry_wait(stats: SinkStats, delay: float, stop: asyncio.Event, retry_now: asyncio.Event) -> None:
    """A sink's wait before its next attempt: `delay` seconds, shown as `stats.next_retry_at`,
    cut short by `stop` or by a person's "Retry now" (`retry_now`)."""
    retry_now.clear()
    stats.next_retry_at = time.time() + delay
    try:
        await wait_any(stop, retry_now, timeout=delay)
    finally:
        stats.next_retry_at = None
        retry_now.clear()


#: the event loop's timer resolution (epoll waits whole milliseconds): a shorter wait is stretched to it
TIMER_RESOLUTION = 0.001


async def retry_pause(stop: asyncio.Event, delay: float) -> None:
    """A retry loop's wait of `delay` s, cut short by `stop`.

    A delay below the loop's timer resolution (only compressed-time runs, such
    as the soak's, set sub-millisecond retry caps) would be stretched to a whole
    millisecond; it is a yield to the other tasks instead.
    """
    if delay < TIMER_RESOLUTION:
        await asyncio.sleep(0)
    else:
        await wait_any(stop, timeout=delay)


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
