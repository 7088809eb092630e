"""Fixtures shared by the gateway tests: a real mosquitto broker per test (the MQTT driver tests' own)."""
from __future__ import annotations

from tests.drivers.mqtt.conftest import broker  # noqa: F401  (a fixture: pytest finds it by name here)
