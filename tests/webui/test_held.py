"""Held events in the console: a machine remapped to a work center with no open work order.

Against the demo line (sandbox plant, Odoo sandbox, `linebridge run`): the console
maps CNC-01 to a new work center that has no work order yet, so its production
and scrap events are held in that work center's lane. The API lists them with
the reason, the queue and the overview count them, and once a planner releases
an order they are delivered, in order, and leave the list.
"""
from __future__ import annotations

from tests.helpers import wait_for
from tests.webui.conftest import Gateway, admin_console, odoo_call


def test_events_waiting_for_a_work_order_are_listed_counted_and_delivered_once_it_exists(gateway: Gateway) -> None:
    c = admin_console(gateway)
    wc = odoo_call(gateway, "mrp.workcenter", "create", [{"name": "CNC-02 Machining", "code": "CNC-02"}])
    machine = c.api("GET", "/machines/CNC-01").json()
    resp = c.api("PUT", "/machines/CNC-01", {"section": dict(machine["section"], work_center="CNC-02"),
                                             "version": machine["version"]})
    assert resp.status_code == 200, resp.text
    held = wait_for(lambda: c.api("GET", "/held").json()["held"], 30, "events held for CNC-02")
    assert {h["lane"] for h in held} == {"CNC-02"} and {h["sink"] for h in held} == {"odoo"}
    assert held[0]["reason"] == "waits for an open work order on work center 'CNC-02'"
    assert held[0]["event"]["kind"] in ("production", "scrap")
    assert [h["seq"] for h in held] == sorted(h["seq"] for h in held)
    assert c.api("GET", "/queue").json()["sinks"]["odoo"]["held"] >= len(held)
    assert wait_for(lambda: c.api("GET", "/status").json()["sinks"]["odoo"].get("held"), 30, "held on the overview")
    assert 'linebridge_held{sink="odoo"}' in c.http.get("/metrics").text
    # a planner releases an order on CNC-02: the lane is delivered and empties
    mo = odoo_call(gateway, "mrp.production", "create", [{"product_id": 1, "product_qty": 1000, "state": "confirmed"}])
    wo = odoo_call(gateway, "mrp.workorder", "create", [{"name": "Machining 2", "production_id": mo, "workcenter_id": wc,
                                                     "state": "ready"}])
    wait_for(lambda: not c.api("GET", "/held").json()["held"], 60, "the held lane delivered")
    (row,) = odoo_call(gateway, "mrp.workorder", "read", [[wo]], {"fields": ["qty_producing"]})
    assert row["qty_producing"] > 0
    assert not [d for d in c.api("GET", "/dead-letters").json()["dead_letters"] if "CNC-02" in d["error"]]
