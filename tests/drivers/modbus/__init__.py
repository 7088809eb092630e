"""Real Modbus peers for the driver tests: pymodbus's own server on a loopback port.

`ModbusTestServer` serves a block of registers (shared by holding and input
functions) for unit id 1 and records every request it receives, so tests can
count the requests the driver makes. `SilentServer` accepts TCP connections and
never answers. `free_port` finds an ephemeral port; `next_batch` waits for a
condition on the driver's samples with a deadline instead of sleeping.
"""
from __future__ import annotations

import asyncio
import socket
from typing import AsyncIterator, Callable

from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.base import Sample

UNIT_ID = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ModbusTestServer:
    """pymodbus's TCP server serving `registers` from address 0 for unit id 1."""

    def __init__(self, registers: list[int], port: int | None = None) -> None:
        self.registers = list(registers)
        self.port = port or free_port()
        self.requests: list[tuple[int, int, int]] = []  # (function code, address, count)
        self._server: ModbusTcpServer | None = None

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if not sending:
            self.requests.append((pdu.function_code, pdu.address, pdu.count))
        return pdu

    async def start(self) -> None:
        device = SimDevice(id=UNIT_ID, simdata=[
            SimData(0, values=self.registers, datatype=DataType.REGISTERS)])
        self._server = ModbusTcpServer(device, address=("127.0.0.1", self.port),
                                       trace_pdu=self._trace)
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def set(self, address: int, values: list[int]) -> None:
        assert self._server is not None
        await self._server.async_setValues(UNIT_ID, 3, address, values)

    async def __aenter__(self) -> "ModbusTestServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class SilentServer:
    """Accepts TCP connections, reads whatever comes, and never answers."""

    def __init__(self) -> None:
        self.port = 0
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        while await reader.read(1024):
            pass

    async def __aenter__(self) -> "SilentServer":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        for writer in self._writers:
            writer.close()
        self._server.close()
        await self._server.wait_closed()


async def next_batch(samples: AsyncIterator[list[Sample]],
                     condition: Callable[[list[Sample]], bool],
                     timeout: float = 5.0) -> list[Sample]:
    """The first batch from `samples` meeting `condition`, or fail after `timeout` s."""
    async def scan() -> list[Sample]:
        async for batch in samples:
            if condition(batch):
                return batch
        raise AssertionError("the sample stream ended before the condition was met")
    return await asyncio.wait_for(scan(), timeout)


def by_tag(batch: list[Sample]) -> dict[str, Sample]:
    return {s.tag: s for s in batch}
