"""The wire under a Modbus device: one connection, read and write with a timeout.

This module owns the `Link` interface the driver talks to (connect, close,
read coils/discrete inputs/registers, write a coil, write registers) and its
pymodbus implementation for the three transports: Modbus TCP, RTU or ASCII over
a serial port, and RTU framing over TCP. It turns every way a request can fail
into one of a few exceptions that say what happened on the wire: the link is
gone (`LinkClosed`), nothing came back (`LinkTimeout`), bytes came back that
were not a valid frame, such as a bad CRC (`LinkGarbled`), an answer did not
fit the request (`LinkFailed`), or the device answered with a Modbus exception
(`DeviceException`). It knows nothing about tags, buses, breakers or polling;
the minimalmodbus implementation lives in `mmlink.py`.
"""
from __future__ import annotations

import abc
import asyncio
import inspect
import os
from typing import Any, Callable

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse

from drivers.base import Quality
from drivers.modbus.config import ModbusDeviceConfig

#: Modbus exception codes, in the words of the Modbus application protocol spec
EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    7: "negative acknowledge",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}

# pymodbus renamed `slave=` to `device_id=` in 3.10; support both.
_UNIT_KW = ("device_id" if "device_id" in inspect.signature(
    AsyncModbusTcpClient.read_holding_registers).parameters else "slave")
#: pymodbus's own response timeout; ours (per request) always fires first
_CLIENT_TIMEOUT = 3600.0


def exception_text(code: int) -> str:
    """`illegal data address (2)` for code 2."""
    return f"{EXCEPTION_NAMES.get(code, 'exception')} ({code})"


class LinkError(Exception):
    """A request (or connecting) failed on the wire; `reason` says how."""

    quality: Quality = Quality.BAD_COMM

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LinkClosed(LinkError):
    """The connection is gone or could not be made: reconnect with backoff."""


class LinkTimeout(LinkError):
    """No response within the timeout (a dead or absent unit, or a hung peer)."""

    quality = Quality.BAD_TIMEOUT


class LinkGarbled(LinkError):
    """Bytes came back but never a valid frame: bad CRC, noise, wrong baud rate or framing."""


class LinkFailed(LinkError):
    """A response that does not fit the request (short, wrong unit, undecodable)."""


class DeviceException(Exception):
    """The device answered with a Modbus exception response."""

    def __init__(self, code: int) -> None:
        super().__init__(exception_text(code))
        self.code = code


def describe(function: str, address: int, count: int) -> str:
    return f"{function} address={address} count={count}"


class Link(abc.ABC):
    """One connection to a TCP peer or a serial port, shared by the units behind it."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """The link is open (says nothing about whether any unit answers)."""

    @abc.abstractmethod
    async def connect(self, timeout: float) -> None:
        """Open the link; raises `LinkClosed` with the reason when it cannot."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the link; safe to call twice."""

    @abc.abstractmethod
    async def read(self, function: str, address: int, count: int, unit: int,
                   timeout: float) -> list[int] | list[bool]:
        """`count` registers (ints) or bits (bools) of `function` from `unit`."""

    @abc.abstractmethod
    async def write_coil(self, address: int, value: bool, unit: int, timeout: float) -> None:
        """Write one coil (function 5)."""

    @abc.abstractmethod
    async def write_registers(self, address: int, values: list[int], unit: int,
                              timeout: float) -> None:
        """Write holding registers (function 16)."""


def make_link(config: ModbusDeviceConfig) -> Link:
    """The link for a device's transport and backend."""
    if config.backend == "minimalmodbus":
        from drivers.modbus.mmlink import MinimalmodbusLink
        return MinimalmodbusLink(config)
    return PymodbusLink(config)


class PymodbusLink(Link):
    """A pymodbus async client: TCP, RTU/ASCII over a serial port, or RTU over TCP."""

    def __init__(self, config: ModbusDeviceConfig) -> None:
        self._config = config
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._received = b""  # bytes seen since the last request was sent

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._received = b""
        else:
            self._received = data  # pymodbus hands over its whole receive buffer
        return data

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        cfg = self._config
        common: dict[str, Any] = {"timeout": _CLIENT_TIMEOUT, "retries": 0,
                                  "reconnect_delay": 0, "trace_packet": self._trace}
        if cfg.transport == "modbus_tcp":
            return AsyncModbusTcpClient(cfg.host, port=cfg.port, **common)
        if cfg.transport == "modbus_rtu_over_tcp":
            return AsyncModbusTcpClient(cfg.host, port=cfg.port, framer=FramerType.RTU, **common)
        framer = FramerType.ASCII if cfg.mode == "ascii" else FramerType.RTU
        return AsyncModbusSerialClient(str(cfg.port), framer=framer, baudrate=cfg.baudrate,
                                       bytesize=cfg.bytesize, parity=cfg.parity,
                                       stopbits=cfg.stopbits,
                                       handle_local_echo=cfg.handle_local_echo, **common)

    async def connect(self, timeout: float) -> None:
        self.close()
        client = self._new_client()
        try:
            ok = await asyncio.wait_for(client.connect(), timeout)
        except asyncio.TimeoutError:
            client.close()
            raise LinkClosed(f"connect timed out after {timeout:g} s") from None
        except (OSError, ModbusException) as exc:
            client.close()
            raise LinkClosed(f"connect failed: {exc}") from exc
        except BaseException:
            client.close()
            raise
        if not ok or not client.connected:
            client.close()
            raise LinkClosed(self._refusal())
        self._client = client

    def _refusal(self) -> str:
        if self._config.transport != "modbus_rtu":
            return "connection refused or unreachable"
        if not os.path.exists(str(self._config.port)):
            return "serial port does not exist (adapter unplugged?)"
        return "cannot open serial port (in use by another program, or no permission?)"

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def read(self, function: str, address: int, count: int, unit: int,
                   timeout: float) -> list[int] | list[bool]:
        client = self._require()
        call: Callable[..., Any] = {
            "coil": client.read_coils, "discrete": client.read_discrete_inputs,
            "holding": client.read_holding_registers, "input": client.read_input_registers,
        }[function]
        what = describe(function, address, count)
        response = await self._execute(client, call(address, count=count, **{_UNIT_KW: unit}),
                                       timeout, what)
        if function in ("coil", "discrete"):
            values: list[Any] = list(getattr(response, "bits", None) or [])
        else:
            values = list(getattr(response, "registers", None) or [])
        if len(values) < count:
            raise LinkFailed(f"short response: {len(values)} of {count} "
                             f"{'bits' if function in ('coil', 'discrete') else 'registers'} "
                             f"({what})")
        return values[:count]

    async def write_coil(self, address: int, value: bool, unit: int, timeout: float) -> None:
        client = self._require()
        await self._execute(client, client.write_coil(address, value, **{_UNIT_KW: unit}),
                            timeout, f"write coil address={address}")

    async def write_registers(self, address: int, values: list[int], unit: int,
                              timeout: float) -> None:
        client = self._require()
        await self._execute(client, client.write_registers(address, values, **{_UNIT_KW: unit}),
                            timeout, f"write holding address={address} count={len(values)}")

    def _require(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        client = self._client
        if client is None or not client.connected:
            # pymodbus would silently reconnect here, bypassing backoff and health figures
            raise LinkClosed("connection lost")
        return client

    async def _execute(self, client: Any, call: Any, timeout: float, what: str) -> Any:
        self._received = b""
        try:
            response = await asyncio.wait_for(call, timeout)
        except asyncio.TimeoutError:
            if not client.connected:
                raise LinkClosed(f"connection lost during request ({what})") from None
            if self._received:
                raise LinkGarbled(garbled_text(self._received, timeout, what)) from None
            raise LinkTimeout(f"no response within {timeout:g} s ({what})") from None
        except ConnectionException as exc:
            raise LinkClosed(f"connection lost: {exc}") from exc
        except ModbusException as exc:
            raise LinkFailed(f"request failed: {exc}") from exc
        except OSError as exc:
            raise LinkClosed(f"request failed: {exc}") from exc
        if isinstance(response, ExceptionResponse) or response.isError():
            code = getattr(response, "exception_code", None)
            if not isinstance(code, int):
                raise LinkFailed(f"unexpected response: {response} ({what})")
            raise DeviceException(code)
        return response


def garbled_text(data: bytes, timeout: float, what: str) -> str:
    shown = data[:32].hex(" ") + (" ..." if len(data) > 32 else "")
    return (f"no valid response within {timeout:g} s: received {len(data)} byte(s) that do "
            f"not form a valid frame (bad CRC or framing): {shown} ({what})")
