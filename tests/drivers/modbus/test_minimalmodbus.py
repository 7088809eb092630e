"""The minimalmodbus backend (a worker thread) on a socat pty pair against pymodbus's serial server."""
from __future__ import annotations

import asyncio
import logging

import pytest
import serial
from pymodbus.framer import FramerType

from drivers.base import Backoff, ConfigCollector, Quality
from drivers.modbus import ModbusDriver, WriteFailed
from tests.drivers.modbus import (RawResponder, SerialPair, SerialTestServer, by_tag, crc16,
                                  next_batch, unit)

LOGGER = "linebridge.drivers.modbus"


@pytest.fixture
def pair(tmp_path):
    with SerialPair(tmp_path) as p:
        yield p


def mm_driver(name, port, unit_id, tags, **extra):
    section = {"type": "modbus_rtu", "backend": "minimalmodbus", "port": port,
               "unit_id": unit_id, "poll_interval": 0.1, "timeout": 0.3, "tags": tags, **extra}
    issues = ConfigCollector()
    config = ModbusDriver.parse_config(section, f"devices.{name}", issues)
    assert issues.issues == []
    return ModbusDriver(name, config, backoff=Backoff(initial=0.05, cap=0.2))


TAGS = {"count": {"function": "holding", "address": 0, "type": "uint32", "word_order": "little"},
        "level": {"function": "input", "address": 0, "type": "int16", "scale": 0.5},
        "door": {"function": "coil", "address": 1, "writable": True},
        "estop": {"function": "discrete", "address": 0},
        "setpoint": {"function": "holding", "address": 2, "type": "int16", "writable": True}}


def slave(unit_id=1):
    return unit(unit_id, [0x0002, 0x0001, 0], inputs=[(-4) & 0xFFFF], coils=[False, False],
                discrete=[True])


def all_good(batch):
    return all(s.quality is Quality.GOOD for s in batch)


@pytest.mark.parametrize("mode", ["rtu", "ascii"])
def test_minimalmodbus_backend_reads_and_writes(pair, mode):
    framer = FramerType.ASCII if mode == "ascii" else FramerType.RTU

    async def scenario():
        async with SerialTestServer(pair.device_end, [slave()], framer=framer) as server:
            driver = mm_driver("scale", pair.driver_end, 1, TAGS, mode=mode)
            samples = driver.samples()
            first = await next_batch(samples, all_good)
            await driver.write("door", True)
            await driver.write("setpoint", -300)
            stored = (await server.get(1, 1, 1, 1), await server.get(1, 3, 2, 1))
            after = await next_batch(samples, lambda b: by_tag(b)["door"].value is True)
            await driver.stop()
            return first, stored, after

    first, stored, after = asyncio.run(scenario())
    assert {s.tag: s.value for s in first} == {
        "count": 0x0001_0002, "level": -2.0, "door": False, "estop": True, "setpoint": 0}
    assert stored == ([True], [(-300) & 0xFFFF])
    assert by_tag(after)["setpoint"].value == -300 and all_good(after)


def test_minimalmodbus_dead_unit_and_exception_codes(pair, caplog):
    tags = {"ok": {"function": "holding", "address": 0, "type": "uint16"},
            "beyond": {"function": "holding", "address": 10, "type": "uint16"}}

    async def scenario():
        async with SerialTestServer(pair.device_end, [slave()]) as server:
            alive = mm_driver("alive", pair.driver_end, 1, tags)
            dead = mm_driver("dead", pair.driver_end, 5, {"x": {**tags["ok"], "writable": True}})
            s_alive, s_dead = alive.samples(), dead.samples()
            dead_batches = [await next_batch(s_dead, lambda b: True) for _ in range(3)]
            alive_batch = await next_batch(s_alive, lambda b: by_tag(b)["ok"].value == 2)
            with pytest.raises(WriteFailed) as refused:
                await dead.write("x", 1)  # the unit is skipped: fails at once, nothing sent
            await alive.stop()
            await dead.stop()
            return dead_batches, alive_batch, server.core.absent_requests[5], refused

    with caplog.at_level(logging.INFO, logger=LOGGER):
        dead_batches, alive_batch, dead_requests, refused = asyncio.run(scenario())
    assert all(b[0].quality is Quality.BAD_TIMEOUT for b in dead_batches)
    assert dead_requests == 1
    assert by_tag(alive_batch)["beyond"].quality is Quality.BAD_CONFIG
    assert "illegal data address (2)" in by_tag(alive_batch)["beyond"].error
    assert by_tag(alive_batch)["ok"].quality is Quality.GOOD
    assert refused.value.quality is Quality.BAD_TIMEOUT
    assert "unit 5 not answering" in str(refused.value)


def test_minimalmodbus_garbled_answer_is_bad_comm(pair):
    def bad_crc(request: bytes) -> bytes:
        frame = bytes([request[0], request[1], 2, 0, 42])
        return frame + bytes(b ^ 0xFF for b in crc16(frame))

    async def scenario():
        driver = mm_driver("scale", pair.driver_end, 1, {"w": TAGS["setpoint"]})
        samples = driver.samples()
        async with RawResponder(pair.device_end, bad_crc):
            batch = await next_batch(samples, lambda b: True)
        await driver.stop()
        return batch

    batch = asyncio.run(scenario())
    assert batch[0].quality is Quality.BAD_COMM and batch[0].value is None
    assert "bad CRC or framing" in batch[0].error


@pytest.mark.parametrize("close_after", [True, False])
def test_close_port_after_each_call_frees_the_port_between_polls(pair, close_after):
    async def scenario():
        async with SerialTestServer(pair.device_end, [slave()]):
            driver = mm_driver("quirky", pair.driver_end, 1, {"c": TAGS["count"]},
                               close_port_after_each_call=close_after)
            samples = driver.samples()
            batches = []
            for _ in range(3):
                batches.append(await next_batch(samples, all_good))
                # between two polls the driver is idle: can another program open the port?
                try:
                    serial.Serial(pair.driver_end, exclusive=True).close()
                    free = True
                except serial.SerialException:
                    free = False
                batches.append(free)
            await driver.stop()
            return batches

    result = asyncio.run(scenario())
    assert all(batch[0].value == 0x0001_0002 for batch in result[0::2])
    assert result[1::2] == [close_after] * 3
