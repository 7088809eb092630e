"""Fixtures: a real mosquitto broker per test on a free loopback port, stopped by pid afterwards."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.drivers.mqtt.broker import MosquittoBroker

USERS = {"line": "s3cret-pass", "viewer": "other-pass"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """Anonymous access, sessions kept in memory while the broker runs."""
    instance = MosquittoBroker(tmp_path / "broker")
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """Only the users in USERS, with a password file made by mosquitto_passwd."""
    instance = MosquittoBroker(tmp_path / "auth-broker", users=USERS)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
