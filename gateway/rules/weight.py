"""The weight rule: a scale's stable weight becomes consumption or fill checks.

It owns what a good (that is, stable: the serial driver marks a dynamic
weighing `stale`) weight means:

- `mode = "consumption"` (a hopper or a bin on a scale): a drop of more than
  `min_change` below the last booked weight is material used, a `consumption`
  (material, quantity, unit); a rise of more than `min_change` is a refill and
  only moves the baseline; smaller changes are noise and accumulate until they
  pass `min_change`, so nothing is lost to rounding.
- `mode = "fill"` (a pack checked on a scale): the first stable weight above
  `min_weight` after the pan was empty (at or below `min_weight`) is one
  `quality_result` against `low`/`high`; it re-arms when the pan is emptied.

Bad and stale samples change nothing; a good one that is not a finite number
is refused as `implausible` and changes nothing either. Pure over (state, sample);
ids derive from the source and the sample's source time in ms.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from drivers.base import Sample
from gateway.rules.base import TagRule
from gateway.events import Event
from gateway.rules.config import WeightRuleConfig
from gateway.rules.threshold import quality_data, reading, within


@dataclass(frozen=True)
class WeightState:
    """Consumption: the last booked weight. Fill: whether the pan was empty since the last check."""

    baseline: float | None = None
    armed: bool = True

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "WeightState | None":
        return cls(**json.loads(raw)) if raw else None


class WeightRule(TagRule):
    """One configured weight rule; `apply` is pure over (state, sample)."""

    state_type = WeightState

    cfg: WeightRuleConfig

    def apply(self, state: WeightState | None, sample: Sample) -> tuple[list[Event], WeightState | None]:
        weight = reading(self, sample)
        if weight is None:
            return [], state
        if isinstance(weight, Event):
            return [weight], state
        state = state or WeightState()
        ts, cfg, key = sample.source_ts, self.cfg, int(sample.source_ts * 1000)
        if cfg.mode == "fill":
            if weight <= cfg.min_weight:
                return [], WeightState(armed=True)
            if not state.armed:
                return [], state
            data = quality_data(within(weight, cfg.low, cfg.high), cfg.characteristic, weight, cfg.unit,
                                cfg.low, cfg.high)
            return [self._event("quality_result", f"fill:{key}", ts, data)], WeightState(armed=False)
        if state.baseline is None or weight - state.baseline > cfg.min_change:
            return [], WeightState(baseline=weight)
        used = round(state.baseline - weight, 9)
        if used <= cfg.min_change or used <= 0:
            return [], state
        data = {"material": cfg.material, "quantity": used, "unit": cfg.unit,
                "weight": weight, "previous": state.baseline}
        return [self._event("consumption", f"use:{key}", ts, data)], WeightState(baseline=weight)
