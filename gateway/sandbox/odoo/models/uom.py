"""Units of measure (Odoo's uom app, which product depends on, so always installed).

Owns uom.category and uom.uom and the standard units Odoo ships (``uom.product_uom_unit``
"Units" first): a product's ``uom_id``, a scrap's ``product_uom_id`` and OCA quality
control's test units point here.  No conversions beyond the factor.
"""
from __future__ import annotations

from ..fields import Boolean, Char, Float, Many2one, Selection
from ..orm import BaseModel, Environment
from .groups import INTERNAL, SETTINGS, acl


class UomCategory(BaseModel):
    _name = "uom.category"
    _description = "Product UoM Categories"
    _access = acl([INTERNAL], [SETTINGS])
    name = Char("Unit of Measure Category", required=True)


class UomUom(BaseModel):
    _name = "uom.uom"
    _description = "Product Unit of Measure"
    _order = "factor DESC, id"
    _access = acl([INTERNAL], [SETTINGS])
    name = Char("Unit of Measure", required=True)
    category_id = Many2one("uom.category", "Category", required=True, ondelete="cascade")
    factor = Float("Ratio", default=1.0, required=True)
    rounding = Float("Rounding Precision", default=0.01, required=True)
    active = Boolean("Active", default=True)
    uom_type = Selection([("bigger", "Bigger than the reference Unit of Measure"),
                          ("reference", "Reference Unit of Measure for this category"),
                          ("smaller", "Smaller than the reference Unit of Measure")], "Type",
                         default="reference", required=True)


UOMS = [  # (category xml id, category, [(xml id, name, type, factor)])
    ("product_uom_categ_unit", "Unit", [("product_uom_unit", "Units", "reference", 1.0),
                                        ("product_uom_dozen", "Dozens", "bigger", 1 / 12)]),
    ("product_uom_categ_kgm", "Weight", [("product_uom_kgm", "kg", "reference", 1.0),
                                         ("product_uom_gram", "g", "smaller", 1000.0),
                                         ("product_uom_ton", "t", "bigger", 0.001)]),
    ("uom_categ_length", "Length / Distance", [("product_uom_meter", "m", "reference", 1.0),
                                               ("product_uom_km", "km", "bigger", 0.001),
                                               ("product_uom_cm", "cm", "smaller", 100.0),
                                               ("product_uom_millimeter", "mm", "smaller", 1000.0)]),
    ("product_uom_categ_vol", "Volume", [("product_uom_litre", "L", "reference", 1.0)]),
    ("uom_categ_wtime", "Working Time", [("product_uom_day", "Days", "reference", 1.0),
                                         ("product_uom_hour", "Hours", "smaller", 8.0)]),
]




def seed_uoms(env: Environment) -> None:
    """Create the standard units with their external ids, once; Units is the first uom.uom."""
    env = env.sudo()
    if env["uom.uom"].search([]):
        return
    data = env["ir.model.data"]
    for cat_xmlid, cat_name, units in UOMS:
        category = env["uom.category"].create({"name": cat_name})
        data.create({"module": "uom", "name": cat_xmlid, "model": "uom.category", "res_id": category.id,
                     "noupdate": True})
        for uom_xmlid, name, uom_type, factor in units:
            uom = env["uom.uom"].create({"name": name, "category_id": category.id, "uom_type": uom_type,
                                         "factor": factor})
            data.create({"module": "uom", "name": uom_xmlid, "model": "uom.uom", "res_id": uom.id, "noupdate": True})
