"""Enrichment: adds plant context to events: the machine's mapping, its scanned context, the shift.

It owns what goes into an event's `context` besides the machine: the static
master data from `[machines]` (work center code, equipment serial number,
default product), the machine's scanned context (operator, lot, work order;
see `gateway.context`) and the shift in force at the event's own source time.
It only adds what is known and never overwrites what a rule already set. It
does not look up anything in Odoo (the open work order is the sink's business).
"""
from __future__ import annotations

from datetime import datetime

from gateway.config import MachineConfig
from gateway.context import MachineContext, ShiftCalendar
from gateway.events import Event


def enrich(event: Event, machines: dict[str, MachineConfig], context: MachineContext | None = None,
           shifts: ShiftCalendar | None = None, environment: str | None = None) -> Event:
    """Fill work center, equipment and product from the mapping, then operator, lot,
    work order from `context`, the shift from `shifts` and the gateway's `environment`
    (dev, test, prod: signed with the rest of the context)."""
    if environment is not None:
        event.context.setdefault("environment", environment)
    machine = event.context.get("machine")
    mapping = machines.get(machine) if machine else None
    if mapping and mapping.work_center:
        event.context.setdefault("work_center", mapping.work_center)
    if mapping and mapping.equipment:
        event.context.setdefault("equipment", mapping.equipment)
    if mapping and mapping.product:
        event.context.setdefault("product", mapping.product)
    if context is not None:
        for key, value in context.as_context().items():
            event.context.setdefault(key, value)
    if shifts is not None:
        span = shifts.at(datetime.fromisoformat(event.ts.replace("Z", "+00:00")).timestamp())
        if span is not None:
            event.context.setdefault("shift", span.name)
    return event
