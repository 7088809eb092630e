"""Contract of the Odoo sandbox: the rules it copies from Odoo, checked on real Odoo and on the sandbox alike.

Each scenario talks to Odoo the way the gateway does (execute_kw over JSON-RPC) and asserts what real
Odoo answers; the same assertions run against the sandbox (`[sandbox]`). When they disagree, the
sandbox is wrong (issue #14): work order start and finish, the order's computed state, scrap naming,
units and the insufficient-quantity wizard, stock from an inventory adjustment and where a scrap may take
it by series, a manual-consumption component left to its consumption, `load`'s time zones and the
access-check methods by series.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.real_odoo.harness import OdooDb, Rpc
from tests.real_odoo.masterdata import MANUAL, Plant, add_stock, make_order, prepare, storable

pytestmark = pytest.mark.real_odoo_smoke


def _fresh_order(odoo: OdooDb, rpc: Rpc, plant: Plant, qty: float) -> tuple[int, int]:
    """A confirmed order of `qty` with one work order not started: through the BoM on real Odoo, by hand on
    the sandbox (which has no BoMs)."""
    if odoo.sandbox:
        mo = rpc("mrp.production", "create", {"product_id": plant.product, "product_qty": qty, "state": "confirmed"})
        wo = rpc("mrp.workorder", "create", {"name": "Machining", "production_id": mo,
                                             "workcenter_id": plant.workcenter, "state": "ready"})
        return mo, wo
    mo, wos = make_order(rpc, plant.product, plant.bom, qty)
    return mo, wos[0]


def _loss(rpc: Rpc, loss_type: str) -> int:
    (loss,) = rpc("mrp.workcenter.productivity.loss", "search", [["loss_type", "=", loss_type]], limit=1)
    return loss


def _open_logs(rpc: Rpc, wo: int) -> list[dict[str, Any]]:
    return rpc("mrp.workcenter.productivity", "search_read", [["workorder_id", "=", wo], ["date_end", "=", False]],
               fields=["loss_type", "user_id"])


def _clear_work_center(rpc: Rpc, plant: Plant) -> None:
    """No order in progress on the work center (the sandbox's demo order is): finish what runs."""
    running = rpc("mrp.workorder", "search", [["workcenter_id", "=", plant.workcenter], ["state", "=", "progress"]])
    if running:
        rpc("mrp.workorder", "button_finish", running)


def test_start_takes_the_remaining_quantity_opens_a_timer_and_the_order_follows(odoo: OdooDb) -> None:
    plant = prepare(odoo)
    rpc = odoo.rpc()
    _clear_work_center(rpc, plant)
    mo, wo = _fresh_order(odoo, rpc, plant, 40)
    assert rpc("mrp.production", "read", [mo], fields=["state"])[0]["state"] == "confirmed"
    rpc("mrp.workorder", "button_start", [wo])
    (row,) = rpc("mrp.workorder", "read", [wo], fields=["state", "qty_producing"])
    assert (row["state"], row["qty_producing"]) == ("progress", 40.0)
    (order,) = rpc("mrp.production", "read", [mo], fields=["state", "qty_producing"])
    assert (order["state"], order["qty_producing"]) == ("progress", 40.0)
    (log,) = _open_logs(rpc, wo)
    assert log["loss_type"] == "productive" and log["user_id"][0] == rpc.uid


def test_start_waits_for_the_work_center_to_be_unblocked_from_17(odoo: OdooDb) -> None:
    plant = prepare(odoo)
    rpc = odoo.rpc()
    _clear_work_center(rpc, plant)
    _, wo = _fresh_order(odoo, rpc, plant, 10)
    rpc("mrp.workcenter.productivity", "create", {"workcenter_id": plant.workcenter,
                                                  "loss_id": _loss(rpc, "availability")})
    if odoo.major == 16:
        rpc("mrp.workorder", "button_start", [wo])
        assert rpc("mrp.workorder", "read", [wo], fields=["state"])[0]["state"] == "progress"
        return
    with pytest.raises(RuntimeError, match="odoo.exceptions.UserError: Please unblock the work center to start "
                                           "the work order."):
        rpc("mrp.workorder", "button_start", [wo])
    assert rpc("mrp.workorder", "read", [wo], fields=["state", "qty_producing"])[0]["qty_producing"] == 0.0
    rpc("mrp.workcenter", "unblock", [plant.workcenter])
    rpc("mrp.workorder", "button_start", [wo])
    assert rpc("mrp.workorder", "read", [wo], fields=["state"])[0]["state"] == "progress"


def test_finish_closes_timers_a_second_finish_changes_nothing_and_the_order_is_to_close(odoo: OdooDb) -> None:
    plant = prepare(odoo)
    rpc = odoo.rpc()
    _clear_work_center(rpc, plant)
    mo, wo = _fresh_order(odoo, rpc, plant, 30)
    rpc("mrp.workorder", "button_start", [wo])
    rpc("mrp.workorder", "write", [wo], {"qty_producing": 12})
    assert rpc("mrp.workorder", "button_finish", [wo]) is True
    fields = ["state", "qty_produced", "date_finished"]
    first = rpc("mrp.workorder", "read", [wo], fields=fields)[0]
    assert (first["state"], first["qty_produced"]) == ("done", 12.0)
    assert _open_logs(rpc, wo) == []
    assert rpc("mrp.production", "read", [mo], fields=["state"])[0]["state"] == "to_close"
    assert rpc("mrp.workorder", "button_finish", [wo]) is True
    assert rpc("mrp.workorder", "read", [wo], fields=fields)[0] == first


def test_a_scrap_is_named_when_done_in_its_products_unit_and_the_finished_product_needs_stock(odoo: OdooDb) -> None:
    plant = prepare(odoo)
    rpc = odoo.rpc()
    steel = plant.components["STEEL-BAR"]
    scrap = rpc("stock.scrap", "create", {"product_id": steel, "scrap_qty": 1, "production_id": plant.production,
                                          "location_id": plant.stock_location})
    (draft,) = rpc("stock.scrap", "read", [scrap], fields=["name", "state", "product_uom_id"])
    assert (draft["name"], draft["state"]) == ("New", "draft") and draft["product_uom_id"]
    assert rpc("stock.scrap", "action_validate", [scrap]) is True
    (done,) = rpc("stock.scrap", "read", [scrap], fields=["name", "state"])
    assert done["state"] == "done" and done["name"] != "New"
    if odoo.sandbox:  # the sandbox's demo part has stock: take it away, as an order in progress has none
        quants = rpc("stock.quant", "search", [["product_id", "=", plant.product]])
        rpc("stock.quant", "write", quants, {"quantity": 0.0})
    finished = rpc("stock.scrap", "create", {"product_id": plant.product, "scrap_qty": 1,
                                             "production_id": plant.production, "location_id": plant.stock_location})
    wizard = rpc("stock.scrap", "action_validate", [finished])
    assert isinstance(wizard, dict) and wizard["res_model"] == "stock.warn.insufficient.qty.scrap"
    assert wizard["context"]["default_scrap_id"] == finished
    assert rpc("stock.scrap", "read", [finished], fields=["state", "name"])[0] == {
        "id": finished, "state": "draft", "name": "New"}


def test_counted_stock_is_on_hand_there_and_above_and_a_scrap_takes_it_by_series(odoo: OdooDb) -> None:
    """An inventory adjustment (as the harness stocks components) puts stock in its location; on hand counts a
    location with its children; a scrap is checked against that very location in 16 and from 18 (strict), with
    its children in 17, and always takes what it validates from that very location."""
    plant = prepare(odoo)
    rpc = odoo.rpc()
    oil = rpc("product.product", "create", {"name": "Cutting Oil", "default_code": "OIL", **storable(odoo.major)})
    shelf = rpc("stock.location", "create", {"name": "Shelf 1", "location_id": plant.stock_location,
                                             "usage": "internal"})
    add_stock(rpc, oil, plant.stock_location, 25)
    add_stock(rpc, oil, shelf, 5)
    quants = rpc("stock.quant", "search_read", [["product_id", "=", oil],
                                                ["location_id", "in", [plant.stock_location, shelf]]],
                 fields=["location_id", "quantity", "inventory_quantity"])
    assert sorted((q["location_id"][0], q["quantity"], q["inventory_quantity"]) for q in quants) == sorted(
        [(plant.stock_location, 25.0, 0.0), (shelf, 5.0, 0.0)])
    (warehouse,) = rpc("stock.location", "read", [plant.stock_location], fields=["location_id"])

    def on_hand(location: int) -> float:
        return rpc("product.product", "read", [oil], fields=["qty_available"],
                   context={"location": location})[0]["qty_available"]

    assert (on_hand(shelf), on_hand(plant.stock_location), on_hand(warehouse["location_id"][0])) == (5, 30, 30)
    scrap = rpc("stock.scrap", "create", {"product_id": oil, "scrap_qty": 28, "location_id": plant.stock_location})
    answer = rpc("stock.scrap", "action_validate", [scrap])
    if odoo.major != 17:
        assert isinstance(answer, dict) and answer["res_model"] == "stock.warn.insufficient.qty.scrap", answer
        assert on_hand(plant.stock_location) == 30
        scrap = rpc("stock.scrap", "create", {"product_id": oil, "scrap_qty": 24, "location_id": plant.stock_location})
        assert rpc("stock.scrap", "action_validate", [scrap]) is True
        assert (on_hand(shelf), on_hand(plant.stock_location)) == (5, 6)
        return
    assert answer is True  # taken from Stock itself (the scrap's move line is there), the shelf keeps its own
    assert (on_hand(shelf), on_hand(plant.stock_location)) == (5, 2)


def test_the_count_leaves_a_manual_component_to_its_consumption_and_its_scrap_needs_no_wizard(odoo: OdooDb) -> None:
    """Writing the work order's count moves the order's ordinary components with it; the manual-consumption
    component (the harness's Coolant) is not consumed by it (16: untouched; 17+: its quantity follows but it
    stays unpicked until its consumption is recorded, then it keeps that); a scrap of it validates from the
    stock the harness put where the order takes it."""
    plant = prepare(odoo)
    rpc = odoo.rpc()
    v16 = odoo.major == 16
    fields = ["quantity_done"] if v16 else ["quantity", "picked"]

    def move(code: str) -> dict[str, Any]:
        (row,) = rpc("stock.move", "search_read", [["raw_material_production_id", "=", plant.production],
                                                   ["product_id", "=", plant.components[code]],
                                                   ["state", "not in", ["done", "cancel"]]], fields=fields)
        return row

    def used(row: dict[str, Any]) -> tuple[float, bool]:
        return (row["quantity_done"], row["quantity_done"] > 0) if v16 else (row["quantity"], row["picked"])

    wo = plant.workorders[0]
    rpc("mrp.workorder", "write", [wo], {"qty_producing": 3})
    assert used(move("STEEL-BAR")) == (3.0, True)
    assert used(move(MANUAL[1])) == ((0.0, False) if v16 else (3.0, False))
    coolant = move(MANUAL[1])["id"]
    rpc("stock.move", "write", [coolant], {"quantity_done": 7} if v16 else {"quantity": 7, "picked": True})
    rpc("mrp.workorder", "write", [wo], {"qty_producing": 5})
    assert used(move("STEEL-BAR")) == (5.0, True)
    assert used(move(MANUAL[1])) == (7.0, True)
    scrap = rpc("stock.scrap", "create", {"product_id": plant.components[MANUAL[1]], "scrap_qty": 2,
                                          "production_id": plant.production, "location_id": plant.stock_location})
    assert rpc("stock.scrap", "action_validate", [scrap]) is True
    assert used(move(MANUAL[1])) == (7.0, True)  # a scrap is no consumption


@pytest.mark.parametrize("user_tz, context, stored", [
    ("Europe/Brussels", None, "2026-07-01 10:00:00"),
    ("Europe/Brussels", {"tz": "UTC"}, "2026-07-01 12:00:00"),
    (False, None, "2026-07-01 12:00:00"),
])
def test_load_reads_datetimes_in_the_context_or_user_time_zone(odoo: OdooDb, user_tz: Any,
                                                               context: dict[str, str] | None, stored: str) -> None:
    plant = prepare(odoo)
    rpc = odoo.rpc()
    (admin,) = rpc("res.users", "search", [["login", "=", "admin"]])
    rpc("res.users", "write", [admin], {"tz": user_tz})
    kw = {"context": context} if context else {}
    result = rpc("mrp.workcenter.productivity", "load",
                 ["id", "workcenter_id/.id", "loss_id/.id", "date_start", "date_end"],
                 [["linebridge.evt_contract_tz", str(plant.workcenter), str(_loss(rpc, "availability")),
                   "2026-07-01 12:00:00", "2026-07-01 12:00:00"]], **kw)
    assert result["messages"] == [], result
    (row,) = rpc("mrp.workcenter.productivity", "read", result["ids"], fields=["date_start"])
    assert row["date_start"] == stored


def test_has_access_from_18_and_check_access_rights_everywhere(odoo: OdooDb) -> None:
    prepare(odoo)
    rpc = odoo.rpc()
    assert rpc("mrp.workorder", "check_access_rights", "write", raise_exception=False) is True
    if odoo.major >= 18:
        assert rpc("mrp.workorder", "has_access", [], "write") is True
    else:
        with pytest.raises(RuntimeError, match="has_access"):
            rpc("mrp.workorder", "has_access", [], "write")
