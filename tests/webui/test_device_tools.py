"""The device tools of the console against real peers: the OPC-UA tag picker and an unsaved test read."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.drivers.opcua import OpcUaTestServer
from tests.webui.conftest import Gateway, admin_console


@pytest.fixture(scope="module")
def opcua() -> Iterator[OpcUaTestServer]:
    server = OpcUaTestServer().start()
    try:
        yield server
    finally:
        server.stop()


def _press(endpoint: str) -> dict:
    return {"type": "opcua", "endpoint": endpoint, "mode": "poll", "poll_interval": 1.0,
            "tags": {"parts": {"node": "ns=2;s=Machine1.Counter"}}}


def test_the_tag_picker_browses_an_unsaved_opcua_device_and_a_test_read_reads_it(gateway: Gateway,
                                                                                   opcua: OpcUaTestServer) -> None:
    c = admin_console(gateway)
    before = gateway.config_path.read_text()
    top = c.api("POST", "/devices/press1/browse", {"section": _press(opcua.endpoint)})
    assert top.status_code == 200, top.text
    assert "Machine1" in {n["display_name"] for n in top.json()["nodes"]}
    inner = c.api("POST", "/devices/press1/browse", {"section": _press(opcua.endpoint), "node": "ns=2;s=Machine1"})
    variables = {n["display_name"]: n for n in inner.json()["nodes"]}
    assert variables["Counter"]["node_class"] == "Variable" and variables["Counter"]["data_type"] == "UInt32"
    read = c.api("POST", "/devices/press1/test-read", {"section": _press(opcua.endpoint)})
    assert read.status_code == 200, read.text
    (sample,) = read.json()["samples"]
    assert sample["tag"] == "parts" and sample["quality"] == "good" and isinstance(sample["value"], int)
    assert gateway.config_path.read_text() == before, "browsing and test reads save nothing"


def test_browsing_a_modbus_device_is_refused_by_name(gateway: Gateway) -> None:
    c = admin_console(gateway)
    resp = c.api("POST", "/devices/cnc01/browse", {})
    assert resp.status_code == 422
    assert "cnc01" in resp.json()["error"] and "OPC-UA" in resp.json()["error"]


def test_a_test_read_of_an_unreachable_device_says_so_without_saving(gateway: Gateway) -> None:
    c = admin_console(gateway)
    section = {"type": "modbus_tcp", "host": "127.0.0.1", "port": 1, "unit_id": 1, "timeout": 0.5,
               "tags": {"x": {"function": "holding", "address": 0, "type": "uint16"}}}
    resp = c.api("POST", "/devices/nowhere/test-read", {"section": section})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body.get("error") or all(s["quality"] != "good" for s in body["samples"]), body
