"""A server that goes away and comes back: bad_comm once, reconnect, resubscribe."""
from __future__ import annotations

import asyncio
import gc
import logging
import threading
import warnings

import pytest

from drivers.base import Backoff, Quality
from drivers.opcua import OpcUaDriver
from tests.drivers.opcua import (OpcUaTestServer, free_port, has, next_batch, node, parse,
                                 wait_until)

TAGS = {"count": {"node": node("Counter")}, "temp": {"node": node("Temperature")}}


def found(batches, tag, value=None, quality=Quality.GOOD):
    return any(has(tag, value, quality)(batch) for batch in batches)


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
def test_server_restart_marks_tags_bad_comm_once_then_resubscribes(mode, caplog):
    port = free_port()

    async def scenario():
        first = OpcUaTestServer(port)
        await asyncio.to_thread(first.start)
        config = parse({"type": "opcua", "endpoint": first.endpoint, "timeout": 2.0,
                        "mode": mode, "publishing_interval": 0.05, "poll_interval": 0.1,
                        "keepalive_interval": 1.0, "tags": TAGS})
        driver = OpcUaDriver("press1", config, backoff=Backoff(initial=0.05, cap=0.2))
        seen = []

        async def consume():
            async for batch in driver.samples():
                seen.append(batch)

        consumer = asyncio.create_task(consume())
        second = OpcUaTestServer(port, initial={"Counter": 500})
        try:
            await wait_until(lambda: found(seen, "count", 41), 10, "the first value")
            assert driver.health.connected
            await asyncio.to_thread(first.stop)
            await wait_until(lambda: found(seen, "count", quality=Quality.BAD_COMM), 10,
                             "the tags to go bad")
            outage_from = len(seen) - 1
            assert not driver.health.connected
            errors = driver.health.errors
            await wait_until(lambda: driver.health.errors >= errors + 3, 10,
                             "three failed reconnect attempts")
            await asyncio.to_thread(second.start)  # same port
            await wait_until(lambda: found(seen, "count", 500), 20, "the restarted server")
            await second.write("Counter", 501)  # values flow again: the items are monitored anew
            await wait_until(lambda: found(seen, "count", 501), 10, "a new value")
        finally:
            await driver.stop()
            await asyncio.wait_for(consumer, 5)
            await asyncio.to_thread(second.stop)
            await asyncio.to_thread(first.stop)
        return seen, outage_from, driver.health

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.opcua"):
        seen, outage_from, health = asyncio.run(scenario())
    back_at = next(i for i in range(outage_from, len(seen))
                   if any(s.quality is Quality.GOOD for s in seen[i]))
    outage = [s for batch in seen[outage_from:back_at] for s in batch]
    assert sorted(s.tag for s in outage) == ["count", "temp"]  # once each, however many retries
    assert all(s.quality is Quality.BAD_COMM and s.value is None and "press1" in s.error
               for s in outage)
    back = {s.tag for batch in seen[back_at:] for s in batch if s.quality is Quality.GOOD}
    assert back == {"count", "temp"}
    assert health.reconnects == 1
    assert health.errors >= 4
    messages = [r.getMessage() for r in caplog.records]
    assert sum("event=connection_lost" in m for m in messages) == 1
    connected = [m for m in messages if "event=connected" in m and "reconnects=1" in m]
    assert len(connected) == 1
    if mode == "subscribe":  # resubscribed, not quietly polled
        assert "subscribed=2 polled=0 failed=0" in connected[0]


def test_frozen_server_is_detected_by_the_keepalive_and_recovered(plant, caplog):
    """The TCP connection stays open but the server stops answering (a hung PLC)."""
    config = parse({"type": "opcua", "endpoint": plant.endpoint, "timeout": 1.0,
                    "publishing_interval": 0.05, "keepalive_interval": 0.5, "tags": TAGS})

    async def scenario():
        driver = OpcUaDriver("press1", config, backoff=Backoff(initial=0.05, cap=0.2))
        samples = driver.samples()
        await next_batch(samples, has("count", 41))
        thaw = threading.Event()
        plant.freeze(thaw)
        try:
            lost = await next_batch(samples, has("count", quality=Quality.BAD_COMM))
        finally:
            thaw.set()
        await plant.write("Counter", 77)
        again = await next_batch(samples, has("count", 77), timeout=20)
        await driver.stop()
        return lost, again, driver.health

    with caplog.at_level(logging.INFO, logger="linebridge.drivers.opcua"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        lost, again, health = asyncio.run(scenario())
        gc.collect()  # a socket the driver forgot to close would complain now
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert [(s.tag, s.quality) for s in lost] == [("count", Quality.BAD_COMM),
                                                  ("temp", Quality.BAD_COMM)]
    assert "the server stopped answering the keep-alive check" in lost[0].error
    assert health.reconnects >= 1
    assert any("event=connection_lost" in r.getMessage() for r in caplog.records)
