"""Master data in a fresh real Odoo, set up through its external API the way an integrator's script does.

`setup_plant(rpc, major)` creates what the sandbox plant's machine needs in a
database with mrp, stock and maintenance installed and no demo data: the work
center CNC-01 (its `code` is the plant's machine), a storable finished product
PART-01 with a bill of materials (one operation on CNC-01, components Steel Bar
1/part and Screw M4 4/part, consumed with the order's quantity; Coolant,
1/part, whose move is set to manual consumption: only `consumption` events book
it), component stock in WH/Stock through an inventory adjustment, a confirmed and planned manufacturing order with its work order,
the maintenance equipment with serial number CNC-01, and (with OCA's
quality_control_oca) a quality test. Odoo's standard loss reasons come with mrp.
The finished product has no stock: an order in progress has none yet, which is
what makes Odoo's scrap wizard appear (issue #14).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.real_odoo.harness import Rpc

MACHINE = "CNC-01"
COMPONENTS = (("Steel Bar", "STEEL-BAR", 1.0), ("Screw M4", "SCREW-M4", 4.0))
#: booked by the gateway's `consumption` events (a hopper on a scale): Odoo consumes it only when told
MANUAL = ("Coolant", "COOLANT", 1.0)
QC_TEST = "Line check"
QC_CHARACTERISTIC = "scrap"


@dataclass(frozen=True)
class Plant:
    workcenter: int
    product: int
    bom: int
    production: int
    workorders: tuple[int, ...]
    equipment: int
    stock_location: int
    components: dict[str, int]


def storable(major: int) -> dict[str, Any]:
    return {"type": "consu", "is_storable": True} if major >= 18 else {"type": "product"}


def add_stock(rpc: Rpc, product: int, location: int, qty: float) -> None:
    """An inventory adjustment, as Inventory > Physical Inventory does it."""
    quant = rpc("stock.quant", "create", {"product_id": product, "location_id": location, "inventory_quantity": qty},
                context={"inventory_mode": True})
    rpc("stock.quant", "action_apply_inventory", [quant])


def make_order(rpc: Rpc, product: int, bom: int, qty: float) -> tuple[int, tuple[int, ...]]:
    """A manufacturing order of `qty`, confirmed and planned; its id and its work orders' ids."""
    mo = rpc("mrp.production", "create", {"product_id": product, "bom_id": bom, "product_qty": qty})
    rpc("mrp.production", "action_confirm", [mo])
    rpc("mrp.production", "button_plan", [mo])
    (row,) = rpc("mrp.production", "read", [mo], fields=["workorder_ids", "state"])
    assert row["workorder_ids"], f"manufacturing order {mo} has no work order"
    return mo, tuple(row["workorder_ids"])


def setup_plant(rpc: Rpc, major: int, *, order_qty: float = 100_000, quality: bool = False) -> Plant:
    (stock,) = rpc("stock.warehouse", "search_read", [], fields=["lot_stock_id"], limit=1)
    location = stock["lot_stock_id"][0]
    wc = rpc("mrp.workcenter", "create", {"name": "CNC-01 Machining", "code": MACHINE})
    product = rpc("product.product", "create", {"name": "Demo Part", "default_code": "PART-01", **storable(major)})
    (tmpl,) = rpc("product.product", "read", [product], fields=["product_tmpl_id"])
    components = {}
    for name, code, _ in COMPONENTS + (MANUAL,):
        components[code] = rpc("product.product", "create", {"name": name, "default_code": code, **storable(major)})
        add_stock(rpc, components[code], location, 10 * order_qty * 4)
    lines = [(0, 0, {"product_id": components[code], "product_qty": per}) for _, code, per in COMPONENTS]
    lines.append((0, 0, {"product_id": components[MANUAL[1]], "product_qty": MANUAL[2]}))
    bom = rpc("mrp.bom", "create", {
        "product_tmpl_id": tmpl["product_tmpl_id"][0], "product_qty": 1.0, "bom_line_ids": lines,
        "operation_ids": [(0, 0, {"name": "Machining", "workcenter_id": wc, "time_cycle_manual": 1.0})]})
    mo, wos = make_order(rpc, product, bom, order_qty)
    # stock.move carries the flag on 16.0-19.0 (the BoM line only up to 18.0)
    manual = rpc("stock.move", "search", [["raw_material_production_id", "=", mo],
                                          ["product_id", "=", components[MANUAL[1]]]])
    rpc("stock.move", "write", manual, {"manual_consumption": True})
    equipment = rpc("maintenance.equipment", "create", {"name": MACHINE, "serial_no": MACHINE})
    if quality:
        setup_quality(rpc)
    return Plant(wc, product, bom, mo, wos, equipment, location, components)


def setup_quality(rpc: Rpc) -> int:
    """An OCA quality test with one quantitative question on the plant's scrap count (0..5 passes)."""
    (uom,) = rpc("uom.uom", "search", [["name", "in", ["Units", "Unit(s)"]]], limit=1)
    return rpc("qc.test", "create", {"name": QC_TEST, "test_lines": [(0, 0, {
        "name": QC_CHARACTERISTIC, "type": "quantitative", "min_value": 0.0, "max_value": 5.0, "uom_id": uom})]})


def external_ids(rpc: Rpc, model: str) -> dict[int, list[str]]:
    """Record id -> its ir.model.data names in module `linebridge`."""
    rows = rpc("ir.model.data", "search_read", [["module", "=", "linebridge"], ["model", "=", model]],
               fields=["name", "res_id"])
    out: dict[int, list[str]] = {}
    for r in rows:
        out.setdefault(r["res_id"], []).append(r["name"])
    return out


def sandbox_plant(rpc: Rpc) -> Plant:
    """The ids of the Odoo sandbox's own demo data (the same shape as `setup_plant` makes)."""
    (wc,) = rpc("mrp.workcenter", "search", [["code", "=", MACHINE]])
    (product,) = rpc("product.product", "search", [["default_code", "=", "PART-01"]])
    wos = rpc("mrp.workorder", "search_read", [["workcenter_id", "=", wc]], fields=["production_id"])
    (equipment,) = rpc("maintenance.equipment", "search", [["serial_no", "=", MACHINE]])
    (location,) = rpc("stock.location", "search", [["complete_name", "=", "WH/Stock"]])
    components = {code: rpc("product.product", "search", [["default_code", "=", code]])[0]
                  for _, code, _ in COMPONENTS}
    # the manual-consumption component, added to the demo order as a planner would add a line (the sandbox
    # has no BoMs); its stock and its flag as `setup_plant` sets them on real Odoo
    components[MANUAL[1]] = rpc("product.product", "create", {"name": MANUAL[0], "default_code": MANUAL[1],
                                                               "type": "product"})
    (mo,) = rpc("mrp.production", "read", [wos[0]["production_id"][0]], fields=["name", "product_qty"])
    add_stock(rpc, components[MANUAL[1]], location, 10 * mo["product_qty"] * 4)
    move = rpc("stock.move", "create", {"name": mo["name"], "product_id": components[MANUAL[1]],
                                        "product_uom_qty": mo["product_qty"] * MANUAL[2], "location_id": location,
                                        "location_dest_id": rpc("stock.location", "search",
                                                                [["usage", "=", "production"]])[0],
                                        "raw_material_production_id": mo["id"], "state": "assigned"})
    rpc("stock.move", "write", [move], {"manual_consumption": True})
    return Plant(wc, product, 0, wos[0]["production_id"][0], tuple(w["id"] for w in wos), equipment, location,
                 components)


def prepare(odoo: Any, *, order_qty: float = 100_000, quality: bool = False) -> Plant:
    """Master data for the plant in `odoo` (an OdooDb): set up through the API on real Odoo, the
    sandbox's demo data on the sandbox."""
    rpc = odoo.rpc()
    if odoo.sandbox:
        if quality:
            setup_quality(rpc)
        return sandbox_plant(rpc)
    return setup_plant(rpc, odoo.major, order_qty=order_qty, quality=quality)
