"""Rule configuration: the typed models of the edge, threshold, weight, scan, machine state and record rules.

It owns how `[rules.<name>]` sections of those six types are read and checked,
every problem reported with its key path through the shared `ConfigCollector`,
and the timing options (`debounce`, `min_duration`, `repeat_suppress`) that the
edge and alarm rules share. The counter and alarm models stay in
`gateway.config`; this module imports nothing from `gateway` so that
`gateway.config` can import it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from drivers.base import ConfigCollector

DAY = 86400.0
TIMING_KEYS = {"debounce", "min_duration", "repeat_suppress"}
CONTEXT_KEYS = ("operator", "lot", "work_order")
_COMMON = {"type", "device", "tag"}


@dataclass(frozen=True)
class EdgeRuleConfig:
    """A bool or int tag whose edges become downtime and/or alarm events."""

    name: str
    device: str
    tag: str
    on: str | int | float | bool = "nonzero"   # "true" | "nonzero" | the value that means "on"
    downtime: bool = True
    alarm: bool = False
    code: int | None = None                    # None: the value's own code where it has one
    debounce: float = 0.0
    min_duration: float = 0.0
    repeat_suppress: float = 0.0


@dataclass(frozen=True)
class ThresholdRuleConfig:
    """An analogue tag against limits: maintenance_due with hysteresis, or quality_result."""

    name: str
    device: str
    tag: str
    emit: str = "maintenance_due"    # maintenance_due | quality_result
    high: float | None = None
    low: float | None = None
    code: int | None = None          # maintenance_due: names the request in Odoo
    characteristic: str = ""         # quality_result: "" = the tag's name
    unit: str = ""
    on_change: bool = False          # quality_result: only when the value changed


@dataclass(frozen=True)
class WeightRuleConfig:
    """A scale's stable weight: material consumption (hopper) or fill checks."""

    name: str
    device: str
    tag: str
    mode: str = "consumption"        # consumption | fill
    material: str | None = None
    unit: str = "kg"
    min_change: float = 0.0
    min_weight: float = 0.0
    low: float | None = None
    high: float | None = None
    characteristic: str = "weight"


@dataclass(frozen=True)
class RecordRuleConfig:
    """A tag whose every good sample is one record (a vendor table's row): a quantity or a stop."""

    name: str
    device: str
    tag: str
    kind: str = "production"         # production | scrap | consumption | downtime
    material: str | None = None      # consumption: the material (product reference)
    unit: str = ""                   # consumption: its unit
    code: int | None = None          # downtime: the alarm code naming the loss reason
    max_quantity: float = 1e6        # a record above it is quarantined, not counted
    max_duration: float = 7 * DAY    # downtime: seconds


@dataclass(frozen=True)
class ScanRuleConfig:
    """A scanner's code tag: each pattern (regular expression) names a context key."""

    name: str
    device: str
    tag: str
    patterns: tuple[tuple[str, str], ...] = ()   # (context key, regular expression), first match wins


@dataclass(frozen=True)
class MachineStateRuleConfig:
    """A machine's state bit: its rise starts (`emit = "start"`, a running bit) or finishes
    (`emit = "finish"`, an order-complete bit) the work center's open work order."""

    name: str
    device: str
    tag: str
    on: str | int | float | bool = "nonzero"   # as for the edge rule: the value(s) that mean "running"
    debounce: float = 0.0                      # seconds "running" must hold before it counts
    code: int | None = None                    # not configurable: the edge machinery's level is 0 or 1
    emit: str = "start"                        # start: workorder_start | finish: workorder_finish


RuleConfig = (EdgeRuleConfig | ThresholdRuleConfig | WeightRuleConfig | ScanRuleConfig | MachineStateRuleConfig
              | RecordRuleConfig)

KEYS: dict[str, set[str]] = {
    "edge": _COMMON | TIMING_KEYS | {"on", "emit", "code"},
    "threshold": _COMMON | {"emit", "high", "low", "above", "clear_below", "code", "characteristic",
                            "unit", "on_change"},
    "weight": _COMMON | {"mode", "material", "unit", "min_change", "min_weight", "low", "high",
                         "characteristic"},
    "scan": _COMMON | set(CONTEXT_KEYS),
    "machine_state": _COMMON | {"on", "debounce", "emit"},
    "record": _COMMON | {"kind", "material", "unit", "code", "max_quantity", "max_duration"},
}
#: what one record's cell can be (`record` rule): a quantity, or a stop's duration in seconds
RECORD_KINDS = ("production", "scrap", "consumption", "downtime")


def timing(c: ConfigCollector, section: dict[str, Any], path: str) -> dict[str, float]:
    """`debounce`, `min_duration`, `repeat_suppress`: seconds, 0 (the default) = off."""
    return {key: c.get(section, path, key, float, default=0.0, minimum=0.0, maximum=DAY) or 0.0
            for key in sorted(TIMING_KEYS)}


def _code(c: ConfigCollector, section: dict[str, Any], path: str) -> int | None:
    return c.get(section, path, "code", int, minimum=1, maximum=65535)


def _limit(c: ConfigCollector, section: dict[str, Any], path: str, key: str, alias: str | None) -> float | None:
    if alias and key in section and alias in section:
        c.add(f"{path}.{alias}", f"set {key} or {alias}, not both")
        return None
    name = alias if alias and alias in section else key
    return c.get(section, path, name, float)


def parse(c: ConfigCollector, rtype: str, name: str, section: dict[str, Any], path: str,
          device: str, tag: str) -> RuleConfig | None:
    """The model of one rule of a type in KEYS (unknown keys are checked by the caller)."""
    if rtype == "edge":
        return _edge(c, name, section, path, device, tag)
    if rtype == "threshold":
        return _threshold(c, name, section, path, device, tag)
    if rtype == "weight":
        return _weight(c, name, section, path, device, tag)
    if rtype == "scan":
        return _scan(c, name, section, path, device, tag)
    if rtype == "record":
        kind = c.get(section, path, "kind", str, default="production", choices=RECORD_KINDS)
        material = c.get(section, path, "material", str, required=kind == "consumption")
        for key, fits in (("material", kind == "consumption"), ("unit", kind == "consumption"),
                          ("code", kind == "downtime"), ("max_duration", kind == "downtime"),
                          ("max_quantity", kind != "downtime")):
            if key in section and not fits:
                c.add(f"{path}.{key}", f"is not for kind = {kind!r}")
        return RecordRuleConfig(name, device, tag, kind or "production", material,
                                c.get(section, path, "unit", str, default="") or "", _code(c, section, path),
                                c.get(section, path, "max_quantity", float, default=1e6, minimum=0.0) or 1e6,
                                c.get(section, path, "max_duration", float, default=7 * DAY, minimum=0.0)
                                or 7 * DAY)
    if rtype == "machine_state":
        on = c.get(section, path, "on", (str, int, float, bool), default="nonzero")
        return MachineStateRuleConfig(name, device, tag, "true" if on is True else (on if on is not None
                                                                                     else "nonzero"),
                                      c.get(section, path, "debounce", float, default=0.0, minimum=0.0,
                                            maximum=DAY) or 0.0,
                                      emit=c.get(section, path, "emit", str, default="start",
                                                 choices=("start", "finish")))
    return None


def _edge(c: ConfigCollector, name: str, section: dict[str, Any], path: str, device: str,
          tag: str) -> EdgeRuleConfig:
    on = c.get(section, path, "on", (str, int, float, bool), default="nonzero")
    if on is True:
        on = "true"
    emit = c.get(section, path, "emit", str, default="downtime", choices=("downtime", "alarm", "both"))
    code = _code(c, section, path)
    alarm = emit in ("alarm", "both")
    derivable = on == "nonzero" or (isinstance(on, int) and not isinstance(on, bool) and 0 < on <= 65535)
    if alarm and code is None and not derivable and "code" not in section:
        c.add(f"{path}.code", f"is required when emit = {emit!r} and on = {on!r} "
                              "(the alarm's code names it in Odoo)")
    return EdgeRuleConfig(name, device, tag, on if on is not None else "nonzero",
                          downtime=emit in ("downtime", "both"), alarm=alarm, code=code,
                          **timing(c, section, path))


def _threshold(c: ConfigCollector, name: str, section: dict[str, Any], path: str, device: str,
               tag: str) -> ThresholdRuleConfig:
    emit = c.get(section, path, "emit", str, default="maintenance_due",
                 choices=("maintenance_due", "quality_result"))
    high = _limit(c, section, path, "high", "above")
    low = _limit(c, section, path, "low", "clear_below")
    if emit == "maintenance_due":
        for key, alias, value in (("high", "above", high), ("low", "clear_below", low)):
            if value is None and key not in section and alias not in section:
                c.add(f"{path}.{key}", f"is required for maintenance_due (or {alias})")
        if high is not None and low is not None and not low < high:
            c.add(f"{path}.{'clear_below' if 'clear_below' in section else 'low'}",
                  f"must be below high ({high:g}) for the hysteresis, got {low:g}")
    else:
        if high is None and low is None and not {"high", "low", "above", "clear_below"} & set(section):
            c.add(f"{path}.high", "a quality_result needs at least one limit (low, high)")
        if high is not None and low is not None and low > high:
            c.add(f"{path}.low", f"must not be above high ({high:g}), got {low:g}")
    return ThresholdRuleConfig(
        name, device, tag, emit or "maintenance_due", high, low, _code(c, section, path),
        c.get(section, path, "characteristic", str, default="") or "",
        c.get(section, path, "unit", str, default="") or "",
        bool(c.get(section, path, "on_change", bool, default=False)))


def _weight(c: ConfigCollector, name: str, section: dict[str, Any], path: str, device: str,
            tag: str) -> WeightRuleConfig:
    mode = c.get(section, path, "mode", str, default="consumption", choices=("consumption", "fill"))
    material = c.get(section, path, "material", str, required=mode == "consumption")
    low, high = c.get(section, path, "low", float), c.get(section, path, "high", float)
    if mode == "fill" and "low" not in section and "high" not in section:
        c.add(f"{path}.high", "a fill check needs at least one limit (low, high)")
    if low is not None and high is not None and low > high:
        c.add(f"{path}.low", f"must not be above high ({high:g}), got {low:g}")
    return WeightRuleConfig(
        name, device, tag, mode or "consumption", material,
        c.get(section, path, "unit", str, default="kg") or "kg",
        c.get(section, path, "min_change", float, default=0.0, minimum=0.0) or 0.0,
        c.get(section, path, "min_weight", float, default=0.0, minimum=0.0) or 0.0,
        low, high, c.get(section, path, "characteristic", str, default="weight") or "weight")


def _scan(c: ConfigCollector, name: str, section: dict[str, Any], path: str, device: str,
          tag: str) -> ScanRuleConfig:
    patterns: list[tuple[str, str]] = []
    for key in [k for k in section if k in CONTEXT_KEYS]:
        pattern = c.get(section, path, key, str)
        if pattern is None:
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            c.add(f"{path}.{key}", f"not a valid regular expression: {exc}")
            continue
        if not pattern:
            c.add(f"{path}.{key}", "must not be empty (it would match every code)")
            continue
        patterns.append((key, pattern))
    if not any(k in section for k in CONTEXT_KEYS):
        c.add(path, f"a scan rule needs a pattern for at least one of {', '.join(CONTEXT_KEYS)}")
    return ScanRuleConfig(name, device, tag, tuple(patterns))
