"""Work centers, their loss reasons and time logs (mrp.workcenter, .productivity.loss, .productivity).

A work center is 'blocked' while its latest open time log has a non-productive
loss; ``unblock`` closes every open log and refuses with "It has already been
unblocked."; one open log per work order and user; ``_close`` ends a timer the
way Odoo 16-19 do, turning time past the work order's expected duration into
'performance' loss; durations of non-productive logs count only the work
center calendar's working time.  Work orders and manufacturing orders are
``mrp``'s.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from ..calendar import work_hours
from ..errors import UserError, ValidationError
from ..fields import (Boolean, Char, Datetime, Float, Integer, Many2one, One2many, Selection, Text,
                      datetime_to_string, now_string, to_datetime)
from ..orm import BaseModel
from .groups import INTERNAL, MRP_ADMIN, MRP_USER, STOCK_USER, acl

MRP_READ = [STOCK_USER, MRP_ADMIN, MRP_USER]
PRODUCTIVE = ("productive", "performance")


class MrpWorkcenter(BaseModel):
    _name = "mrp.workcenter"
    _description = "Work Center"
    _order = "sequence, id"
    _access = acl(MRP_READ, [MRP_ADMIN])
    name = Char("Work Center", required=True)
    code = Char("Code")
    active = Boolean("Active", default=True)
    sequence = Integer("Sequence", default=1)
    working_state = Selection([("normal", "Normal"), ("blocked", "Blocked"), ("done", "In Progress")],
                              "Workcenter Status", compute="_compute_working_state")
    time_ids = One2many("mrp.workcenter.productivity", "workcenter_id", "Time Logs")
    order_ids = One2many("mrp.workorder", "workcenter_id", "Orders")
    resource_calendar_id = Many2one("resource.calendar", "Working Hours", default=1)

    def _compute_working_state(self) -> str:
        logs = self.env["mrp.workcenter.productivity"].sudo().search(
            [("workcenter_id", "=", self.id), ("date_end", "=", False)], limit=1)
        if not logs:
            return "normal"
        return "done" if logs._get("loss_type") in PRODUCTIVE else "blocked"

    def unblock(self) -> dict[str, str]:
        self.ensure_one()
        if self._get("working_state") != "blocked":
            raise UserError("It has already been unblocked.")
        logs = self.env["mrp.workcenter.productivity"].search(
            [("workcenter_id", "=", self.id), ("date_end", "=", False)])
        logs.write({"date_end": now_string(self.env)})
        return {"type": "ir.actions.client", "tag": "reload"}


class MrpWorkcenterProductivityLoss(BaseModel):
    _name = "mrp.workcenter.productivity.loss"
    _description = "Workcenter Productivity Losses"
    _order = "sequence, id"
    _access = acl(MRP_READ + [INTERNAL], [MRP_ADMIN])
    name = Char("Blocking Reason", required=True)
    sequence = Integer("Sequence", default=1)
    manual = Boolean("Is a Blocking Reason", default=True)
    loss_type = Selection([("availability", "Availability"), ("performance", "Performance"),
                           ("quality", "Quality"), ("productive", "Productive")],
                          "Effectiveness Category", default="availability", required=True)


class MrpWorkcenterProductivity(BaseModel):
    _name = "mrp.workcenter.productivity"
    _description = "Workcenter Productivity Log"
    _order = "id desc"
    _rec_name = "loss_id"
    _access = acl(MRP_READ, [MRP_USER, MRP_ADMIN])
    workcenter_id = Many2one("mrp.workcenter", "Work Center", required=True, ondelete="cascade")
    workorder_id = Many2one("mrp.workorder", "Work Order")
    user_id = Many2one("res.users", "User", default=lambda env: env.uid)
    loss_id = Many2one("mrp.workcenter.productivity.loss", "Loss Reason", required=True, ondelete="restrict")
    loss_type = Selection(MrpWorkcenterProductivityLoss.loss_type.selection, "Effectiveness",
                          related="loss_id.loss_type")
    description = Text("Description")
    date_start = Datetime("Start Date", required=True, default=now_string)
    date_end = Datetime("End Date")
    duration = Float("Duration", compute="_compute_duration")

    def _display_name(self) -> str:
        loss = self._get("loss_id")
        return self.env["mrp.workcenter.productivity.loss"].browse(loss)._display_name() if loss else ""

    def _after_write(self) -> None:
        """Odoo 17's `_check_open_time_ids`: one open time log per work order and user."""
        for wo in {self._table[rid].get("workorder_id") for rid in self._ids} - {None, False}:
            open_by_user: dict[Any, int] = {}
            for row in self._table.values():
                if row.get("workorder_id") == wo and not row.get("date_end"):
                    open_by_user[row.get("user_id")] = open_by_user.get(row.get("user_id"), 0) + 1
            if any(n > 1 for n in open_by_user.values()):
                name = self.env["mrp.workorder"].sudo().browse(wo)._display_name()
                raise ValidationError(f"The Workorder ({name}) cannot be started twice!")

    def _close(self) -> None:
        """Odoo's ``_close``: end each timer now; time past the work order's expected duration is 'performance'."""
        slow = []
        for timer in self:
            timer.write({"date_end": now_string(self.env)})
            wo = self.env["mrp.workorder"].sudo().browse(timer._get("workorder_id") or ())
            if not wo.exists():
                continue
            over = wo._get("duration") - wo._get("duration_expected")
            if over > 0:
                productive_end = to_datetime(timer._get("date_end")) - timedelta(minutes=over)
                if productive_end <= to_datetime(timer._get("date_start")):
                    slow.append(timer.id)
                else:
                    row = {k: timer._get(k) for k in ("workcenter_id", "workorder_id", "user_id", "loss_id",
                                                      "description", "date_end")}
                    slow.append(self.create({**row, "date_start": datetime_to_string(productive_end)}).id)
                    timer.write({"date_end": datetime_to_string(productive_end)})
        if slow:
            loss = self.env["mrp.workcenter.productivity.loss"].sudo().search([("loss_type", "=", "performance")],
                                                                              limit=1)
            if not loss:
                raise UserError("You need to define at least one unactive productivity loss in the category "
                                "'Performance'. Create one from the Manufacturing app, menu: Configuration / "
                                "Productivity Losses.")
            self.browse(slow).write({"loss_id": loss.id})

    def _compute_duration(self) -> float:
        """Minutes; non-productive losses count only the work center calendar's working time, as Odoo 17."""
        start, end = to_datetime(self._get("date_start")), to_datetime(self._get("date_end"))
        if not (start and end):
            return 0.0
        wc = self.env["mrp.workcenter"].sudo().browse(self._get("workcenter_id"))
        calendar = wc._get("resource_calendar_id") if wc.exists() else False
        if self._get("loss_type") not in PRODUCTIVE and calendar:
            tz = self.env["resource.calendar"].sudo().browse(calendar)._get("tz")
            return round(work_hours(start, end, tz) * 60, 2)
        return round((end - start).total_seconds() / 60.0, 2)
