"""Access checks by series: check_access_rights (16-19, deprecated from 18), has_access and check_access (18+,
check_access private in 19), over JSON-RPC and Odoo 19's JSON-2, as in each series' odoo/models.py."""
from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from gateway.sandbox.odoo import OdooSandbox


@pytest.fixture(params=["16.0", "17.0", "18.0", "19.0"])
def odoo(request: pytest.FixtureRequest) -> Iterator[tuple[int, httpx.Client]]:
    sb = OdooSandbox(host="127.0.0.1", port=0, version=request.param)
    sb.start()
    try:
        with httpx.Client(base_url=sb.url, timeout=10) as c:
            yield sb.version.major, c
    finally:
        sb.stop()


def call(client: httpx.Client, method: str, args: list[Any], kw: dict[str, Any] | None = None, uid: int = 3,
         password: str = "viewer") -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", uid, password, "mrp.workorder", method, args] + ([kw] if kw is not None else [])}}
    return client.post("/jsonrpc", json=body).json()


def test_check_access_rights_answers_in_every_series(odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    assert call(client, "check_access_rights", ["read"], {"raise_exception": False})["result"] is False
    assert call(client, "check_access_rights", ["read"], {"raise_exception": False}, uid=2,
                password="admin")["result"] is True


def test_has_access_exists_from_18(odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    reply = call(client, "has_access", [[], "write"])
    if major < 18:
        assert reply["error"]["data"]["message"] == "type object 'mrp.workorder' has no attribute 'has_access'"
    else:
        assert reply["result"] is False
        assert call(client, "has_access", [[], "write"], uid=2, password="admin")["result"] is True


def test_check_access_is_public_in_18_and_private_in_19(odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    error = call(client, "check_access", [[], "read"]).get("error", {}).get("data", {})
    if major < 18:
        assert error["name"] == "builtins.AttributeError"
    elif major == 18:
        assert error["name"] == "odoo.exceptions.AccessError"
        assert error["message"].startswith("You are not allowed to access 'Work Order' (mrp.workorder) records.")
    else:
        assert error == {**error, "name": "odoo.exceptions.AccessError",
                         "message": "Private methods (such as 'mrp.workorder.check_access') cannot be called "
                                    "remotely."}


@pytest.fixture
def odoo19() -> Iterator[httpx.Client]:
    sb = OdooSandbox(host="127.0.0.1", port=0, version="19.0")
    sb.start()
    try:
        with httpx.Client(base_url=sb.url, timeout=10) as c:
            yield c
    finally:
        sb.stop()


def test_json2_refuses_model_methods_with_ids_and_private_methods(odoo19: httpx.Client) -> None:
    client = odoo19
    auth = {"Authorization": "bearer admin"}
    resp = client.post("/json/2/mrp.workorder/check_access_rights", json={"ids": [1], "operation": "read"},
                       headers=auth)
    assert resp.status_code == 422
    assert resp.json()["message"] == "cannot call mrp.workorder.check_access_rights with ids"
    resp = client.post("/json/2/mrp.workorder/check_access_rights", json={"operation": "read"}, headers=auth)
    assert (resp.status_code, resp.json()) == (200, True)
    resp = client.post("/json/2/mrp.workorder/has_access", json={"ids": [1], "operation": "read"}, headers=auth)
    assert (resp.status_code, resp.json()) == (200, True)
    resp = client.post("/json/2/mrp.workorder/check_access", json={"operation": "read"}, headers=auth)
    assert resp.status_code == 403 and resp.json()["name"] == "odoo.exceptions.AccessError"


def test_json2_binds_the_parameter_names_of_odoo_19(odoo19: httpx.Client) -> None:
    auth = {"Authorization": "bearer admin"}
    resp = odoo19.post("/json/2/mrp.workcenter.productivity/default_get", json={"fields": ["user_id"]}, headers=auth)
    assert (resp.status_code, resp.json()) == (200, {"user_id": 2})
    resp = odoo19.post("/json/2/mrp.workcenter.productivity/default_get", json={"fields_list": ["user_id"]},
                       headers=auth)
    assert (resp.status_code, resp.json()["message"]) == (422, "missing a required argument: 'fields'")
    resp = odoo19.post("/json/2/mrp.workcenter/name_search", json={"name": "CNC", "domain": [["code", "=", "CNC-01"]]},
                       headers=auth)
    assert (resp.status_code, resp.json()) == (200, [[1, "CNC-01 Machining"]])


def test_odoo_17_keeps_its_own_parameter_names(odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    if major >= 19:
        reply = call(client, "name_search", [], {"name": "x", "domain": []}, uid=2, password="admin")
    else:
        reply = call(client, "name_search", [], {"name": "x", "args": []}, uid=2, password="admin")
    assert reply["result"] == []
