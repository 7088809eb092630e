"""Maintenance models: equipment, stages and maintenance requests (Odoo 17 maintenance + mrp_maintenance).

A request's stage decides whether it is done (Repaired and Scrap are); moving it
to a done stage sets ``close_date``.  Equipment and requests have a chatter.
"""
from __future__ import annotations

from typing import Any

from ..fields import Boolean, Char, Date, Datetime, Float, Html, Integer, Many2one, One2many, Selection, today_string
from ..orm import BaseModel
from .groups import INTERNAL, MAINTENANCE_ADMIN, acl
from .mail import MailThread


class MaintenanceEquipment(MailThread, BaseModel):
    _name = "maintenance.equipment"
    _description = "Maintenance Equipment"
    _order = "name, id"
    _access = acl([INTERNAL], [MAINTENANCE_ADMIN])
    name = Char("Equipment Name", required=True)
    serial_no = Char("Serial Number")
    active = Boolean("Active", default=True)
    note = Html("Note")
    workcenter_id = Many2one("mrp.workcenter", "Work Center")
    maintenance_ids = One2many("maintenance.request", "equipment_id", "Maintenance Requests")

    def _display_name(self) -> str:
        name, serial = self._get("name"), self._get("serial_no")
        return f"{name}/{serial}" if name and serial else (name or "")


class MaintenanceStage(BaseModel):
    _name = "maintenance.stage"
    _description = "Maintenance Stage"
    _order = "sequence, id"
    _access = acl([INTERNAL], [MAINTENANCE_ADMIN])
    name = Char("Name", required=True)
    sequence = Integer("Sequence", default=20)
    fold = Boolean("Folded in Maintenance Pipe")
    done = Boolean("Request Done")


def _first_stage(env: Any) -> int | bool:
    stages = env["maintenance.stage"].sudo().search([], limit=1)
    return stages.id if stages else False


class MaintenanceRequest(MailThread, BaseModel):
    _name = "maintenance.request"
    _description = "Maintenance Request"
    _order = "id desc"
    _access = acl([INTERNAL], [INTERNAL], unlink=[MAINTENANCE_ADMIN])
    name = Char("Subjects", required=True)
    description = Html("Description")
    request_date = Date("Request Date", default=today_string)
    owner_user_id = Many2one("res.users", "Created by User", default=lambda env: env.uid)
    user_id = Many2one("res.users", "Technician")
    equipment_id = Many2one("maintenance.equipment", "Equipment", ondelete="restrict")
    stage_id = Many2one("maintenance.stage", "Stage", default=_first_stage)
    done = Boolean("Done", related="stage_id.done")
    priority = Selection([("0", "Very Low"), ("1", "Low"), ("2", "Normal"), ("3", "High")], "Priority")
    close_date = Date("Close Date")
    schedule_date = Datetime("Scheduled Date")
    maintenance_type = Selection([("corrective", "Corrective"), ("preventive", "Preventive")],
                                 "Maintenance Type", default="corrective")
    duration = Float("Duration")
    email_cc = Char("Email cc")
    archive = Boolean("Archive", default=False)
    workcenter_id = Many2one("mrp.workcenter", "Work Center")
    production_id = Many2one("mrp.production", "Manufacturing Order")

    def write(self, vals: Any) -> bool:
        res = super().write(vals)
        if "stage_id" in vals:
            done = [r for r in self if r._get("done")]
            if done:
                self.browse([r.id for r in done]).write({"close_date": today_string(self.env)})
        return res
