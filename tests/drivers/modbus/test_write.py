"""Writing tags over Modbus TCP against pymodbus's own server: only what is marked writable."""
from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from drivers.base import Backoff, ConfigCollector, Quality
from drivers.modbus import ModbusDriver, WriteFailed, WriteRefused, WriteValueError
from drivers.modbus.codec import decode
from tests.drivers.modbus import ModbusTestServer, free_port, next_batch

LOGGER = "linebridge.drivers.modbus"
WRITE_CODES = {5, 6, 15, 16}

TAGS = {
    "run": {"function": "coil", "address": 3, "writable": True},
    "target": {"function": "holding", "address": 0, "type": "uint32", "scale": 0.1,
               "writable": True},
    "ratio": {"function": "holding", "address": 2, "type": "float32", "word_order": "little",
              "byte_order": "little", "writable": True},
    "recipe": {"function": "holding", "address": 4, "type": "string", "length": 3,
               "writable": True},
    "offset": {"function": "holding", "address": 7, "type": "int16", "writable": True},
    "locked": {"function": "holding", "address": 8, "type": "uint16"},
    "counter": {"function": "input", "address": 0, "type": "uint16"},
    "estop": {"function": "discrete", "address": 0},
    "ghost": {"function": "holding", "address": 500, "type": "uint16", "writable": True},
}


def make_driver(port, tags=TAGS):
    issues = ConfigCollector()
    config = ModbusDriver.parse_config(
        {"type": "modbus_tcp", "host": "127.0.0.1", "port": port, "poll_interval": 0.1,
         "timeout": 0.5, "tags": tags}, "devices.press", issues)
    assert issues.issues == []
    return ModbusDriver("press", config, backoff=Backoff(initial=0.05, cap=0.2))


def server():
    return ModbusTestServer([0] * 10, coils=[False] * 4, discrete=[True])


def readable(tags=TAGS):
    return {name: tag for name, tag in tags.items() if name != "ghost"}


def test_writes_reach_the_device_through_the_same_codec(caplog):
    async def scenario():
        async with server() as srv:
            driver = make_driver(srv.port, readable())
            await driver.write("run", True)
            await driver.write("target", 1234.5)     # raw 12345
            await driver.write("ratio", -0.75)
            await driver.write("recipe", "AB-7")
            await driver.write("offset", -2)
            stored = {"coils": await srv.get(1, 0, 4), "holding": await srv.get(3, 0, 8)}
            batch = await next_batch(driver.samples(), lambda b: True)
            await driver.stop()
            return stored, batch, [r for r in srv.requests if r[0] in WRITE_CODES]

    with caplog.at_level(logging.INFO, logger=LOGGER):
        stored, batch, writes = asyncio.run(scenario())
    assert stored["coils"] == [False, False, False, True]
    holding = stored["holding"]
    assert holding[0:2] == [0, 12345]
    assert holding[2:4] == [0x0000, 0x40BF]  # -0.75 = 0xBF400000, words and bytes swapped
    assert decode(holding[2:4], "float32", "little", "little") == -0.75
    assert holding[4:7] == [0x4142, 0x2D37, 0x0000]
    assert holding[7] == 0xFFFE
    values = {s.tag: s.value for s in batch}
    assert values["run"] is True and values["target"] == pytest.approx(1234.5)
    assert values["ratio"] == -0.75 and values["recipe"] == "AB-7" and values["offset"] == -2
    assert [code for code, _, _ in writes] == [5, 16, 16, 16, 16]
    written = [r.getMessage() for r in caplog.records if "event=written" in r.getMessage()]
    assert len(written) == 5 and "tag=target" in written[1] and "value=1234.5" in written[1]


def test_refused_writes_send_nothing(caplog):
    async def scenario():
        async with server() as srv:
            driver = make_driver(srv.port)
            errors = {}
            for tag, value in [("locked", 1), ("counter", 1), ("estop", True), ("nope", 1),
                               ("offset", 40000), ("offset", 1.5), ("offset", "12"),
                               ("offset", True), ("run", 2), ("run", "on"),
                               ("recipe", "much too long"), ("ratio", float("nan")),
                               ("target", -1)]:
                with pytest.raises(WriteRefused) as caught:
                    await driver.write(tag, value)
                errors[(tag, repr(value))] = caught.value
            await driver.stop()
            return errors, srv.requests, srv.connections

    with caplog.at_level(logging.INFO, logger=LOGGER):
        errors, requests, connections = asyncio.run(scenario())
    refused = [r.getMessage() for r in caplog.records if "event=write_refused" in r.getMessage()]
    assert len(refused) == len(errors)  # one line per refused write
    assert refused[0].startswith("event=write_refused device=press tag=locked value=1 ")
    assert requests == [] and connections == 0  # refused before even connecting
    assert "not writable; set writable = true in [devices.press.tags.locked]" in \
        str(errors[("locked", "1")])
    assert "read-only: an input register" in str(errors[("counter", "1")])
    assert "read-only: a discrete input" in str(errors[("estop", "True")])
    assert "no tag 'nope'" in str(errors[("nope", "1")])
    value_errors = {k: v for k, v in errors.items() if isinstance(v, WriteValueError)}
    assert set(value_errors) == {
        ("offset", "40000"), ("offset", "1.5"), ("offset", "'12'"), ("offset", "True"),
        ("run", "2"), ("run", "'on'"), ("recipe", "'much too long'"), ("ratio", "nan"),
        ("target", "-1")}
    assert "out of range for int16 (-32768..32767)" in str(errors[("offset", "40000")])
    assert "not an integer" in str(errors[("offset", "1.5")])
    assert all(isinstance(e, ValueError) for e in value_errors.values())


def test_write_refused_by_the_device_is_bad_config(caplog):
    async def scenario():
        async with server() as srv:
            driver = make_driver(srv.port)
            with pytest.raises(WriteFailed) as caught:
                await driver.write("ghost", 7)
            await driver.stop()
            return caught.value

    with caplog.at_level(logging.INFO, logger=LOGGER):
        failed = asyncio.run(scenario())
    assert failed.quality is Quality.BAD_CONFIG and failed.code == 2
    assert "illegal data address (2)" in str(failed) and "ghost" in str(failed)
    [line] = [r.getMessage() for r in caplog.records if "event=write_failed" in r.getMessage()]
    assert "device=press tag=ghost" in line and "quality=bad_config" in line


def test_write_to_an_unreachable_device_fails_with_bad_comm():
    async def scenario():
        driver = make_driver(free_port())
        with pytest.raises(WriteFailed) as caught:
            await driver.write("offset", 1)
        await driver.stop()
        return caught.value

    failed = asyncio.run(scenario())
    assert failed.quality is Quality.BAD_COMM
    assert "connection refused" in str(failed)


def test_float_word_and_byte_orders_match_what_the_device_serves():
    value = 12.5
    big = list(struct.unpack(">2H", struct.pack(">f", value)))
    registers = big + big[::-1] + [((w & 0xFF) << 8) | (w >> 8) for w in big]
    tags = {"abcd": {"function": "holding", "address": 0, "type": "float32"},
            "cdab": {"function": "holding", "address": 2, "type": "float32",
                     "word_order": "little"},
            "badc": {"function": "holding", "address": 4, "type": "float32",
                     "byte_order": "little"}}

    async def scenario():
        async with ModbusTestServer(registers) as srv:
            driver = make_driver(srv.port, tags)
            batch = await next_batch(driver.samples(), lambda b: True)
            await driver.stop()
            return batch

    assert {s.tag: s.value for s in asyncio.run(scenario())} == {
        "abcd": 12.5, "cdab": 12.5, "badc": 12.5}
