"""Master data of a fresh sandbox database.

One product (Demo Part, PART-01, storable, 1000 on hand in WH/Stock), the work
center CNC-01 on the standard 40 hours/week calendar, Odoo's seven standard loss
reasons (ids 1-7), manufacturing order WH/MO/00001 in progress for 1000000
parts (consumption 'warning', a BoM's default) with one work order in
progress on CNC-01, the maintenance equipment
CNC-01 and the four default maintenance stages; users OdooBot (1) and
Mitchell Admin (2, login admin, all groups).  Then, appended so the ids above
stay put: the restricted user ``viewer`` (3, password viewer, Internal User
only), the chatter subtypes mail.mt_comment and mail.mt_note, and two
components of WH/MO/00001 (stock.move 1 and 2, WH/Stock to Production):
Steel Bar (STEEL-BAR, 1 per part) and Screw M4 (SCREW-M4, 4 per part), both
storable with twice the MO's need on hand; Odoo's standard units of measure
(uom.product_uom_unit 'Units' is every product's unit); the inventory-loss
location Virtual Locations/Inventory adjustment (inventory adjustments).
"""
from __future__ import annotations

from typing import Any

from .models.groups import ALL
from .models.uom import seed_uoms
from .orm import Environment
from .versions import DEFAULT, OdooVersion

LOSSES = [("Material Availability", "availability", False), ("Equipment Failure", "availability", True),
          ("Setup and Adjustments", "availability", True), ("Reduced Speed", "performance", False),
          ("Process Defect", "quality", False), ("Reduced Yield", "quality", False),
          ("Fully Productive Time", "productive", False)]


COMPONENTS = [("Steel Bar", "STEEL-BAR", 1.0), ("Screw M4", "SCREW-M4", 4.0)]


def seed(env: Environment, version: OdooVersion = DEFAULT) -> None:
    """Create the demo records through the ORM, as the superuser."""
    env = env.sudo()
    storable = {"type": "consu", "is_storable": True} if version.product_has_is_storable else {"type": "product"}

    def make(model: str, vals: dict[str, Any]) -> int:
        return env[model].create(vals).id

    for name, desc in (("base", "Base"), ("mail", "Discuss"), ("mrp", "Manufacturing"), ("stock", "Inventory"),
                       ("maintenance", "Maintenance")):
        make("ir.module.module", {"name": name, "shortdesc": desc, "state": "installed"})
    make("ir.module.module", {"name": "quality_control_oca", "shortdesc": "Quality Control (OCA)",
                              "state": "uninstalled"})
    for full in ALL:
        make("res.groups", {"name": full.split("/")[1], "full_name": full})
    make("res.users", {"name": "OdooBot", "login": "__system__", "active": False, "groups_id": []})
    make("res.users", {"name": "Mitchell Admin", "login": "admin",
                       "groups_id": [[6, 0, list(range(1, len(ALL) + 1))]]})
    make("resource.calendar", {"name": "Standard 40 hours/week", "tz": "Europe/Brussels"})
    part = make("product.product", {"name": "Demo Part", "default_code": "PART-01", **storable})
    physical = make("stock.location", {"name": "Physical Locations", "usage": "view"})
    virtual = make("stock.location", {"name": "Virtual Locations", "usage": "view"})
    make("stock.location", {"name": "Scrap", "location_id": virtual, "usage": "inventory", "scrap_location": True})
    production = make("stock.location", {"name": "Production", "location_id": virtual, "usage": "production"})
    wh = make("stock.location", {"name": "WH", "location_id": physical, "usage": "view"})
    stock = make("stock.location", {"name": "Stock", "location_id": wh, "usage": "internal"})
    make("stock.quant", {"product_id": part, "location_id": stock, "quantity": 1000.0})
    wc = make("mrp.workcenter", {"name": "CNC-01 Machining", "code": "CNC-01", "resource_calendar_id": 1})
    for seq, (name, loss_type, manual) in enumerate(LOSSES, 1):
        make("mrp.workcenter.productivity.loss", {"name": name, "loss_type": loss_type, "sequence": seq,
                                                  "manual": manual})
    mo = make("mrp.production", {"product_id": part, "product_qty": 1000000, "qty_producing": 0,
                                 "state": "progress", "consumption": "warning"})  # a BoM's default
    make("mrp.workorder", {"name": "Machining", "production_id": mo, "workcenter_id": wc, "state": "progress",
                           "date_start": env.now().strftime("%Y-%m-%d %H:%M:%S")})
    make("maintenance.equipment", {"name": "CNC-01", "serial_no": "CNC-01", "workcenter_id": wc})
    for seq, (name, done) in enumerate([("New Request", False), ("In Progress", False), ("Repaired", True),
                                        ("Scrap", True)], 1):
        make("maintenance.stage", {"name": name, "sequence": seq, "done": done})
    _seed_additions(env, version, storable, mo, stock, production)


def _seed_additions(env: Environment, version: OdooVersion, storable: dict[str, Any], mo: int, stock: int,
                    production: int) -> None:
    """Records added after the first demo set, created last so the earlier ids do not move."""
    env["res.users"].create({"name": "Viewer", "login": "viewer", "password": "viewer", "groups_id": [[6, 0, [1]]]})
    data = env["ir.model.data"]
    for xmlid, name, internal in (("mt_comment", "Discussions", False), ("mt_note", "Note", True)):
        subtype = env["mail.message.subtype"].create({"name": name, "internal": internal})
        data.create({"module": "mail", "name": xmlid, "model": "mail.message.subtype", "res_id": subtype.id,
                     "noupdate": True})
    seed_uoms(env)  # Units is the first unit: the components below take it by default
    env["product.product"].search([]).write({"uom_id": min(env["uom.uom"]._table)})
    production_order = env["mrp.production"].browse(mo)
    demand = production_order._get("product_qty")
    for name, code, per_part in COMPONENTS:
        product = env["product.product"].create({"name": name, "default_code": code, **storable})
        env["stock.quant"].create({"product_id": product.id, "location_id": stock, "quantity": 2 * demand * per_part})
        reserved = {"quantity_done": 0.0} if version.move_uses_quantity_done else {"quantity": demand * per_part,
                                                                                 "picked": False}
        env["stock.move"].create({"name": production_order._get("name"), "product_id": product.id,
                                  "product_uom_qty": demand * per_part, "state": "assigned", "location_id": stock,
                                  "location_dest_id": production, "raw_material_production_id": mo, **reserved})
    virtual = env["stock.location"].search([("name", "=", "Virtual Locations")], limit=1)
    env["stock.location"].create({"name": "Inventory adjustment", "location_id": virtual.id, "usage": "inventory"})
