"""Enrichment: adds plant context (machine -> work center) to events from the mappings.

It owns only the static master-data mapping from the configuration (work
center code, equipment serial number); dynamic
context (active work order, lot, shift, operator) arrives with later issues.
"""
from __future__ import annotations

from gateway.config import MachineConfig
from gateway.events import Event


def enrich(event: Event, machines: dict[str, MachineConfig]) -> Event:
    """Fill `context.work_center` and `context.equipment` from the machine's mapping."""
    machine = event.context.get("machine")
    mapping = machines.get(machine) if machine else None
    if mapping and mapping.work_center:
        event.context.setdefault("work_center", mapping.work_center)
    if mapping and mapping.equipment:
        event.context.setdefault("equipment", mapping.equipment)
    return event
