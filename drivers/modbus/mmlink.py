"""The minimalmodbus backend: RTU or ASCII over a serial port, for instruments with quirks.

This module owns `MinimalmodbusLink`, the `Link` for `backend = "minimalmodbus"`.
minimalmodbus is blocking (pyserial underneath), so every call runs in a
worker thread (`asyncio.to_thread`) under a thread lock, with the serial read
timeout set to the request's timeout and an outer asyncio timeout as a safety
net. What it adds over pymodbus: the inter-frame silent period is respected
before every request, the port can be closed after each call
(`close_port_after_each_call`) for devices or adapters that need it, and its
ASCII implementation. minimalmodbus errors are mapped onto the same
exceptions as the pymodbus link. It knows nothing about tags or polling.
"""
from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Callable

import minimalmodbus
import serial

from drivers.modbus.config import ModbusDeviceConfig
from drivers.modbus.link import (DeviceException, Link, LinkClosed,
                                 LinkFailed, LinkGarbled, LinkTimeout, describe)

_FUNCTION_CODES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}
#: minimalmodbus reports a slave's exception only as text; map it back to the code
_CODE_BY_TEXT = {"illegal function": 1, "illegal data address": 2, "illegal data value": 3,
                 "device failure": 4, "device busy": 6, "negative acknowledge": 7,
                 "memory parity error": 8, "gateway path unavailable": 10,
                 "gateway target device failed to respond": 11}


def exception_code(exc: minimalmodbus.SlaveReportedException) -> int:
    """The Modbus exception code behind a minimalmodbus `SlaveReportedException`."""
    text = str(exc).lower()
    if "error code " in text:
        tail = text.rsplit("error code ", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    for needle, code in _CODE_BY_TEXT.items():
        if f"reported {needle}" in text:
            return code
    return 4  # a slave-reported failure we cannot name: treat as device failure


class MinimalmodbusLink(Link):
    """One serial port driven by minimalmodbus, one `Instrument` per unit id."""

    def __init__(self, config: ModbusDeviceConfig) -> None:
        self._config = config
        self._serial: serial.Serial | None = None
        self._instruments: dict[int, minimalmodbus.Instrument] = {}
        self._lock = threading.Lock()  # one call on the wire at a time, even after a cancel
        self._to_close: list[serial.Serial] = []

    @property
    def connected(self) -> bool:
        return self._serial is not None

    async def connect(self, timeout: float) -> None:
        self.close()
        try:
            port = await asyncio.wait_for(asyncio.to_thread(self._open), timeout)
        except asyncio.TimeoutError:
            raise LinkClosed(f"opening the serial port timed out after {timeout:g} s") from None
        except (OSError, serial.SerialException) as exc:
            if not os.path.exists(str(self._config.port)):
                raise LinkClosed("serial port does not exist (adapter unplugged?)") from exc
            raise LinkClosed(f"cannot open serial port: {exc}") from exc
        self._serial = port

    def _open(self) -> serial.Serial:
        cfg = self._config
        port = serial.Serial(str(cfg.port), baudrate=cfg.baudrate, bytesize=cfg.bytesize,
                             parity=cfg.parity, stopbits=cfg.stopbits, timeout=cfg.timeout,
                             write_timeout=cfg.timeout, exclusive=True)
        if cfg.close_port_after_each_call:
            port.close()  # it was opened once to prove it is there; each call reopens it
        return port

    def close(self) -> None:
        port, self._serial = self._serial, None
        self._instruments = {}
        if port is None:
            return
        if self._lock.acquire(blocking=False):
            try:
                port.close()
            finally:
                self._lock.release()
        else:  # a call is on the wire: never block the event loop, let it close the port
            self._to_close.append(port)

    async def read(self, function: str, address: int, count: int, unit: int,
                   timeout: float) -> list[int] | list[bool]:
        code = _FUNCTION_CODES[function]
        what = describe(function, address, count)
        if function in ("coil", "discrete"):
            bits = await self._call(unit, timeout, what,
                                    lambda inst: inst.read_bits(address, count, functioncode=code))
            return [bool(b) for b in bits]
        return await self._call(unit, timeout, what,
                                lambda inst: inst.read_registers(address, count,
                                                                 functioncode=code))

    async def write_coil(self, address: int, value: bool, unit: int, timeout: float) -> None:
        await self._call(unit, timeout, f"write coil address={address}",
                         lambda inst: inst.write_bit(address, int(value), functioncode=5))

    async def write_registers(self, address: int, values: list[int], unit: int,
                              timeout: float) -> None:
        await self._call(unit, timeout, f"write holding address={address} count={len(values)}",
                         lambda inst: inst.write_registers(address, values))

    async def _call(self, unit: int, timeout: float, what: str,
                    action: Callable[[minimalmodbus.Instrument], Any]) -> Any:
        if self._serial is None:
            raise LinkClosed("connection lost")
        try:
            # the thread gives up by itself after `timeout` (the serial read timeout);
            # the outer bound only guards against a wedged driver or adapter
            return await asyncio.wait_for(
                asyncio.to_thread(self._locked_call, unit, timeout, action), 2 * timeout + 1)
        except asyncio.TimeoutError:
            raise LinkTimeout(f"no response within {timeout:g} s ({what})") from None
        except minimalmodbus.NoResponseError:
            raise LinkTimeout(f"no response within {timeout:g} s ({what})") from None
        except minimalmodbus.InvalidResponseError as exc:
            raise LinkGarbled(f"invalid response (bad CRC or framing): {exc} ({what})") from None
        except minimalmodbus.SlaveReportedException as exc:
            raise DeviceException(exception_code(exc)) from None
        except minimalmodbus.ModbusException as exc:  # local echo and other master-side errors
            raise LinkFailed(f"request failed: {exc} ({what})") from None
        except (OSError, serial.SerialException) as exc:
            self.close()
            raise LinkClosed(f"serial port failed: {exc}") from exc

    def _locked_call(self, unit: int, timeout: float,
                     action: Callable[[minimalmodbus.Instrument], Any]) -> Any:
        with self._lock:
            try:
                return self._call_on(self._serial, unit, timeout, action)
            finally:
                while self._to_close:  # closed by close() while this call was on the wire
                    self._to_close.pop().close()

    def _call_on(self, port: serial.Serial | None, unit: int, timeout: float,
                 action: Callable[[minimalmodbus.Instrument], Any]) -> Any:
        cfg = self._config
        if port is None:
            raise LinkClosed("connection lost")
        port.timeout = timeout
        instrument = self._instruments.get(unit)
        if instrument is None:
            if not port.is_open:
                port.open()  # Instrument() wants an open port; it closes it again if asked
            mode = minimalmodbus.MODE_ASCII if cfg.mode == "ascii" else minimalmodbus.MODE_RTU
            instrument = minimalmodbus.Instrument(
                port, unit, mode=mode, close_port_after_each_call=cfg.close_port_after_each_call)
            instrument.handle_local_echo = cfg.handle_local_echo
            instrument.clear_buffers_before_each_transaction = True
            self._instruments[unit] = instrument
        return action(instrument)
