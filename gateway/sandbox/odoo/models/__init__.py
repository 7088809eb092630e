"""The sandbox's model registry: every Odoo model the sandbox knows, by technical name.

Owns only the assembly; each module of this package defines one Odoo app's
models (``base``: users, groups, external ids, products, calendars; ``mrp``;
``maintenance``; ``stock``) with Odoo 17's field names, labels and rules.
"""
from __future__ import annotations

from ..orm import BaseModel
from . import base, maintenance, mrp, stock


def build_registry() -> dict[str, type[BaseModel]]:
    """All model classes by their Odoo name."""
    classes = [obj for module in (base, mrp, maintenance, stock) for obj in vars(module).values()
               if isinstance(obj, type) and issubclass(obj, BaseModel) and obj is not BaseModel
               and obj.__module__ == module.__name__]
    return {cls._name: cls for cls in classes}
