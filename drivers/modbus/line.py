"""One device's hold on its line: joining, (re)connecting, taking turns, stopping.

This module owns `DeviceLine`, what a Modbus device needs from the line it sits
on (`bus.py`): joining the shared Bus and leaving it, noticing a lost
connection and reconnecting when the backoff allows (with the log lines and
health figures that go with it), holding the line's lock for one request, and
awaiting anything with a timeout that also ends at once when the device is
stopped. It does not read tags or decode values; the driver does.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import AsyncIterator, Awaitable, Callable, TypeVar

from drivers.base import Backoff, DriverHealth, Quality, Stopped, bounded
from drivers.modbus.bus import Bus, BusConflict, attach, detach
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.link import LinkError

log = logging.getLogger("linebridge.drivers.modbus")

T = TypeVar("T")


__all__ = ["DeviceLine", "LineBusy", "Stopped"]


class LineBusy(LinkError):
    """Another device kept the shared line busy for too long; nothing was sent."""

    quality = Quality.BAD_TIMEOUT


class DeviceLine:
    """The line as one device sees it.

    `on_connected` is called when the device first sees a new connection of the
    line (its first, or a reconnect), so it can start over with its full plan.
    """

    def __init__(self, name: str, config: ModbusDeviceConfig, health: DriverHealth,
                 backoff: Backoff, stop: asyncio.Event, on_connected: Callable[[], None],
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.name, self.config, self.health = name, config, health
        self.backoff, self._stop, self._on_connected = backoff, stop, on_connected
        self._monotonic = monotonic
        self.bus: Bus | None = None
        self.conflict: str | None = None  # why this device may not use its line
        self._generation = 0               # the line connection this device last saw
        self._ever_connected = False
        self.lock_wait = 30.0 + 4 * config.timeout

    # -- joining and leaving --------------------------------------------------------

    def attach(self) -> Bus | None:
        """The device's Bus, joined on first use; None when stopped or in conflict."""
        if self.bus is None and self.conflict is None and not self._stop.is_set():
            try:
                self.bus = attach(self.name, self.config, self.backoff, self._monotonic)
            except BusConflict as exc:
                self.conflict = f"device {self.name}: {exc}"
                self.health.last_error = self.conflict
                log.error('event=line_conflict device=%s %s error="%s"', self.name,
                          self.config.endpoint, exc)
        return self.bus

    def detach(self) -> None:
        bus, self.bus = self.bus, None
        self.health.connected = False
        if bus is not None:
            detach(self.name, bus)

    # -- connecting -----------------------------------------------------------------

    async def ensure_connected(self, bus: Bus) -> None:
        """Notice a lost line, and (re)connect when the backoff allows."""
        if bus.up and not bus.connected:  # the peer closed it, or the adapter went away
            self.health.errors += 1
            self.drop(bus, "connection lost")
        if not bus.connected and bus.due():
            try:
                async with self.holding(bus):
                    if not bus.connected and bus.due():  # another device may have done it
                        await self._connect(bus)
            except LineBusy:
                pass  # try again next poll
        if bus.connected:
            self._saw_connection(bus)
        self.health.connected = bus.connected

    async def _connect(self, bus: Bus) -> None:
        cfg = self.config
        try:
            await self.bounded(bus.connect(cfg.timeout), cfg.timeout + 2)
        except (LinkError, asyncio.TimeoutError) as exc:
            reason = exc.reason if isinstance(exc, LinkError) else \
                f"connect timed out after {cfg.timeout:g} s"
            bus.last_error = reason
            self.health.errors += 1
            self.health.last_error = self.comm_error(bus)
            retry = max(0.0, bus.next_connect - self._monotonic())
            level = logging.WARNING if bus.connect_failures <= 1 else logging.INFO
            log.log(level, 'event=connect_failed device=%s %s attempt=%d retry_in_s=%.2f '
                    'error="%s"', self.name, cfg.endpoint, bus.connect_failures, retry, reason)
            return
        self._saw_connection(bus)
        log.info("event=connected device=%s %s unit_id=%d reconnects=%d",
                 self.name, cfg.endpoint, cfg.unit_id, self.health.reconnects)

    def _saw_connection(self, bus: Bus) -> None:
        if bus.generation == self._generation:
            return
        if self._ever_connected:
            self.health.reconnects += bus.generation - self._generation
        self._ever_connected = True
        self._generation = bus.generation
        self.health.connected = True
        self._on_connected()

    def drop(self, bus: Bus, reason: str) -> None:
        """Close the line after a failure and schedule the reconnect with backoff."""
        was_up = bus.up
        delay = bus.drop(reason)
        self.health.connected = False
        self.health.last_error = self.comm_error(bus)
        if was_up:
            log.warning('event=connection_lost device=%s %s retry_in_s=%.2f error="%s"',
                        self.name, self.config.endpoint, delay, reason)

    def comm_error(self, bus: Bus) -> str:
        """The sample error while the line is down: device, reason, where."""
        cfg = self.config
        where = cfg.port if cfg.transport == "modbus_rtu" else f"{cfg.host}:{cfg.port}"
        return f"device {self.name}: {bus.last_error} ({where})"

    # -- waiting --------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def holding(self, bus: Bus) -> AsyncIterator[None]:
        """Hold the line's lock (one request on the wire at a time); ends on stop()."""
        try:
            await self.bounded(bus.lock.acquire(), self.lock_wait, keep_result=True)
        except asyncio.TimeoutError:
            raise LineBusy(f"the line stayed busy for {self.lock_wait:g} s") from None
        try:
            yield
        finally:
            bus.lock.release()

    async def bounded(self, awaitable: Awaitable[T], timeout: float, *,
                      keep_result: bool = False) -> T:
        """Await with a timeout that also ends early, with `Stopped`, when stop() is called."""
        return await bounded(awaitable, timeout, self._stop, keep_result=keep_result)
