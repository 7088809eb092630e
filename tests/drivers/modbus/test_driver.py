"""The Modbus TCP driver against pymodbus's own server on a loopback port."""
from __future__ import annotations

import asyncio
import logging
import time

from drivers.base import Backoff, ConfigCollector, Quality
from drivers.modbus import ModbusDriver
from tests.drivers.modbus import (ModbusTestServer, SilentServer, by_tag, free_port,
                                  next_batch)


def make_driver(port, tags, *, poll_interval=0.1, timeout=0.5, max_gap=8):
    issues = ConfigCollector()
    config = ModbusDriver.parse_config(
        {"type": "modbus_tcp", "host": "127.0.0.1", "port": port, "unit_id": 1,
         "poll_interval": poll_interval, "timeout": timeout, "max_gap": max_gap,
         "machine": "CNC-01", "tags": tags}, "devices.cnc01", issues)
    assert issues.issues == []
    return ModbusDriver("cnc01", config, backoff=Backoff(initial=0.05, cap=0.2))


def all_good(batch):
    return all(s.quality is Quality.GOOD for s in batch)


def holding(address, data_type, **extra):
    return {"function": "holding", "address": address, "type": data_type, **extra}


def test_all_types_and_word_orders_are_decoded():
    registers = [0xFFFF, 0xFFFE, 0xEE6B, 0x2800, 0x2800, 0xEE6B, 0xFFFE, 0x1DC0,
                 0xFFF9, 0xFFFF, (-250) & 0xFFFF]
    tags = {
        "u16": holding(0, "uint16"),
        "i16": holding(1, "int16"),
        "u32_big": holding(2, "uint32"),
        "u32_little": holding(4, "uint32", word_order="little"),
        "i32_big": holding(6, "int32", word_order="big"),
        "i32_little": holding(8, "int32", word_order="little"),
        "temp": holding(10, "int16", scale=0.1, offset=1.0),
        "u32_input": {"function": "input", "address": 2, "type": "uint32"},
    }

    async def scenario():
        async with ModbusTestServer(registers) as server:
            driver = make_driver(server.port, tags)
            await driver.start()
            before = time.time()
            batch = await next_batch(driver.samples(), all_good)
            await driver.stop()
            return before, batch, driver

    before, batch, driver = asyncio.run(scenario())
    values = {s.tag: s.value for s in batch}
    assert [s.tag for s in batch] == list(tags)  # configuration order
    assert values == {"u16": 65535, "i16": -2, "u32_big": 4_000_000_000,
                      "u32_little": 4_000_000_000, "i32_big": -123_456, "i32_little": -7,
                      "temp": -24.0, "u32_input": 4_000_000_000}
    assert isinstance(values["u32_big"], int)
    assert all(s.device == "cnc01" and s.error is None for s in batch)
    assert all(before <= s.source_ts <= time.time() for s in batch)
    assert driver.health.last_good_read is not None and driver.health.reads >= 2


def test_nearby_tags_are_read_in_one_request():
    tags = {"a": holding(0, "uint16"), "b": holding(1, "uint32"), "c": holding(10, "int16")}

    async def scenario():
        async with ModbusTestServer(list(range(20))) as server:
            driver = make_driver(server.port, tags, max_gap=8)
            samples = driver.samples()
            first = await next_batch(samples, all_good)
            after_one = list(server.requests)
            await next_batch(samples, all_good)
            await driver.stop()
            return first, after_one, list(server.requests)

    first, after_one, after_two = asyncio.run(scenario())
    assert {s.tag: s.value for s in first} == {"a": 0, "b": (1 << 16) | 2, "c": 10}
    assert after_one == [(3, 0, 11)]
    assert after_two == [(3, 0, 11), (3, 0, 11)]


def test_server_restart_goes_bad_comm_then_reconnects():
    tags = {"parts": holding(0, "uint32")}

    async def scenario():
        port = free_port()
        first = ModbusTestServer([0, 41], port=port)
        await first.start()
        driver = make_driver(port, tags)
        samples = driver.samples()
        good = await next_batch(samples, all_good)
        assert driver.health.connected
        await first.stop()
        bad = await next_batch(samples, lambda b: b[0].quality is Quality.BAD_COMM)
        assert not driver.health.connected
        second = ModbusTestServer([0, 42], port=port)
        await second.start()
        try:
            again = await next_batch(samples, all_good)
        finally:
            await driver.stop()
            await second.stop()
        return good, bad, again, driver.health

    good, bad, again, health = asyncio.run(scenario())
    assert good[0].value == 41
    assert bad[0].value is None and "cnc01" in bad[0].error
    assert again[0].value == 42
    assert health.reconnects == 1
    assert health.errors >= 1


def test_silent_device_gives_bad_timeout_and_polling_lives_on():
    tags = {"parts": holding(0, "uint32"), "alarm": holding(4, "uint16")}

    async def scenario():
        async with SilentServer() as silent:
            driver = make_driver(silent.port, tags, poll_interval=0.1, timeout=0.3)
            samples = driver.samples()
            started = time.monotonic()
            batch = await next_batch(samples, lambda b: True, timeout=3)
            elapsed = time.monotonic() - started
            # it goes on polling (and reconnecting) instead of dying or hanging
            later = await next_batch(samples, lambda b: silent.connections >= 2, timeout=3)
            await driver.stop()
            return batch, elapsed, later, driver.health

    batch, elapsed, later, health = asyncio.run(scenario())
    assert [s.quality for s in batch] == [Quality.BAD_TIMEOUT, Quality.BAD_TIMEOUT]
    assert all(s.value is None for s in batch)
    assert "no response within 0.3 s" in batch[0].error
    assert 0.25 <= elapsed < 1.5
    assert all(s.quality in (Quality.BAD_TIMEOUT, Quality.BAD_COMM) for s in later)
    assert health.errors >= 2


def test_stop_ends_the_stream_promptly_even_during_a_hanging_read():
    async def scenario():
        async with SilentServer() as silent:
            driver = make_driver(silent.port, {"parts": holding(0, "uint16")}, timeout=30)

            async def consume():
                return [batch async for batch in driver.samples()]

            consumer = asyncio.create_task(consume())
            deadline = time.monotonic() + 3
            while silent.connections == 0:  # wait for the read to be in flight
                assert time.monotonic() < deadline, "driver never connected"
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            began = time.monotonic()
            await driver.stop()
            batches = await asyncio.wait_for(consumer, 2)
            await driver.stop()  # twice is fine
            return time.monotonic() - began, batches, driver.health

    took, batches, health = asyncio.run(scenario())
    assert took < 0.5
    assert batches == []
    assert health.connected is False


def test_illegal_address_marks_only_that_tag_and_polling_goes_on(caplog):
    # the server holds registers 0..9; "beyond" needs 9..10
    tags = {"a": holding(0, "uint16"), "b": holding(2, "uint16"), "beyond": holding(9, "uint32")}

    async def scenario():
        async with ModbusTestServer(list(range(100, 110))) as server:
            driver = make_driver(server.port, tags)
            samples = driver.samples()
            first = await next_batch(samples, lambda b: True)
            split_at = len(server.requests)
            second = await next_batch(samples, lambda b: True)
            third = await next_batch(samples, lambda b: True)
            await driver.stop()
            return first, second, third, server.requests, split_at

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.modbus"):
        first, second, third, requests, split_at = asyncio.run(scenario())

    for batch in (first, second, third):
        samples = by_tag(batch)
        assert samples["a"].quality is Quality.GOOD and samples["a"].value == 100
        assert samples["b"].quality is Quality.GOOD and samples["b"].value == 102
        assert samples["beyond"].quality is Quality.BAD_CONFIG
        assert samples["beyond"].value is None
        error = samples["beyond"].error
        for part in ("cnc01", "beyond", "holding", "address=9", "illegal data address (2)"):
            assert part in error
    # coalesced read failed, then the tags one by one; afterwards the good tags stay coalesced
    assert requests[:split_at] == [(3, 0, 11), (3, 0, 1), (3, 2, 1), (3, 9, 2)]
    assert requests[split_at:split_at + 2] == [(3, 0, 3), (3, 9, 2)]
    failed = [r.getMessage() for r in caplog.records if "event=read_failed" in r.getMessage()]
    assert failed == ['event=read_failed device=cnc01 tags=beyond function=holding '
                      'address=9 count=2 error="illegal data address (2)"']  # once, not per poll


def test_unreachable_device_yields_bad_comm_without_busy_looping():
    async def scenario():
        driver = make_driver(free_port(), {"parts": holding(0, "uint16")}, poll_interval=0.1)
        samples = driver.samples()
        began = time.monotonic()
        batches = [await next_batch(samples, lambda b: True) for _ in range(4)]
        took = time.monotonic() - began
        await driver.stop()
        return batches, took, driver.health

    batches, took, health = asyncio.run(scenario())
    assert all(b[0].quality is Quality.BAD_COMM and b[0].value is None for b in batches)
    assert took >= 0.29  # the cadence holds: 4 polls take 3 intervals
    assert health.connected is False and health.reconnects == 0
    assert 1 <= health.errors <= 4  # reconnect attempts follow the backoff, not every tick


def test_coils_discrete_inputs_and_wide_types_are_read_in_few_requests():
    import struct
    f64 = list(struct.unpack(">4H", struct.pack(">d", -1.5)))
    registers = [0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE, *f64, 0x4F4B, 0x0000, 0b0000_0000_0010_0001]
    coils = [False] * 40
    coils[0] = coils[33] = True
    tags = {
        "i64": holding(0, "int64"),
        "f64": holding(4, "float64"),
        "state": holding(8, "string", length=2),
        "ready": holding(10, "bool", bit=0),
        "fault": holding(10, "bool", bit=1),
        "door": {"function": "coil", "address": 0},
        "lamp": {"function": "coil", "address": 33},
        "estop": {"function": "discrete", "address": 2},
    }

    async def scenario():
        async with ModbusTestServer(registers, coils=coils,
                                    discrete=[False, False, True]) as server:
            driver = make_driver(server.port, tags)
            batch = await next_batch(driver.samples(), all_good)
            await driver.stop()
            return batch, server.requests

    batch, requests = asyncio.run(scenario())
    assert {s.tag: s.value for s in batch} == {
        "i64": -2, "f64": -1.5, "state": "OK", "ready": True, "fault": False,
        "door": True, "lamp": True, "estop": True}
    # one request per table: coils 0..33, discrete 2, holding 0..10
    assert sorted(requests) == [(1, 0, 34), (2, 2, 1), (3, 0, 11)]


def test_a_float_that_is_not_a_number_is_bad_with_one_log_line(caplog):
    nan = [0x7FC0, 0x0000]

    async def scenario():
        async with ModbusTestServer(nan + [5]) as server:
            driver = make_driver(server.port, {"temp": holding(0, "float32"),
                                               "count": holding(2, "uint16")})
            samples = driver.samples()
            batches = [await next_batch(samples, lambda b: True) for _ in range(3)]
            await driver.stop()
            return batches

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.modbus"):
        batches = asyncio.run(scenario())
    for batch in batches:
        samples = by_tag(batch)
        assert samples["temp"].quality is Quality.BAD_COMM and samples["temp"].value is None
        assert "not a number" in samples["temp"].error
        assert samples["count"].quality is Quality.GOOD and samples["count"].value == 5
    lines = [r.getMessage() for r in caplog.records if "event=bad_value" in r.getMessage()]
    assert lines == ['event=bad_value device=cnc01 tag=temp error="served nan, not a number"']


def test_a_scaled_value_that_overflows_to_infinity_is_bad_not_good():
    """A float64 of 1e300 with scale = 1e10 was passed on as a good `inf`."""
    import struct
    big = list(struct.unpack(">4H", struct.pack(">d", 1e300)))

    async def scenario():
        async with ModbusTestServer(big + [5]) as server:
            tag = dict(holding(0, "float64"), scale=1e10)
            driver = make_driver(server.port, {"flow": tag, "count": holding(4, "uint16")})
            samples = driver.samples()
            batch = await next_batch(samples, lambda b: True)
            await driver.stop()
            return by_tag(batch), driver.health

    samples, health = asyncio.run(scenario())
    assert health.errors >= 1 and "tag flow" in health.last_error
    assert samples["flow"].quality is Quality.BAD_COMM and samples["flow"].value is None
    assert "not a number" in samples["flow"].error and "tag flow" in samples["flow"].error
    assert samples["count"].value == 5 and samples["count"].origin == "unit 1 holding 4"


def test_the_one_register_shortcut_gives_what_the_codec_gives_and_refuses_what_it_refuses():
    """uint16/int16/coil tags skip the codec (issue #17's CPU per value); answers a device or a broken
    client library could give outside 0..65535 still become bad samples naming the tag, never values."""
    from drivers.modbus.plan import ReadRequest
    tags = {"u": holding(0, "uint16"), "i": holding(1, "int16"), "t": holding(2, "int16", scale=0.1, offset=1.0),
            "huge": holding(3, "uint16", scale=1e308), "swapped": holding(4, "uint16", byte_order="little"),
            "f": holding(5, "float32")}
    driver = make_driver(1, tags)
    request = ReadRequest("holding", 0, 7, tuple(driver.config.tags.values()))

    def decode(values):
        found = {}
        driver._decode(request, values, found)
        return found

    for values in ([0, 0, 0, 0, 0, 0, 0], [65535, 65535, 65535, 65535, 0x1234, 0x4049, 0x0FDB],
                   [32768, 32767, 32768, 1, 0x00FF, 0, 0], [1, 2, 3, 0, 1, 0x7F80, 0]):
        found = decode(values)
        slow = {}
        for tag in request.tags:   # the checked path, tag by tag
            driver._decode_one(request, tag, values, found[tag.name].source_ts, found[tag.name].origin, slow)
        assert {n: (s.value, s.quality) for n, s in found.items()} == {n: (s.value, s.quality) for n, s in slow.items()}
    assert decode([65535, 65535, 65535, 0, 0, 0, 0])["i"].value == -1
    assert decode([0, 0, 0, 2, 0, 0, 0])["huge"].quality is Quality.BAD_COMM          # 2e308: not a number
    for hostile in (-1, 65536, 1.5, None, "7"):
        found = decode([hostile, hostile, 0, 0, 0, 0, 0])
        for name in ("u", "i"):
            assert found[name].quality is Quality.BAD_COMM and found[name].value is None, (hostile, found[name])
            assert f"tag {name}" in found[name].error
