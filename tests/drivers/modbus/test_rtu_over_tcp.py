"""Modbus RTU framing over TCP (a serial-to-Ethernet converter) against pymodbus's own server."""
from __future__ import annotations

import asyncio
import time

from pymodbus.framer import FramerType

from drivers.base import Backoff, ConfigCollector, Quality
from drivers.modbus import ModbusDriver
from tests.drivers.modbus import ModbusTestServer, free_port, next_batch, unit


def converter_driver(name, port, unit_id, tags, **extra):
    section = {"type": "modbus_rtu_over_tcp", "host": "127.0.0.1", "port": port,
               "unit_id": unit_id, "poll_interval": 0.1, "timeout": 0.3, "tags": tags, **extra}
    issues = ConfigCollector()
    config = ModbusDriver.parse_config(section, f"devices.{name}", issues)
    assert issues.issues == []
    return ModbusDriver(name, config, backoff=Backoff(initial=0.05, cap=0.2))


HOLDING = {"function": "holding", "address": 0, "type": "uint16"}


def test_units_behind_one_converter_share_one_connection_and_a_dead_one_is_skipped():
    async def scenario():
        units = [unit(1, [101]), unit(2, [202])]
        async with ModbusTestServer([], units=units, framer=FramerType.RTU) as server:
            one = converter_driver("one", server.port, 1, {"v": HOLDING})
            two = converter_driver("two", server.port, 2, {"v": HOLDING})
            gone = converter_driver("gone", server.port, 9, {"v": HOLDING})
            s1, s2, s9 = one.samples(), two.samples(), gone.samples()
            dead = await next_batch(s9, lambda b: True)
            began = time.monotonic()
            rounds = []
            while time.monotonic() - began < 1.0:
                rounds.append(await asyncio.gather(
                    next_batch(s1, lambda b: True), next_batch(s2, lambda b: True),
                    next_batch(s9, lambda b: True)))
            for driver in (one, two, gone):
                await driver.stop()
            return dead, rounds, server.connections, server.core.absent_requests[9]

    dead, rounds, connections, dead_requests = asyncio.run(scenario())
    assert dead[0].quality is Quality.BAD_TIMEOUT
    assert len(rounds) >= 5
    for b1, b2, b9 in rounds:
        assert (b1[0].value, b2[0].value) == (101, 202)
        assert b9[0].quality is Quality.BAD_TIMEOUT
    assert connections == 1
    assert dead_requests == 1


def test_converter_restart_reconnects():
    async def scenario():
        port = free_port()
        first = ModbusTestServer([], port=port, units=[unit(1, [1])], framer=FramerType.RTU)
        await first.start()
        driver = converter_driver("one", port, 1, {"v": HOLDING})
        samples = driver.samples()
        before = await next_batch(samples, lambda b: b[0].quality is Quality.GOOD)
        await first.stop()
        down = await next_batch(samples, lambda b: b[0].quality is Quality.BAD_COMM)
        second = ModbusTestServer([], port=port, units=[unit(1, [2])], framer=FramerType.RTU)
        await second.start()
        try:
            after = await next_batch(samples, lambda b: b[0].quality is Quality.GOOD)
        finally:
            await driver.stop()
            await second.stop()
        return before, down, after, driver.health

    before, down, after, health = asyncio.run(scenario())
    assert (before[0].value, after[0].value) == (1, 2)
    assert down[0].value is None and "one" in down[0].error
    assert health.reconnects == 1
