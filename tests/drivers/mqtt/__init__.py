"""Helpers for the MQTT input driver's tests: building drivers, waiting on samples with a deadline.

The broker itself (a real mosquitto) is in `broker.py`, started by the
fixtures in `conftest.py`.
"""
from __future__ import annotations

import asyncio
import uuid
from typing import Any, AsyncIterator, Callable

from drivers.base import Backoff, ConfigCollector, Quality, Sample
from drivers.mqtt import MqttDriver
from tests.drivers.mqtt.broker import publish
from tests.drivers.peers import by_tag  # noqa: F401 (re-exported)


def make_config(port: int, topics: dict[str, Any], **extra: Any) -> Any:
    section = {"type": "mqtt", "host": "127.0.0.1", "port": port, "connect_timeout": 3.0,
               "machine": "CNC-01", "topics": topics, **extra}
    section.setdefault("client_id", f"test-{uuid.uuid4().hex[:12]}")
    issues = ConfigCollector()
    config = MqttDriver.parse_config(section, "devices.cnc01", issues)
    assert issues.issues == [], issues.issues
    return config


def make_driver(port: int, topics: dict[str, Any], *, backoff: Backoff | None = None,
                **extra: Any) -> MqttDriver:
    return MqttDriver("cnc01", make_config(port, topics, **extra),
                      backoff=backoff or Backoff(initial=0.05, cap=0.3))


async def take(samples: AsyncIterator[list[Sample]], timeout: float = 10.0) -> list[Sample]:
    """The very next batch, whatever it holds."""
    return await asyncio.wait_for(samples.__anext__(), timeout)


async def wait_until(condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll `condition` on the event loop until truthy; fail naming `what` after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def send(port: int, topic: str, payload: bytes | str, qos: int = 1, **auth: Any) -> None:
    """Publish from a separate test client (in a thread: paho's publish waits)."""
    await asyncio.to_thread(publish, port, topic, payload, qos, False, **auth)


def all_good(batch: list[Sample]) -> bool:
    return bool(batch) and all(s.quality is Quality.GOOD for s in batch)


def all_stale(batch: list[Sample]) -> bool:
    return bool(batch) and all(s.quality is Quality.STALE for s in batch)
