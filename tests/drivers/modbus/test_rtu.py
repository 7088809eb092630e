"""Modbus RTU over a serial line (a socat pty pair) against pymodbus's serial server."""
from __future__ import annotations

import asyncio
import logging
import struct
import time

import pytest
import serial
from pymodbus.framer import FramerType

from drivers.base import Backoff, ConfigCollector, Quality
from drivers.modbus import ModbusDriver
from tests.drivers.modbus import (RawResponder, SerialPair, SerialTestServer, by_tag, crc16,
                                  next_batch, unit)

LOGGER = "linebridge.drivers.modbus"


@pytest.fixture
def pair(tmp_path):
    with SerialPair(tmp_path) as p:
        yield p


def rtu_driver(name, port, unit_id, tags, **extra):
    section = {"type": "modbus_rtu", "port": port, "unit_id": unit_id, "baudrate": 19200,
               "poll_interval": 0.1, "timeout": 0.4, "tags": tags, **extra}
    issues = ConfigCollector()
    config = ModbusDriver.parse_config(section, f"devices.{name}", issues)
    assert issues.issues == []
    return ModbusDriver(name, config, backoff=Backoff(initial=0.05, cap=0.2))


def holding(address, data_type="uint16", **extra):
    return {"function": "holding", "address": address, "type": data_type, **extra}


def all_good(batch):
    return all(s.quality is Quality.GOOD for s in batch)


def messages(caplog, event):
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and f"event={event} " in r.getMessage()]


@pytest.mark.parametrize("mode", ["rtu", "ascii"])
def test_rtu_device_reads_every_table_and_writes_over_a_serial_line(pair, mode):
    pi = struct.unpack(">2H", struct.pack(">f", 3.25))
    registers = [1234, *pi, 0x4142, 0x4300]
    tags = {"count": holding(0), "temp": holding(1, "float32"),
            "label": holding(3, "string", length=2),
            "level": {"function": "input", "address": 0, "type": "int16"},
            "door": {"function": "coil", "address": 1},
            "estop": {"function": "discrete", "address": 2},
            "setpoint": holding(5, writable=True)}

    async def scenario():
        slave = unit(1, registers + [0], inputs=[(-7) & 0xFFFF], coils=[False, True, False],
                     discrete=[False, False, True])
        framer = FramerType.ASCII if mode == "ascii" else FramerType.RTU
        async with SerialTestServer(pair.device_end, [slave], framer=framer) as server:
            driver = rtu_driver("meter", pair.driver_end, 1, tags, mode=mode)
            samples = driver.samples()
            first = await next_batch(samples, all_good)
            await driver.write("setpoint", 777)
            written = await server.get(1, 3, 5, 1)
            again = await next_batch(samples, lambda b: by_tag(b)["setpoint"].value == 777)
            await driver.stop()
            return first, written, again

    first, written, again = asyncio.run(scenario())
    assert {s.tag: s.value for s in first} == {
        "count": 1234, "temp": 3.25, "label": "ABC", "level": -7, "door": True, "estop": True,
        "setpoint": 0}
    assert written == [777]
    assert all_good(again)


def test_dead_rtu_unit_does_not_stall_the_bus(pair, caplog):
    async def scenario():
        async with SerialTestServer(pair.device_end, [unit(1, [11, 12])]) as server:
            alive = rtu_driver("alive", pair.driver_end, 1, {"a": holding(0), "b": holding(1)})
            dead = rtu_driver("dead", pair.driver_end, 2, {"x": holding(0)}, timeout=1.0)
            alive_samples, dead_samples = alive.samples(), dead.samples()
            # the dead unit times out once, then its tags are skipped without a request
            first_dead = await next_batch(dead_samples, lambda b: True)
            await next_batch(dead_samples, lambda b: True)
            await next_batch(alive_samples, all_good)
            latencies, dead_batches = [], []
            began = time.monotonic()
            while time.monotonic() - began < 1.5:
                batch, dead_batch = await asyncio.gather(
                    next_batch(alive_samples, lambda b: True),
                    next_batch(dead_samples, lambda b: True))
                assert all_good(batch)
                latencies.append(alive.health.poll_latency_ms)
                dead_batches.append(dead_batch)
            await alive.stop()
            await dead.stop()
            return first_dead, dead_batches, latencies, server.core.absent_requests[2]

    with caplog.at_level(logging.INFO, logger=LOGGER):
        first_dead, dead_batches, latencies, dead_requests = asyncio.run(scenario())
    assert first_dead[0].quality is Quality.BAD_TIMEOUT
    assert "no response within 1 s" in first_dead[0].error
    assert dead_requests == 1  # one timeout per retry period (10 s), not one per poll
    assert len(latencies) >= 8
    assert max(latencies) < 500, latencies  # never waits behind the dead unit's 1 s timeout
    for batch in dead_batches:
        assert batch[0].quality is Quality.BAD_TIMEOUT and batch[0].value is None
        assert "skipped, next try in" in batch[0].error
    [line] = messages(caplog, "read_failed")
    assert "device=dead" in line and "unit_id=2" in line and "tags=x" in line
    assert "quality=bad_timeout" in line and "skip_unit_s=10" in line


def test_dead_unit_is_retried_once_per_retry_period(pair):
    async def scenario():
        async with SerialTestServer(pair.device_end, [unit(1, [1])]) as server:
            dead = rtu_driver("dead", pair.driver_end, 2, {"x": holding(0)},
                              retry_period=0.5, timeout=0.2)
            samples = dead.samples()
            began = time.monotonic()
            batches = 0
            while time.monotonic() - began < 2.0:
                await next_batch(samples, lambda b: b[0].quality is Quality.BAD_TIMEOUT)
                batches += 1
            elapsed = time.monotonic() - began
            await dead.stop()
            return batches, elapsed, server.core.absent_requests[2]

    batches, elapsed, requests = asyncio.run(scenario())
    # a request opens the breaker for 0.5 s after a 0.2 s timeout: at most one per 0.7 s
    assert 2 <= requests <= elapsed / 0.7 + 2
    assert batches > requests


def test_garbled_answers_give_bad_comm_with_one_log_line_then_recover(pair, caplog):
    def bad_crc(request: bytes) -> bytes:
        unit_id, function, count = request[0], request[1], int.from_bytes(request[4:6], "big")
        frame = bytes([unit_id, function, 2 * count]) + b"\x00\x2a" * count
        good = crc16(frame)
        return frame + bytes([good[0] ^ 0xFF, good[1]])

    tags = {"a": holding(0), "b": holding(1)}

    async def scenario():
        driver = rtu_driver("scale", pair.driver_end, 1, tags, retry_period=0.3)
        samples = driver.samples()
        async with RawResponder(pair.device_end, bad_crc) as responder:
            garbled = await next_batch(samples, lambda b: True)
            # polling goes on; the unit is retried every retry_period and stays bad
            while len(responder.requests) < 3:
                batch = await next_batch(samples, lambda b: True)
                assert [s.quality for s in batch] == [Quality.BAD_COMM, Quality.BAD_COMM]
        pair.flush_device_input()
        async with SerialTestServer(pair.device_end, [unit(1, [5, 6])]):
            good = await next_batch(samples, all_good, timeout=5)
        await driver.stop()
        return garbled, good, driver.health

    with caplog.at_level(logging.INFO, logger=LOGGER):
        garbled, good, health = asyncio.run(scenario())
    assert [s.quality for s in garbled] == [Quality.BAD_COMM, Quality.BAD_COMM]
    assert all(s.value is None for s in garbled)
    assert "bad CRC or framing" in garbled[0].error and "scale" in garbled[0].error
    [line] = messages(caplog, "read_failed")  # one line, however many retries failed
    assert "device=scale" in line and "tags=a,b" in line and "quality=bad_comm" in line
    assert "bad CRC or framing" in line
    assert {s.tag: s.value for s in good} == {"a": 5, "b": 6}
    assert len(messages(caplog, "unit_recovered")) == 1
    assert health.errors >= 3


def test_rtu_server_restart_recovers(pair):
    async def scenario():
        driver = rtu_driver("meter", pair.driver_end, 1, {"a": holding(0)}, retry_period=0.3)
        samples = driver.samples()
        async with SerialTestServer(pair.device_end, [unit(1, [41])]):
            before = await next_batch(samples, all_good)
        down = await next_batch(samples, lambda b: b[0].quality is Quality.BAD_TIMEOUT)
        pair.flush_device_input()
        async with SerialTestServer(pair.device_end, [unit(1, [42])]):
            after = await next_batch(samples, all_good)
        await driver.stop()
        return before, down, after, driver.health

    before, down, after, health = asyncio.run(scenario())
    assert before[0].value == 41
    assert down[0].value is None and "meter" in down[0].error
    assert after[0].value == 42
    assert health.connected is False  # stopped


def test_exception_response_marks_only_that_tag_bad_config(pair, caplog):
    tags = {"a": holding(0), "beyond": holding(3, "uint32")}  # the unit holds 0..3

    async def scenario():
        async with SerialTestServer(pair.device_end, [unit(1, [7, 8, 9, 10])]):
            driver = rtu_driver("meter", pair.driver_end, 1, tags)
            samples = driver.samples()
            batches = [await next_batch(samples, lambda b: True) for _ in range(3)]
            await driver.stop()
            return batches

    with caplog.at_level(logging.INFO, logger=LOGGER):
        batches = asyncio.run(scenario())
    for batch in batches:
        samples = by_tag(batch)
        assert samples["a"].quality is Quality.GOOD and samples["a"].value == 7
        assert samples["beyond"].quality is Quality.BAD_CONFIG
        assert "illegal data address (2)" in samples["beyond"].error
    assert len(messages(caplog, "read_failed")) == 1


def test_missing_serial_port_gives_bad_comm_and_backs_off(tmp_path, caplog):
    port = str(tmp_path / "ttyUSB-unplugged")

    async def scenario():
        driver = rtu_driver("meter", port, 1, {"a": holding(0)})
        samples = driver.samples()
        batches = [await next_batch(samples, lambda b: True) for _ in range(4)]
        await driver.stop()
        return batches, driver.health

    with caplog.at_level(logging.INFO, logger=LOGGER):
        batches, health = asyncio.run(scenario())
    for batch in batches:
        assert batch[0].quality is Quality.BAD_COMM and batch[0].value is None
        assert "serial port does not exist" in batch[0].error and port in batch[0].error
    assert 1 <= health.errors <= 4
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "event=connect_failed device=meter" in warnings[0].getMessage()


def test_devices_disagreeing_on_line_settings_get_bad_config(tmp_path, caplog):
    port = str(tmp_path / "ttyS9")

    async def scenario():
        first = rtu_driver("first", port, 1, {"a": holding(0)}, baudrate=9600)
        second = rtu_driver("second", port, 2, {"b": holding(0)}, baudrate=19200)
        await first.start()
        samples = second.samples()
        batch = await next_batch(samples, lambda b: True)
        await second.stop()
        await first.stop()
        return batch

    with caplog.at_level(logging.INFO, logger=LOGGER):
        batch = asyncio.run(scenario())
    assert batch[0].quality is Quality.BAD_CONFIG
    assert "device first" in batch[0].error and "baudrate=9600" in batch[0].error
    assert len(messages(caplog, "line_conflict")) == 1


def test_two_devices_on_one_port_share_it_instead_of_fighting(pair):
    async def scenario():
        async with SerialTestServer(pair.device_end, [unit(1, [1]), unit(3, [3])]):
            one = rtu_driver("one", pair.driver_end, 1, {"v": holding(0)})
            three = rtu_driver("three", pair.driver_end, 3, {"v": holding(0)})
            s1, s3 = one.samples(), three.samples()
            results = []
            for _ in range(5):
                results.append(await asyncio.gather(next_batch(s1, all_good),
                                                    next_batch(s3, all_good)))
            # the port is open exactly once, exclusively: a third opener is refused
            with pytest.raises(serial.SerialException):
                serial.Serial(pair.driver_end, exclusive=True).close()
            await one.stop()
            # the last device out closes the port
            await three.stop()
            serial.Serial(pair.driver_end, exclusive=True).close()
            return results

    results = asyncio.run(scenario())
    assert all(a[0].value == 1 and b[0].value == 3 for a, b in results)


def test_unplugged_adapter_is_bad_comm_then_reopened_when_it_comes_back(tmp_path, caplog):
    async def scenario():
        first = SerialPair(tmp_path).__enter__()
        driver = rtu_driver("meter", first.driver_end, 1, {"a": holding(0)})
        samples = driver.samples()
        try:
            async with SerialTestServer(first.device_end, [unit(1, [1])]):
                before = await next_batch(samples, all_good)
                first.__exit__()  # the USB adapter is pulled: its tty goes away
                gone = await next_batch(samples, lambda b: b[0].quality is Quality.BAD_COMM)
            with SerialPair(tmp_path) as second:  # plugged in again, same by-id path
                async with SerialTestServer(second.device_end, [unit(1, [2])]):
                    after = await next_batch(samples, all_good, timeout=10)
                await driver.stop()
        finally:
            first.__exit__()
        return before, gone, after, driver.health

    with caplog.at_level(logging.INFO, logger=LOGGER):
        before, gone, after, health = asyncio.run(scenario())
    assert before[0].value == 1 and after[0].value == 2
    assert gone[0].value is None and "meter" in gone[0].error
    assert health.reconnects == 1
    assert len(messages(caplog, "connection_lost")) == 1
