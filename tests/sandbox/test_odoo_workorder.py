"""Work order start and finish, and the order's computed state, as real Odoo 16-19 do them.

Each rule was read in Odoo's own source (addons/mrp/models/mrp_workorder.py
button_start / button_finish, mrp_workcenter.py ``_close``, mrp_production.py
``_compute_state``) and is checked here over JSON-RPC for every series where it
applies; the real-Odoo conformance suite runs the same scenarios against Odoo.
"""
from __future__ import annotations

import xmlrpc.client
from datetime import datetime
from typing import Any, Iterator

import httpx
import pytest

from gateway.sandbox.odoo import OdooSandbox

VERSIONS = ["16.0", "17.0", "18.0", "19.0"]
PRODUCTIVE, EQUIPMENT_FAILURE = 7, 2


@pytest.fixture(params=VERSIONS)
def odoo(request: pytest.FixtureRequest) -> Iterator[tuple[int, httpx.Client]]:
    sb = OdooSandbox(host="127.0.0.1", port=0, version=request.param)
    sb.start()
    try:
        with httpx.Client(base_url=sb.url, timeout=10) as c:
            yield sb.version.major, c
    finally:
        sb.stop()


def call(client: httpx.Client, model: str, method: str, args: list[Any], kw: dict[str, Any] | None = None) -> dict:
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", 2, "admin", model, method, args] + ([kw] if kw is not None else [])}}
    return client.post("/jsonrpc", json=body).json()


def ok(client: httpx.Client, model: str, method: str, args: list[Any], kw: dict[str, Any] | None = None) -> Any:
    reply = call(client, model, method, args, kw)
    assert "error" not in reply, reply["error"]["data"]["message"]
    return reply.get("result")  # Odoo leaves "result" out when a method returns None


def read(client: httpx.Client, model: str, rid: int, *fields: str) -> dict[str, Any]:
    return ok(client, model, "read", [[rid]], {"fields": list(fields)})[0]


def new_order(client: httpx.Client, qty: float = 50.0) -> tuple[int, int]:
    """A confirmed manufacturing order with one ready work order on CNC-01."""
    mo = ok(client, "mrp.production", "create", [{"product_id": 1, "product_qty": qty, "state": "confirmed"}])
    wo = ok(client, "mrp.workorder", "create", [{"name": "Machining", "production_id": mo, "workcenter_id": 1,
                                                 "state": "ready"}])
    return mo, wo


def open_logs(client: httpx.Client, wo: int) -> list[dict[str, Any]]:
    return ok(client, "mrp.workcenter.productivity", "search_read",
              [[["workorder_id", "=", wo], ["date_end", "=", False]]], {"fields": ["loss_type", "user_id"]})


def test_start_sets_qty_producing_to_the_remaining_quantity_and_opens_a_timer(odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    mo, wo = new_order(client, 50.0)
    result = ok(client, "mrp.workorder", "button_start", [[wo]])
    assert result is (None if major >= 18 else True)   # 18+ returns nothing
    assert read(client, "mrp.workorder", wo, "qty_producing", "state") == {
        "id": wo, "qty_producing": 50.0, "state": "progress"}
    assert read(client, "mrp.production", mo, "qty_producing", "state")["qty_producing"] == 50.0
    (log,) = open_logs(client, wo)
    assert log["loss_type"] == "productive" and log["user_id"][0] == 2


def test_start_keeps_a_quantity_already_producing(odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    mo, wo = new_order(client, 50.0)
    ok(client, "mrp.workorder", "write", [[wo], {"qty_producing": 7}])
    ok(client, "mrp.workorder", "button_start", [[wo]])
    assert read(client, "mrp.production", mo, "qty_producing")["qty_producing"] == 7.0


def test_start_is_refused_while_the_work_center_is_blocked_from_17(odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    _, wo = new_order(client)
    ok(client, "mrp.workcenter.productivity", "create", [{"workcenter_id": 1, "loss_id": EQUIPMENT_FAILURE}])
    reply = call(client, "mrp.workorder", "button_start", [[wo]])
    if major == 16:   # 16 has no such check: the order starts on a blocked work center
        assert reply.get("result") is True
        return
    assert reply["error"]["data"]["name"] == "odoo.exceptions.UserError"
    assert reply["error"]["data"]["message"] == "Please unblock the work center to start the work order."
    assert read(client, "mrp.workorder", wo, "state", "qty_producing") == {"id": wo, "state": "ready",
                                                                          "qty_producing": 0.0}


def test_start_of_a_finished_order_is_skipped_until_17_and_refused_from_18(odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    _, wo = new_order(client)
    ok(client, "mrp.workorder", "button_finish", [[wo]])
    reply = call(client, "mrp.workorder", "button_start", [[wo]])
    if major >= 18:
        assert reply["error"]["data"]["message"] == "You cannot start a work order that is already done or cancelled"
        assert ok(client, "mrp.workorder", "button_start", [[wo]], {"raise_on_invalid_state": True}) is None
    else:
        assert reply.get("result") is True
    assert read(client, "mrp.workorder", wo, "state")["state"] == "done"
    assert open_logs(client, wo) == []


def test_start_takes_one_order_at_a_time_in_16(odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    _, first = new_order(client)
    _, second = new_order(client)
    reply = call(client, "mrp.workorder", "button_start", [[first, second]])
    if major == 16:
        assert reply["error"]["data"]["name"] == "builtins.ValueError"
        assert reply["error"]["data"]["message"].startswith("Expected singleton: mrp.workorder(")
    else:
        assert "error" not in reply
        assert {r["state"] for r in ok(client, "mrp.workorder", "read", [[first, second]], {"fields": ["state"]})} \
            == {"progress"}


def test_finish_closes_the_open_timers_and_skips_a_finished_order(odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    _, wo = new_order(client, 50.0)
    ok(client, "mrp.workorder", "button_start", [[wo]])
    ok(client, "mrp.workorder", "write", [[wo], {"qty_producing": 12}])
    assert ok(client, "mrp.workorder", "button_finish", [[wo]]) is True
    first = read(client, "mrp.workorder", wo, "state", "qty_produced", "date_finished")
    assert (first["state"], first["qty_produced"]) == ("done", 12.0)
    assert open_logs(client, wo) == []
    ok(client, "mrp.workorder", "write", [[wo], {"qty_producing": 30}])
    assert ok(client, "mrp.workorder", "button_finish", [[wo]]) is True   # a second finish changes nothing
    assert read(client, "mrp.workorder", wo, "state", "qty_produced", "date_finished") == first


def test_time_past_the_expected_duration_becomes_performance_loss_when_the_timer_closes(
        odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    _, wo = new_order(client)
    ok(client, "mrp.workcenter.productivity", "create", [{
        "workcenter_id": 1, "workorder_id": wo, "loss_id": PRODUCTIVE, "date_start": "2020-01-01 08:00:00"}])
    ok(client, "mrp.workorder", "write", [[wo], {"duration_expected": 30.0}])
    ok(client, "mrp.workorder", "button_finish", [[wo]])
    logs = ok(client, "mrp.workcenter.productivity", "search_read", [[["workorder_id", "=", wo]]],
              {"fields": ["loss_type", "date_start", "date_end"], "order": "date_start"})
    assert [log["loss_type"] for log in logs] == ["productive", "performance"]
    split = datetime.strptime(logs[0]["date_end"], "%Y-%m-%d %H:%M:%S")
    # Odoo rounds durations to 1/100 minute, so the split lands within a second of the expected 30 minutes
    assert logs[0]["date_start"] == "2020-01-01 08:00:00" and abs(split - datetime(2020, 1, 1, 8, 30)).seconds <= 1
    assert logs[1]["date_start"] == logs[0]["date_end"] and logs[1]["date_end"]


def test_order_state_is_computed_from_its_work_orders(odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    mo, wo = new_order(client)
    assert read(client, "mrp.production", mo, "state")["state"] == "confirmed"
    ok(client, "mrp.workorder", "button_start", [[wo]])
    assert read(client, "mrp.production", mo, "state")["state"] == "progress"
    ok(client, "mrp.workorder", "button_finish", [[wo]])
    assert read(client, "mrp.production", mo, "state")["state"] == "to_close"
    ok(client, "mrp.production", "button_mark_done", [[mo]])
    assert read(client, "mrp.production", mo, "state")["state"] == "done"


def test_an_order_without_work_orders_is_in_progress_once_it_produces(odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    mo = ok(client, "mrp.production", "create", [{"product_id": 1, "product_qty": 10, "state": "confirmed"}])
    ok(client, "mrp.production", "write", [[mo], {"qty_producing": 4}])
    assert read(client, "mrp.production", mo, "state")["state"] == "progress"
    ok(client, "mrp.production", "write", [[mo], {"qty_producing": 10}])
    assert read(client, "mrp.production", mo, "state")["state"] == "to_close"


def test_mark_done_answers_the_consumption_warning_while_components_are_not_picked(
        odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    ok(client, "mrp.production", "write", [[1], {"qty_producing": 10}])   # on the order: nothing consumed
    wizard = ok(client, "mrp.production", "button_mark_done", [[1]])
    assert wizard["res_model"] == "mrp.consumption.warning" and wizard["name"] == "Consumption Warning"
    lines = [line[2] for line in wizard["context"]["default_mrp_consumption_warning_line_ids"]]
    assert [(line["product_consumed_qty_uom"], line["product_expected_qty_uom"]) for line in lines] == [
        (0.0, 10.0), (0.0, 40.0)]
    assert read(client, "mrp.production", 1, "state")["state"] == "progress"
    assert ok(client, "mrp.production", "button_mark_done", [[1]],
              {"context": {"skip_consumption": True, "skip_backorder": True}}) is True
    assert read(client, "mrp.production", 1, "state")["state"] == "done"
    assert {m["state"] for m in ok(client, "stock.move", "read", [[1, 2]], {"fields": ["state"]})} == {"cancel"}


def test_work_order_quantity_consumes_components_so_mark_done_needs_no_wizard(odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    ok(client, "mrp.workorder", "write", [[1], {"qty_producing": 10}])   # the inverse picks the components
    assert ok(client, "mrp.production", "button_mark_done", [[1]], {"context": {"skip_backorder": True}}) is True


def test_finish_picks_the_components_from_18(odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    ok(client, "mrp.production", "write", [[1], {"qty_producing": 10}])   # on the order: nothing picked yet
    ok(client, "mrp.workorder", "button_finish", [[1]])
    moves = ok(client, "stock.move", "read", [[1, 2]], {"fields": ["quantity_done" if major == 16 else "picked"]})
    picked = [bool(m.get("picked") or m.get("quantity_done")) for m in moves]
    assert picked == ([True, True] if major >= 18 else [False, False])
    reply = ok(client, "mrp.production", "button_mark_done", [[1]], {"context": {"skip_backorder": True}})
    if major >= 18:   # picked for the 10 being produced: no consumption warning
        assert reply is True
        assert [m["quantity"] for m in ok(client, "stock.move", "read", [[1, 2]], {"fields": ["quantity"]})] == \
            [10.0, 40.0]
    else:
        assert reply["res_model"] == "mrp.consumption.warning"


def test_start_over_xmlrpc_from_18_runs_and_then_cannot_marshal_its_none(odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    _, wo = new_order(client)
    proxy = xmlrpc.client.ServerProxy(str(client.base_url) + "/xmlrpc/2/object")
    if major < 18:
        assert proxy.execute_kw("sandbox", 2, "admin", "mrp.workorder", "button_start", [[wo]]) is True
    else:
        with pytest.raises(xmlrpc.client.Fault) as fault:
            proxy.execute_kw("sandbox", 2, "admin", "mrp.workorder", "button_start", [[wo]])
        assert (fault.value.faultCode, fault.value.faultString) == (1, "Traceback (most recent call last):\n  ...\n"
                                                                       "TypeError: cannot marshal None unless "
                                                                       "allow_none is enabled\n")
    assert read(client, "mrp.workorder", wo, "state")["state"] == "progress"   # committed either way


def test_a_manual_consumption_component_is_not_picked_by_the_work_order_quantity(
        odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    coolant = ok(client, "product.product", "create", [{"name": "Coolant", "default_code": "COOLANT"}])
    stock, production = (ok(client, "stock.location", "search", [[["complete_name", "=", name]]])[0]
                         for name in ("WH/Stock", "Virtual Locations/Production"))
    manual = ok(client, "stock.move", "create", [{
        "name": "WH/MO/00001", "product_id": coolant, "product_uom_qty": 1000000 * 0.5, "location_id": stock,
        "location_dest_id": production, "raw_material_production_id": 1, "state": "assigned",
        "manual_consumption": True}])
    ok(client, "mrp.workorder", "write", [[1], {"qty_producing": 10}])
    done = "quantity_done" if major == 16 else "quantity"
    fields = [done] + ([] if major == 16 else ["picked"])
    steel, coolant_move = ok(client, "stock.move", "read", [[1, manual]], {"fields": fields})
    assert steel[done] == 10.0 and steel.get("picked", True) is True
    # 16 leaves a manual component alone; 17+ set its quantity but do not pick it
    assert coolant_move[done] == (0.0 if major == 16 else 5.0) and coolant_move.get("picked", False) is False
    wizard = ok(client, "mrp.production", "button_mark_done", [[1]], {"context": {"skip_backorder": True}})
    assert wizard["res_model"] == "mrp.consumption.warning"   # the coolant is not consumed yet
    lines = [line[2] for line in wizard["context"]["default_mrp_consumption_warning_line_ids"]]
    assert [(line["product_id"], line["product_consumed_qty_uom"], line["product_expected_qty_uom"])
            for line in lines] == [(coolant, 0.0, 5.0)]
