"""OCA's quality control (``quality_control_oca`` with its stock and mrp extensions), installed on request.

Real Odoo has no ``qc.*`` models until OCA's ``quality_control_oca`` is
installed, so the sandbox registers these models only when it is started with
that module (``OdooSandbox(modules=...)``, ``--with-module``); otherwise calls
get Odoo's own "Object qc.inspection doesn't exist".  Installing it also marks
``quality_control_stock_oca`` and ``quality_control_mrp_oca`` installed, as
Odoo does (both are auto_install once stock and mrp are there), so an
inspection's ``object_id`` may reference a product, a stock move or a
manufacturing order.  Field names, defaults, states and methods follow
OCA/manufacture's 16.0/17.0 sources: ``qc.test`` with its questions and
answers, ``qc.inspection`` (draft -> ``action_todo`` ready -> ``action_confirm``
success or waiting -> ``action_approve`` success or failed; ``success`` is
computed from the lines, ``QC-000001`` names from the sequence) and
``qc.inspection.line`` (a quantitative line succeeds when ``min_value <=
quantitative_value <= max_value``; confirming needs a unit of measure on it).
The module's access rights, groups, categories and a demo test for PART-01
come with ``install``; the units of measure it relies on are ``uom``'s.
Not modelled: triggers, companies, the stock extension's picking and lot
fields, activities and tracking messages.
"""
from __future__ import annotations

from typing import Any

from ..errors import UserError, ValidationError
from ..fields import Boolean, Char, Datetime, Float, Integer, Many2many, Many2one, One2many, Selection, Text, \
    now_string
from ..orm import BaseModel, Database, Environment
from .groups import acl
from .mail import MailThread
from .uom import seed_uoms

MODULES = ("quality_control_oca", "quality_control_stock_oca", "quality_control_mrp_oca")
QC_USER = "Quality control/User"
QC_MANAGER = "Quality control/Manager"
STATES = [("draft", "Draft"), ("ready", "Ready"), ("waiting", "Waiting supervisor approval"),
          ("success", "Quality success"), ("failed", "Quality failed"), ("canceled", "Canceled")]
QUESTION_TYPES = [("qualitative", "Qualitative"), ("quantitative", "Quantitative")]
# object_selection_values(): the base module's product, then quality_control_stock_oca's and _mrp_oca's
OBJECTS = [("product.product", "Product"), ("stock.picking", "Picking List"), ("stock.move", "Stock Move"),
           ("stock.lot", "Lot/Serial Number"), ("mrp.production", "Manufacturing Order")]


class Reference(Selection):
    """odoo.fields.Reference: a 'model,id' string whose model is one of the selection's."""

    type = "reference"

    def convert_to_cache(self, value: Any, env: Any) -> Any:
        if not value:
            return False
        if isinstance(value, str):
            res_model, res_id = value.split(",")
            if res_model in [m for m, _label in self.selection] and res_model in env.registry:
                # a reference to a record that does not exist is stored empty, as Odoo does
                return value if env[res_model].sudo().browse(int(res_id)).exists() else False
        raise ValueError("Wrong value for %s: %r" % (self, value))


def referenced(record: BaseModel, fname: str = "object_id") -> BaseModel | None:
    """The record a Reference field points at (None when empty)."""
    value = record._get(fname)
    if not value:
        return None
    res_model, res_id = value.split(",")
    return record.env[res_model].sudo().browse(int(res_id)).exists() or None


# -- tests: what to check ------------------------------------------------------------------------

class QcTestCategory(BaseModel):
    _name = "qc.test.category"
    _description = "Test category"
    _access = acl([QC_MANAGER], [QC_MANAGER])
    name = Char("Name", required=True)
    active = Boolean("Active", default=True)


class QcTest(BaseModel):
    _name = "qc.test"
    _description = "Quality control test"
    _access = acl([QC_USER, QC_MANAGER], [QC_MANAGER])
    active = Boolean("Active", default=True)
    name = Char("Name", required=True)
    test_lines = One2many("qc.test.question", "test", "Questions")
    object_id = Reference([], "Reference object")  # object_selection_values() is empty for tests
    fill_correct_values = Boolean("Pre-fill with correct values")
    type = Selection([("generic", "Generic"), ("related", "Related")], "Type", required=True, default="generic")
    category = Many2one("qc.test.category", "Category")


class QcTestQuestion(BaseModel):
    _name = "qc.test.question"
    _description = "Quality control question"
    _order = "sequence, id"
    _access = acl([QC_USER, QC_MANAGER], [QC_MANAGER])
    sequence = Integer("Sequence", required=True, default=10)
    test = Many2one("qc.test", "Test")
    name = Char("Name", required=True)
    type = Selection(QUESTION_TYPES, "Type", required=True)
    ql_values = One2many("qc.test.question.value", "test_line", "Qualitative values")
    notes = Text("Notes")
    min_value = Float("Min")
    max_value = Float("Max")
    uom_id = Many2one("uom.uom", "Uom")

    def _after_write(self) -> None:
        for q in self.exists():
            if q._get("type") == "quantitative" and q._get("min_value") > q._get("max_value"):
                raise ValidationError("Question '%s' is not valid: minimum value can't be higher than maximum "
                                      "value." % q._display_name())
            values = self.env["qc.test.question.value"].browse(q._get("ql_values"))
            if q._get("type") == "qualitative" and values and not any(v._get("ok") for v in values):
                raise ValidationError("Question '%s' is not valid: you have to mark at least one value as OK."
                                      % q._display_name())


class QcTestQuestionValue(BaseModel):
    _name = "qc.test.question.value"
    _description = "Possible values for qualitative questions."
    _access = acl([QC_USER, QC_MANAGER], [QC_MANAGER])
    test_line = Many2one("qc.test.question", "Test question")
    name = Char("Name", required=True)
    ok = Boolean("Correct answer?", help="When this field is marked, the answer is considered correct.")


# -- inspections: what was found -------------------------------------------------------------------

class QcInspection(MailThread, BaseModel):
    _name = "qc.inspection"
    _description = "Quality control inspection"
    _access = acl([QC_USER], [QC_USER])
    name = Char("Inspection number", required=True, default="/")
    date = Datetime("Date", required=True, default=now_string)
    object_id = Reference(OBJECTS, "Reference")
    product_id = Many2one("product.product", "Product", compute="_compute_product_id",
                          help="Product associated with the inspection")
    qty = Float("Quantity", default=1.0)
    test = Many2one("qc.test", "Test")
    inspection_lines = One2many("qc.inspection.line", "inspection_id", "Inspection lines")
    internal_notes = Text("Internal notes")
    external_notes = Text("External notes")
    state = Selection(STATES, "State", default="draft")
    success = Boolean("Success", compute="_compute_success",
                      help="This field will be marked if all tests have succeeded.")
    auto_generated = Boolean("Auto-generated",
                             help="If an inspection is auto-generated, it can be canceled but not removed.")
    user = Many2one("res.users", "Responsible", default=lambda env: env.uid)
    production_id = Many2one("mrp.production", "Production", compute="_compute_production_id")

    def _prepare_create(self, stored: dict[str, Any]) -> dict[str, Any]:
        if stored.get("name", "/") in ("/", False):  # ir.sequence qc.inspection: prefix QC-, padding 6
            stored["name"] = "QC-%06d" % self.env.db.next_sequence("qc.inspection")
        return stored

    def _compute_success(self) -> bool:
        lines = self.env["qc.inspection.line"].browse(self._get("inspection_lines"))
        return all(line._get("success") for line in lines)

    def _compute_product_id(self) -> int | bool:
        target = referenced(self)
        if target is None:
            return False
        if target._name == "product.product":
            return target.id
        if target._name in ("stock.move", "mrp.production"):
            return target._get("product_id") or False
        return False

    def _compute_production_id(self) -> int | bool:
        target = referenced(self)
        if target is not None and target._name == "mrp.production":
            return target.id
        if target is not None and target._name == "stock.move":
            return target._get("production_id") or False
        return False

    def unlink(self) -> bool:
        for inspection in self.exists():
            if inspection._get("auto_generated"):
                raise UserError("You cannot remove an auto-generated inspection.")
            if inspection._get("state") != "draft":
                raise UserError("You cannot remove an inspection that is not in draft state.")
        return super().unlink()

    def action_draft(self) -> None:
        self.write({"state": "draft"})

    def action_todo(self) -> None:
        for inspection in self:
            if not inspection._get("test"):
                raise UserError("You must first set the test to perform.")
        self.write({"state": "ready"})

    def action_confirm(self) -> None:
        for inspection in self:
            for line in self.env["qc.inspection.line"].browse(inspection._get("inspection_lines")):
                if line._get("question_type") == "qualitative" and not line._get("qualitative_value"):
                    raise UserError("You should provide an answer for all qualitative questions.")
                if line._get("question_type") != "qualitative" and not line._get("uom_id"):
                    raise UserError("You should provide a unit of measure for quantitative questions.")
            inspection.write({"state": "success" if inspection._get("success") else "waiting"})

    def action_approve(self) -> None:
        for inspection in self:
            inspection.write({"state": "success" if inspection._get("success") else "failed"})

    def action_cancel(self) -> None:
        self.write({"state": "canceled"})


class QcInspectionLine(BaseModel):
    _name = "qc.inspection.line"
    _description = "Quality control inspection line"
    _access = acl([QC_USER], [QC_USER])
    inspection_id = Many2one("qc.inspection", "Inspection", ondelete="cascade")
    name = Char("Question")
    product_id = Many2one("product.product", "Product", related="inspection_id.product_id")
    test_line = Many2one("qc.test.question", "Test question")
    possible_ql_values = Many2many("qc.test.question.value", "Answers")
    quantitative_value = Float("Quantitative value", help="Value of the result for a quantitative question.")
    qualitative_value = Many2one("qc.test.question.value", "Qualitative value",
                                 help="Value of the result for a qualitative question.")
    notes = Text("Notes")
    min_value = Float("Min", help="Minimum valid value for a quantitative question.")
    max_value = Float("Max", help="Maximum valid value for a quantitative question.")
    test_uom_id = Many2one("uom.uom", "Test UoM",
                           help="UoM for minimum and maximum values for a quantitative question.")
    test_uom_category = Many2one("uom.category", "Test Uom Category", related="test_uom_id.category_id")
    uom_id = Many2one("uom.uom", "UoM", help="UoM of the inspection value for a quantitative question.")
    question_type = Selection(QUESTION_TYPES, "Question type")
    valid_values = Char("Valid values", compute="_compute_valid_values")
    success = Boolean("Success?", compute="_compute_quality_test_check")
    production_id = Many2one("mrp.production", "Production order", related="inspection_id.production_id")

    def _compute_quality_test_check(self) -> bool:
        if self._get("question_type") == "qualitative":
            value = self._get("qualitative_value")
            return bool(value) and bool(self.env["qc.test.question.value"].sudo().browse(value)._get("ok"))
        # OCA converts between units with uom.uom._compute_quantity called on an empty recordset, which
        # answers the quantity unchanged: the value is compared as entered, whatever its unit.
        amount = self._get("quantitative_value")
        return self._get("max_value") >= amount >= self._get("min_value")

    def _compute_valid_values(self) -> str:
        if self._get("question_type") == "qualitative":
            values = self.env["qc.test.question.value"].sudo().browse(self._get("possible_ql_values"))
            return ", ".join(v._get("name") for v in values if v._get("ok"))
        return "{:,.2f} ~ {:,.2f}".format(self._get("min_value"), self._get("max_value"))  # formatLang


def models() -> list[type[BaseModel]]:
    """The model classes the modules add to the registry."""
    return [QcTestCategory, QcTest, QcTestQuestion, QcTestQuestionValue, QcInspection,
            QcInspectionLine]


def requested(names: Any) -> frozenset[str]:
    """The modules a sandbox was asked to install, closed over their auto-installed companions."""
    names = frozenset(names or ())
    unknown = names - set(MODULES)
    if unknown:
        raise ValueError(f"the Odoo sandbox cannot install {', '.join(sorted(unknown))}: "
                         f"it knows {', '.join(MODULES)}")
    return frozenset(MODULES) if names else frozenset()


def installed_in(db: Database) -> frozenset[str]:
    """The optional modules a (loaded) database shows as installed."""
    rows = db.tables.get("ir.module.module", {}).values()
    return frozenset(r["name"] for r in rows if r.get("name") in MODULES and r.get("state") == "installed")


def install(env: Environment) -> bool:
    """Install the modules in a database (idempotent): module rows, groups, data, units and the demo test."""
    env = env.sudo()
    modules = env["ir.module.module"]
    if installed_in(env.db) == frozenset(MODULES):
        return False
    data = env["ir.model.data"]

    def xmlid(module: str, name: str, record: BaseModel) -> BaseModel:
        data.create({"module": module, "name": name, "model": record._name, "res_id": record.id, "noupdate": True})
        return record

    for name, desc in zip(MODULES, ("Quality Control OCA", "Quality control - Stock (OCA)",
                                    "MRP extension for quality control (OCA)")):
        row = modules.search([("name", "=", name)])
        if row:
            row.write({"state": "installed"})
        else:
            modules.create({"name": name, "shortdesc": desc, "state": "installed"})
    admin = env["res.users"].search([("login", "=", "admin")])
    for group_xmlid, full_name in (("group_quality_control_user", QC_USER),
                                   ("group_quality_control_manager", QC_MANAGER)):
        group = xmlid("quality_control_oca", group_xmlid,
                      env["res.groups"].create({"name": full_name.split("/")[1], "full_name": full_name}))
        admin.write({"groups_id": [(4, group.id)]})  # the manager group lists base.user_admin
    seed_uoms(env)  # a database saved before the sandbox had units of measure
    uoms = {row["name"]: rid for rid, row in env["uom.uom"]._table.items()}
    generic = None
    for cat_xmlid, name in (("qc_test_template_category_generic", "Generic"),
                            ("qc_test_template_category_referenced", "Referenced")):
        category = xmlid("quality_control_oca", cat_xmlid, env["qc.test.category"].create({"name": name}))
        generic = generic or category
    _demo_test(env, generic.id if generic else False, uoms.get("mm") or False)
    return True


def _demo_test(env: Environment, category: int | bool, mm: int | bool) -> None:
    """The demo test for the sandbox's Demo Part (PART-01): two dimensions and the surface finish."""
    test = env["qc.test"].create({"name": "PART-01 final inspection", "type": "generic", "category": category})
    question = env["qc.test.question"]
    question.create({"test": test.id, "sequence": 10, "name": "bore diameter", "type": "quantitative",
                     "min_value": 11.95, "max_value": 12.05, "uom_id": mm})
    question.create({"test": test.id, "sequence": 20, "name": "length", "type": "quantitative",
                     "min_value": 99.9, "max_value": 100.1, "uom_id": mm})
    finish = question.create({"test": test.id, "sequence": 30, "name": "surface finish", "type": "qualitative"})
    env["qc.test.question.value"].create([{"test_line": finish.id, "name": "Smooth", "ok": True},
                                          {"test_line": finish.id, "name": "Scratched", "ok": False}])
