"""The serial instrument driver: a scale or a barcode scanner on a serial port.

This module owns the asyncio side of one instrument: polling a scale with its
command (or listening to a streaming scale, or to a scanner), turning each
line into one batch of samples with the parsers, marking bad lines (garbage,
over-long, unexpected or non-matching) with a bad quality and one log line,
noticing a port that disappears (unplugged USB adapter), reopening it with
backoff until the path exists again, keeping health figures, and stopping
promptly. Blocking port calls live in `port.py`, framing in `framing.py`, line
meanings in `parsers.py`, configuration in `config.py`. It never writes to an
instrument beyond the configured command.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

import serial

from drivers.base import Backoff, ConfigCollector, Driver, Quality, Sample, Stopped, bounded
from drivers.serial.config import SerialDeviceConfig, parse_device
from drivers.serial.framing import GarbageLine, Line, Overflow, decode_line, preview
from drivers.serial.parsers import (BUSY, OVERLOAD, STABLE, UNDERLOAD, ScaleError,
                                    UnexpectedLine, bad_samples, parse_scan, parse_weighing,
                                    scan_samples, weighing_samples)
from drivers.serial.port import PORT_ERRORS, READ_SLICE, PortGone, SerialPort

log = logging.getLogger("linebridge.drivers.serial")

T = TypeVar("T")

#: extra time allowed to a port call beyond its own timeout before it counts as hung
_GRACE = 2.0
#: a port that stayed open this long resets the reconnect backoff when it is lost
_LONG_OPEN = 10.0
_NOT_TRUSTED = {OVERLOAD, UNDERLOAD, BUSY}


_Stopped = Stopped


class SerialDriver(Driver):
    """Reads one serial instrument (MT-SICS scale or barcode scanner) into samples.

    `samples()` yields one batch per scale response (poll mode: one per poll;
    stream mode: one per line) or per scan. Each batch carries every tag of the
    device (`SerialDriver.tags`), all with the same `source_ts`.
    """

    type_name = "serial"
    config: SerialDeviceConfig

    def __init__(self, name: str, config: SerialDeviceConfig,
                 clock: Callable[[], float] = time.time, *,
                 backoff: Backoff | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, config, clock)
        self.backoff = backoff or Backoff(initial=0.5, cap=30.0)
        self._monotonic = monotonic
        self._port = SerialPort(name, config)
        self._stop = asyncio.Event()
        self._started = False
        self._ever_open = False
        self._opened_at = 0.0
        self._next_open = 0.0
        self._open_failures = 0
        self._comm_error = f"device {name}: port {config.port} not opened yet"
        self._problem: str | None = None  # the kind of the current problem streak
        #: lines refused, by reason (also counted in `health.errors`)
        self.rejected: dict[str, int] = {"garbage": 0, "too_long": 0, "unexpected": 0,
                                         "unmatched": 0}
        self.tags: tuple[str, ...] = config.tag_names
        self._pattern = None if config.parser == "scale" else config.compiled_pattern

    # -- contract -------------------------------------------------------------------------

    @classmethod
    def parse_config(cls, section: dict[str, Any], path: str,
                     issues: ConfigCollector) -> SerialDeviceConfig | None:
        return parse_device(section, path, issues)

    async def start(self) -> None:
        """Nothing to prepare: the port is opened by the read loop, never blocking here."""
        self._started = True

    async def stop(self) -> None:
        """End `samples()` promptly and close the port; safe to call twice."""
        self._stop.set()
        await self._port.shutdown()
        self.health.connected = False

    async def samples(self) -> AsyncIterator[list[Sample]]:
        if not self._started:
            await self.start()
        cfg = self.config
        polling = cfg.parser == "scale" and cfg.mode == "poll"
        loop = self._poll_loop() if polling else self._stream_loop()
        try:
            async with contextlib.aclosing(loop):
                async for batch in loop:
                    yield batch
        finally:
            await self._port.shutdown()
            self.health.connected = False

    # -- poll mode (scale) ----------------------------------------------------------------

    async def _poll_loop(self) -> AsyncIterator[list[Sample]]:
        cfg = self.config
        assert cfg.command is not None
        command = cfg.command.encode("ascii") + cfg.terminator
        next_tick = self._monotonic()
        while not self._stop.is_set():
            began = self._monotonic()
            try:
                batch = await self._poll_once(command)
            except _Stopped:
                return
            self.health.poll_latency_ms = round((self._monotonic() - began) * 1000, 3)
            yield batch
            now = self._monotonic()
            while next_tick <= now:
                next_tick += cfg.poll_interval
            if await self._sleep(next_tick - now):
                return

    async def _poll_once(self, command: bytes) -> list[Sample]:
        cfg = self.config
        if not self._port.is_open:
            if self._monotonic() >= self._next_open:
                await self._open()
            if not self._port.is_open:
                return self._all_bad(Quality.BAD_COMM, self._comm_error)
        try:
            events, heard = await self._bounded(
                self._port.run(self._port.exchange, command, cfg.read_timeout),
                cfg.read_timeout + _GRACE)
        except serial.SerialTimeoutException:
            return self._no_answer(f"writing {cfg.command!r} timed out after "
                                   f"{cfg.read_timeout:g} s")
        except PORT_ERRORS as exc:
            await self._lose(f"read failed: {exc}")
            return self._all_bad(Quality.BAD_COMM, self._comm_error)
        except asyncio.TimeoutError:
            await self._lose("port call hung")
            return self._all_bad(Quality.BAD_COMM, self._comm_error)
        ts = self.clock()
        for event in events:
            batch = self._event_batch(event, ts)
            if batch is not None:
                return batch
        if heard:
            return self._no_answer(f"no complete line within {cfg.read_timeout:g} s after "
                                   f"{cfg.command!r} (bytes arrived without the terminator "
                                   f"{cfg.terminator!r}: check `terminator`)")
        return self._no_answer(f"no response to {cfg.command!r} within {cfg.read_timeout:g} s")

    def _no_answer(self, reason: str) -> list[Sample]:
        error = f"device {self.name}: {reason}"
        self._note_problem("no_response", error,
                           'event=no_response device=%s port=%s error="%s"',
                           self.name, self.config.port, reason)
        return self._all_bad(Quality.BAD_TIMEOUT, error)

    # -- stream mode (streaming scale, scanner) ------------------------------------------------

    async def _stream_loop(self) -> AsyncIterator[list[Sample]]:
        cfg = self.config
        watch_silence = cfg.parser == "scale"
        outage_reported = False
        last_heard = self._monotonic()
        try:
            while not self._stop.is_set():
                if not self._port.is_open:
                    wait = self._next_open - self._monotonic()
                    if wait > 0:
                        if await self._sleep(wait):
                            return
                        continue
                    if not await self._open() or not await self._start_stream():
                        if not outage_reported:
                            outage_reported = True
                            yield self._all_bad(Quality.BAD_COMM, self._comm_error)
                        continue
                    outage_reported = False
                    last_heard = self._monotonic()
                try:
                    events, count = await self._bounded(self._port.run(self._port.read_events),
                                                        READ_SLICE + _GRACE)
                except (*PORT_ERRORS, asyncio.TimeoutError) as exc:
                    reason = "port call hung" if isinstance(exc, asyncio.TimeoutError) \
                        else f"read failed: {exc}"
                    await self._lose(reason)
                    outage_reported = True
                    yield self._all_bad(Quality.BAD_COMM, self._comm_error)
                    continue
                now = self._monotonic()
                if count:
                    last_heard = now
                ts = self.clock()
                for event in events:
                    batch = self._event_batch(event, ts)
                    if batch is None:
                        continue
                    yield batch
                    if self._stop.is_set():
                        return
                if watch_silence and now - last_heard >= cfg.read_timeout:
                    last_heard = now
                    yield self._no_answer(f"no data from the streaming scale for "
                                          f"{cfg.read_timeout:g} s")
        except _Stopped:
            return

    async def _start_stream(self) -> bool:
        """Send the configured command once after opening (e.g. `SIR`); False if it failed."""
        cfg = self.config
        if cfg.parser != "scale" or not cfg.command:
            return True
        try:
            await self._bounded(self._port.run(self._port.write,
                                               cfg.command.encode("ascii") + cfg.terminator),
                                cfg.read_timeout + _GRACE)
        except (*PORT_ERRORS, asyncio.TimeoutError) as exc:
            await self._lose(f"sending {cfg.command!r} failed: {exc!r}")
            return False
        return True

    # -- lines -> samples ---------------------------------------------------------------

    def _event_batch(self, event: Line | Overflow, ts: float) -> list[Sample] | None:
        """The batch for one framing event, or None for a blank line."""
        cfg = self.config
        if isinstance(event, Overflow):
            return self._reject("too_long", f"line longer than {cfg.max_line} bytes discarded",
                                event.head, ts)
        try:
            text = decode_line(event.data)
        except GarbageLine as exc:
            return self._reject("garbage", f"garbage on the line: {exc}", event.data, ts)
        if not text:
            return None
        if self._pattern is not None:
            groups = parse_scan(text, self._pattern)
            if groups is None:
                return self._reject("unmatched", "scan does not match the pattern", event.data,
                                    ts)
            self._heard(ts)
            self._recovered()
            return scan_samples(self.name, cfg.tag, text, groups, ts)
        try:
            weighing = parse_weighing(text)
        except ScaleError as exc:
            error = f"device {self.name}: scale answered {exc}"
            self._note_problem(f"scale_error:{exc.code}", error,
                               'event=scale_error device=%s code=%s error="%s"',
                               self.name, exc.code, exc)
            return self._all_bad(Quality.BAD_COMM, error, ts)
        except UnexpectedLine:
            return self._reject("unexpected", "unexpected response", event.data, ts)
        self._heard(ts)
        if weighing.status == STABLE:
            self._recovered()
        elif weighing.status in _NOT_TRUSTED:
            self._note_problem(weighing.status, f"device {self.name}: {weighing.status}",
                               "event=weight_not_trusted device=%s status=%s",
                               self.name, weighing.status, level=logging.INFO,
                               count_error=False)
        elif self._problem in _NOT_TRUSTED:
            self._recovered()  # a dynamic weight: back in range, settling
        return weighing_samples(self.name, cfg.tag, cfg.unit_tag, weighing, ts)

    def _reject(self, kind: str, reason: str, raw: bytes, ts: float) -> list[Sample]:
        self.rejected[kind] += 1
        error = f"device {self.name}: {reason}: {preview(raw)}"
        self._note_problem(kind, error, 'event=line_rejected device=%s port=%s reason=%s '
                           'error="%s" line=%s', self.name, self.config.port, kind, reason,
                           preview(raw), every_time=self._pattern is not None)
        return self._all_bad(Quality.BAD_COMM, error, ts)

    def _note_problem(self, kind: str, error: str, fmt: str, *args: Any,
                      level: int = logging.WARNING, count_error: bool = True,
                      every_time: bool = False) -> None:
        """Count a problem; log it once per streak (each time for a scanner's scans)."""
        if count_error:
            self.health.errors += 1
            self.health.last_error = error
        if every_time or kind != self._problem:
            log.log(level, fmt, *args)
        self._problem = kind

    def _heard(self, ts: float) -> None:
        """The instrument answered with a line this driver understands."""
        self.health.reads += 1
        self.health.last_good_read = ts
        self.backoff.reset()

    def _recovered(self) -> None:
        """A trusted value again: end the current problem streak."""
        if self._problem is not None and self._pattern is None:
            log.info("event=read_recovered device=%s port=%s after=%s", self.name,
                     self.config.port, self._problem)
        self._problem = None

    # -- the port ------------------------------------------------------------------------

    async def _open(self) -> bool:
        cfg = self.config
        try:
            await self._bounded(self._port.run(self._port.open), cfg.read_timeout + _GRACE)
        except PortGone as exc:
            reason = str(exc)
        except asyncio.TimeoutError:
            reason = "opening the port timed out"
        except (*PORT_ERRORS, ValueError) as exc:
            reason = f"open failed: {exc}"
        else:
            self.health.connected = True
            if self._ever_open:
                self.health.reconnects += 1
            self._ever_open = True
            self._opened_at = self._monotonic()
            self._open_failures = 0
            log.info("event=port_opened device=%s port=%s baudrate=%d framing=%d%s%g "
                     "reconnects=%d", self.name, cfg.port, cfg.baudrate, cfg.bytesize,
                     cfg.pyserial_parity, cfg.stopbits, self.health.reconnects)
            return True
        self.health.errors += 1
        self._open_failures += 1
        delay = self.backoff.next_delay()
        self._next_open = self._monotonic() + delay
        self._comm_error = f"device {self.name}: {reason}"
        self.health.last_error = self._comm_error
        level = logging.WARNING if self._open_failures == 1 else logging.INFO
        log.log(level, 'event=open_failed device=%s port=%s attempt=%d retry_in_s=%.2f '
                'error="%s"', self.name, cfg.port, self._open_failures, delay, reason)
        return False

    async def _lose(self, reason: str) -> None:
        """The port failed: close it, mark it down, schedule the reopen with backoff."""
        if self._monotonic() - self._opened_at >= _LONG_OPEN:
            self.backoff.reset()
        with contextlib.suppress(*PORT_ERRORS, asyncio.TimeoutError):
            await asyncio.wait_for(self._port.run(self._port.close), _GRACE)
        self.health.connected = False
        self.health.errors += 1
        delay = self.backoff.next_delay()
        self._next_open = self._monotonic() + delay
        self._comm_error = f"device {self.name}: {reason}"
        self.health.last_error = self._comm_error
        self._problem = None
        log.warning('event=connection_lost device=%s port=%s retry_in_s=%.2f error="%s"',
                    self.name, self.config.port, delay, reason)

    # -- helpers -------------------------------------------------------------------------

    def _all_bad(self, quality: Quality, error: str, ts: float | None = None) -> list[Sample]:
        return bad_samples(self.name, self.tags, quality, error,
                           self.clock() if ts is None else ts)

    async def _sleep(self, delay: float) -> bool:
        """Wait `delay` seconds; True when stop() ended the wait."""
        if self._stop.is_set():
            return True
        try:
            await asyncio.wait_for(self._stop.wait(), max(delay, 0))
            return True
        except asyncio.TimeoutError:
            return False

    async def _bounded(self, awaitable: Awaitable[T], timeout: float) -> T:
        """Await with a timeout that also ends early, with `Stopped`, when stop() is called."""
        return await bounded(awaitable, timeout, self._stop)
