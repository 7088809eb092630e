"""Fixtures shared by the gateway tests: a real mosquitto broker per test."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.drivers.mqtt.broker import MosquittoBroker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    instance = MosquittoBroker(tmp_path / "broker")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
