"""Base models: users and groups, external ids, products and working calendars.

res.users keeps a salted hash of each password beside the record (never a
field, never readable); the admin's password is the sandbox's API key and is
checked in ``service.py``.  product.product carries a simple on-hand quantity
from stock.quant so scrap validation can find a shortage.
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

from ..errors import ValidationError
from ..fields import Boolean, Char, Float, Integer, Many2many, Selection
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

    @api_model
    def check_object_reference(self, module: str, xml_id: str, raise_on_access_error: bool = False) -> list:
        """Odoo's public lookup: [model, res_id] of module.xml_id, ValueError when unknown."""
        for row in self._table.values():
            if row["module"] == module and row["name"] == xml_id:
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
    uom_name = Char("Unit of Measure Name", default="Units")
    qty_available = Float("Quantity On Hand", compute="_compute_qty_available")

    def _display_name(self) -> str:
        code = self._get("default_code")
        name = self._get("name")
        return f"[{code}] {name}" if code else (name or "")

    def _compute_qty_available(self) -> float:
        return self.env["stock.quant"].sudo()._quantity(self.id, None)
