"""What a new configuration changes in the running gateway: the plan of a live apply.

It owns the comparison behind `Supervisor.apply`: given the configuration the
running topology was built from and a new, validated one, `plan` says which
devices and sinks restart, start, stop or stay untouched, whether the heartbeat
restarts, and which changes only a restart of the process can apply ([gateway]:
its id is part of every event id; [store]: the LMDB environment is open;
[webui]: the console's listening socket). A device restarts when its own
section, a rule that reads it, the mapping of its machine or the shift
calendar changed; an MQTT sink restarts with its link and the heartbeat it
carries, and a heartbeat change restarts the links it moves between (their last
will is set at connect). The plan's `config` is what the topology is rebuilt
from: the new configuration with [gateway], [store] and [webui] kept as they
run. It touches no task, driver or store: the supervisor carries the plan out.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from gateway.config import Config

#: sections that apply only when the gateway process restarts
RESTART_SECTIONS = ("gateway", "store", "webui")


@dataclass
class Changes:
    """Devices or sinks by what the apply does to them; `changed` says why each one restarts."""

    changed: dict[str, str] = field(default_factory=dict)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


@dataclass
class Plan:
    #: what the topology is rebuilt from: the new configuration with the restart sections as they run
    config: Config
    devices: Changes
    sinks: Changes
    #: the heartbeat stops, starts or restarts (with the links it rides on)
    heartbeat: bool
    #: the shift calendar changed: the shared shift tallies are rebuilt (every device restarts)
    shifts: bool
    restart_required: list[str]


def plan(running: Config, new: Config) -> Plan:
    """What applying `new` over the topology built from `running` restarts, starts and stops."""
    restart_required = [f"[{section}] {_differences(getattr(running, section), getattr(new, section))}: "
                        f"restart the gateway to apply it"
                        for section in RESTART_SECTIONS if getattr(running, section) != getattr(new, section)]
    config = dataclasses.replace(new, **{s: getattr(running, s) for s in RESTART_SECTIONS})

    devices = _names(running.devices, config.devices)
    shifts = running.shifts != config.shifts
    for name in list(devices.unchanged):
        why = "shifts" if shifts else _device_change(running, config, name)
        if why:
            devices.unchanged.remove(name)
            devices.changed[name] = why

    sinks = _names(running.sinks, config.sinks)
    for name in list(sinks.unchanged):
        if running.sinks[name] != config.sinks[name]:
            sinks.unchanged.remove(name)
            sinks.changed[name] = "config"
    carriers = {hb.sink for hb in (running.heartbeat, config.heartbeat) if hb is not None}
    if running.heartbeat != config.heartbeat:
        for name in sorted(carriers & set(sinks.unchanged)):  # its link's last will changes
            sinks.unchanged.remove(name)
            sinks.changed[name] = "heartbeat"
    heartbeat = running.heartbeat != config.heartbeat or bool(
        carriers & (set(sinks.changed) | set(sinks.added) | set(sinks.removed)))
    for changes in (devices, sinks):
        changes.changed = dict(sorted(changes.changed.items()))
        for names in (changes.added, changes.removed, changes.unchanged):
            names.sort()
    return Plan(config, devices, sinks, heartbeat, shifts, restart_required)


def _names(old: dict[str, Any], new: dict[str, Any]) -> Changes:
    return Changes(added=[n for n in new if n not in old], removed=[n for n in old if n not in new],
                   unchanged=[n for n in new if n in old])


def _device_change(old: Config, new: Config, name: str) -> str | None:
    """Why device `name`'s pipeline must be rebuilt, or None: its section, its rules, its machine's mapping."""
    a, b = old.devices[name], new.devices[name]
    if a != b:
        return "device"
    if ({n: r for n, r in old.rules.items() if r.device == name}
            != {n: r for n, r in new.rules.items() if r.device == name}):
        return "rules"
    machine = b.machine or name
    if old.machines.get(machine) != new.machines.get(machine):
        return "machine_mapping"
    return None


def _differences(a: Any, b: Any) -> str:
    """What changed in a section, for a person: "added", "removed" or the fields that differ and "changed"."""
    if a is None:
        return "added"
    if b is None:
        return "removed"
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        return ", ".join(f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)) \
            + " changed"
    return "changed"
