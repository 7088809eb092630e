"""Base models: users and groups, external ids, products and working calendars.

res.users keeps a salted hash of each password beside the record (never a
field, never readable); the admin's password is the sandbox's API key and is
checked in ``service.py``.  ``res.users.context_get`` answers lang, tz and uid
(how a JSON-2 client learns who its API key is).  ir.model.data keeps Odoo's
unique index on (module, name).  product.product carries a simple on-hand
quantity from stock.quant so scrap validation can find a shortage; from Odoo 18
storable goods are type 'consu' with ``is_storable`` (``product_model_18``).
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

from ..errors import ValidationError, unique_violation
from ..fields import Boolean, Char, Float, Integer, Many2many, Many2one, Selection
from ..orm import BaseModel, api_model
from .groups import ACCESS_RIGHTS, INTERNAL, SETTINGS, STOCK_ADMIN, acl


def hash_password(password: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 10_000).hex()
    return f"{salt}${digest}"


def check_password(password: Any, stored: str | None) -> bool:
    if not stored or not isinstance(password, str):
        return False
    salt, _, _digest = stored.partition("$")
    return secrets.compare_digest(hash_password(password, salt), stored)


class ResGroups(BaseModel):
    _name = "res.groups"
    _description = "Access Groups"
    _access = acl([INTERNAL], [ACCESS_RIGHTS])
    name = Char("Name", required=True)
    full_name = Char("Group Name")

    def _display_name(self) -> str:
        return self._get("full_name") or super()._display_name()


class ResUsers(BaseModel):
    _name = "res.users"
    _description = "User"
    _order = "name, login"
    _access = acl([INTERNAL], [ACCESS_RIGHTS])
    name = Char("Name", required=True)
    login = Char("Login", required=True)
    password = Char("Password", compute="_compute_password", inverse="_set_password")
    active = Boolean("Active", default=True)
    groups_id = Many2many("res.groups", "Groups", default=lambda env: [1])
    tz = Char("Timezone")

    def _compute_password(self) -> str:
        return ""

    def _set_password(self, value: Any) -> None:
        self._put(self.id, {"__password_hash": hash_password(str(value)) if value else None})

    def _after_write(self) -> None:
        logins = [r.get("login") for r in self._table.values()]
        if len(logins) != len(set(logins)):
            raise ValidationError("The operation cannot be completed: You can not have two users with the same login !")

    @api_model
    def context_get(self) -> dict[str, Any]:
        row = self.env.db.tables.get("res.users", {}).get(self.env.uid) or {}
        return {"lang": "en_US", "tz": row.get("tz") or False, "uid": self.env.uid}


class IrModelData(BaseModel):
    _name = "ir.model.data"
    _description = "Model Data"
    _rec_name = "complete_name"
    _order = "module, model, name"
    _access = acl([INTERNAL], [SETTINGS])
    name = Char("External Identifier", required=True)
    complete_name = Char("Complete ID", compute="_compute_complete_name")
    module = Char("Module", required=True, default="")
    model = Char("Model Name", required=True)
    res_id = Integer("Record ID")
    noupdate = Boolean("Non Updatable", default=False)

    def _compute_complete_name(self) -> str:
        return "%s.%s" % (self._get("module"), self._get("name")) if self._get("module") else self._get("name")

    def _after_write(self) -> None:
        # ir_model_data_module_name_uniq_index (IrModelData._auto_init), not an _sql_constraint:
        # Odoo 17's retrying() reports PostgreSQL's own text in a ValidationError. Like the
        # index, only the rows written are checked against the others.
        db = self.env.db
        index = db.xid_index()
        for rid in self._ids:
            row = self._table[rid]
            key = (row.get("module"), row.get("name"))
            other = db.xid(*key)
            if other is not None and other != rid:
                raise unique_violation("ir_model_data_module_name_uniq_index", "module, name", "%s, %s" % key)
            index[key] = rid

    @api_model
    def check_object_reference(self, module: str, xml_id: str, raise_on_access_error: bool = False) -> list:
        """Odoo's public lookup: [model, res_id] of module.xml_id, ValueError when unknown."""
        rid = self.env.db.xid(module, xml_id)
        if rid is not None:
            row = self._table[rid]
            return [row["model"], row["res_id"]]
        raise ValueError("External ID not found in the system: %s.%s" % (module, xml_id))


class ResourceCalendar(BaseModel):
    _name = "resource.calendar"
    _description = "Resource Working Time"
    _access = acl([INTERNAL], [SETTINGS])
    name = Char("Name", required=True)
    tz = Char("Timezone", default="Europe/Brussels")
    hours_per_day = Float("Average Hour per Day", default=8.0)


class ProductProduct(BaseModel):
    _name = "product.product"
    _description = "Product Variant"
    _order = "default_code, name, id"
    _access = acl([INTERNAL], [STOCK_ADMIN])
    name = Char("Name", required=True)
    default_code = Char("Internal Reference")
    active = Boolean("Active", default=True)
    type = Selection([("consu", "Consumable"), ("service", "Service"), ("product", "Storable Product")],
                     "Product Type", default="consu", required=True)
    uom_id = Many2one("uom.uom", "Unit of Measure", default=lambda env: min(env["uom.uom"]._table, default=False))
    uom_name = Char("Unit of Measure Name", default="Units")
    qty_available = Float("Quantity On Hand", compute="_compute_qty_available")

    def _display_name(self) -> str:
        code = self._get("default_code")
        name = self._get("name")
        return f"[{code}] {name}" if code else (name or "")

    def _compute_qty_available(self) -> float:
        """On hand in internal locations, or in the context's ``location`` and its children (only there with
        the context's ``strict``, from Odoo 18)."""
        location = self.env.context.get("location") or None
        strict = bool(location and self.env.major >= 18 and self.env.context.get("strict"))
        return self.env["stock.quant"].sudo()._quantity(self.id, location, strict=strict)

    def _is_storable(self) -> bool:
        if "is_storable" in self._fields:
            return bool(self._get("is_storable"))
        return self._get("type") == "product"


def product_model_18() -> type[ProductProduct]:
    """product.product of Odoo 18+: 'Goods' (consu) with a 'Track Inventory' flag instead of 'product'."""
    model = type("product.product", (ProductProduct,), {
        "__module__": __name__,
        "type": Selection([("consu", "Goods"), ("service", "Service"), ("combo", "Combo")], "Product Type",
                          default="consu", required=True),
        "is_storable": Boolean("Track Inventory", default=False)})
    return model


class IrModuleModule(BaseModel):
    """The installed apps, as `linebridge odoo check` asks for them (state 'installed')."""

    _name = "ir.module.module"
    _description = "Module"
    _order = "name"
    _access = acl([INTERNAL], [SETTINGS])
    name = Char("Technical Name", required=True)
    shortdesc = Char("Module Name")
    state = Selection([("uninstallable", "Uninstallable"), ("uninstalled", "Not Installed"),
                       ("installed", "Installed"), ("to upgrade", "To be upgraded"),
                       ("to remove", "To be removed"), ("to install", "To be installed")],
                      "Status", default="uninstalled")
