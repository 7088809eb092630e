"""Odoo 17 rules the Odoo sink relies on, as the sandbox enforces them (JSON-RPC over loopback)."""
from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.sandbox.odoo import OdooSandbox
from tests.sandbox.test_odoo_wire_replay import client, odoo, rpc, rpc_error  # noqa: F401 - fixtures

VIEWER = 3


def as_viewer(client: httpx.Client, model: str, method: str, args: list[Any],
              kw: dict[str, Any] | None = None) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", VIEWER, "viewer", model, method, args] + ([kw] if kw is not None else [])}}
    return client.post("/jsonrpc", json=body).json()


def test_viewer_logs_in_with_internal_user_rights_only(client: httpx.Client) -> None:
    auth = client.post("/jsonrpc", json={"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "common", "method": "authenticate", "args": ["sandbox", "viewer", "viewer", {}]}}).json()
    assert auth["result"] == VIEWER
    (user,) = rpc(client, "res.users", "read", [[VIEWER]], {"fields": ["login", "groups_id"]})
    assert (user["login"], user["groups_id"]) == ("viewer", [1])


@pytest.mark.parametrize("model, method, args", [
    ("mrp.production", "search_read", [[]]),
    ("mrp.workorder", "write", [[1], {"qty_producing": 3}]),
    ("mrp.workcenter.productivity", "create", [{"workcenter_id": 1, "loss_id": 2}]),
    ("stock.scrap", "create", [{"product_id": 1, "scrap_qty": 1}]),
    ("stock.move", "search_read", [[]]),
    ("maintenance.equipment", "write", [[1], {"note": "x"}]),
    ("maintenance.equipment", "create", [{"name": "CNC-02"}]),
])
def test_viewer_gets_access_error_on_manufacturing_stock_and_equipment(client: httpx.Client, model: str, method: str,
                                                                      args: list[Any]) -> None:
    error = as_viewer(client, model, method, args)["error"]["data"]
    assert error["name"] == "odoo.exceptions.AccessError"
    assert f"({model}) records." in error["message"]


def test_viewer_may_still_open_maintenance_requests_as_odoo_allows_internal_users(client: httpx.Client) -> None:
    reply = as_viewer(client, "maintenance.request", "create", [{"name": "Noise", "equipment_id": 1}])
    assert isinstance(reply["result"], int)


def test_productivity_loss_is_required_and_its_type_follows_the_loss(client: httpx.Client) -> None:
    assert rpc_error(client, "mrp.workcenter.productivity", "create", [{"workcenter_id": 1}])["name"] == \
        "odoo.exceptions.ValidationError"
    log = rpc(client, "mrp.workcenter.productivity", "create", [{"workcenter_id": 1, "loss_id": 2}])
    assert rpc(client, "mrp.workcenter.productivity", "read", [[log]], {"fields": ["loss_type"]})[0][
        "loss_type"] == "availability"
    rpc(client, "mrp.workcenter.productivity", "write", [[log], {"loss_id": 7}])
    assert rpc(client, "mrp.workcenter.productivity", "read", [[log]], {"fields": ["loss_type"]})[0][
        "loss_type"] == "productive"


def test_external_ids_are_unique_per_module_and_name(client: httpx.Client) -> None:
    values = {"module": "linebridge", "name": "evt_1", "model": "maintenance.request", "res_id": 1}
    rpc(client, "ir.model.data", "create", [values])
    error = rpc_error(client, "ir.model.data", "create", [values])
    assert error["name"] == "odoo.exceptions.ValidationError"
    assert error["message"] == ('The operation cannot be completed: duplicate key value violates unique constraint '
                                '"ir_model_data_module_name_uniq_index"\nDETAIL:  Key (module, name)=(linebridge, '
                                'evt_1) already exists.\n')
    rpc(client, "ir.model.data", "create", [{**values, "module": "other"}])
    # the uniqueness follows renames, deletes and rolled-back calls (the sandbox keeps an index, as
    # PostgreSQL does; it must never go stale)
    (rid,) = rpc(client, "ir.model.data", "search", [[["module", "=", "linebridge"], ["name", "=", "evt_1"]]])
    rpc(client, "ir.model.data", "write", [[rid], {"name": "evt_1b"}])
    rpc(client, "ir.model.data", "create", [values])                        # evt_1 is free again
    assert rpc_error(client, "ir.model.data", "create", [{**values, "name": "evt_1b"}])["name"] == \
        "odoo.exceptions.ValidationError"
    rpc(client, "ir.model.data", "unlink", [[rid]])
    rpc(client, "ir.model.data", "create", [{**values, "name": "evt_1b"}])  # and evt_1b after the delete
    fields = ["id", "workcenter_id/.id", "loss_id/.id", "date_start"]
    bad = rpc(client, "mrp.workcenter.productivity", "load", [fields, [
        ["linebridge.evt_2", "1", "2", "2026-11-23 07:00:00"], ["linebridge.evt_3", "999", "2", "x"]]])
    assert bad["ids"] is False                                              # the whole call rolled back
    ok = rpc(client, "mrp.workcenter.productivity", "load", [fields, [["linebridge.evt_2", "1", "2",
                                                                        "2026-11-23 07:00:00"]]])
    again = rpc(client, "mrp.workcenter.productivity", "load", [fields, [["linebridge.evt_2", "1", "2",
                                                                           "2026-11-23 08:00:00"]]])
    assert ok["ids"] == again["ids"] and len(ok["ids"]) == 1                # created once, then updated
    assert rpc(client, "ir.model.data", "check_object_reference", ["linebridge", "evt_2"]) == \
        ["mrp.workcenter.productivity", ok["ids"][0]]


def test_scrap_with_too_little_stock_returns_the_insufficient_quantity_wizard(client: httpx.Client) -> None:
    scrap = rpc(client, "stock.scrap", "create", [{"product_id": 1, "scrap_qty": 5000, "production_id": 1}])
    action = rpc(client, "stock.scrap", "action_validate", [[scrap]])
    assert action["res_model"] == "stock.warn.insufficient.qty.scrap"
    assert rpc(client, "stock.scrap", "read", [[scrap]], {"fields": ["state"]})[0]["state"] == "draft"


def test_demo_order_has_two_components_with_stock_to_consume(client: httpx.Client) -> None:
    (mo,) = rpc(client, "mrp.production", "read", [[1]], {"fields": ["name", "move_raw_ids"]})
    assert mo["name"] == "WH/MO/00001"
    moves = rpc(client, "stock.move", "read", [mo["move_raw_ids"]],
                {"fields": ["product_id", "product_uom_qty", "unit_factor", "quantity", "picked", "state",
                            "location_id", "location_dest_id", "raw_material_production_id"]})
    assert [(m["product_id"][1], m["unit_factor"], m["state"]) for m in moves] == [
        ("[STEEL-BAR] Steel Bar", 1.0, "assigned"), ("[SCREW-M4] Screw M4", 4.0, "assigned")]
    assert moves[0]["location_id"][1] == "WH/Stock"
    assert moves[0]["location_dest_id"][1] == "Virtual Locations/Production"
    products = rpc(client, "product.product", "search_read", [[["default_code", "in", ["STEEL-BAR", "SCREW-M4"]]]],
                   {"fields": ["default_code", "type", "qty_available"]})
    need = {m["product_id"][0]: m["product_uom_qty"] for m in moves}
    assert all(p["type"] == "product" and p["qty_available"] >= need[p["id"]] for p in products)


def test_consumption_posted_on_component_moves_leaves_stock_when_the_order_is_done(client: httpx.Client) -> None:
    mo = rpc(client, "mrp.production", "create", [{"product_id": 1, "product_qty": 10, "state": "progress"}])
    steel = rpc(client, "product.product", "search", [[["default_code", "=", "STEEL-BAR"]]])[0]
    move = rpc(client, "stock.move", "create", [{"name": "c", "product_id": steel, "product_uom_qty": 10,
                                                 "location_id": 6, "location_dest_id": 4,
                                                 "raw_material_production_id": mo, "state": "assigned"}])
    before = rpc(client, "product.product", "read", [[steel]], {"fields": ["qty_available"]})[0]["qty_available"]
    rpc(client, "stock.move", "write", [[move], {"quantity": 7, "picked": True}])
    rpc(client, "mrp.production", "write", [[mo], {"qty_producing": 10}])
    assert rpc(client, "mrp.production", "button_mark_done", [[mo]]) is True
    assert rpc(client, "stock.move", "read", [[move]], {"fields": ["state"]})[0]["state"] == "done"
    after = rpc(client, "product.product", "read", [[steel]], {"fields": ["qty_available"]})[0]["qty_available"]
    assert before - after == 7


def test_maintenance_request_stages_and_close_date(client: httpx.Client) -> None:
    stages = rpc(client, "maintenance.stage", "search_read", [[]], {"fields": ["name", "done"]})
    assert [(s["name"], s["done"]) for s in stages] == [("New Request", False), ("In Progress", False),
                                                      ("Repaired", True), ("Scrap", True)]
    (equipment,) = rpc(client, "maintenance.equipment", "search_read", [[["serial_no", "=", "CNC-01"]]],
                       {"fields": ["name", "serial_no"]})
    assert equipment["name"] == "CNC-01"
    req = rpc(client, "maintenance.request", "create", [{"name": "Alarm 42", "equipment_id": equipment["id"]}])
    (row,) = rpc(client, "maintenance.request", "read", [[req]], {"fields": ["stage_id", "close_date"]})
    assert (row["stage_id"][1], row["close_date"]) == ("New Request", False)
    rpc(client, "maintenance.request", "write", [[req], {"stage_id": stages[2]["id"]}])
    (row,) = rpc(client, "maintenance.request", "read", [[req]], {"fields": ["done", "close_date"]})
    assert row["done"] is True and row["close_date"]


def test_message_post_on_an_order_returns_the_readable_message_id(client: httpx.Client) -> None:
    msg = rpc(client, "mrp.production", "message_post", [[1]],
              {"body": "Quality check failed: <diameter>", "message_type": "comment", "subtype_xmlid": "mail.mt_note"})
    assert isinstance(msg, int)
    (row,) = rpc(client, "mail.message", "read", [[msg]],
                 {"fields": ["model", "res_id", "body", "message_type", "subtype_id"]})
    assert row == {"id": msg, "model": "mrp.production", "res_id": 1,
                   "body": "<p>Quality check failed: &lt;diameter&gt;</p>", "message_type": "comment",
                   "subtype_id": [row["subtype_id"][0], "Note"]}
    assert rpc_error(client, "mrp.production", "message_post", [[999]], {"body": "x"})["name"] == \
        "odoo.exceptions.MissingError"
    assert rpc_error(client, "mrp.production", "message_post", [[1]], {"body": "x", "subtype_xmlid": "mail.nope"})[
        "message"] == "External ID not found in the system: mail.nope"
    assert as_viewer(client, "mrp.production", "message_post", [[1]], {"body": "x"})["error"]["data"]["name"] == \
        "odoo.exceptions.AccessError"


def test_a_work_order_has_at_most_one_open_time_log_per_user(tmp_path) -> None:
    sb = OdooSandbox(host="127.0.0.1", port=0, api_key="k")
    sb.start()
    try:
        body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
            "service": "object", "method": "execute_kw",
            "args": ["sandbox", 2, "k", "mrp.workcenter.productivity", "create",
                     [{"workcenter_id": 1, "workorder_id": 1, "loss_id": 7, "date_start": "2026-11-23 07:00:00"}]]}}
        first = httpx.post(f"{sb.url}/jsonrpc", json=body).json()
        second = httpx.post(f"{sb.url}/jsonrpc", json=body).json()
    finally:
        sb.stop()
    assert isinstance(first["result"], int)
    assert second["error"]["data"]["name"] == "odoo.exceptions.ValidationError"
    assert second["error"]["data"]["message"] == "The Workorder (WH/MO/00001 - Machining) cannot be started twice!"
