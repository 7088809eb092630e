"""Manufacturing models: manufacturing orders and work orders.

Implements the Odoo rules a gateway meets (16.0-19.0, per series where they
differ, ``env.major``; work centers and time logs are ``workcenter``'s): a
work order's qty_producing is the MO's
(computed) and writing it writes the MO (inverse, only for a non-zero value, as
in Odoo); ``set_qty_producing`` returns None; ``button_start`` refuses a blocked
work center (17+), sets qty_producing to the remaining quantity when it is 0,
opens a time log and returns True (16, 17) or None (18+); ``button_finish``
skips finished orders and closes their open time logs (``_close``, with the
performance split past the expected duration); a manufacturing order's state
is computed from its work orders, qty_producing and components
(``_compute_state``); ``button_mark_done`` returns the backorder wizard,
creates backorders on request and returns an action whose context holds a None
unless ``skip_redirection``; with a consumption other than 'flexible' it first
returns the consumption warning while the picked components are not their
share of qty_producing (``skip_consumption`` passes).  Not modelled: BoMs,
routings, lots and serial numbers.
"""
from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..fields import Char, Datetime, Float, Integer, Many2one, One2many, Selection, now_string
from ..orm import BaseModel
from .groups import MRP_ADMIN, MRP_USER, acl
from .mail import MailThread
from .stock import consume, consumed, default_stock_location, done_quantity
from .workcenter import MRP_READ, MrpWorkcenter

STATES = [("draft", "Draft"), ("confirmed", "Confirmed"), ("progress", "In Progress"),
          ("to_close", "To Close"), ("done", "Done"), ("cancel", "Cancelled")]


class MrpProduction(MailThread, BaseModel):
    _name = "mrp.production"
    _description = "Production Order"
    _order = "priority desc, date_start asc, id"
    _access = acl(MRP_READ, [MRP_ADMIN, MRP_USER])
    name = Char("Reference", default="New", required=True)
    priority = Selection([("0", "Normal"), ("1", "Urgent")], "Priority", default="0")
    origin = Char("Source")
    product_id = Many2one("product.product", "Product", required=True)
    product_qty = Float("Quantity To Produce", required=True, default=1.0)
    qty_producing = Float("Quantity Producing")
    qty_produced = Float("Quantity Produced")
    state = Selection(STATES, "State", default="draft")
    date_start = Datetime("Start", default=now_string, required=True)
    date_finished = Datetime("End")
    user_id = Many2one("res.users", "Responsible", default=lambda env: env.uid)
    workorder_ids = One2many("mrp.workorder", "production_id", "Work Orders")
    move_raw_ids = One2many("stock.move", "raw_material_production_id", "Components", domain=[("scrapped", "=", False)])
    move_finished_ids = One2many("stock.move", "production_id", "Finished Products",
                                 domain=[("scrapped", "=", False)])
    scrap_ids = One2many("stock.scrap", "production_id", "Scraps")
    backorder_sequence = Integer("Backorder Sequence", default=0)
    location_src_id = Many2one("stock.location", "Components Location", default=default_stock_location)
    location_dest_id = Many2one("stock.location", "Finished Products Location", default=default_stock_location)
    consumption = Selection([("flexible", "Allowed"), ("warning", "Allowed with warning"), ("strict", "Blocked")],
                            "Consumption", default="flexible", required=True)

    def _prepare_create(self, stored: dict[str, Any]) -> dict[str, Any]:
        if not stored.get("name") or stored["name"] == "New":
            stored["name"] = "WH/MO/%05d" % self.env.db.next_sequence("mrp.production")
        return stored

    def _after_write(self) -> None:
        super()._after_write()
        self._compute_state()

    def _compute_state(self) -> None:
        """Odoo's stored ``_compute_state`` (16-19): 'progress' and 'to_close' follow the work orders, the
        quantity producing and the components; a state no rule matches stays as it was."""
        moves = self.env["stock.move"].sudo()
        for mo in self.sudo():
            state = mo._table[mo.id].get("state") or "draft"
            wo_states = [r.get("state") for r in self.env["mrp.workorder"].sudo()._table.values()
                         if r.get("production_id") == mo.id]
            raw = [r for r in moves._table.values() if r.get("raw_material_production_id") == mo.id
                   and not r.get("scrapped")]
            finished = [r for r in moves._table.values() if r.get("production_id") == mo.id and not r.get("scrapped")]
            qty, demand = mo._table[mo.id].get("qty_producing") or 0.0, mo._table[mo.id].get("product_qty") or 0.0
            if state == "cancel" or (finished and all(m.get("state") == "cancel" for m in finished)):
                new = "cancel"
            elif state == "done" or (raw and all(m.get("state") in ("cancel", "done") for m in raw)
                                     and all(m.get("state") in ("cancel", "done") for m in finished)):
                new = "done"
            elif wo_states and all(s in ("done", "cancel") for s in wo_states):
                new = "to_close"
            elif not wo_states and qty >= demand:
                new = "to_close"
            elif (any(s in ("progress", "done") for s in wo_states) or qty
                  or any((m.get("quantity_done") or 0) if "quantity_done" in moves._fields else m.get("picked")
                         for m in raw)):
                new = "progress"
            else:
                new = state
            if new != state:
                mo._put(mo.id, {"state": new})

    def set_qty_producing(self) -> None:
        self.ensure_one()
        self._set_qty_producing()

    def _set_qty_producing(self, pick_manual_consumption_moves: bool = True) -> None:
        """Odoo's _set_qty_producing: each component's quantity follows what is being produced
        ((qty_producing - qty_produced) x unit factor).  A manual-consumption component is left alone in
        16, keeps a quantity already picked in 17+, and is picked only when asked (18+: not from a work
        order's qty_producing); the others are picked (no BoM: the moves as given)."""
        major = self.env.major
        todo = self._get("qty_producing") - self._get("qty_produced")
        for move in self.env["stock.move"].sudo().browse(self._get("move_raw_ids")):
            manual = move._get("manual_consumption")
            if move._get("state") in ("done", "cancel") or not move._get("product_uom_qty"):
                continue
            if (major <= 16 and manual) or (major >= 17 and manual and move._get("picked")):
                continue
            qty = round(todo * move._get("unit_factor"), 2)
            if major <= 16:
                move.write({"quantity_done": qty})
                continue
            pick = not manual if major == 17 else bool((not manual or pick_manual_consumption_moves) and qty)
            move.write({"quantity": qty, **({"picked": True} if pick else {})})

    def button_mark_done(self) -> Any:
        ctx = self.env.context
        for mo in self:
            if not mo._get("qty_producing"):
                mo.write({"qty_producing": mo._get("product_qty") - mo._get("qty_produced")})
                mo._set_qty_producing()
            if mo._get("qty_producing") <= 0:
                raise UserError("The quantity to produce must be positive!")
        issues = self._consumption_issues()
        if issues:
            return self._consumption_wizard(issues)
        short = [mo for mo in self if mo._get("qty_producing") < mo._get("product_qty")]
        if short and not ctx.get("skip_backorder"):
            return self._backorder_wizard(short)
        backorders = []
        to_backorder = ctx.get("mo_ids_to_backorder") or []
        for mo in self:
            produced, demand = mo._get("qty_producing"), mo._get("product_qty")
            backordered = produced < demand and mo.id in to_backorder
            if backordered:
                backorders.append(mo._split_backorder(demand - produced))
            mo._finish(produced, backordered)
        if backorders and not ctx.get("skip_redirection") and len(self) == 1:
            return {"res_model": "mrp.production", "type": "ir.actions.act_window",
                    "context": {"skip_backorder": False, "mo_ids_to_backorder": None},
                    "views": [[False, "form"]], "view_mode": "form", "res_id": backorders[0]}
        return True

    def _consumption_issues(self) -> list[tuple[int, int, float, float]]:
        """Odoo's _get_consumption_issues: (order, product, consumed, expected) where the picked quantity of a
        component is not its share of qty_producing; the component moves stand in for the BoM lines."""
        if self.env.context.get("skip_consumption"):
            return []
        issues = []
        for mo in self:
            if mo._get("consumption") == "flexible":
                continue
            expected: dict[int, float] = {}
            done: dict[int, float] = {}
            share = mo._get("qty_producing") / (mo._get("product_qty") or 1.0)
            for move in self.env["stock.move"].sudo().browse(mo._get("move_raw_ids")):
                if move._get("state") == "cancel":
                    continue
                product = move._get("product_id")
                expected[product] = expected.get(product, 0.0) + move._get("product_uom_qty") * share
                done[product] = done.get(product, 0.0) + (done_quantity(move) if consumed(move) else 0.0)
            issues += [(mo.id, p, done[p], qty) for p, qty in expected.items() if round(qty - done[p], 2) != 0]
        return issues

    def _consumption_wizard(self, issues: list[tuple[int, int, float, float]]) -> dict[str, Any]:
        lines = [[0, 0, {"mrp_production_id": mo, "product_id": product,
                         "consumption": self.browse(mo)._get("consumption"), "product_uom_id": 1,
                         "product_consumed_qty_uom": consumed_qty, "product_expected_qty_uom": expected_qty}]
                 for mo, product, consumed_qty, expected_qty in issues]
        return {"id": 300, "name": "Consumption Warning", "type": "ir.actions.act_window",
                "xml_id": "mrp.action_mrp_consumption_warning", "help": False, "binding_model_id": False,
                "binding_type": "action", "binding_view_types": "list,form", "display_name": "Consumption Warning",
                "view_id": False, "domain": False,
                "context": {**self.env.context, "default_mrp_production_ids": self.ids,
                            "default_mrp_consumption_warning_line_ids": lines, "form_view_ref": False},
                "res_id": 0, "res_model": "mrp.consumption.warning", "target": "new", "view_mode": "form",
                "mobile_view_mode": "kanban", "views": [[False, "form"]], "limit": 80, "groups_id": [],
                "search_view_id": False, "filter": False}

    def _backorder_wizard(self, short: list["MrpProduction"]) -> dict[str, Any]:
        return {"id": 299, "name": "You produced less than initial demand", "type": "ir.actions.act_window",
                "xml_id": "mrp.action_mrp_production_backorder", "help": False, "binding_model_id": False,
                "binding_type": "action", "binding_view_types": "list,form",
                "display_name": "You produced less than initial demand", "view_id": False, "domain": False,
                "context": {"default_mrp_production_ids": self.ids,
                            "default_mrp_production_backorder_line_ids": [
                                [0, 0, {"mrp_production_id": mo.id, "to_backorder": True}] for mo in short]},
                "res_id": 0, "res_model": "mrp.production.backorder", "target": "new", "view_mode": "form",
                "mobile_view_mode": "kanban", "views": [[False, "form"]], "limit": 80, "groups_id": [],
                "search_view_id": False, "filter": False}

    def _split_backorder(self, remaining: float) -> int:
        base = self._get("name").rsplit("-", 1)[0] if self._get("backorder_sequence") else self._get("name")
        seq = max(self._get("backorder_sequence"), 1)
        self.write({"name": "%s-%03d" % (base, seq), "backorder_sequence": seq})
        siblings = [r.get("backorder_sequence", 0) for r in self._table.values()
                    if str(r.get("name", "")).startswith(base + "-")]
        nxt = max(siblings + [seq]) + 1
        bo = self.create({"name": "%s-%03d" % (base, nxt), "backorder_sequence": nxt, "state": "confirmed",
                          "product_id": self._get("product_id"), "product_qty": remaining,
                          "origin": self._get("origin")})
        for wo in self.env["mrp.workorder"].browse(self._get("workorder_ids")):
            wo._copy_to(bo.id)
        return bo.id

    def _finish(self, produced: float, backordered: bool) -> None:
        quants = self.env["stock.quant"].sudo()
        for move in self.env["stock.move"].sudo().browse(self._get("move_raw_ids")):
            if move._get("state") in ("done", "cancel"):
                continue
            if consumed(move):
                move.write({"state": "done"})
                quants._update(move._get("product_id"), move._get("location_id"), -done_quantity(move))
            else:
                qty_field = "quantity_done" if "quantity_done" in move._fields else "quantity"
                move.write({"state": "cancel", qty_field: 0.0})
        self.env["stock.quant"].sudo()._update(self._get("product_id"), None, produced)
        for wo in self.env["mrp.workorder"].browse(self._get("workorder_ids")):
            if wo._get("state") not in ("done", "cancel"):
                wo.write({"state": "done", "qty_produced": produced, "date_finished": now_string(self.env)})
        done = {"state": "done", "qty_produced": produced, "date_finished": now_string(self.env)}
        if backordered:  # the rest of the demand moved to the backorder
            done["product_qty"] = produced
        self.write(done)


WO_STATES = [("pending", "Waiting for another WO"), ("waiting", "Waiting for components"), ("ready", "Ready"),
             ("progress", "In Progress"), ("done", "Finished"), ("cancel", "Cancelled")]


class MrpWorkorder(BaseModel):
    _name = "mrp.workorder"
    _description = "Work Order"
    _order = "date_start, id"
    _access = acl(MRP_READ, [MRP_ADMIN, MRP_USER])
    name = Char("Work Order", required=True)
    production_id = Many2one("mrp.production", "Manufacturing Order", required=True, ondelete="cascade")
    workcenter_id = Many2one("mrp.workcenter", "Work Center", required=True)
    state = Selection(WO_STATES, "Status", default="pending")
    product_id = Many2one("product.product", "Product", related="production_id.product_id")
    production_state = Selection(STATES, "Production State", related="production_id.state")
    qty_production = Float("Original Production Quantity", related="production_id.product_qty")
    qty_producing = Float("Currently Produced Quantity", compute="_compute_qty_producing",
                          inverse="_set_qty_producing")
    qty_produced = Float("Quantity")
    qty_remaining = Float("Quantity To Be Produced", compute="_compute_qty_remaining")
    date_start = Datetime("Start")
    date_finished = Datetime("End")
    duration_expected = Float("Expected Duration")
    duration = Float("Real Duration", compute="_compute_duration")
    working_state = Selection(MrpWorkcenter.working_state.selection, "Workcenter Status",
                              compute="_compute_working_state")
    time_ids = One2many("mrp.workcenter.productivity", "workorder_id", "Time Logs")

    def _display_name(self) -> str:
        mo = self.env["mrp.production"].sudo().browse(self._get("production_id"))
        return f"{mo._get('name')} - {self._get('name')}" if mo.exists() else (self._get("name") or "")

    def _compute_qty_producing(self) -> float:
        mo = self.env["mrp.production"].sudo().browse(self._get("production_id"))
        return mo._get("qty_producing") if mo.exists() else 0.0

    def _set_qty_producing(self, value: float) -> None:
        # Odoo 17 mrp.workorder._set_qty_producing: only a non-zero, changed value reaches the MO.
        mo = self.env["mrp.production"].browse(self._get("production_id"))
        if value != 0 and mo._get("qty_producing") != value:
            mo.write({"qty_producing": value})
            mo._set_qty_producing(self.env.major < 18)  # 18+: _set_qty_producing(False)

    def _compute_qty_remaining(self) -> float:
        return max(self._get("qty_production") - self._get("qty_produced"), 0.0)

    def _compute_working_state(self) -> str:
        wc = self.env["mrp.workcenter"].sudo().browse(self._get("workcenter_id"))
        return wc._get("working_state") if wc.exists() else "normal"

    def _compute_duration(self) -> float:
        return round(sum(log._get("duration") for log in
                         self.env["mrp.workcenter.productivity"].sudo().browse(self._get("time_ids"))), 2)

    def _after_write(self) -> None:
        super()._after_write()
        mos = {self._table[rid].get("production_id") for rid in self._ids if rid in self._table} - {None, False}
        self.env["mrp.production"].sudo().browse(sorted(mos)).exists()._compute_state()

    def button_start(self, raise_on_invalid_state: bool = False) -> bool | None:
        """Odoo's button_start, per series: 16 one order at a time and no blocked check, 18+ refuses a done order
        and returns None."""
        major = self.env.major
        if major <= 16:
            self.ensure_one()
        elif any(wo._get("working_state") == "blocked" for wo in self):
            raise UserError("Please unblock the work center to start the work order.")
        logs = self.env["mrp.workcenter.productivity"]
        for wo in self:
            mine = [t for t in logs.browse(wo._get("time_ids")) if t._get("user_id") == self.env.uid]
            if any(not t._get("date_end") for t in mine):  # this user's timer already runs
                continue
            if wo._get("state") in ("done", "cancel"):
                if major >= 18 and not raise_on_invalid_state:
                    raise UserError("You cannot start a work order that is already done or cancelled")
                continue
            if wo._get("qty_producing") == 0:
                wo.write({"qty_producing": wo._get("qty_remaining")})
            logs.create(wo._timeline_vals())
            mo = self.env["mrp.production"].browse(wo._get("production_id"))
            if mo._get("state") != "progress":
                mo.write({"date_start": now_string(self.env)})
            if wo._get("state") == "progress":
                continue
            wo.write({"state": "progress", "date_start": now_string(self.env)})
        return None if major >= 18 else True

    def _timeline_vals(self) -> dict[str, Any]:
        """Odoo's _prepare_timeline_vals for a timer started now."""
        loss_type = "productive" if (not self._get("duration_expected")
                                     or self._get("duration") <= self._get("duration_expected")) else "performance"
        loss = self.env["mrp.workcenter.productivity.loss"].sudo().search([("loss_type", "=", loss_type)], limit=1)
        if not loss:
            label = "Productivity" if loss_type == "productive" else "Performance"
            raise UserError(f"You need to define at least one productivity loss in the category '{label}'. Create one "
                            "from the Manufacturing app, menu: Configuration / Productivity Losses.")
        user = self.env["res.users"].sudo().browse(self.env.uid)
        return {"workorder_id": self.id, "workcenter_id": self._get("workcenter_id"),
                "description": f"Time Tracking: {user._get('name') if user.exists() else ''}",
                "loss_id": loss.id, "date_start": now_string(self.env), "date_end": False, "user_id": self.env.uid}

    def button_finish(self) -> bool:
        """Odoo's button_finish: finished and cancelled orders are skipped; every open timer is closed."""
        logs = self.env["mrp.workcenter.productivity"]
        for wo in self:
            if wo._get("state") in ("done", "cancel"):
                continue
            if self.env.major >= 18:
                wo._pick_components()
            logs.search([("workorder_id", "=", wo.id), ("date_end", "=", False)])._close()
            now = now_string(self.env)
            vals = {"qty_produced": wo._get("qty_produced") or wo._get("qty_producing") or wo._get("qty_production"),
                    "state": "done", "date_finished": now}
            if not wo._get("date_start") or now < wo._get("date_start"):
                vals["date_start"] = now
            wo.write(vals)
        return True

    def _pick_components(self) -> None:
        """Odoo 18+ button_finish: the order's unpicked components this work order consumes (its own, and those
        of no operation on the last work order, ``_link_workorders_and_moves``) are picked for what is being
        produced, or the whole demand when nothing is."""
        mo = self.env["mrp.production"].sudo().browse(self._get("production_id"))
        siblings = self.env["mrp.workorder"].sudo().search([("production_id", "=", mo.id)], order="id desc")
        last = siblings.ids[:1] == [self.id]
        qty = mo._get("qty_producing") or mo._get("product_qty")
        for move in self.env["stock.move"].sudo().browse(mo._get("move_raw_ids")):
            if move._get("state") in ("done", "cancel") or consumed(move):
                continue
            if move._get("workorder_id") == self.id or (not move._get("workorder_id") and last):
                consume(move, round(qty * move._get("unit_factor"), 2))

    def _copy_to(self, production_id: int) -> int:
        return self.create({"name": self._get("name"), "production_id": production_id,
                            "workcenter_id": self._get("workcenter_id"), "state": "ready"}).id
