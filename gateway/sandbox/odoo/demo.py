"""Master data of a fresh sandbox database.

One product (Demo Part, PART-01, storable, 1000 on hand in WH/Stock), the work
center CNC-01 on the standard 40 hours/week calendar, Odoo's seven standard loss
reasons (ids 1-7), manufacturing order WH/MO/00001 in progress for 1000000
parts with one work order in progress on CNC-01, the maintenance equipment
CNC-01 and the four default maintenance stages; users OdooBot (1) and
Mitchell Admin (2, login admin, all groups).
"""
from __future__ import annotations

from typing import Any

from .models.groups import ALL
from .orm import Environment

LOSSES = [("Material Availability", "availability", False), ("Equipment Failure", "availability", True),
          ("Setup and Adjustments", "availability", True), ("Reduced Speed", "performance", False),
          ("Process Defect", "quality", False), ("Reduced Yield", "quality", False),
          ("Fully Productive Time", "productive", False)]


def seed(env: Environment) -> None:
    """Create the demo records through the ORM, as the superuser."""
    env = env.sudo()

    def make(model: str, vals: dict[str, Any]) -> int:
        return env[model].create(vals).id

    for full in ALL:
        make("res.groups", {"name": full.split("/")[1], "full_name": full})
    make("res.users", {"name": "OdooBot", "login": "__system__", "active": False, "groups_id": []})
    make("res.users", {"name": "Mitchell Admin", "login": "admin",
                       "groups_id": [[6, 0, list(range(1, len(ALL) + 1))]]})
    make("resource.calendar", {"name": "Standard 40 hours/week", "tz": "Europe/Brussels"})
    part = make("product.product", {"name": "Demo Part", "default_code": "PART-01", "type": "product"})
    physical = make("stock.location", {"name": "Physical Locations", "usage": "view"})
    virtual = make("stock.location", {"name": "Virtual Locations", "usage": "view"})
    make("stock.location", {"name": "Scrap", "location_id": virtual, "usage": "inventory", "scrap_location": True})
    make("stock.location", {"name": "Production", "location_id": virtual, "usage": "production"})
    wh = make("stock.location", {"name": "WH", "location_id": physical, "usage": "view"})
    stock = make("stock.location", {"name": "Stock", "location_id": wh, "usage": "internal"})
    make("stock.quant", {"product_id": part, "location_id": stock, "quantity": 1000.0})
    wc = make("mrp.workcenter", {"name": "CNC-01 Machining", "code": "CNC-01", "resource_calendar_id": 1})
    for seq, (name, loss_type, manual) in enumerate(LOSSES, 1):
        make("mrp.workcenter.productivity.loss", {"name": name, "loss_type": loss_type, "sequence": seq,
                                                  "manual": manual})
    mo = make("mrp.production", {"product_id": part, "product_qty": 1000000, "qty_producing": 0,
                                 "state": "progress"})
    make("mrp.workorder", {"name": "Machining", "production_id": mo, "workcenter_id": wc, "state": "progress",
                           "date_start": env.now().strftime("%Y-%m-%d %H:%M:%S")})
    make("maintenance.equipment", {"name": "CNC-01", "serial_no": "CNC-01", "workcenter_id": wc})
    for seq, (name, done) in enumerate([("New Request", False), ("In Progress", False), ("Repaired", True),
                                        ("Scrap", True)], 1):
        make("maintenance.stage", {"name": name, "sequence": seq, "done": done})
