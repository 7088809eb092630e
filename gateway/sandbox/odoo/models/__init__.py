"""The sandbox's model registry: every Odoo model the sandbox knows, by technical name.

Owns only the assembly; each module of this package defines one Odoo app's
models (``base``: users, groups, external ids, products, calendars; ``workcenter`` and ``mrp``;
``maintenance``; ``stock``; ``mail``; ``uom``) with Odoo 17's field names, labels and
rules, and the per-version variants (16's stock.move, 18+'s product.product).
``qc`` (OCA's quality control) joins only when its modules are installed.
"""
from __future__ import annotations

from collections.abc import Collection

from ..orm import BaseModel
from ..versions import DEFAULT, OdooVersion
from . import base, mail, maintenance, mrp, qc, stock, uom, workcenter


class Registry(dict):
    """Model classes by Odoo name, knowing the Odoo series they play (``major``) for rules that differ."""

    def __init__(self, version: OdooVersion, *args: object) -> None:
        super().__init__(*args)
        self.major = version.major


def build_registry(version: OdooVersion = DEFAULT, modules: Collection[str] = ()) -> Registry:
    """All model classes by their Odoo name, as the given Odoo series has them with these optional modules."""
    classes = [obj for module in (base, workcenter, mrp, maintenance, stock, mail, uom) for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel
               and obj.__module__ == module.__name__]
    registry = Registry(version, {cls._name: cls for cls in classes})
    if version.move_uses_quantity_done:
        registry["stock.move"] = stock.move_model_16()
    if version.product_has_is_storable:
        registry["product.product"] = base.product_model_18()
    if set(modules) & set(qc.MODULES):
        registry.update({cls._name: cls for cls in qc.models()})
    return registry
