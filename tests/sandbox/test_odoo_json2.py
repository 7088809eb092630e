"""Odoo 19's JSON-2 API and the version switch of the Odoo sandbox, over loopback HTTP."""
from __future__ import annotations

import xmlrpc.client
from typing import Any, Iterator

import httpx
import pytest

from gateway.sandbox.odoo import OdooSandbox

ADMIN = {"Authorization": "bearer admin"}


def _sandbox(version: str) -> Iterator[OdooSandbox]:
    sb = OdooSandbox(host="127.0.0.1", port=0, version=version)
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def odoo19() -> Iterator[OdooSandbox]:
    yield from _sandbox("19.0")


@pytest.fixture
def json2(odoo19: OdooSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=odoo19.url, timeout=10, headers=ADMIN) as c:
        yield c


def call(client: httpx.Client, model: str, method: str, **params: Any) -> httpx.Response:
    return client.post(f"/json/2/{model}/{method}", json=params)


def ok(client: httpx.Client, model: str, method: str, **params: Any) -> Any:
    resp = call(client, model, method, **params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def error(resp: httpx.Response, status: int, name: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    body = resp.json()
    assert list(body) == ["name", "message", "arguments", "context", "debug"]
    assert body["name"] == name
    assert name.removeprefix("builtins.") + ": " in body["debug"]
    return body


# -- happy path ------------------------------------------------------------------

def test_json2_search_read_create_write_and_load_answer_plain_json(json2: httpx.Client) -> None:
    assert ok(json2, "mrp.workcenter", "search_read", domain=[["code", "=", "CNC-01"]], fields=["name"]) == [
        {"id": 1, "name": "CNC-01 Machining"}]
    ids = ok(json2, "maintenance.request", "create", vals_list=[{"name": "Spindle alarm", "equipment_id": 1}])
    assert isinstance(ids, list) and len(ids) == 1
    assert ok(json2, "maintenance.request", "write", ids=ids, vals={"priority": "3"}) is True
    assert ok(json2, "maintenance.request", "read", ids=ids, fields=["priority"]) == [{"id": ids[0], "priority": "3"}]
    loaded = ok(json2, "maintenance.request", "load", fields=["id", "name"], data=[["linebridge.evt_1", "Door open"]])
    assert loaded["messages"] == [] and len(loaded["ids"]) == 1
    assert ok(json2, "maintenance.request", "search_count", domain=[]) == 2
    assert ok(json2, "res.users", "context_get") == {"lang": "en_US", "tz": False, "uid": 2}


def test_json2_context_and_database_header_are_honoured(json2: httpx.Client) -> None:
    rows = json2.post("/json/2/mrp.workcenter/search_read", headers={"X-Odoo-Database": "sandbox"},
                      json={"domain": [["active", "=", False]], "fields": ["name"], "context": {"active_test": False}})
    assert rows.status_code == 200 and rows.json() == []
    other = json2.post("/json/2/mrp.workcenter/search", headers={"X-Odoo-Database": "prod"}, json={"domain": []})
    assert other.status_code == 404


def test_json2_method_returning_none_answers_null(json2: httpx.Client) -> None:
    resp = call(json2, "mrp.production", "set_qty_producing", ids=[1])
    assert resp.status_code == 200 and resp.content == b"null"


# -- errors ------------------------------------------------------------------------

def test_json2_wrong_or_missing_key_is_401_with_a_bearer_challenge(odoo19: OdooSandbox) -> None:
    with httpx.Client(base_url=odoo19.url, timeout=10) as c:
        wrong = c.post("/json/2/mrp.workcenter/search", json={"domain": []}, headers={"Authorization": "bearer x"})
        body = error(wrong, 401, "werkzeug.exceptions.Unauthorized")
        assert body["message"] == "Invalid apikey" and body["arguments"] == ["Invalid apikey", 401]
        assert wrong.headers["www-authenticate"] == "Bearer"
        missing = c.post("/json/2/mrp.workcenter/search", json={"domain": []})
        assert error(missing, 401, "werkzeug.exceptions.Unauthorized")["message"].startswith("User not authenticated")


def test_json2_access_error_is_403(odoo19: OdooSandbox) -> None:
    with httpx.Client(base_url=odoo19.url, timeout=10, headers={"Authorization": "Bearer viewer"}) as c:
        body = error(call(c, "mrp.production", "search_read", domain=[]), 403, "odoo.exceptions.AccessError")
        assert body["message"].startswith("You are not allowed to access 'Production Order' (mrp.production)")


def test_json2_unknown_model_method_and_private_method(json2: httpx.Client) -> None:
    assert error(call(json2, "no.such.model", "search", domain=[]), 404,
                 "werkzeug.exceptions.NotFound")["message"] == "the model 'no.such.model' does not exist"
    assert error(call(json2, "mrp.workcenter", "fly"), 404, "werkzeug.exceptions.NotFound")["message"] == \
        "The method 'mrp.workcenter.fly' does not exist"
    assert error(call(json2, "mrp.workcenter", "_search", domain=[]), 403, "odoo.exceptions.AccessError")[
        "message"] == "Private methods (such as 'mrp.workcenter._search') cannot be called remotely."
    assert error(json2.get("/json/2/mrp.workcenter/search", headers={"Content-Type": "application/json"}), 404,
                 "werkzeug.exceptions.NotFound")["message"] == "Did you mean POST /json/2/<model>/<method>?"


def test_json2_user_and_validation_errors_are_422_missing_records_404(json2: httpx.Client) -> None:
    error(call(json2, "mrp.workcenter.productivity", "create", vals_list=[{"workcenter_id": 1}]), 422,
          "odoo.exceptions.ValidationError")
    assert error(call(json2, "mrp.workcenter", "unblock", ids=[1]), 422,
                 "odoo.exceptions.UserError")["message"] == "It has already been unblocked."
    error(call(json2, "mrp.workcenter", "write", ids=[999], vals={"name": "x"}), 404, "odoo.exceptions.MissingError")
    assert error(call(json2, "mrp.workcenter", "search", ids=[1], domain=[]), 422,
                 "werkzeug.exceptions.UnprocessableEntity")["message"] == "cannot call mrp.workcenter.search with ids"
    assert error(call(json2, "mrp.workcenter", "search", filter=[]), 422,
                 "werkzeug.exceptions.UnprocessableEntity")["message"] == "missing a required argument: 'domain'"


def test_json2_other_exceptions_are_500_and_roll_back(json2: httpx.Client) -> None:
    body = error(call(json2, "mrp.workcenter", "create", vals_list=[{"name": "X"}, {"name": "Y", "bogus": 1}]),
                 500, "builtins.ValueError")
    assert body["message"] == "Invalid field 'bogus' on model 'mrp.workcenter'"
    assert ok(json2, "mrp.workcenter", "search_count", domain=[]) == 1


def test_json2_needs_a_json_body(json2: httpx.Client) -> None:
    wrong_type = json2.post("/json/2/mrp.workcenter/search", content=b"{}", headers={"Content-Type": "text/plain"})
    assert wrong_type.status_code == 400 and wrong_type.headers["content-type"].startswith("text/html")
    bad = json2.post("/json/2/mrp.workcenter/search", content=b"{", headers={"Content-Type": "application/json"})
    assert error(bad, 400, "werkzeug.exceptions.BadRequest")["message"].startswith("could not parse the body as json")
    array = json2.post("/json/2/mrp.workcenter/search", content=b"[]", headers={"Content-Type": "application/json"})
    assert error(array, 400, "werkzeug.exceptions.BadRequest")["message"] == \
        "could not parse the body, expecting a json object"


# -- versions ----------------------------------------------------------------------

@pytest.mark.parametrize("version", ["16.0", "17.0", "18.0", "19.0"])
def test_version_switch_is_reported_on_every_wire(version: str) -> None:
    for sb in _sandbox(version):
        major = int(version.split(".")[0])
        info = [major, 0, 0, "final", 0, ""]
        for route in ("/web/version", "/json/version"):  # the rpc addon of Odoo 19; no such route before
            web = httpx.get(sb.url + route)
            if major >= 19:
                assert web.json() == {"version_info": info, "version": version}
            else:
                assert web.status_code == 404
        rpc = httpx.post(sb.url + "/jsonrpc", json={"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
            "service": "common", "method": "version", "args": []}}).json()["result"]
        assert (rpc["server_version"], rpc["server_version_info"], rpc["server_serie"]) == (version, info, version)
        assert xmlrpc.client.ServerProxy(sb.url + "/xmlrpc/2/common").version()["server_version"] == version
        json2 = httpx.post(sb.url + "/json/2/mrp.workcenter/search", json={"domain": []}, headers=ADMIN)
        if major >= 19:
            assert json2.status_code == 200 and json2.json() == [1]
        else:  # Odoo 16-18 have no JSON-2 route: werkzeug's HTML 404
            assert json2.status_code == 404 and json2.headers["content-type"].startswith("text/html")


def test_jsonrpc_and_xmlrpc_keep_working_on_19(odoo19: OdooSandbox) -> None:
    proxy = xmlrpc.client.ServerProxy(odoo19.url + "/xmlrpc/2/object")
    assert proxy.execute_kw("sandbox", 2, "admin", "mrp.workcenter", "search", [[]]) == [1]


def test_stock_move_fields_follow_the_version() -> None:
    def move_fields(version: str) -> set[str]:
        for sb in _sandbox(version):
            reply = httpx.post(sb.url + "/jsonrpc", json={"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
                "service": "object", "method": "execute_kw", "args": [
                    "sandbox", 2, "admin", "stock.move", "fields_get", [], {"attributes": ["type"]}]}}).json()
            return set(reply["result"])
        raise AssertionError
    sixteen, seventeen, eighteen = move_fields("16.0"), move_fields("17.0"), move_fields("18.0")
    assert "quantity_done" in sixteen and not {"quantity", "picked"} & sixteen
    assert {"quantity", "picked"} <= seventeen and "quantity_done" not in seventeen
    assert {"quantity", "picked"} <= eighteen


def test_odoo16_consumption_is_quantity_done() -> None:
    for sb in _sandbox("16.0"):
        proxy = xmlrpc.client.ServerProxy(sb.url + "/xmlrpc/2/object", allow_none=True)
        args = ("sandbox", 2, "admin")
        proxy.execute_kw(*args, "mrp.production", "write", [[1], {"qty_producing": 10}])
        try:
            proxy.execute_kw(*args, "mrp.production", "set_qty_producing", [[1]])
        except xmlrpc.client.Fault as fault:  # returns None: the XML-RPC fault after the commit
            assert "cannot marshal None" in fault.faultString
        moves = proxy.execute_kw(*args, "stock.move", "read", [[1, 2]], {"fields": ["quantity_done"]})
        assert [m["quantity_done"] for m in moves] == [10.0, 40.0]


def test_odoo18_products_are_goods_with_a_storable_flag() -> None:
    for sb in _sandbox("18.0"):
        proxy = xmlrpc.client.ServerProxy(sb.url + "/xmlrpc/2/object")
        (part,) = proxy.execute_kw("sandbox", 2, "admin", "product.product", "read", [[1]],
                                   {"fields": ["type", "is_storable"]})
        assert (part["type"], part["is_storable"]) == ("consu", True)
