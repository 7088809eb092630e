"""Run-time fault injection in the Odoo sandbox: the /sandbox/faults endpoint and set_faults()."""
from __future__ import annotations

import time
import xmlrpc.client
from typing import Any, Iterator

import httpx
import pytest

from gateway.sandbox.odoo import OdooSandbox

SERIALIZATION = "could not serialize access due to concurrent update\n"


@pytest.fixture
def odoo() -> Iterator[OdooSandbox]:
    sb = OdooSandbox(host="127.0.0.1", port=0, version="19.0")
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def client(odoo: OdooSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=odoo.url, timeout=10) as c:
        yield c


def jsonrpc(client: httpx.Client, model: str, method: str, args: list[Any], password: str = "admin") -> dict:
    return client.post("/jsonrpc", json={"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw", "args": ["sandbox", 2, password, model, method, args]}}).json()


def name_of_wc(client: httpx.Client) -> str:
    return jsonrpc(client, "mrp.workcenter", "read", [[1], ["name"]])["result"][0]["name"]


def faults(client: httpx.Client, **settings: Any) -> httpx.Response:
    return client.post("/sandbox/faults", json=settings)


def test_endpoint_sets_shows_and_clears_faults(client: httpx.Client) -> None:
    assert faults(client, http_status=503, count=2).json() == {"faults": {"http_status": 503, "count": 2}}
    assert client.get("/sandbox/faults").json() == {"faults": {"http_status": 503, "count": 2}}
    assert faults(client).json() == {"faults": {}}
    assert faults(client, bogus=True).status_code == 400
    assert faults(client, http_status=200).status_code == 400
    assert faults(client, count=0, bad_key=True).status_code == 400


def test_http_status_answers_the_proxy_page_for_the_next_n_requests(client: httpx.Client) -> None:
    faults(client, http_status=503, count=2)
    for _ in range(2):
        resp = client.post("/jsonrpc", json={})
        assert resp.status_code == 503 and resp.headers["content-type"] == "text/html"
        assert "<title>503 Service Temporarily Unavailable</title>" in resp.text
    assert name_of_wc(client) == "CNC-01 Machining"
    assert client.get("/sandbox/faults").json() == {"faults": {}}


def test_python_api_http_status_until_cleared(odoo: OdooSandbox, client: httpx.Client) -> None:
    odoo.set_faults(http_status=502)
    for _ in range(3):
        assert client.get("/web/version").status_code == 502
    odoo.set_faults()
    assert client.get("/web/version").status_code == 200


def test_drop_connection_closes_the_socket_without_a_reply(odoo: OdooSandbox, client: httpx.Client) -> None:
    faults(client, drop_connection=True, count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/jsonrpc", json={})
    odoo.set_faults(drop_connection=True, count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/web/version")
    assert client.get("/web/version").status_code == 200


def test_latency_holds_the_reply_back(odoo: OdooSandbox, client: httpx.Client) -> None:
    faults(client, latency=0.4, count=1)
    start = time.monotonic()
    assert client.get("/web/version").status_code == 200
    assert time.monotonic() - start >= 0.4
    odoo.set_faults(latency=5, count=1)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/web/version", timeout=0.3)


def test_serialization_failure_on_every_wire_rolls_back(odoo: OdooSandbox, client: httpx.Client) -> None:
    faults(client, serialization_failure=True, count=3)
    error = jsonrpc(client, "mrp.workcenter", "write", [[1], {"name": "A"}])["error"]
    assert (error["code"], error["message"]) == (200, "Odoo Server Error")
    assert error["data"]["name"] == "psycopg2.errors.SerializationFailure"
    assert error["data"]["message"] == SERIALIZATION and error["data"]["arguments"] == [SERIALIZATION]
    proxy = xmlrpc.client.ServerProxy(odoo.url + "/xmlrpc/2/object")
    with pytest.raises(xmlrpc.client.Fault) as fault:
        proxy.execute_kw("sandbox", 2, "admin", "mrp.workcenter", "write", [[1], {"name": "B"}])
    assert fault.value.faultCode == 1
    assert "psycopg2.errors.SerializationFailure: could not serialize access due to concurrent update" \
        in fault.value.faultString
    resp = client.post("/json/2/mrp.workcenter/write", json={"ids": [1], "vals": {"name": "C"}},
                       headers={"Authorization": "bearer admin"})
    assert resp.status_code == 500 and resp.json()["name"] == "psycopg2.errors.SerializationFailure"
    assert name_of_wc(client) == "CNC-01 Machining"


@pytest.mark.parametrize("kind, name, message", [
    ("pool_error", "psycopg2.pool.PoolError", "The Connection Pool Is Full"),
    ("connection_closed", "psycopg2.InterfaceError", "connection already closed"),
    ("cursor_closed", "psycopg2.InterfaceError", "Cursor already closed"),
])
def test_a_restarting_odoo_answers_server_errors_on_every_wire_and_commits_nothing(
        odoo: OdooSandbox, client: httpx.Client, kind: str, name: str, message: str) -> None:
    faults(client, **{kind: True, "count": 3})
    error = jsonrpc(client, "mrp.workcenter", "write", [[1], {"name": "A"}])["error"]
    assert (error["code"], error["message"]) == (200, "Odoo Server Error")
    assert error["data"] == {"name": name, "debug": f"Traceback (most recent call last):\n  ...\n{name}: {message}\n",
                             "message": message, "arguments": [message], "context": {}}
    proxy = xmlrpc.client.ServerProxy(odoo.url + "/xmlrpc/2/object")
    with pytest.raises(xmlrpc.client.Fault) as fault:
        proxy.execute_kw("sandbox", 2, "admin", "mrp.workcenter", "write", [[1], {"name": "B"}])
    assert (fault.value.faultCode, fault.value.faultString) == (
        1, f"Traceback (most recent call last):\n  ...\n{name}: {message}\n")
    resp = client.post("/json/2/mrp.workcenter/write", json={"ids": [1], "vals": {"name": "C"}},
                       headers={"Authorization": "bearer admin"})
    assert resp.status_code == 500
    assert resp.json() == {"name": name, "message": message, "arguments": [message], "context": {},
                           "debug": f"Traceback (most recent call last):\n  ...\n{name}: {message}\n"}
    assert name_of_wc(client) == "CNC-01 Machining"


def test_serialization_failure_through_the_python_api(odoo: OdooSandbox, client: httpx.Client) -> None:
    odoo.set_faults(serialization_failure=True, count=1)
    assert jsonrpc(client, "mrp.workcenter", "write", [[1], {"name": "A"}])["error"]["data"]["name"] == \
        "psycopg2.errors.SerializationFailure"
    assert jsonrpc(client, "mrp.workcenter", "write", [[1], {"name": "A"}])["result"] is True


def test_bad_key_refuses_every_credential(odoo: OdooSandbox, client: httpx.Client) -> None:
    faults(client, bad_key=True, count=3)
    auth = client.post("/jsonrpc", json={"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "common", "method": "authenticate", "args": ["sandbox", "admin", "admin", {}]}}).json()
    assert auth["result"] is False
    assert jsonrpc(client, "mrp.workcenter", "search", [[]])["error"]["data"]["name"] == \
        "odoo.exceptions.AccessDenied"
    resp = client.post("/json/2/mrp.workcenter/search", json={"domain": []}, headers={"Authorization": "bearer admin"})
    assert resp.status_code == 401 and resp.json()["message"] == "Invalid apikey"
    assert jsonrpc(client, "mrp.workcenter", "search", [[]])["result"] == [1]
    odoo.set_faults(bad_key=True)
    proxy = xmlrpc.client.ServerProxy(odoo.url + "/xmlrpc/2/object")
    with pytest.raises(xmlrpc.client.Fault) as fault:
        proxy.execute_kw("sandbox", 2, "admin", "mrp.workcenter", "search", [[]])
    assert (fault.value.faultCode, fault.value.faultString) == (3, "Access Denied")


def test_faults_endpoint_is_only_for_loopback_clients(odoo: OdooSandbox) -> None:
    from gateway.sandbox.odoo.server import is_loopback
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("127.8.9.10")
    assert not is_loopback("10.1.2.3") and not is_loopback("192.0.2.7") and not is_loopback("garbage")
    assert httpx.post(f"{odoo.url}/sandbox/faults", json={}).status_code == 200
