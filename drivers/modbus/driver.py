"""The Modbus driver: polls one device (one unit id) and yields samples with quality.

This module owns the poll loop of one device: reading the planned (coalesced)
requests one at a time under the line's lock, decoding tags, marking tags bad
when the device or line fails (`bad_comm`, `bad_timeout`, or `bad_config` for
a Modbus exception response), isolating the bad tag of a coalesced request,
honouring the unit's circuit breaker on shared lines, keeping health figures,
writing to tags marked writable, and stopping promptly. Connecting and taking
turns on the line live in `line.py`/`bus.py`, configuration in
`config.py`/`tags.py`, planning in `plan.py`, the wire in `link.py`/`mmlink.py`,
the value codec in `codec.py`, write checks in `write.py`.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any, AsyncIterator, Callable

from drivers.base import Backoff, ConfigCollector, Driver, Quality, Sample
from drivers.modbus.bus import Bus
from drivers.modbus.codec import CodecError, decode, scale_value
from drivers.modbus.config import ModbusDeviceConfig, parse_device
from drivers.modbus.link import (EXCEPTION_NAMES, DeviceException, LinkClosed, LinkError,
                                 LinkGarbled, LinkTimeout, exception_text)
from drivers.modbus.line import DeviceLine, LineBusy, Stopped
from drivers.modbus.plan import ReadRequest, plan_reads, single_reads
from drivers.modbus.tags import TagConfig
from drivers.modbus.write import WriteFailed, WriteRefused, prepare_write

__all__ = ["ModbusDriver", "EXCEPTION_NAMES", "exception_text"]

# decode steps: the general codec path, or one of the one-word shortcuts
_CODEC, _BIT, _UINT16, _INT16 = 0, 1, 2, 3
_MAX_STEPS = 1024
_Step = tuple  # (tag, index of its first register in the answer, kind, scaled, origin)


def _step(request: ReadRequest, tag: TagConfig, unit_id: int) -> "_Step":
    """How `_decode` reads `tag` from `request`'s answer (decided once per request)."""
    kind = _CODEC
    if tag.is_bit:
        kind = _BIT
    elif tag.byte_order == "big" and tag.bit is None and tag.type in ("uint16", "int16"):
        kind = _UINT16 if tag.type == "uint16" else _INT16
    scaled = not (tag.scale == 1 and tag.offset == 0)
    return (tag, tag.address - request.address, kind, scaled, f"unit {unit_id} {tag.function} {tag.address}")

log = logging.getLogger("linebridge.drivers.modbus")

#: exception codes that say the request itself is wrong for this device (the tag map)
_CONFIG_EXCEPTIONS = frozenset({1, 2, 3})
#: exception codes where reading the tags one by one can isolate the bad tag
_SPLIT_EXCEPTIONS = frozenset({2, 3})


class _ConnectionLost(Exception):
    """The line failed during a request; the remaining tags get `quality`."""

    def __init__(self, quality: Quality, reason: str) -> None:
        super().__init__(reason)
        self.quality, self.reason = quality, reason


class ModbusDriver(Driver):
    """Polls coils, discrete inputs, holding and input registers of one Modbus device.

    `samples()` yields one list per poll with one `Sample` per configured tag,
    in configuration order. `write(tag, value)` writes a tag marked writable.
    `stop()` ends the generator promptly.
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
        self._stop = asyncio.Event()
        self._started = False
        self._line = DeviceLine(name, config, self.health, self.backoff, self._stop,
                                self._on_connected, monotonic)
        self._split: set[str] = set()  # tags read one by one after an exception response
        self._requests: list[ReadRequest] = []
        self._failing: dict[tuple[str, int, int], str] = {}  # request -> error, logged once
        self._bad_values: set[str] = set()  # tags whose value was NaN/inf, logged once
        # each planned request's tags as decode steps, made on its first answer, by id(request); a
        # request read once (a split) is not kept beyond the cap, and a new plan starts afresh
        self._steps: dict[int, tuple[ReadRequest, list[_Step]]] = {}

    # -- contract -----------------------------------------------------------------

    @classmethod
    def parse_config(cls, section: dict[str, Any], path: str,
                     issues: ConfigCollector) -> ModbusDeviceConfig | None:
        return parse_device(section, path, issues)

    async def start(self) -> None:
        """Plan the reads and join the line; connecting happens in the poll loop."""
        self._replan()
        self._started = True
        self._line.attach()

    async def stop(self) -> None:
        """End `samples()` promptly and leave the line; safe to call twice."""
        self._stop.set()
        self._line.detach()

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
                except Stopped:
                    return
                except Exception as exc:  # a driver must outlive surprises from the stack
                    log.exception('event=poll_error device=%s error="%s"', self.name, exc)
                    self.health.errors += 1
                    if self._line.bus is not None:
                        self._line.drop(self._line.bus, f"unexpected error: {exc!r}")
                    batch = self._all_bad(Quality.BAD_COMM, f"device {self.name}: "
                                                            f"unexpected error: {exc!r}")
                self.health.poll_latency_ms = round((self._monotonic() - began) * 1000, 3)
                yield batch
                now = self._monotonic()
                while next_tick <= now:
                    next_tick += interval
                try:
                    await self._line.bounded(self._stop.wait(), next_tick - now)
                    return  # stop was set
                except asyncio.TimeoutError:
                    pass
                except Stopped:
                    return
        finally:
            self._line.detach()

    async def write(self, tag: str, value: Any) -> None:
        """Write `value` (engineering units) to `tag`, which must be marked writable.

        Raises `WriteRefused` (nothing sent: unknown tag, read-only table, not
        writable), `WriteValueError` (wrong type or out of range) or
        `WriteFailed` (the line or the device failed; see its `quality`).
        """
        spec = self.config.tags.get(tag)
        try:
            payload = prepare_write(self.name, tag, spec, value)
        except WriteRefused as exc:
            log.warning('event=write_refused device=%s tag=%s value=%r error="%s"',
                        self.name, tag, value, exc)
            raise
        assert spec is not None
        bus = self._line.attach()
        if bus is None:
            if self._line.conflict is not None:
                raise WriteFailed(self._line.conflict, Quality.BAD_CONFIG)
            raise WriteFailed(f"device {self.name}: stopped", Quality.BAD_COMM)
        try:
            await self._line.ensure_connected(bus)
            if not bus.connected:
                raise WriteFailed(self._line.comm_error(bus), Quality.BAD_COMM)
            async with self._line.holding(bus):
                await self._send_write(bus, spec.name, spec.address, payload)
        except Stopped:
            raise WriteFailed(f"device {self.name}: stopped during the write to {tag}",
                              Quality.BAD_COMM) from None
        except LineBusy as exc:
            failed = WriteFailed(f"device {self.name}: tag {tag}: {exc.reason}", exc.quality)
            log.warning('event=write_failed device=%s tag=%s unit_id=%d quality=%s error="%s"',
                        self.name, tag, self.config.unit_id, exc.quality.value, failed)
            raise failed from None
        except WriteFailed as exc:
            log.warning('event=write_failed device=%s tag=%s unit_id=%d quality=%s error="%s"',
                        self.name, tag, self.config.unit_id, exc.quality.value, exc)
            raise
        log.info("event=written device=%s tag=%s unit_id=%d function=%s address=%d value=%r",
                 self.name, tag, self.config.unit_id, spec.function, spec.address, value)

    # -- one poll -------------------------------------------------------------------

    async def _poll(self) -> list[Sample]:
        bus = self._line.attach()
        if bus is None:
            if self._line.conflict is None:
                raise Stopped()
            return self._all_bad(Quality.BAD_CONFIG, self._line.conflict)
        await self._line.ensure_connected(bus)
        if not bus.connected:
            return self._all_bad(Quality.BAD_COMM, self._line.comm_error(bus))
        return await self._read_all(bus)

    async def _read_all(self, bus: Bus) -> list[Sample]:
        found: dict[str, Sample] = {}
        requests = self._requests
        for i, request in enumerate(requests):
            try:
                await self._read_request(bus, request, found)
            except _ConnectionLost as lost:
                error = f"device {self.name}: {lost.reason}"
                ts = self.clock()
                for rest in requests[i:]:
                    for tag in rest.tags:
                        found.setdefault(tag.name, Sample(self.name, tag.name, None,
                                                          lost.quality, ts, error))
                self._line.drop(bus, lost.reason)
                break
        return [found[name] for name in self.config.tags if name in found]

    async def _read_request(self, bus: Bus, request: ReadRequest,
                            found: dict[str, Sample]) -> None:
        result = await self._execute(bus, request, found)
        if result is None:
            return
        if isinstance(result, list):
            self._decode(request, result, found)
            return
        code = result
        if code in _SPLIT_EXCEPTIONS and len(request.tags) > 1:
            log.info('event=read_split device=%s tags=%s function=%s address=%d count=%d '
                     'error="%s"', self.name, request.tag_names, request.function,
                     request.address, request.count, exception_text(code))
            for single in single_reads(request.tags):
                await self._read_request(bus, single, found)
            # Read the failing tags alone from now on; if every tag reads fine alone,
            # the gap between them is the problem, so read all of them alone.
            failed = [t.name for t in request.tags
                      if t.name not in found or found[t.name].quality != Quality.GOOD]
            self._split.update(failed or (t.name for t in request.tags))
            self._replan()
            return
        self._mark_exception(request, code, found)

    async def _execute(self, bus: Bus, request: ReadRequest,
                       found: dict[str, Sample]) -> list[Any] | int | None:
        """The request's values, the Modbus exception code the device answered, or None
        when the request failed or was skipped (its tags are then in `found`)."""
        cfg = self.config
        try:
            async with self._line.holding(bus):
                if not bus.connected:
                    self.health.errors += 1
                    raise _ConnectionLost(Quality.BAD_COMM, "connection lost")
                breaker = bus.breaker(cfg.unit_id) if cfg.shared_bus else None
                now = self._monotonic()
                if breaker is not None and not breaker.allows(now):
                    self._mark(request, breaker.quality,
                               f"unit {cfg.unit_id} not answering ({breaker.reason}); skipped, "
                               f"next try in {breaker.remaining(now):.1f} s", found)
                    return None
                values = await self._line.bounded(
                    bus.link.read(request.function, request.address, request.count,
                                  cfg.unit_id, cfg.timeout), 2 * cfg.timeout + 2)
        except asyncio.TimeoutError:  # the link's own timeout did not fire: treat alike
            return self._request_failed(bus, request, LinkTimeout(
                f"no response within {cfg.timeout:g} s ({request.function} "
                f"address={request.address} count={request.count})"), found)
        except DeviceException as exc:
            self.health.errors += 1
            self._unit_answered(bus)
            return exc.code
        except LinkError as exc:
            return self._request_failed(bus, request, exc, found)
        self.health.reads += 1
        self._unit_answered(bus)
        return values

    def _request_failed(self, bus: Bus, request: ReadRequest, exc: LinkError,
                        found: dict[str, Sample]) -> None:
        """A request failed on the wire: drop the line, or (shared line) trip the unit."""
        self.health.errors += 1
        cfg = self.config
        if isinstance(exc, LineBusy):
            self._mark(request, exc.quality, exc.reason, found)
            return None
        if isinstance(exc, LinkClosed) or not cfg.shared_bus:
            # Modbus TCP: one device per connection, so a timeout means reconnecting
            raise _ConnectionLost(exc.quality, exc.reason)
        self._mark(request, exc.quality, exc.reason, found)
        if isinstance(exc, (LinkTimeout, LinkGarbled)):
            breaker = bus.breaker(cfg.unit_id)
            if breaker.trip(self._monotonic(), cfg.retry_period, exc.reason, exc.quality):
                log.warning('event=read_failed device=%s %s unit_id=%d tags=%s function=%s '
                            'address=%d count=%d quality=%s skip_unit_s=%g error="%s"',
                            self.name, cfg.endpoint, cfg.unit_id, request.tag_names,
                            request.function, request.address, request.count,
                            exc.quality.value, cfg.retry_period, exc.reason)
            if cfg.retry_period > 0:
                return None
        self._log_failing(request, exc.reason, exc.quality)
        return None

    def _unit_answered(self, bus: Bus) -> None:
        if not self.config.shared_bus:
            return
        if bus.breaker(self.config.unit_id).reset():
            log.info("event=unit_recovered device=%s %s unit_id=%d", self.name,
                     self.config.endpoint, self.config.unit_id)

    def _decode(self, request: ReadRequest, values: list[Any],
                found: dict[str, Sample]) -> None:
        ts = self.clock()
        self.health.last_good_read = ts
        self.backoff.reset()
        if self._line.bus is not None:
            self._line.bus.backoff.reset()
        if request.key in self._failing:
            del self._failing[request.key]
            log.info("event=read_recovered device=%s tags=%s function=%s address=%d count=%d",
                     self.name, request.tag_names, request.function, request.address,
                     request.count)
        entry = self._steps.get(id(request))
        if entry is not None and entry[0] is request:
            steps = entry[1]
        else:
            steps = [_step(request, tag, self.config.unit_id) for tag in request.tags]
            if len(self._steps) < _MAX_STEPS:
                self._steps[id(request)] = (request, steps)
        n = len(values)
        for tag, start, kind, scaled, origin in steps:
            # one register's uint16/int16 or one bit, as most tags are: no slice, no bytes; a register
            # outside 0..65535 (or a short answer) takes the checked path below, which refuses it
            if kind and start < n:
                raw = values[start]
                if kind == _BIT:
                    self._bad_values.discard(tag.name)
                    found[tag.name] = Sample(self.name, tag.name, bool(raw), Quality.GOOD, ts, origin=origin)
                    continue
                if raw.__class__ is int and 0 <= raw <= 0xFFFF:
                    if kind == _INT16 and raw & 0x8000:
                        raw -= 0x10000
                    if scaled:
                        raw = scale_value(raw, tag.scale, tag.offset)
                        if raw.__class__ is float and not math.isfinite(raw):  # a huge scale
                            found[tag.name] = self._not_a_number(tag.name, raw, ts)
                            continue
                    self._bad_values.discard(tag.name)
                    found[tag.name] = Sample(self.name, tag.name, raw, Quality.GOOD, ts, origin=origin)
                    continue
            self._decode_one(request, tag, values, ts, origin, found)

    def _decode_one(self, request: ReadRequest, tag: TagConfig, values: list[Any], ts: float,
                    origin: str, found: dict[str, Sample]) -> None:
        """One tag through the codec, with every check: types, orders, lengths, NaN, scaling."""
        part = request.registers_of(tag, values)
        try:
            if tag.is_bit:
                value: Any = bool(part[0])
            else:
                value = decode(part, tag.type, tag.word_order, tag.byte_order,
                               bit=tag.bit, length=tag.length)
        except CodecError as exc:  # a short or out-of-range answer
            found[tag.name] = Sample(self.name, tag.name, None, Quality.BAD_COMM, ts,
                                     f"device {self.name}: tag {tag.name}: {exc}")
            return
        if isinstance(value, float) and not math.isfinite(value):
            found[tag.name] = self._not_a_number(tag.name, value, ts)
            return
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = scale_value(value, tag.scale, tag.offset)
            if isinstance(value, float) and not math.isfinite(value):  # a huge raw value times scale
                found[tag.name] = self._not_a_number(tag.name, value, ts)
                return
        self._bad_values.discard(tag.name)
        found[tag.name] = Sample(self.name, tag.name, value, Quality.GOOD, ts, origin=origin)

    def _not_a_number(self, tag: str, value: float, ts: float) -> Sample:
        error = (f"device {self.name}: tag {tag}: the device served {value!r}, not a number "
                 f"(a sensor fault, or a wrong word_order/byte_order/type in the tag map)")
        self.health.errors += 1   # counted every time, logged once per run of bad values
        self.health.last_error = error
        if tag not in self._bad_values:
            self._bad_values.add(tag)
            log.warning('event=bad_value device=%s tag=%s error="served %r, not a number"',
                        self.name, tag, value)
        return Sample(self.name, tag, None, Quality.BAD_COMM, ts, error)

    def _mark_exception(self, request: ReadRequest, code: int,
                        found: dict[str, Sample]) -> None:
        text = exception_text(code)
        quality = Quality.BAD_CONFIG if code in _CONFIG_EXCEPTIONS else Quality.BAD_COMM
        kind = "registers" if not request.tags[0].is_bit else "bits"
        error = (f"device {self.name}: tag(s) {request.tag_names}: {request.function} "
                 f"{kind} address={request.address} count={request.count}: "
                 f"exception {text}")
        self.health.last_error = error
        self._log_failing(request, text, quality)
        ts = self.clock()
        for tag in request.tags:
            found[tag.name] = Sample(self.name, tag.name, None, quality, ts, error)

    def _log_failing(self, request: ReadRequest, text: str, quality: Quality) -> None:
        if self._failing.get(request.key) != text:
            self._failing[request.key] = text
            log.warning('event=read_failed device=%s tags=%s function=%s address=%d count=%d '
                        'error="%s"', self.name, request.tag_names, request.function,
                        request.address, request.count, text)

    def _mark(self, request: ReadRequest, quality: Quality, reason: str,
              found: dict[str, Sample]) -> None:
        error = f"device {self.name}: tag(s) {request.tag_names}: {reason}"
        self.health.last_error = error
        ts = self.clock()
        for tag in request.tags:
            found[tag.name] = Sample(self.name, tag.name, None, quality, ts, error)

    # -- writing --------------------------------------------------------------------

    async def _send_write(self, bus: Bus, tag: str, address: int,
                          payload: bool | list[int]) -> None:
        cfg = self.config
        if not bus.connected:
            raise WriteFailed(self._line.comm_error(bus), Quality.BAD_COMM)
        if cfg.shared_bus:
            breaker = bus.breaker(cfg.unit_id)
            now = self._monotonic()
            if not breaker.allows(now):
                raise WriteFailed(f"device {self.name}: unit {cfg.unit_id} not answering "
                                  f"({breaker.reason}); next try in "
                                  f"{breaker.remaining(now):.1f} s", breaker.quality)
        if isinstance(payload, bool):
            send = bus.link.write_coil(address, payload, cfg.unit_id, cfg.timeout)
        else:
            send = bus.link.write_registers(address, payload, cfg.unit_id, cfg.timeout)
        try:
            await self._line.bounded(send, 2 * cfg.timeout + 2)
        except asyncio.TimeoutError:
            raise WriteFailed(f"device {self.name}: tag {tag}: no response within "
                              f"{cfg.timeout:g} s", Quality.BAD_TIMEOUT) from None
        except DeviceException as exc:
            self._unit_answered(bus)
            quality = Quality.BAD_CONFIG if exc.code in _CONFIG_EXCEPTIONS else Quality.BAD_COMM
            raise WriteFailed(f"device {self.name}: tag {tag}: the device refused the write: "
                              f"exception {exc}", quality, exc.code) from None
        except LinkError as exc:
            self.health.errors += 1
            if isinstance(exc, LinkClosed) or not cfg.shared_bus:
                self._line.drop(bus, exc.reason)
            elif isinstance(exc, (LinkTimeout, LinkGarbled)):
                bus.breaker(cfg.unit_id).trip(self._monotonic(), cfg.retry_period,
                                              exc.reason, exc.quality)
            raise WriteFailed(f"device {self.name}: tag {tag}: {exc.reason}",
                              exc.quality) from None
        self._unit_answered(bus)

    # -- helpers --------------------------------------------------------------------

    def _on_connected(self) -> None:
        """A new connection of the line: the device may have been reprogrammed."""
        self._split.clear()
        self._replan()

    def _replan(self) -> None:
        cfg = self.config
        tags = list(cfg.tags.values())
        coalesced = [t for t in tags if t.name not in self._split]
        isolated = [t for t in tags if t.name in self._split]
        self._steps = {}
        self._requests = plan_reads(coalesced, cfg.max_gap, cfg.max_registers,
                                    max_bit_gap=cfg.max_bit_gap,
                                    max_bits=cfg.max_bits) + single_reads(isolated)

    def _all_bad(self, quality: Quality, error: str) -> list[Sample]:
        ts = self.clock()
        return [Sample(self.name, name, None, quality, ts, error) for name in self.config.tags]
