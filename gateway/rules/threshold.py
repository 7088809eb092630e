"""The threshold rule: an analogue tag against limits.

It owns two readings of a measured value:

- `emit = "maintenance_due"` (hysteresis): reaching `high` (alias `above`)
  emits one `maintenance_due` (data: value, limit, tag, and `code` when set);
  the rule re-arms only once the value has fallen below `low` (alias
  `clear_below`), so a value hovering at the limit does not flap.
- `emit = "quality_result"`: each good sample (or, with `on_change`, each new
  value) is checked against `low`/`high` and becomes a `quality_result`
  (passed, characteristic, value, unit, low, high).

A bad-quality sample changes nothing; a good one that is not a finite
number (text, NaN, infinity, true/false) is refused as `implausible` and
changes nothing either. Pure over
(state, sample); ids derive from the source and the sample's source time in ms.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from drivers.base import Quality, Sample
from gateway.rules.base import TagRule
from gateway.events import Event
from gateway.rules.config import ThresholdRuleConfig
from gateway.rules.plausible import Refused, measurement


@dataclass(frozen=True)
class ThresholdState:
    """Whether a crossing of `high` would fire, and the last value checked."""

    armed: bool = True
    last: float | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "ThresholdState | None":
        return cls(**json.loads(raw)) if raw else None


def reading(rule: TagRule, sample: Sample) -> float | Event | None:
    """A good sample's finite number; None for a bad sample; the `implausible` event of a refused one."""
    if sample.quality is not Quality.GOOD:
        return None
    try:
        return measurement(sample.value)
    except Refused as exc:
        return rule.refuse(sample, str(exc))


def within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def quality_data(passed: bool, characteristic: str, value: float, unit: str, low: float | None,
                 high: float | None) -> dict[str, Any]:
    return {"passed": passed, "characteristic": characteristic, "value": value, "unit": unit,
            "low": low, "high": high}


class ThresholdRule(TagRule):
    """One configured threshold rule; `apply` is pure over (state, sample)."""

    state_type = ThresholdState

    cfg: ThresholdRuleConfig

    def apply(self, state: ThresholdState | None,
              sample: Sample) -> tuple[list[Event], ThresholdState | None]:
        value = reading(self, sample)
        if value is None:
            return [], state
        if isinstance(value, Event):
            return [value], state
        state = state or ThresholdState()
        ts, cfg = sample.source_ts, self.cfg
        if cfg.emit == "quality_result":
            if cfg.on_change and state.last == value:
                return [], state
            data = quality_data(within(value, cfg.low, cfg.high), cfg.characteristic or cfg.tag, value,
                                cfg.unit, cfg.low, cfg.high)
            return [self._event("quality_result", f"q:{int(ts * 1000)}", ts, data)], ThresholdState(True, value)
        assert cfg.high is not None and cfg.low is not None
        if state.armed and value >= cfg.high:
            data: dict[str, Any] = {"value": value, "limit": cfg.high, "tag": cfg.tag}
            if cfg.code is not None:
                data["code"] = cfg.code
            return [self._event("maintenance_due", f"due:{int(ts * 1000)}", ts, data)], ThresholdState(False)
        if not state.armed and value < cfg.low:
            return [], ThresholdState(True)
        return [], state
