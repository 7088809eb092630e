"""Fuzz tests (hypothesis): every parser of untrusted input answers with its own error, never a crash.

`FUZZ` is the settings they share: derandomized, so CI sees the same examples
on every run (a new example set is one `--hypothesis-seed` away for a person
hunting locally), no deadline (the machine is shared), and a modest number of
examples so the whole folder runs in about a minute. `LINEBRIDGE_FUZZ_HUNT=1`
turns derandomization off: each run then tries new examples (for a person
hunting locally, with `--hypothesis-seed` to repeat one).
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[2]

FUZZ = settings(max_examples=150, deadline=None, derandomize=not os.environ.get("LINEBRIDGE_FUZZ_HUNT"),
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

EXTRA = """
[machines.PRESS-01]
work_center = "PRESS-01"
[machines.PRESS-02]
work_center = "PRESS-02"
[machines.PACK-01]
work_center = "PACK-01"

[rules.temp]
type = "threshold"
device = "press1"
tag = "oil_temp"
emit = "quality_result"
high = 60.0
low = 20.0

[rules.door]
type = "edge"
device = "cnc01"
tag = "running"
on = "nonzero"
emit = "both"
debounce = 1.0

[rules.hopper]
type = "weight"
device = "scale1"
tag = "weight"
material = "PELLET"
min_change = 0.5

[rules.badge]
type = "scan"
device = "scanner1"
tag = "code"
operator = "^B(?P<value>\\\\d+)$"

[rules.run]
type = "machine_state"
device = "cnc01"
tag = "running"

[rules.packed]
type = "record"
device = "mes_packing"
tag = "good"
kind = "production"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:1883"

[shifts]
timezone = "Europe/Berlin"
[[shifts.shift]]
name = "early"
start = "06:00"
end = "14:00"

[webui]
port = 8443
"""


def base_config() -> dict[str, Any]:
    """The demo configuration with every driver's sample device, a rule of each type and more sinks."""
    raw = tomllib.loads((ROOT / "gateway" / "demo.toml").read_text(encoding="utf-8"))
    for sample in sorted((ROOT / "drivers").glob("*/sample.toml")):
        for name, section in tomllib.loads(sample.read_text(encoding="utf-8")).get("devices", {}).items():
            raw["devices"].setdefault(name if name not in raw["devices"] else f"{name}_{sample.parent.name}",
                                      section)
    extra = tomllib.loads(EXTRA)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(value)
        else:
            raw[key] = value
    return raw
