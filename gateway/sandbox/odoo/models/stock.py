"""Stock models: locations, quants, moves and scrap orders, enough for scrap and mark-done.

Quantities on hand are kept per product and internal location in stock.quant;
stock comes in as Odoo's inventory adjustment does it (a quant created with
``inventory_quantity`` under the context ``inventory_mode``, then
``action_apply_inventory``: a done move from the inventory-loss location).
A scrap of a storable product with too little stock at its source location
answers with Odoo's 'Insufficient Quantity To Scrap' wizard action and stays
draft (a finished product of an order in progress usually has none: Odoo's own
order scrap offers the components); a scrap is named (SP/00001) when it is
done, takes its product's unit and, from 18, its order's source location.  The quantity
a move consumes is ``quantity`` + ``picked`` from Odoo 17 and ``quantity_done``
in Odoo 16 (``move_model_16``); ``consume``/``consumed`` hide the difference
from the other models.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import UserError
from ..fields import Boolean, Char, Datetime, Float, Many2one, One2many, Selection, now_string
from ..orm import BaseModel, api_model_create
from .groups import INTERNAL, MRP_ADMIN, MRP_USER, STOCK_ADMIN, STOCK_USER, acl
from .mail import MailThread

STOCK = [STOCK_USER, MRP_USER, MRP_ADMIN]


class StockLocation(BaseModel):
    _name = "stock.location"
    _description = "Inventory Locations"
    _order = "complete_name, id"
    _rec_name = "complete_name"
    _access = acl([INTERNAL], [STOCK_ADMIN])
    name = Char("Location Name", required=True)
    complete_name = Char("Full Location Name")
    location_id = Many2one("stock.location", "Parent Location")
    usage = Selection([("supplier", "Vendor Location"), ("view", "View"), ("internal", "Internal Location"),
                       ("customer", "Customer Location"), ("inventory", "Inventory Loss"),
                       ("production", "Production"), ("transit", "Transit Location")],
                      "Location Type", default="internal", required=True)
    scrap_location = Boolean("Is a Scrap Location?")
    active = Boolean("Active", default=True)

    def _prepare_create(self, stored: dict[str, Any]) -> dict[str, Any]:
        parent = self.browse(stored.get("location_id") or ()).exists()
        if parent and stored.get("usage", "internal") != "view":
            stored["complete_name"] = f"{parent._get('complete_name')}/{stored['name']}"
        else:
            stored["complete_name"] = stored["name"]
        return stored


class StockQuant(BaseModel):
    _name = "stock.quant"
    _description = "Quants"
    _rec_name = "product_id"
    _access = acl(STOCK + [INTERNAL], [STOCK_ADMIN])
    product_id = Many2one("product.product", "Product", required=True, ondelete="restrict")
    location_id = Many2one("stock.location", "Location", required=True, ondelete="restrict")
    quantity = Float("Quantity")
    inventory_quantity = Float("Counted Quantity")
    inventory_diff_quantity = Float("Difference")  # Odoo: stored, computed when the count is written
    inventory_quantity_set = Boolean("Inventory Quantity Set")

    #: what a quant may be created with in inventory mode (Odoo's _get_inventory_fields_create, no lots/packages)
    INVENTORY_FIELDS = {"product_id", "location_id", "inventory_quantity", "inventory_diff_quantity",
                        "inventory_quantity_set", "inventory_date", "user_id", "owner_id", "lot_id", "package_id"}

    def _inventory_mode(self) -> bool:
        return bool(self.env.context.get("inventory_mode")) and (
            self.env.su or STOCK_USER in self.env.user_group_names())

    @api_model_create
    def create(self, vals_list: Any) -> BaseModel:
        """Odoo's stock.quant.create: in inventory mode a count is written on the quant of that very product
        and location (created empty when there is none); stock moves only when the count is applied."""
        if isinstance(vals_list, Mapping):
            vals_list = [vals_list]
        if not self._inventory_mode():
            return super().create(vals_list)
        ids = []
        for vals in vals_list:
            if "inventory_quantity" not in vals:
                ids += super().create([vals]).ids
                continue
            if set(vals) - self.INVENTORY_FIELDS:
                raise UserError("Quant's creation is restricted, you can't do this operation.")
            vals = {k: v for k, v in vals.items() if k in ("product_id", "location_id", "inventory_quantity")}
            counted = vals.pop("inventory_quantity") or 0.0
            quant = self.sudo()._strict(vals.get("product_id"), vals.get("location_id"))
            if not quant:
                quant = self.sudo().create({**vals, "quantity": 0.0})
            quant.write({"inventory_quantity": counted})
            ids.append(quant.id)
        return self.browse(ids)

    def _strict(self, product_id: Any, location_id: Any) -> BaseModel:
        """The quant of exactly this product and location (Odoo's _gather(strict=True), no lots)."""
        ids = [rid for rid, r in self._table.items()
               if r["product_id"] == product_id and r["location_id"] == location_id]
        return self.browse(ids[:1])

    def write(self, vals: Mapping[str, Any]) -> bool:
        result = super().write(vals)
        if "inventory_quantity" in vals:  # Odoo: inventory_diff_quantity depends on inventory_quantity
            for quant in self:
                quant._put(quant.id, {"inventory_quantity_set": True, "inventory_diff_quantity":
                                      quant._get("inventory_quantity") - quant._get("quantity")})
        return result

    def action_apply_inventory(self) -> None:
        """Odoo's action_apply_inventory / _apply_inventory (no lots, no conflicts): for each counted quant a
        done move of the difference between the inventory-loss location and the quant's, then the count is
        cleared.  Only an Inventory administrator may."""
        if not self.env.su and STOCK_ADMIN not in self.env.user_group_names():
            raise UserError("Only a stock manager can validate an inventory adjustment.")
        loss = self.env["stock.location"].sudo().search([("usage", "=", "inventory"),
                                                         ("scrap_location", "=", False)], limit=1, order="id")
        if not loss:
            raise UserError("This database has no inventory-loss location (Virtual Locations/Inventory adjustment).")
        moves = self.env["stock.move"].sudo()
        for quant in self.sudo():
            diff = quant._get("inventory_diff_quantity") or 0.0
            if not diff and not quant._get("inventory_quantity") and not quant._get("quantity"):
                continue
            here = quant._get("location_id")
            move = moves.create({"name": "Product Quantity Updated" if diff else "Product Quantity Confirmed",
                                 "product_id": quant._get("product_id"), "product_uom_qty": abs(diff),
                                 "location_id": loss.id if diff > 0 else here,
                                 "location_dest_id": here if diff > 0 else loss.id})
            consume(move, abs(diff))
            move.write({"state": "done"})
            quant._put(quant.id, {"quantity": quant._get("quantity") + diff})
        self.sudo().write({"inventory_quantity": 0.0})
        for quant in self.sudo():
            quant._put(quant.id, {"inventory_diff_quantity": 0.0, "inventory_quantity_set": False})
        return None

    def _internal_locations(self, location_id: int | None) -> set[int]:
        """Internal locations, all of them or those under ``location_id`` (itself included: child_of)."""
        locs = self.env["stock.location"].sudo()._table

        def under(i: int | None) -> bool:
            seen: set[int] = set()
            while i and i not in seen:
                if i == location_id:
                    return True
                seen.add(i)
                i = locs.get(i, {}).get("location_id")
            return False
        return {i for i, r in locs.items() if r.get("usage") == "internal" and (location_id is None or under(i))}

    def _quantity(self, product_id: int, location_id: int | None, strict: bool = False) -> float:
        places = {location_id} if strict else self._internal_locations(location_id)
        return sum(r["quantity"] for r in self._table.values()
                   if r["product_id"] == product_id and r["location_id"] in places)

    def _update(self, product_id: int, location_id: int | None, delta: float) -> None:
        if location_id is None:
            location_id = min(self._internal_locations(None))
        for rid, row in self._table.items():
            if row["product_id"] == product_id and row["location_id"] == location_id:
                self.browse(rid).write({"quantity": row["quantity"] + delta})
                return
        self.create({"product_id": product_id, "location_id": location_id, "quantity": delta})


class StockMove(BaseModel):
    _name = "stock.move"
    _description = "Stock Move"
    _access = acl(STOCK, STOCK)
    name = Char("Description", required=True, default="New")
    product_id = Many2one("product.product", "Product", required=True)
    product_uom = Many2one("uom.uom", "UoM")
    product_uom_qty = Float("Demand", default=0.0)
    quantity = Float("Quantity")
    picked = Boolean("Picked")
    state = Selection([("draft", "New"), ("waiting", "Waiting Another Move"), ("confirmed", "Waiting Availability"),
                       ("partially_available", "Partially Available"), ("assigned", "Available"),
                       ("done", "Done"), ("cancel", "Cancelled")], "Status", default="draft")
    location_id = Many2one("stock.location", "Source Location", required=True)
    location_dest_id = Many2one("stock.location", "Destination Location", required=True)
    scrap_id = Many2one("stock.scrap", "Scrap operation")
    manual_consumption = Boolean("Manual Consumption")
    scrapped = Boolean("Scrapped")  # Odoo: related location_dest_id.scrap_location, stored
    raw_material_production_id = Many2one("mrp.production", "Production Order for components")
    workorder_id = Many2one("mrp.workorder", "Work Order To Consume")
    production_id = Many2one("mrp.production", "Production Order for finished products")
    date = Datetime("Date Scheduled", default=now_string)
    unit_factor = Float("Unit Factor", compute="_compute_unit_factor")

    def _prepare_create(self, stored: dict[str, Any]) -> dict[str, Any]:
        product = self.env["product.product"].sudo().browse(stored.get("product_id") or ()).exists()
        if not stored.get("product_uom") and product:
            stored["product_uom"] = product._get("uom_id") or False
        dest = self.env["stock.location"].sudo().browse(stored.get("location_dest_id") or ()).exists()
        stored["scrapped"] = bool(dest and dest._get("scrap_location"))
        return stored

    def _after_write(self) -> None:
        super()._after_write()
        mos = {self._table[rid].get(f) for rid in self._ids if rid in self._table
               for f in ("raw_material_production_id", "production_id")} - {None, False}
        if mos:  # a picked component or a done move changes the order's computed state
            self.env["mrp.production"].sudo().browse(sorted(mos)).exists()._compute_state()

    def _compute_unit_factor(self) -> float:
        """Demand per unit still to produce (mrp's stock.move._compute_unit_factor)."""
        mo_id = self._get("raw_material_production_id") or self._get("production_id")
        mo = self.env["mrp.production"].sudo().browse(mo_id)
        if not mo_id or not mo.exists():
            return 1.0
        remaining = mo._get("product_qty") - mo._get("qty_produced")
        return self._get("product_uom_qty") / remaining if remaining else 1.0


def move_model_16() -> type[StockMove]:
    """stock.move of Odoo 16: one ``quantity_done``, no ``quantity`` nor ``picked``."""
    model = type("stock.move", (StockMove,), {"__module__": __name__,
                                               "quantity_done": Float("Quantity Done")})
    model._fields = {k: v for k, v in model._fields.items() if k not in ("quantity", "picked")}
    return model


def consumed(move: BaseModel) -> bool:
    """Whether a move's quantity counts when its order is done (16: a quantity done; 17+: picked)."""
    if "quantity_done" in move._fields:
        return move._get("quantity_done") > 0
    return bool(move._get("picked"))


def consume(move: BaseModel, qty: float) -> None:
    """Record that ``qty`` of a move was used."""
    move.write({"quantity_done": qty} if "quantity_done" in move._fields else {"quantity": qty, "picked": True})


def done_quantity(move: BaseModel) -> float:
    return move._get("quantity_done" if "quantity_done" in move._fields else "quantity")


def default_stock_location(env: Any) -> int | bool:
    locs = env["stock.location"].sudo().search([("usage", "=", "internal")], limit=1, order="id")
    return locs.id if locs else False


def _default_scrap_location(env: Any) -> int | bool:
    locs = env["stock.location"].sudo().search([("scrap_location", "=", True)], limit=1, order="id")
    return locs.id if locs else False


class StockScrap(MailThread, BaseModel):
    _name = "stock.scrap"
    _description = "Scrap"
    _order = "id desc"
    _access = acl(STOCK, STOCK)
    name = Char("Reference", required=True, default="New")
    origin = Char("Source Document")
    product_id = Many2one("product.product", "Product", required=True)
    product_uom_id = Many2one("uom.uom", "Unit of Measure", required=True)
    scrap_qty = Float("Quantity", required=True, default=1.0)
    location_id = Many2one("stock.location", "Source Location", required=True)
    scrap_location_id = Many2one("stock.location", "Scrap Location", required=True,
                                 default=_default_scrap_location)
    production_id = Many2one("mrp.production", "Manufacturing Order")
    workorder_id = Many2one("mrp.workorder", "Work Order")
    move_ids = One2many("stock.move", "scrap_id", "Moves")
    state = Selection([("draft", "Draft"), ("done", "Done")], "Status", default="draft")
    date_done = Datetime("Date")

    def _prepare_create(self, stored: dict[str, Any]) -> dict[str, Any]:
        """The unit is the product's when not given (16: create, 17+: precompute); the source location is the
        order's (18+ ``_compute_location_id``: its components' source until it is done, then its destination;
        16 and 17 set it in a form onchange only) or the warehouse stock.  The name stays 'New' until
        validation, as in Odoo."""
        product = self.env["product.product"].sudo().browse(stored.get("product_id") or ()).exists()
        if not stored.get("product_uom_id") and product:
            stored["product_uom_id"] = product._get("uom_id") or False
        if not stored.get("location_id"):
            stored["location_id"] = self._computed_location(stored) or default_stock_location(self.env)
        return stored

    def _computed_location(self, stored: dict[str, Any]) -> int | bool:
        if self.env.major < 18:
            return False
        mo = self.env["mrp.production"].sudo().browse(stored.get("production_id") or ()).exists()
        if mo:
            return mo._get("location_src_id" if mo._get("state") != "done" else "location_dest_id")
        wo = self.env["mrp.workorder"].sudo().browse(stored.get("workorder_id") or ()).exists()
        if wo:
            return self.env["mrp.production"].sudo().browse(wo._get("production_id"))._get("location_src_id")
        return False

    def _production_link(self) -> dict[str, int]:
        """mrp's _prepare_move_values: a finished product's scrap moves on production_id, a component's on
        raw_material_production_id (the move is 'scrapped', so it is in neither list of the order)."""
        mo = self.env["mrp.production"].sudo().browse(self._get("production_id") or ()).exists()
        if not mo:
            return {}
        finished = {m._get("product_id") for m in self.env["stock.move"].sudo().browse(mo._get("move_finished_ids"))}
        finished.add(mo._get("product_id"))  # the sandbox's orders may have no finished move
        key = "production_id" if self._get("product_id") in finished else "raw_material_production_id"
        return {key: mo.id}

    def action_validate(self) -> Any:
        self.ensure_one()
        if self._get("scrap_qty") <= 0:
            raise UserError("You can only enter positive quantities.")
        product = self.env["product.product"].sudo().browse(self._get("product_id"))
        # 16: quants of that very location (_gather strict); 17: qty_available there and below (child_of);
        # 18+: qty_available with the context's strict (that very location again)
        available = self.env["stock.quant"].sudo()._quantity(product.id, self._get("location_id"),
                                                              strict=self.env.major != 17)
        if product._is_storable() and available < self._get("scrap_qty"):
            return {"name": product._display_name() + ": Insufficient Quantity To Scrap", "view_mode": "form",
                    "res_model": "stock.warn.insufficient.qty.scrap", "view_id": 630,
                    "type": "ir.actions.act_window",
                    "context": {**self.env.context, "default_product_id": product.id,
                                "default_location_id": self._get("location_id"), "default_scrap_id": self.id,
                                "default_quantity": float(self._get("scrap_qty")),
                                "default_product_uom_name": product._get("uom_name")},
                    "target": "new"}
        return self.do_scrap()

    def do_scrap(self) -> bool:
        for scrap in self:
            scrap.write({"name": "SP/%05d" % self.env.db.next_sequence("stock.scrap")})  # named when done
            qty = scrap._get("scrap_qty")
            move = self.env["stock.move"].sudo().create({
                "name": scrap._get("name"), "product_id": scrap._get("product_id"), "product_uom_qty": qty,
                "product_uom": scrap._get("product_uom_id"), "location_id": scrap._get("location_id"),
                "location_dest_id": scrap._get("scrap_location_id"), "scrap_id": scrap.id,
                **scrap._production_link()})
            consume(move, qty)
            move.write({"state": "done"})
            # Odoo's scrap move carries its move line at the scrap's location: taken from there, children aside
            self.env["stock.quant"].sudo()._update(scrap._get("product_id"), scrap._get("location_id"), -qty)
            scrap.write({"state": "done", "date_done": now_string(self.env)})
        return True
