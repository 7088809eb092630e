"""Scrap as real Odoo 16-19 do it (addons/stock and addons/mrp stock_scrap.py of each series): named when
validated, in the product's unit, the order's source location from 18, and the 'Insufficient Quantity To
Scrap' wizard exactly when the source location has too little of a storable product, which is every scrap
of the finished product of an order in progress when that product has no stock."""
from __future__ import annotations

from typing import Any, Iterator

import httpx
import pytest

from gateway.sandbox.odoo import OdooSandbox
from tests.sandbox.test_odoo_workorder import call, ok, read

STEEL_BAR = 3  # a component of the demo order, with stock in WH/Stock


@pytest.fixture(params=["16.0", "17.0", "18.0", "19.0"])
def odoo(request: pytest.FixtureRequest) -> Iterator[tuple[int, httpx.Client]]:
    sb = OdooSandbox(host="127.0.0.1", port=0, version=request.param)
    sb.start()
    try:
        with httpx.Client(base_url=sb.url, timeout=10) as c:
            yield sb.version.major, c
    finally:
        sb.stop()


def storable(major: int) -> dict[str, Any]:
    return {"type": "consu", "is_storable": True} if major >= 18 else {"type": "product"}


def location(client: httpx.Client, name: str) -> int:
    (rid,) = ok(client, "stock.location", "search", [[["complete_name", "=", name]]])
    return rid


def test_a_scrap_is_named_when_validated_and_takes_the_product_unit(odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    scrap = ok(client, "stock.scrap", "create", [{"product_id": STEEL_BAR, "scrap_qty": 2, "production_id": 1}])
    draft = read(client, "stock.scrap", scrap, "name", "state", "product_uom_id")
    assert (draft["name"], draft["state"], draft["product_uom_id"][1]) == ("New", "draft", "Units")
    assert ok(client, "stock.scrap", "action_validate", [[scrap]]) is True
    done = read(client, "stock.scrap", scrap, "name", "state")
    assert (done["name"], done["state"]) == ("SP/00001", "done")


def test_finished_product_of_an_order_in_progress_asks_for_the_insufficient_quantity_wizard(
        odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    product = ok(client, "product.product", "create", [{"name": "Bracket", "default_code": "BRK-1", **storable(major)}])
    mo = ok(client, "mrp.production", "create", [{"product_id": product, "product_qty": 100, "state": "confirmed"}])
    ok(client, "mrp.production", "write", [[mo], {"qty_producing": 5}])
    assert read(client, "mrp.production", mo, "state")["state"] == "progress"
    scrap = ok(client, "stock.scrap", "create", [{"product_id": product, "scrap_qty": 1, "production_id": mo}])
    wizard = ok(client, "stock.scrap", "action_validate", [[scrap]])
    assert wizard["res_model"] == "stock.warn.insufficient.qty.scrap"
    assert wizard["name"] == "[BRK-1] Bracket: Insufficient Quantity To Scrap"
    assert wizard["context"]["default_scrap_id"] == scrap and wizard["context"]["default_quantity"] == 1.0
    assert read(client, "stock.scrap", scrap, "state", "name") == {"id": scrap, "state": "draft", "name": "New"}
    # a component of the same order, as Odoo's own order scrap offers, is taken from stock without a wizard
    component = ok(client, "stock.scrap", "create", [{"product_id": STEEL_BAR, "scrap_qty": 1, "production_id": mo}])
    assert ok(client, "stock.scrap", "action_validate", [[component]]) is True


def test_the_source_location_is_the_orders_from_18_and_the_warehouse_stock_before(
        odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    stock = location(client, "WH/Stock")
    line = ok(client, "stock.location", "create", [{"name": "Line 1", "location_id": location(client, "WH"),
                                                    "usage": "internal"}])
    mo = ok(client, "mrp.production", "create", [{"product_id": 1, "product_qty": 10, "state": "confirmed",
                                                  "location_src_id": line}])
    scrap = ok(client, "stock.scrap", "create", [{"product_id": STEEL_BAR, "scrap_qty": 1, "production_id": mo}])
    assert read(client, "stock.scrap", scrap, "location_id")["location_id"][0] == (line if major >= 18 else stock)
    given = ok(client, "stock.scrap", "create", [{"product_id": STEEL_BAR, "scrap_qty": 1, "production_id": mo,
                                                 "location_id": stock}])
    assert read(client, "stock.scrap", given, "location_id")["location_id"][0] == stock   # given wins


def test_a_components_scrap_moves_on_the_order_but_is_not_one_of_its_components(
        odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    before = read(client, "mrp.production", 1, "move_raw_ids")["move_raw_ids"]
    scrap = ok(client, "stock.scrap", "create", [{"product_id": STEEL_BAR, "scrap_qty": 2, "production_id": 1}])
    ok(client, "stock.scrap", "action_validate", [[scrap]])
    (move,) = ok(client, "stock.move", "search_read", [[["scrap_id", "=", scrap]]],
                 {"fields": ["raw_material_production_id", "production_id", "scrapped", "product_uom", "state"]})
    assert (move["raw_material_production_id"][0], move["production_id"], move["scrapped"], move["state"]) == \
        (1, False, True, "done")
    assert move["product_uom"][1] == "Units"
    assert read(client, "mrp.production", 1, "move_raw_ids", "state") == {"id": 1, "move_raw_ids": before,
                                                                           "state": "progress"}
    finished = ok(client, "stock.scrap", "create", [{"product_id": 1, "scrap_qty": 1, "production_id": 1}])
    assert ok(client, "stock.scrap", "action_validate", [[finished]]) is True  # the demo part has stock
    (move,) = ok(client, "stock.move", "search_read", [[["scrap_id", "=", finished]]],
                 {"fields": ["raw_material_production_id", "production_id"]})
    assert (move["raw_material_production_id"], move["production_id"][0]) == (False, 1)
    assert read(client, "mrp.production", 1, "move_finished_ids")["move_finished_ids"] == []


def test_quantity_on_hand_follows_the_location_in_the_context(odoo: tuple[int, httpx.Client]) -> None:
    major, client = odoo
    product = ok(client, "product.product", "create", [{"name": "Pin", **storable(major)}])
    wh, stock = location(client, "WH"), location(client, "WH/Stock")
    shelf = ok(client, "stock.location", "create", [{"name": "Shelf", "location_id": stock, "usage": "internal"}])
    ok(client, "stock.quant", "create", [{"product_id": product, "location_id": shelf, "quantity": 5}])
    ok(client, "stock.quant", "create", [{"product_id": product, "location_id": stock, "quantity": 2}])

    def on_hand(loc: int | None) -> float:
        kw = {"fields": ["qty_available"], **({"context": {"location": loc}} if loc else {})}
        return ok(client, "product.product", "read", [[product]], kw)[0]["qty_available"]
    assert (on_hand(None), on_hand(wh), on_hand(stock), on_hand(shelf)) == (7.0, 7.0, 7.0, 5.0)
    # a scrap checks its own location: 16 only that location's quants (_gather strict), 17 the location and
    # below (qty_available), 18+ only that location again (qty_available with the context's strict)
    strict = ok(client, "product.product", "read", [[product]], {"fields": ["qty_available"], "context": {
        "location": stock, "strict": True}})[0]["qty_available"]
    assert strict == (2.0 if major >= 18 else 7.0)
    scrap = ok(client, "stock.scrap", "create", [{"product_id": product, "scrap_qty": 6, "location_id": stock}])
    result = ok(client, "stock.scrap", "action_validate", [[scrap]])
    assert (result is True) == (major == 17)


def test_an_inventory_adjustment_counts_stock_in_through_a_done_move(odoo: tuple[int, httpx.Client]) -> None:
    """stock.quant.create with inventory_quantity under inventory_mode, then action_apply_inventory (16-19): the
    quant of that product and location takes the count, through a done move from the inventory-loss location,
    and the count is cleared; a second count adjusts the same quant by the difference."""
    major, client = odoo
    product = ok(client, "product.product", "create", [{"name": "Coolant", **storable(major)}])
    stock = location(client, "WH/Stock")
    inventory_mode = {"context": {"inventory_mode": True}}
    quant = ok(client, "stock.quant", "create", [{"product_id": product, "location_id": stock,
                                                  "inventory_quantity": 40}], inventory_mode)
    fields = ("quantity", "inventory_quantity", "inventory_diff_quantity", "inventory_quantity_set")
    assert read(client, "stock.quant", quant, *fields) == {"id": quant, "quantity": 0.0, "inventory_quantity": 40.0,
                                                          "inventory_diff_quantity": 40.0,
                                                          "inventory_quantity_set": True}
    assert ok(client, "stock.quant", "action_apply_inventory", [[quant]]) is None
    assert read(client, "stock.quant", quant, *fields) == {"id": quant, "quantity": 40.0, "inventory_quantity": 0.0,
                                                          "inventory_diff_quantity": 0.0,
                                                          "inventory_quantity_set": False}
    again = ok(client, "stock.quant", "create", [{"product_id": product, "location_id": stock,
                                                  "inventory_quantity": 35}], inventory_mode)
    assert again == quant
    ok(client, "stock.quant", "action_apply_inventory", [[quant]])
    moves = ok(client, "stock.move", "search_read", [[["product_id", "=", product]]],
               {"fields": ["location_id", "location_dest_id", "product_uom_qty", "state"], "order": "id"})
    loss = location(client, "Virtual Locations/Inventory adjustment")
    assert [(m["location_id"][0], m["location_dest_id"][0], m["product_uom_qty"], m["state"]) for m in moves] == [
        (loss, stock, 40.0, "done"), (stock, loss, 5.0, "done")]
    assert read(client, "product.product", product, "qty_available")["qty_available"] == 35.0
    refused = call(client, "stock.quant", "create", [{"product_id": product, "location_id": stock,
                                                      "inventory_quantity": 1, "quantity": 9}], inventory_mode)
    assert refused["error"]["data"]["message"] == "Quant's creation is restricted, you can't do this operation."


def test_fields_get_names_the_unit_fields(odoo: tuple[int, httpx.Client]) -> None:
    _, client = odoo
    assert ok(client, "stock.scrap", "fields_get", [], {"attributes": ["type"]})["product_uom_id"] == \
        {"type": "many2one"}
    assert ok(client, "stock.move", "fields_get", [["product_uom", "scrapped"]], {"attributes": ["type"]}) == \
        {"product_uom": {"type": "many2one"}, "scrapped": {"type": "boolean"}}
