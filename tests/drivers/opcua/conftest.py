"""Fixtures: one plain asyncua server shared by the tests that only read from it."""
from __future__ import annotations

import asyncio
from typing import Iterator

import pytest

from tests.drivers.opcua import OpcUaTestServer


@pytest.fixture(scope="session")
def opcua_server() -> Iterator[OpcUaTestServer]:
    """asyncua's Server with the test machine; values are reset before each test uses it."""
    server = OpcUaTestServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def plant(opcua_server: OpcUaTestServer) -> OpcUaTestServer:
    asyncio.run(opcua_server.reset())
    return opcua_server
