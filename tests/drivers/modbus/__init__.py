"""Real Modbus peers for the driver tests: pymodbus's own servers, socat ptys, fake slaves.

`ModbusTestServer` is pymodbus's TCP server: by default one block of registers
(shared by the holding and input functions) for unit id 1; with `coils=` or
`discrete=` the four tables are separate. It records every request, so tests
can count the requests the driver makes. `SilentServer` accepts TCP
connections and never answers. `SerialPair` is a socat pty pair (a null-modem
cable): the driver opens `driver_end`, a slave opens `device_end`.
`SerialTestServer` is pymodbus's serial server (RTU or ASCII) on the device
end, serving some unit ids; a unit id it does not serve stays silent, like an
absent slave on an RS-485 line. `RawResponder` answers every request with
bytes a test chooses (a bad CRC, garbage). `free_port` finds an ephemeral
port; `next_batch` waits for a condition on the driver's samples with a
deadline instead of sleeping.
"""
from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import termios
import time
from pathlib import Path
from typing import Callable

from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore

from tests.drivers.peers import SilentServer, by_tag, free_port, next_batch  # noqa: F401 (re-exported)

UNIT_ID = 1


def unit(unit_id: int, registers: list[int], *, inputs: list[int] | None = None,
         coils: list[bool] | None = None, discrete: list[bool] | None = None) -> SimDevice:
    """A simulated unit with four separate tables starting at address 0."""
    def bits(values: list[bool] | None) -> list[SimData]:
        return [SimData(0, values=list(values or [False]), datatype=DataType.BITS)]
    return SimDevice(id=unit_id, simdata=(
        bits(coils), bits(discrete),
        [SimData(0, values=list(registers), datatype=DataType.REGISTERS)],
        [SimData(0, values=list(registers if inputs is None else inputs),
                 datatype=DataType.REGISTERS)]))


class BusCore(SimCore):
    """pymodbus's simulator core, except that a unit id nobody serves is absent.

    pymodbus answers such a request with "device failure"; a real RS-485 slave
    that is not there answers nothing. Raising `NoSuchIdException` lets the
    server's `ignore_missing_devices` keep quiet. Requests to absent units are
    counted per unit id.
    """

    def __init__(self, devices: list[SimDevice]) -> None:
        super().__init__(devices)
        self.absent_requests: collections.Counter[int] = collections.Counter()

    def _check(self, device_id: int) -> None:
        if device_id not in self.devices:
            self.absent_requests[device_id] += 1
            raise NoSuchIdException(f"no unit {device_id} on this line")

    async def async_getValues(self, device_id, func_code, address, count=1):  # noqa: N802
        self._check(device_id)
        return await super().async_getValues(device_id, func_code, address, count)

    async def async_setValues(self, device_id, func_code, address, values):  # noqa: N802
        self._check(device_id)
        return await super().async_setValues(device_id, func_code, address, values)


class ModbusTestServer:
    """pymodbus's TCP server serving `registers` from address 0 for unit id 1.

    With `coils`/`discrete` the four tables are separate (holding and input
    both start as `registers`); with `units` (id -> SimDevice) it serves those
    and stays silent for other unit ids. `framer=FramerType.RTU` makes it an
    RTU-over-TCP peer (a serial-to-Ethernet converter with slaves behind it).
    """

    def __init__(self, registers: list[int], port: int | None = None, *,
                 coils: list[bool] | None = None, discrete: list[bool] | None = None,
                 units: list[SimDevice] | None = None,
                 framer: FramerType = FramerType.SOCKET) -> None:
        self.registers = list(registers)
        self.port = port or free_port()
        self.coils, self.discrete, self.units, self.framer = coils, discrete, units, framer
        self.requests: list[tuple[int, int, int]] = []  # (function code, address, count)
        self.connections = 0  # TCP connections accepted so far
        self.core: BusCore | None = None
        self._server: ModbusTcpServer | None = None

    def _connected(self, connected: bool) -> None:
        self.connections += connected

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append((pdu.function_code, pdu.address, pdu.count))
        return pdu

    def _devices(self) -> SimDevice | list[SimDevice]:
        if self.units is not None:
            return self.units
        if self.coils is not None or self.discrete is not None:
            return unit(UNIT_ID, self.registers, coils=self.coils, discrete=self.discrete)
        return SimDevice(id=UNIT_ID, simdata=[
            SimData(0, values=self.registers, datatype=DataType.REGISTERS)])

    async def start(self) -> None:
        devices = self._devices()
        self._server = ModbusTcpServer(devices, address=("127.0.0.1", self.port),
                                       framer=self.framer, trace_pdu=self._trace,
                                       trace_connect=self._connected,
                                       ignore_missing_devices=self.units is not None)
        if self.units is not None:
            self.core = self._server.context = BusCore(self.units)
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def set(self, address: int, values: list[int]) -> None:
        assert self._server is not None
        await self._server.async_setValues(UNIT_ID, 3, address, values)

    async def get(self, function_code: int, address: int, count: int) -> list:
        """Current values of a table, as the device holds them (to check writes)."""
        assert self._server is not None
        return list(await self._server.context.async_getValues(UNIT_ID, function_code,
                                                                address, count))

    async def __aenter__(self) -> "ModbusTestServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class SerialPair:
    """A socat pty pair under `tmp`: what is written to one end comes out of the other.

    The pair holds the device end open itself, so a slave can close and reopen
    it (a restart) without socat seeing the line go away. Stopped by pid.
    """

    def __init__(self, tmp: Path) -> None:
        self.driver_end = str(tmp / "ttyDRIVER")
        self.device_end = str(tmp / "ttyDEVICE")
        self._proc: subprocess.Popen | None = None
        self._hold: int | None = None

    def __enter__(self) -> "SerialPair":
        self._proc = subprocess.Popen(
            ["socat", "-d", "-d", f"pty,raw,echo=0,link={self.driver_end}",
             f"pty,raw,echo=0,link={self.device_end}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while not (os.path.exists(self.driver_end) and os.path.exists(self.device_end)):
            if self._proc.poll() is not None:
                raise AssertionError(f"socat exited with {self._proc.returncode}")
            if time.monotonic() > deadline:
                self.__exit__()
                raise AssertionError("socat did not create the pty pair within 10 s")
            time.sleep(0.01)
        self._hold = os.open(self.device_end, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        return self

    def flush_device_input(self) -> None:
        """Forget requests that reached the device end while no slave was listening."""
        assert self._hold is not None
        termios.tcflush(self._hold, termios.TCIFLUSH)

    def __exit__(self, *exc: object) -> None:
        if self._hold is not None:
            os.close(self._hold)
            self._hold = None
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class SerialTestServer:
    """pymodbus's serial server on `port` (the device end of a SerialPair).

    Serves the given units; requests to any other unit id get no answer.
    """

    def __init__(self, port: str, units: list[SimDevice],
                 framer: FramerType = FramerType.RTU) -> None:
        self.port, self.units, self.framer = port, units, framer
        self.core: BusCore | None = None
        self._server: ModbusSerialServer | None = None

    async def start(self) -> None:
        self._server = ModbusSerialServer(self.units, framer=self.framer, port=self.port,
                                          baudrate=19200, ignore_missing_devices=True)
        self.core = self._server.context = BusCore(self.units)
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def get(self, unit_id: int, function_code: int, address: int, count: int) -> list:
        assert self.core is not None
        return list(await self.core.async_getValues(unit_id, function_code, address, count))

    async def __aenter__(self) -> "SerialTestServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def crc16(frame: bytes) -> bytes:
    """The Modbus RTU CRC of `frame`, low byte first as sent on the wire."""
    crc = 0xFFFF
    for byte in frame:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc.to_bytes(2, "little")


class RawResponder:
    """A fake slave on a pty: answers each 8-byte RTU request with `reply(request)`."""

    def __init__(self, port: str, reply: Callable[[bytes], bytes]) -> None:
        self.port, self.reply = port, reply
        self.requests: list[bytes] = []
        self._fd: int | None = None
        self._buffer = b""

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            self._buffer += os.read(self._fd, 1024)
        except BlockingIOError:
            return
        while len(self._buffer) >= 8:  # every read request is 8 bytes in RTU
            request, self._buffer = self._buffer[:8], self._buffer[8:]
            self.requests.append(request)
            os.write(self._fd, self.reply(request))

    async def __aenter__(self) -> "RawResponder":
        self._fd = os.open(self.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        termios.tcflush(self._fd, termios.TCIFLUSH)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._fd is not None
        asyncio.get_running_loop().remove_reader(self._fd)
        os.close(self._fd)
        self._fd = None


