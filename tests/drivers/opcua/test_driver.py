"""The OPC-UA driver against asyncua's own server: values, deadbands, bad nodes, quality."""
from __future__ import annotations

import asyncio
import logging
import time

import pytest
from asyncua import ua

from drivers.base import Backoff, Quality
from drivers.opcua import OpcUaDriver
from tests.drivers.opcua import (OpcUaTestServer, SilentServer, by_tag, free_port, has,
                                 next_batch, node, parse, wait_until)

TYPED = {"count": {"node": node("Counter")}, "temp": {"node": node("Temperature")},
         "running": {"node": node("Running")}, "recipe": {"node": node("Recipe")}}


def make_driver(endpoint, tags, **extra):
    section = {"type": "opcua", "endpoint": endpoint, "timeout": 2.0,
               "publishing_interval": 0.05, "poll_interval": 0.1, "tags": tags} | extra
    return OpcUaDriver("press1", parse(section), backoff=Backoff(initial=0.05, cap=0.2))


def all_good(batch):
    return bool(batch) and all(s.quality is Quality.GOOD for s in batch)


def test_subscription_delivers_typed_values_and_one_sample_per_change(plant):
    async def scenario():
        driver = make_driver(plant.endpoint, TYPED)
        samples = driver.samples()
        seen = []
        await next_batch(samples, lambda b: len(seen_tags(seen)) == 4, seen=seen)
        await plant.write("Counter", 42)
        changed = await next_batch(samples, has("count", 42))
        await plant.write("Recipe", "PN-200")
        renamed = await next_batch(samples, has("recipe", "PN-200"))
        await driver.stop()
        return seen, changed, renamed, driver.health

    seen, changed, renamed, health = asyncio.run(scenario())
    first = {s.tag: s for batch in seen for s in batch}
    assert {t: s.value for t, s in first.items()} == {
        "count": 41, "temp": 21.5, "running": True, "recipe": "PN-100"}
    assert type(first["count"].value) is int and type(first["temp"].value) is float
    assert type(first["running"].value) is bool and type(first["recipe"].value) is str
    assert all(s.quality is Quality.GOOD and s.error is None and s.device == "press1"
               for s in first.values())
    assert [s.tag for s in changed] == ["count"]  # only what changed, not every tag
    assert [s.tag for s in renamed] == ["recipe"]
    assert health.connected is False and health.reconnects == 0
    assert health.last_good_read is not None and health.reads >= 2


def seen_tags(batches):
    return {s.tag for batch in batches for s in batch if s.quality is Quality.GOOD}


def test_polling_delivers_typed_values_every_poll(plant):
    async def scenario():
        driver = make_driver(plant.endpoint, TYPED, mode="poll")
        samples = driver.samples()
        first = await next_batch(samples, all_good)
        second = await next_batch(samples, all_good)
        await plant.write("Temperature", 22.25)
        await plant.write("Running", False)
        later = await next_batch(samples, has("temp", 22.25))
        await driver.stop()
        return first, second, later, driver.health

    first, second, later, health = asyncio.run(scenario())
    assert [s.tag for s in first] == list(TYPED)  # every tag, configuration order
    assert {s.tag: s.value for s in first} == {
        "count": 41, "temp": 21.5, "running": True, "recipe": "PN-100"}
    assert type(first[0].value) is int and type(first[2].value) is bool
    assert {s.tag: s.value for s in second} == {s.tag: s.value for s in first}
    assert by_tag(later)["running"].value is False
    assert health.poll_latency_ms is not None and health.reads >= 3
    # a good sample names its node, for a person checking a value a rule refused
    assert first[0].origin == f"node {TYPED['count']['node']}"


def test_server_refusing_subscriptions_is_polled_instead(caplog):
    async def scenario(server):
        driver = make_driver(server.endpoint, TYPED)  # mode = subscribe
        samples = driver.samples()
        first = await next_batch(samples, all_good)
        await server.write("Counter", 7)
        later = await next_batch(samples, has("count", 7))
        await driver.stop()
        return first, later

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.opcua"), \
            OpcUaTestServer(max_subscriptions=0) as server:
        first, later = asyncio.run(scenario(server))
    assert len(first) == 4 and len(later) == 4  # polled: every tag, every poll
    lines = [r.getMessage() for r in caplog.records if "event=poll_fallback" in r.getMessage()]
    assert len(lines) == 1
    assert "tags=count,temp,running,recipe" in lines[0] and "BadTooManySubscriptions" in lines[0]


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
def test_deadband_suppresses_small_changes(plant, mode):
    tags = {"level": {"node": node("Level"), "deadband": 1.0},
            "pressure": {"node": node("Pressure"), "deadband_percent": 1.0},  # EURange 0..200
            "count": {"node": node("Counter")}}

    async def scenario():
        driver = make_driver(plant.endpoint, tags, mode=mode)
        samples = driver.samples()
        seen = []
        await next_batch(samples, lambda b: len(seen_tags(seen)) == 3, seen=seen)
        mark = len(seen)
        await plant.write("Level", 10.6)       # 0.6 <= 1.0
        await plant.write("Pressure", 101.5)   # 1.5 <= 1 % of 200
        await plant.write("Counter", 42)       # a marker: everything before it has been seen
        await next_batch(samples, has("count", 42), seen=seen)
        small = [s for batch in seen[mark:] for s in batch if s.tag != "count"]
        await plant.write("Level", 12.0)
        await plant.write("Pressure", 104.0)
        await next_batch(samples, lambda b: {"level": 12.0, "pressure": 104.0}.items()
                         <= {s.tag: s.value for batch in seen[mark:] for s in batch}.items(),
                         seen=seen)
        await driver.stop()
        return small

    small = asyncio.run(scenario())
    assert small == []


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
def test_unknown_node_is_bad_config_with_one_log_line_and_other_tags_stay_good(plant, mode,
                                                                                caplog):
    tags = {"count": {"node": node("Counter")}, "ghost": {"node": node("Ghost")},
            "temp": {"node": node("Temperature")}}

    async def scenario():
        driver = make_driver(plant.endpoint, tags, mode=mode)
        samples = driver.samples()
        seen = []
        await next_batch(samples, has("ghost", quality=Quality.BAD_CONFIG), seen=seen)
        await next_batch(samples, lambda b: {"count", "temp"} <= seen_tags(seen), seen=seen)
        for value in (42, 43):
            await plant.write("Counter", value)
            await next_batch(samples, has("count", value), seen=seen)
        await driver.stop()
        return seen

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.opcua"):
        seen = asyncio.run(scenario())
    ghosts = [s for batch in seen for s in batch if s.tag == "ghost"]
    assert ghosts and all(s.quality is Quality.BAD_CONFIG and s.value is None for s in ghosts)
    for part in ("press1", "ghost", "ns=2;s=Machine1.Ghost", "BadNodeIdUnknown"):
        assert part in ghosts[0].error
    others = [s for batch in seen for s in batch if s.tag != "ghost"]
    assert others and all(s.quality is Quality.GOOD for s in others)
    failed = [r for r in caplog.records if "event=tag_failed" in r.getMessage()]
    assert len(failed) == 1  # once, not once per poll
    assert failed[0].levelno == logging.WARNING
    assert failed[0].getMessage().startswith(
        'event=tag_failed device=press1 tag=ghost node="ns=2;s=Machine1.Ghost" '
        'quality=bad_config error="BadNodeIdUnknown')


def test_uncertain_and_out_of_service_values_are_stale_never_invented(plant):
    async def scenario():
        driver = make_driver(plant.endpoint, {"temp": {"node": node("Temperature")}})
        samples = driver.samples()
        await next_batch(samples, has("temp", 21.5))
        await plant.write("Temperature", 99.0, status=ua.StatusCodes.UncertainLastUsableValue)
        uncertain = await next_batch(samples, lambda b: True)
        await plant.write("Temperature", None, status=ua.StatusCodes.BadOutOfService)
        out_of_service = await next_batch(samples, lambda b: True)
        await plant.write("Temperature", 23.0)
        back = await next_batch(samples, lambda b: True)
        await driver.stop()
        return uncertain[0], out_of_service[0], back[0]

    uncertain, out_of_service, back = asyncio.run(scenario())
    assert uncertain.quality is Quality.STALE and uncertain.value is None
    assert "UncertainLastUsableValue" in uncertain.error
    assert out_of_service.quality is Quality.STALE and out_of_service.value is None
    assert "BadOutOfService" in out_of_service.error
    assert back.quality is Quality.GOOD and back.value == 23.0


def test_type_hint_converts_or_marks_bad_config(plant):
    tags = {"count_text": {"node": node("Counter"), "type": "string"},
            "temp_int": {"node": node("Temperature"), "type": "int"},
            "running_int": {"node": node("Running"), "type": "int"}}

    async def scenario():
        driver = make_driver(plant.endpoint, tags, mode="poll")
        batch = await next_batch(driver.samples(), lambda b: len(b) == 3)
        await driver.stop()
        return by_tag(batch)

    got = asyncio.run(scenario())
    assert got["count_text"].value == "41" and got["count_text"].quality is Quality.GOOD
    assert got["running_int"].value == 1 and type(got["running_int"].value) is int
    assert got["temp_int"].quality is Quality.BAD_CONFIG and got["temp_int"].value is None
    assert "21.5 cannot be read as type 'int'" in got["temp_int"].error


def test_unreachable_server_is_bad_comm_once_while_retrying_with_backoff(caplog):
    async def scenario():
        driver = make_driver(f"opc.tcp://127.0.0.1:{free_port()}/nothing", TYPED)
        batches = []

        async def consume():
            async for batch in driver.samples():
                batches.append(batch)

        consumer = asyncio.create_task(consume())
        await wait_until(lambda: driver.health.errors >= 4, 10, "four connect attempts")
        await driver.stop()
        await asyncio.wait_for(consumer, 5)
        return batches, driver.health

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.opcua"):
        batches, health = asyncio.run(scenario())
    assert len(batches) == 1  # marked once, not once per attempt
    assert [s.tag for s in batches[0]] == list(TYPED)
    assert all(s.quality is Quality.BAD_COMM and s.value is None for s in batches[0])
    assert "connection refused" in batches[0][0].error and "press1" in batches[0][0].error
    assert health.connected is False and health.reconnects == 0
    failed = [r for r in caplog.records if "event=connect_failed" in r.getMessage()]
    assert failed[0].levelno == logging.WARNING
    assert all(r.levelno == logging.INFO for r in failed[1:])  # the same failure, quieter


def test_silent_server_gives_bad_timeout():
    async def scenario():
        async with SilentServer() as silent:
            driver = make_driver(f"opc.tcp://127.0.0.1:{silent.port}/", TYPED, timeout=0.3)
            began = time.monotonic()
            batch = await next_batch(driver.samples(), lambda b: True)
            took = time.monotonic() - began
            await driver.stop()
            return batch, took

    batch, took = asyncio.run(scenario())
    assert all(s.quality is Quality.BAD_TIMEOUT and s.value is None for s in batch)
    assert "no response within 0.3 s" in batch[0].error
    assert took < 3


def test_stop_ends_the_stream_promptly_even_while_connecting():
    async def scenario():
        async with SilentServer() as silent:
            driver = make_driver(f"opc.tcp://127.0.0.1:{silent.port}/", TYPED, timeout=30)

            async def consume():
                return [batch async for batch in driver.samples()]

            consumer = asyncio.create_task(consume())
            await wait_until(lambda: silent.connections > 0, 5, "the driver to connect")
            began = time.monotonic()
            await driver.stop()
            batches = await asyncio.wait_for(consumer, 2)
            await driver.stop()  # twice is fine
            return time.monotonic() - began, batches, driver.health

    took, batches, health = asyncio.run(scenario())
    assert took < 0.5
    assert batches == []
    assert health.connected is False


def test_namespace_uris_are_resolved_on_the_server_and_missing_ones_are_bad_config(plant):
    tags = {"count": {"node": "nsu=urn:linebridge:test;s=Machine1.Counter"},
            "elsewhere": {"node": "nsu=urn:acme:other;s=Machine1.Counter"},
            "no_range": {"node": node("Temperature"), "deadband_percent": 5.0}}

    async def scenario():
        driver = make_driver(plant.endpoint, tags)
        samples = driver.samples()
        seen = []
        await next_batch(samples, lambda b: {s.tag for x in seen for s in x} == set(tags),
                         seen=seen)
        await driver.stop()
        return {s.tag: s for batch in seen for s in batch}

    got = asyncio.run(scenario())
    assert got["count"].quality is Quality.GOOD and got["count"].value == 41
    assert got["elsewhere"].quality is Quality.BAD_CONFIG
    assert "namespace urn:acme:other is not on this server" in got["elsewhere"].error
    assert got["no_range"].quality is Quality.BAD_CONFIG
    assert "deadband_percent needs the node's EURange property" in got["no_range"].error
