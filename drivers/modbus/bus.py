"""The line a Modbus device sits on: one shared connection, its lock, its breakers.

This module owns `Bus`: one `Link` plus the asyncio lock that lets one request
at a time on the wire, the reconnect schedule (backoff with jitter), and one
`Breaker` per unit id. Devices on an RS-485 line (`modbus_rtu`, keyed by the
serial port path) or behind one serial-to-Ethernet converter
(`modbus_rtu_over_tcp`, keyed by host and port) share a Bus through a
module-level registry, so two devices on the same line never fight over the
port; a `modbus_tcp` device gets a private Bus. The breaker makes a dead unit
cost one timeout per retry period instead of one per request. It knows
nothing about tags or samples.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from drivers.base import Backoff, Quality
from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.link import Link, make_link


class BusConflict(Exception):
    """A device declares a line another device already opened with other settings."""


@dataclass
class Breaker:
    """Circuit breaker of one unit on one line.

    Closed: requests go out. After a timeout (or a garbled answer) it opens for
    `retry_period` seconds, during which the unit's requests are skipped; then
    one request is let through (half-open): success closes it, failure opens
    it again. `retry_period = 0` disables it.
    """

    open_until: float | None = None  # monotonic time; None when closed
    reason: str = ""
    quality: Quality = Quality.BAD_TIMEOUT  # given to the tags of a skipped unit

    def allows(self, now: float) -> bool:
        return self.open_until is None or now >= self.open_until

    def remaining(self, now: float) -> float:
        return 0.0 if self.open_until is None else max(0.0, self.open_until - now)

    def trip(self, now: float, retry_period: float, reason: str,
             quality: Quality = Quality.BAD_TIMEOUT) -> bool:
        """Open (again); True when it was closed, i.e. the unit just went bad."""
        fresh = self.open_until is None
        self.reason, self.quality = reason, quality
        self.open_until = now + retry_period if retry_period > 0 else None
        return fresh and retry_period > 0

    def reset(self) -> bool:
        """Close; True when it was open, i.e. the unit just came back."""
        was_open = self.open_until is not None
        self.open_until, self.reason = None, ""
        return was_open


@dataclass
class Bus:
    """One link and everything the devices on it share."""

    key: str
    settings: tuple[Any, ...]
    link: Link
    backoff: Backoff
    owner: str                      # the device that opened it (for conflict messages)
    monotonic: Callable[[], float] = time.monotonic
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: set[str] = field(default_factory=set)
    breakers: dict[int, Breaker] = field(default_factory=dict)
    next_connect: float = 0.0
    generation: int = 0             # successful connects so far
    up: bool = False                # connected, and no failure noticed since
    connect_failures: int = 0
    last_error: str = "not connected yet"
    loop: asyncio.AbstractEventLoop | None = None

    @property
    def connected(self) -> bool:
        return self.link.connected

    def breaker(self, unit: int) -> Breaker:
        return self.breakers.setdefault(unit, Breaker())

    def due(self) -> bool:
        return self.monotonic() >= self.next_connect

    async def connect(self, timeout: float) -> None:
        """Open the link (raises `LinkClosed`); schedules the next try on failure."""
        try:
            await self.link.connect(timeout)
        except Exception as exc:
            self.connect_failures += 1
            self.last_error = str(exc)
            self.next_connect = self.monotonic() + self.backoff.next_delay()
            raise
        self.generation += 1
        self.up = True
        self.connect_failures = 0
        self.breakers.clear()  # a fresh line: give every unit a fresh chance

    def drop(self, reason: str) -> float:
        """Close after a failure; returns the delay before the next connect attempt."""
        self.link.close()
        self.up = False
        delay = self.backoff.next_delay()
        self.next_connect = self.monotonic() + delay
        self.last_error = reason
        return delay


_BUSES: dict[str, Bus] = {}


def attach(device: str, config: ModbusDeviceConfig, backoff: Backoff,
           monotonic: Callable[[], float] = time.monotonic) -> Bus:
    """The Bus for `config`'s line, opened on first use; shared for RTU lines.

    Raises `BusConflict` when the line is already in use with other settings.
    """
    loop = asyncio.get_running_loop()
    if not config.shared_bus:
        return Bus(config.bus_key, config.line_settings, make_link(config), backoff, device,
                   monotonic, users={device}, loop=loop)
    bus = _BUSES.get(config.bus_key)
    if bus is not None and (bus.loop is not loop or not bus.users):
        bus.link.close()  # left over from another event loop (tests) or by its last user
        bus = None
    if bus is None:
        bus = Bus(config.bus_key, config.line_settings, make_link(config), backoff, device,
                  monotonic, loop=loop)
        _BUSES[config.bus_key] = bus
    elif bus.settings != config.line_settings:
        raise BusConflict(f"{config.endpoint} is already in use by device {bus.owner} with "
                          f"other line settings ({_settings_text(bus.settings)}); devices on "
                          f"one line must agree on them")
    bus.users.add(device)
    return bus


def detach(device: str, bus: Bus) -> None:
    """`device` leaves the line; the last one out closes it."""
    bus.users.discard(device)
    if bus.users:
        return
    bus.up = False
    bus.link.close()
    if _BUSES.get(bus.key) is bus:
        del _BUSES[bus.key]


def _settings_text(settings: tuple[Any, ...]) -> str:
    if len(settings) == 8:
        names = ("backend", "mode", "baudrate", "parity", "stopbits", "bytesize",
                 "close_port_after_each_call", "handle_local_echo")
        return " ".join(f"{k}={v}" for k, v in zip(names, settings))
    return " ".join(map(str, settings))
