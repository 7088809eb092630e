"""The Modbus TCP driver: polls one device and yields samples with quality.

This module owns the poll loop of one device: connecting with a timeout,
reading the planned (coalesced) requests, decoding tags, marking tags bad when
the device fails (`bad_comm`, `bad_timeout`, or `bad_config` for a Modbus
exception response), reconnecting with backoff, keeping health figures, and
stopping promptly. Configuration parsing lives in `config.py`, request planning
in `plan.py`, register decoding in `codec.py`. It never writes to a device.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ExceptionResponse

from drivers.base import Backoff, ConfigCollector, Driver, Quality, Sample
from drivers.modbus.codec import CodecError, decode, scale_value
from drivers.modbus.config import ModbusDeviceConfig, parse_device
from drivers.modbus.plan import ReadRequest, plan_reads, single_reads

log = logging.getLogger("linebridge.drivers.modbus")

T = TypeVar("T")

#: Modbus exception codes, in the words of the Modbus application protocol spec
EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
#: exception codes that say the request itself is wrong for this device (the tag map)
_CONFIG_EXCEPTIONS = frozenset({1, 2, 3})
#: exception codes where reading the tags one by one can isolate the bad tag
_SPLIT_EXCEPTIONS = frozenset({2, 3})

# pymodbus renamed `slave=` to `device_id=` in 3.10; support both.
_UNIT_KW = ("device_id" if "device_id" in inspect.signature(
    AsyncModbusTcpClient.read_holding_registers).parameters else "slave")


def exception_text(code: int) -> str:
    """`illegal data address (2)` for code 2."""
    return f"{EXCEPTION_NAMES.get(code, 'exception')} ({code})"


class _Stopped(Exception):
    """stop() was called while the poll loop was waiting."""


class _ConnectionLost(Exception):
    """The connection failed during a read; the remaining tags get `quality`."""

    def __init__(self, quality: Quality, reason: str) -> None:
        super().__init__(reason)
        self.quality, self.reason = quality, reason


class ModbusDriver(Driver):
    """Polls holding/input registers of one Modbus TCP device.

    `samples()` yields one list per poll with one `Sample` per configured tag,
    in configuration order. `stop()` ends the generator promptly.
    """

    type_name = "modbus_tcp"
    config: ModbusDeviceConfig

    def __init__(self, name: str, config: ModbusDeviceConfig,
                 clock: Callable[[], float] = time.time, *,
                 backoff: Backoff | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name, config, clock)
        self.backoff = backoff or Backoff(initial=0.5, cap=30.0)
        self._monotonic = monotonic
        self._client: AsyncModbusTcpClient | None = None
        self._stop = asyncio.Event()
        self._started = False
        self._ever_connected = False
        self._next_connect = 0.0
        self._connect_failures = 0
        self._comm_error = "not connected yet"
        self._split: set[str] = set()  # tags read one by one after an exception response
        self._requests: list[ReadRequest] = []
        self._failing: dict[tuple[str, int, int], str] = {}  # request -> error, logged once

    # -- contract -----------------------------------------------------------------

    @classmethod
    def parse_config(cls, section: dict[str, Any], path: str,
                     issues: ConfigCollector) -> ModbusDeviceConfig | None:
        return parse_device(section, path, issues)

    async def start(self) -> None:
        """Plan the reads; connecting happens in the poll loop, never blocking here."""
        self._replan()
        self._started = True

    async def stop(self) -> None:
        """End `samples()` promptly and close the connection; safe to call twice."""
        self._stop.set()
        self._close_client()

    async def samples(self) -> AsyncIterator[list[Sample]]:
        if not self._started:
            await self.start()
        interval = self.config.poll_interval
        next_tick = self._monotonic()
        try:
            while not self._stop.is_set():
                began = self._monotonic()
                try:
                    batch = await self._poll()
                except _Stopped:
                    return
                except Exception as exc:  # a driver must outlive surprises from the stack
                    log.exception('event=poll_error device=%s error="%s"', self.name, exc)
                    self.health.errors += 1
                    self._drop_connection(f"unexpected error: {exc!r}")
                    batch = self._all_bad(Quality.BAD_COMM, self._comm_error)
                self.health.poll_latency_ms = round((self._monotonic() - began) * 1000, 3)
                yield batch
                now = self._monotonic()
                while next_tick <= now:
                    next_tick += interval
                try:
                    await self._bounded(self._stop.wait(), next_tick - now)
                    return  # stop was set
                except asyncio.TimeoutError:
                    pass
                except _Stopped:
                    return
        finally:
            self._close_client()

    # -- one poll -------------------------------------------------------------------

    async def _poll(self) -> list[Sample]:
        if self._client is not None and not self._client.connected:
            self.health.errors += 1
            self._drop_connection("connection lost")
        if self._client is None and self._monotonic() >= self._next_connect:
            await self._connect()
        if self._client is None:
            return self._all_bad(Quality.BAD_COMM, self._comm_error)
        return await self._read_all()

    async def _read_all(self) -> list[Sample]:
        found: dict[str, Sample] = {}
        requests = self._requests
        for i, request in enumerate(requests):
            try:
                await self._read_request(request, found)
            except _ConnectionLost as lost:
                error = f"device {self.name}: {lost.reason}"
                ts = self.clock()
                for rest in requests[i:]:
                    for tag in rest.tags:
                        found.setdefault(tag.name, Sample(self.name, tag.name, None,
                                                          lost.quality, ts, error))
                self._drop_connection(lost.reason)
                break
        return [found[name] for name in self.config.tags if name in found]

    async def _read_request(self, request: ReadRequest, found: dict[str, Sample]) -> None:
        result = await self._execute(request)
        if isinstance(result, list):
            self._decode(request, result, found)
            return
        code = result
        if code in _SPLIT_EXCEPTIONS and len(request.tags) > 1:
            log.info('event=read_split device=%s tags=%s function=%s address=%d count=%d '
                     'error="%s"', self.name, request.tag_names, request.function,
                     request.address, request.count, exception_text(code))
            for single in single_reads(request.tags):
                await self._read_request(single, found)
            # Read the failing tags alone from now on; if every tag reads fine alone,
            # the gap between them is the problem, so read all of them alone.
            failed = [t.name for t in request.tags if found[t.name].quality != Quality.GOOD]
            self._split.update(failed or (t.name for t in request.tags))
            self._replan()
            return
        self._mark_exception(request, code, found)

    async def _execute(self, request: ReadRequest) -> list[int] | int:
        """Registers of the request, or the Modbus exception code the device answered."""
        client = self._client
        if client is None or not client.connected:
            # pymodbus would silently reconnect here, bypassing backoff and health figures
            self.health.errors += 1
            raise _ConnectionLost(Quality.BAD_COMM, "connection lost")
        read = (client.read_holding_registers if request.function == "holding"
                else client.read_input_registers)
        kwargs = {"count": request.count, _UNIT_KW: self.config.unit_id}
        try:
            response = await self._bounded(read(request.address, **kwargs), self.config.timeout)
        except asyncio.TimeoutError:
            self.health.errors += 1
            if not client.connected:
                raise _ConnectionLost(Quality.BAD_COMM, "connection lost during read") from None
            raise _ConnectionLost(Quality.BAD_TIMEOUT,
                                  f"no response within {self.config.timeout:g} s "
                                  f"({request.function} address={request.address} "
                                  f"count={request.count})") from None
        except (ModbusException, OSError) as exc:
            self.health.errors += 1
            raise _ConnectionLost(Quality.BAD_COMM, f"read failed: {exc}") from exc
        if isinstance(response, ExceptionResponse) or response.isError():
            self.health.errors += 1
            code = getattr(response, "exception_code", None)
            if not isinstance(code, int):
                raise _ConnectionLost(Quality.BAD_COMM, f"unexpected response: {response}")
            return code
        registers = list(getattr(response, "registers", None) or [])
        if len(registers) < request.count:
            self.health.errors += 1
            raise _ConnectionLost(Quality.BAD_COMM,
                                  f"short response: {len(registers)} of {request.count} "
                                  f"registers at {request.function} address={request.address}")
        self.health.reads += 1
        return registers[:request.count]

    def _decode(self, request: ReadRequest, registers: list[int],
                found: dict[str, Sample]) -> None:
        ts = self.clock()
        self.health.last_good_read = ts
        self.backoff.reset()
        self._connect_failures = 0
        key = (request.function, request.address, request.count)
        if key in self._failing:
            del self._failing[key]
            log.info("event=read_recovered device=%s tags=%s function=%s address=%d count=%d",
                     self.name, request.tag_names, request.function, request.address,
                     request.count)
        for tag in request.tags:
            try:
                raw = decode(request.registers_of(tag, registers), tag.type, tag.word_order)
            except CodecError as exc:  # cannot happen with a full response; be explicit
                found[tag.name] = Sample(self.name, tag.name, None, Quality.BAD_COMM, ts,
                                         f"device {self.name}: tag {tag.name}: {exc}")
                continue
            found[tag.name] = Sample(self.name, tag.name, scale_value(raw, tag.scale, tag.offset),
                                     Quality.GOOD, ts)

    def _mark_exception(self, request: ReadRequest, code: int,
                        found: dict[str, Sample]) -> None:
        text = exception_text(code)
        quality = Quality.BAD_CONFIG if code in _CONFIG_EXCEPTIONS else Quality.BAD_COMM
        error = (f"device {self.name}: tag(s) {request.tag_names}: {request.function} "
                 f"registers address={request.address} count={request.count}: "
                 f"exception {text}")
        self.health.last_error = error
        key = (request.function, request.address, request.count)
        if self._failing.get(key) != text:
            self._failing[key] = text
            log.warning('event=read_failed device=%s tags=%s function=%s address=%d count=%d '
                        'error="%s"', self.name, request.tag_names, request.function,
                        request.address, request.count, text)
        ts = self.clock()
        for tag in request.tags:
            found[tag.name] = Sample(self.name, tag.name, None, quality, ts, error)

    # -- connection -----------------------------------------------------------------

    async def _connect(self) -> None:
        cfg = self.config
        client = AsyncModbusTcpClient(cfg.host, port=cfg.port, timeout=cfg.timeout + 0.5,
                                      retries=0, reconnect_delay=0)
        try:
            ok = await self._bounded(client.connect(), cfg.timeout)
            reason = "connection refused or unreachable"
        except asyncio.TimeoutError:
            ok, reason = False, f"connect timed out after {cfg.timeout:g} s"
        except _Stopped:
            client.close()
            raise
        except OSError as exc:
            ok, reason = False, f"connect failed: {exc}"
        if ok and client.connected:
            self._client = client
            self.health.connected = True
            if self._ever_connected:
                self.health.reconnects += 1
            self._ever_connected = True
            self._split.clear()  # the device may have been reprogrammed: coalesce again
            self._replan()
            log.info("event=connected device=%s host=%s port=%d unit_id=%d reconnects=%d",
                     self.name, cfg.host, cfg.port, cfg.unit_id, self.health.reconnects)
            return
        client.close()
        self.health.errors += 1
        self._connect_failures += 1
        delay = self.backoff.next_delay()
        self._next_connect = self._monotonic() + delay
        self._comm_error = f"device {self.name}: {reason} ({cfg.host}:{cfg.port})"
        self.health.last_error = self._comm_error
        level = logging.WARNING if self._connect_failures == 1 else logging.INFO
        log.log(level, 'event=connect_failed device=%s host=%s port=%d attempt=%d '
                'retry_in_s=%.2f error="%s"', self.name, cfg.host, cfg.port,
                self._connect_failures, delay, reason)

    def _drop_connection(self, reason: str) -> None:
        """Close after a failure and schedule the reconnect with backoff."""
        self._close_client()
        delay = self.backoff.next_delay()
        self._next_connect = self._monotonic() + delay
        self._comm_error = f"device {self.name}: {reason}"
        self.health.last_error = self._comm_error
        log.warning('event=connection_lost device=%s host=%s port=%d retry_in_s=%.2f '
                    'error="%s"', self.name, self.config.host, self.config.port, delay, reason)

    def _close_client(self) -> None:
        client, self._client = self._client, None
        self.health.connected = False
        if client is not None:
            client.close()

    # -- helpers --------------------------------------------------------------------

    def _replan(self) -> None:
        tags = list(self.config.tags.values())
        coalesced = [t for t in tags if t.name not in self._split]
        isolated = [t for t in tags if t.name in self._split]
        self._requests = plan_reads(coalesced, self.config.max_gap) + single_reads(isolated)

    def _all_bad(self, quality: Quality, error: str) -> list[Sample]:
        ts = self.clock()
        return [Sample(self.name, name, None, quality, ts, error) for name in self.config.tags]

    async def _bounded(self, awaitable: Awaitable[T], timeout: float) -> T:
        """Await with a timeout that also ends early, with `_Stopped`, when stop() is called."""
        if self._stop.is_set():
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            raise _Stopped()
        task = asyncio.ensure_future(awaitable)
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({task, stopper}, timeout=max(timeout, 0),
                                         return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                return task.result()
            if stopper in done:
                raise _Stopped()
            raise asyncio.TimeoutError()
        finally:
            for fut in (task, stopper):
                if not fut.done():
                    fut.cancel()
            await asyncio.gather(task, stopper, return_exceptions=True)
