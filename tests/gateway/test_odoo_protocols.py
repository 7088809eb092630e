"""The Odoo clients (JSON-RPC, XML-RPC, JSON-2) against the Odoo sandbox over real HTTP: calls, errors, choice."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Iterator, TypeVar

import pytest

from gateway.errors import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo.client import OdooClient, classify
from gateway.sinks.odoo.json2 import Json2Client, named_arguments
from gateway.sinks.odoo.protocol import OdooRpc, UnknownOutcomeError, connect
from gateway.sinks.odoo.xmlrpc import XmlRpcClient

T = TypeVar("T")
KEY = "secret-key"
CLIENTS = {"jsonrpc": OdooClient, "xmlrpc": XmlRpcClient, "json2": Json2Client}
WIRES = [("jsonrpc", "17.0"), ("xmlrpc", "17.0"), ("jsonrpc", "19.0"), ("xmlrpc", "19.0"), ("json2", "19.0")]


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


@pytest.fixture
def odoo_factory() -> Iterator[Any]:
    started: list[OdooSandbox] = []

    def start(version: str) -> OdooSandbox:
        sb = OdooSandbox(host="127.0.0.1", port=0, api_key=KEY, version=version)
        sb.start()
        started.append(sb)
        return sb
    yield start
    for sb in started:
        sb.stop()


def client_for(protocol: str, sb: OdooSandbox, login: str = "admin", key: str = KEY,
               timeout: float = 5.0) -> OdooRpc:
    return CLIENTS[protocol](sb.url, "sandbox", login, key, timeout=timeout)


async def _raises(client: OdooRpc, exc: type[BaseException], model: str, method: str, args: list[Any],
                  kwargs: dict[str, Any] | None = None) -> BaseException:
    try:
        await client.execute_kw(model, method, args, kwargs)
    except exc as caught:
        return caught
    raise AssertionError(f"{model}.{method} did not raise {exc.__name__}")


# -- the same calls on every wire ---------------------------------------------------------

@pytest.mark.parametrize("protocol, version", WIRES)
def test_every_wire_does_version_authenticate_search_read_create_write_and_load(odoo_factory, protocol, version):
    sb = odoo_factory(version)

    async def go() -> None:
        async with client_for(protocol, sb) as client:
            info = await client.version()
            assert info["server_version"] == version and info["server_version_info"][0] == int(version[:2])
            assert await client.authenticate() == 2 and client.uid == 2
            assert await client.execute_kw("mrp.workcenter", "search_read", [[["code", "=", "CNC-01"]]],
                                           {"fields": ["name"]}) == [{"id": 1, "name": "CNC-01 Machining"}]
            assert await client.execute_kw("mrp.workcenter", "search_read", [[], ["code"]], {"limit": 1}) == [
                {"id": 1, "code": "CNC-01"}]
            req = await client.execute_kw("maintenance.request", "create", [{"name": "Spindle", "equipment_id": 1}])
            assert isinstance(req, int)
            two = await client.execute_kw("maintenance.request", "create", [[{"name": "A"}, {"name": "B"}]])
            assert two == [req + 1, req + 2]
            assert await client.execute_kw("maintenance.request", "write", [[req], {"priority": "3"}]) is True
            assert await client.execute_kw("maintenance.request", "read", [[req], ["priority"]]) == [
                {"id": req, "priority": "3"}]
            loaded = await client.execute_kw("maintenance.request", "load",
                                             [["id", "name"], [["linebridge.evt_1", "Door open"]]])
            assert loaded["messages"] == [] and len(loaded["ids"]) == 1
            again = await client.execute_kw("maintenance.request", "load",
                                            [["id", "name"], [["linebridge.evt_1", "Door open"]]])
            assert again["ids"] == loaded["ids"]
            msg = await client.execute_kw("mrp.production", "message_post", [[1]],
                                          {"body": "QC failed", "message_type": "comment",
                                           "subtype_xmlid": "mail.mt_note"})
            assert isinstance(msg, int)
            assert await client.execute_kw("mrp.workcenter", "search_count", [[]]) == 1
    run(go())


# -- errors, classified ---------------------------------------------------------------------

@pytest.mark.parametrize("protocol, version", WIRES)
def test_every_wire_classifies_odoo_refusals(odoo_factory, protocol, version):
    sb = odoo_factory(version)

    async def go() -> None:
        async with client_for(protocol, sb, key="wrong") as bad:
            await _raises(bad, AuthDeliveryError, "mrp.workcenter", "search", [[]])
        async with client_for(protocol, sb, login="viewer", key="viewer") as viewer:
            err = await _raises(viewer, AuthDeliveryError, "mrp.production", "search_read", [[]], {"fields": ["name"]})
            assert "mrp.production" in str(err)
        async with client_for(protocol, sb) as client:
            err = await _raises(client, PermanentDeliveryError, "no.such.model", "search", [[]])
            assert "no.such.model" in str(err)
            err = await _raises(client, PermanentDeliveryError, "mrp.workcenter.productivity", "create",
                                [{"workcenter_id": 1}])
            assert "mandatory field is not set" in str(err) and "Loss Reason" in str(err)
            await _raises(client, PermanentDeliveryError, "mrp.workcenter", "write", [[999], {"name": "x"}])
            await _raises(client, PermanentDeliveryError, "mrp.workcenter", "unblock", [[1]])
    run(go())


@pytest.mark.parametrize("protocol, version", WIRES)
def test_every_wire_treats_proxy_pages_drops_conflicts_and_slowness_as_transient(odoo_factory, protocol, version):
    sb = odoo_factory(version)

    async def go() -> None:
        async with client_for(protocol, sb, timeout=0.5) as client:
            await client.authenticate()
            for status in (502, 503, 504):
                sb.set_faults(http_status=status, count=1)
                err = await _raises(client, TransientDeliveryError, "mrp.workcenter", "search", [[]])
                assert f"HTTP {status}" in str(err)
            sb.set_faults(drop_connection=True, count=1)
            await _raises(client, TransientDeliveryError, "mrp.workcenter", "search", [[]])
            sb.set_faults(serialization_failure=True, count=1)
            err = await _raises(client, TransientDeliveryError, "mrp.workcenter", "write", [[1], {"name": "X"}])
            assert "SerializationFailure" in (err.remote_name or "")
            sb.set_faults(latency=2.0, count=1)
            err = await _raises(client, TransientDeliveryError, "mrp.workcenter", "search", [[]])
            assert "timeout" in str(err)
            sb.set_faults()
            assert await client.execute_kw("mrp.workcenter", "read", [[1], ["name"]]) == [
                {"id": 1, "name": "CNC-01 Machining"}]
    run(go())


def test_proxy_page_error_carries_the_status_and_an_excerpt(odoo_factory):
    sb = odoo_factory("17.0")

    async def go() -> None:
        async with client_for("jsonrpc", sb) as client:
            sb.set_faults(http_status=502, count=1)
            err = await _raises(client, TransientDeliveryError, "mrp.workcenter", "search", [[]])
            assert "HTTP 502" in str(err) and "502 Bad Gateway" in str(err) and "nginx" in str(err)
    run(go())


def test_revoked_key_pauses_every_wire(odoo_factory):
    sb = odoo_factory("19.0")

    async def go() -> None:
        for protocol in CLIENTS:
            async with client_for(protocol, sb) as client:
                await client.authenticate()
                sb.set_faults(bad_key=True, count=1)
                await _raises(client, AuthDeliveryError, "mrp.workcenter", "search", [[]])
    run(go())


def test_xmlrpc_none_fault_is_an_unknown_outcome_and_the_write_was_committed(odoo_factory):
    sb = odoo_factory("17.0")

    async def go() -> None:
        async with client_for("xmlrpc", sb) as client:
            await client.execute_kw("mrp.production", "write", [[1], {"qty_producing": 12}])
            err = await _raises(client, UnknownOutcomeError, "mrp.production", "set_qty_producing", [[1]])
            assert err.retryable and "read the record back" in str(err)
            moves = await client.execute_kw("stock.move", "read", [[1, 2], ["quantity", "picked"]])
            assert [(m["quantity"], m["picked"]) for m in moves] == [(12.0, True), (48.0, True)]
        async with client_for("jsonrpc", sb) as client:  # the same call over JSON-RPC is a plain None
            assert await client.execute_kw("mrp.production", "set_qty_producing", [[1]]) is None
    run(go())


def test_unknown_database_pauses_the_sink(odoo_factory):
    sb = odoo_factory("17.0")

    async def go() -> None:
        for protocol in ("jsonrpc", "xmlrpc"):
            client = CLIENTS[protocol](sb.url, "nodb", "admin", KEY, timeout=5.0)
            async with client:
                with pytest.raises(AuthDeliveryError):
                    await client.execute_kw("mrp.workcenter", "search", [[]])
    run(go())


def test_unreachable_odoo_is_transient():
    async def go() -> None:
        for cls in CLIENTS.values():
            async with cls("http://127.0.0.1:9", "sandbox", "admin", KEY, timeout=1.0) as client:
                with pytest.raises(TransientDeliveryError):
                    await client.version()
    run(go())


# -- choosing the wire ------------------------------------------------------------------------

@pytest.mark.parametrize("version, expected", [("16.0", OdooClient), ("17.0", OdooClient), ("18.0", OdooClient),
                                               ("19.0", Json2Client)])
def test_auto_picks_json2_from_19_and_jsonrpc_before(odoo_factory, version, expected):
    sb = odoo_factory(version)

    async def go() -> None:
        client, major = await connect(sb.url, "sandbox", "admin", KEY, timeout=5.0)
        async with client:
            assert type(client) is expected and major == int(version[:2])
            assert await client.execute_kw("mrp.workcenter", "search", [[]]) == [1]
    run(go())


def test_auto_asks_web_version_where_jsonrpc_is_missing(odoo_factory):
    sb = odoo_factory("19.0")

    async def go() -> None:
        sb.set_faults(http_status=404, count=1)  # as a server without /jsonrpc answers common.version
        client, major = await connect(sb.url, "sandbox", "admin", KEY, timeout=5.0)
        async with client:
            assert (major, client.protocol) == (19, "json2")
    run(go())


def test_explicit_protocols_and_json2_refused_before_19(odoo_factory):
    sb = odoo_factory("17.0")

    async def go() -> None:
        client, major = await connect(sb.url, "sandbox", "admin", KEY, timeout=5.0, protocol="xmlrpc")
        async with client:
            assert (type(client), major) == (XmlRpcClient, 17)
        with pytest.raises(AuthDeliveryError, match="no JSON-2"):
            await connect(sb.url, "sandbox", "admin", KEY, timeout=5.0, protocol="json2")
        async with Json2Client(sb.url, "sandbox", "admin", KEY) as forced:  # an HTML 404: wrong wire, pause
            with pytest.raises(AuthDeliveryError):
                await forced.execute_kw("mrp.workcenter", "search", [[]])
        with pytest.raises(ValueError):
            await connect(sb.url, "sandbox", "admin", KEY, protocol="soap")
    run(go())


# -- mapping and classification ------------------------------------------------------------

def test_json2_named_argument_mapping():
    assert named_arguments("m", "search_read", [[["a", "=", 1]], ["name"]], {"limit": 5}) == {
        "domain": [["a", "=", 1]], "fields": ["name"], "limit": 5}
    assert named_arguments("m", "create", [{"name": "x"}]) == {"vals_list": {"name": "x"}}
    assert named_arguments("m", "write", [[1, 2], {"name": "x"}]) == {"ids": [1, 2], "vals": {"name": "x"}}
    assert named_arguments("m", "read", [7, ["name"]]) == {"ids": [7], "fields": ["name"]}
    assert named_arguments("m", "load", [["id"], [["x.y"]]]) == {"fields": ["id"], "data": [["x.y"]]}
    assert named_arguments("m", "action_validate", [[3]], {"context": {"a": 1}}) == {"ids": [3], "context": {"a": 1}}
    assert named_arguments("m", "button_mark_done", [[3]]) == {"ids": [3]}
    with pytest.raises(PermanentDeliveryError, match="named arguments"):
        named_arguments("m", "action_split", [[3], 5])
    with pytest.raises(PermanentDeliveryError, match="both"):
        named_arguments("m", "search", [[]], {"domain": []})


@pytest.mark.parametrize("name, expected", [
    ("psycopg2.errors.SerializationFailure", TransientDeliveryError),
    ("psycopg2.errors.LockNotAvailable", TransientDeliveryError),
    ("psycopg2.OperationalError", AuthDeliveryError),
    ("odoo.exceptions.AccessError", AuthDeliveryError),
    ("odoo.exceptions.ValidationError", PermanentDeliveryError),
    ("psycopg2.pool.PoolError", TransientDeliveryError),
    ("psycopg2.InterfaceError", TransientDeliveryError),
])
def test_jsonrpc_classifier(name, expected):
    error = classify({"code": 200, "message": "Odoo Server Error", "data": {"name": name, "message": "m"}})
    assert type(error) is expected and error.remote_name == name


def test_non_odoo_http_replies_are_classified_by_status():
    import httpx as _httpx
    from gateway.errors import AuthDeliveryError as Pause, PermanentDeliveryError as Dead, TransientDeliveryError as Retry
    from gateway.sinks.odoo.protocol import not_odoo_reply
    request = _httpx.Request("POST", "http://odoo.example/jsonrpc")
    expected = {401: Pause, 403: Pause, 404: Pause, 408: Retry, 409: Retry, 429: Retry, 400: Dead, 413: Dead,
                500: Retry, 502: Retry, 503: Retry, 504: Retry}
    for status, kind in expected.items():
        error = not_odoo_reply(_httpx.Response(status, text="<html>nginx</html>", request=request), "execute_kw")
        assert type(error) is kind, status
        assert f"HTTP {status}" in str(error) and "nginx" in str(error)


@pytest.mark.parametrize("name, message, method, expected", [
    # Odoo restarting mid-request, on any call
    ("psycopg2.pool.PoolError", "The Connection Pool Is Full", "button_start", TransientDeliveryError),
    ("psycopg2.InterfaceError", "connection already closed", "action_validate", TransientDeliveryError),
    ("psycopg2.OperationalError", "server closed the connection unexpectedly", "write", TransientDeliveryError),
    # any other server error of an idempotent call (absolute write, external-id upsert, read): retried
    ("builtins.KeyError", "'mrp.workorder'", "write", TransientDeliveryError),
    ("builtins.AttributeError", "'NoneType' object has no attribute 'cursor'", "load", TransientDeliveryError),
    ("builtins.KeyError", "'mrp.workorder'", "button_finish", PermanentDeliveryError),
    # business rejections stay permanent whatever the call
    ("odoo.exceptions.UserError", "no", "write", PermanentDeliveryError),
    ("odoo.exceptions.ValidationError", "no", "load", PermanentDeliveryError),
    ("odoo.exceptions.MissingError", "gone", "read", PermanentDeliveryError),
    ("builtins.ValueError", "Invalid field 'x'", "write", PermanentDeliveryError),
])
def test_server_errors_are_classified_by_the_kind_of_write(name, message, method, expected):
    from gateway.sinks.odoo.protocol import by_kind_of_write
    wire = classify({"code": 200, "message": "Odoo Server Error", "data": {"name": name, "message": message}})
    assert type(by_kind_of_write(method, wire)) is expected
