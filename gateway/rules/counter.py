"""The counter rule: a machine's part counter becomes `production` (or `scrap`) events.

It owns the arithmetic of hardware counters: increments become quantities,
a wrap at the register width (16 or 32 bits) is a rollover, a drop that is not a
wrap is a reset (the new value counts as parts made since the reset), a repeated
value gives nothing, and a bad-quality sample changes nothing (the state is
held, never invented). The rule is pure: it takes its previous state and a
sample and returns the events plus the next state; the caller stores both in one
transaction, so the state never moves ahead of the events on disk.

With `max_rate`, a jump of more parts than the machine can make in the time
since the last change (a PLC glitch, a counter preset) is marked `suspect`: it
is stored like any event, and the sink holds it as a dead letter for a person
to accept by replaying it, instead of posting it.

The event id is derived from the source, the reset epoch and the running total,
so a replay of the same signal yields the same id.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from drivers.base import Quality, Sample
from gateway.config import CounterRuleConfig
from gateway.rules.base import TagRule
from gateway.events import Event


@dataclass(frozen=True)
class CounterState:
    """What the rule remembers: last raw value, reset epoch, parts counted since start."""

    raw: int
    epoch: int = 0
    total: int = 0
    ts: float = 0.0   # source time of the last reading that changed the state

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "CounterState | None":
        return cls(**json.loads(raw)) if raw else None


def delta(previous: int, current: int, width: int, window: int) -> tuple[int, bool]:
    """Parts made between two readings, and whether the counter was reset.

    A drop from within `window` of the top of the register to below `window`
    is a rollover; any other drop is a reset and `current` counts from zero.
    """
    modulus = 1 << width
    if current >= previous:
        return current - previous, False
    if previous >= modulus - window and current < window:
        return modulus - previous + current, False
    return current, True


class CounterRule(TagRule):
    """One configured counter rule; `apply` is pure over (state, sample)."""

    state_type = CounterState

    cfg: CounterRuleConfig

    def apply(self, state: CounterState | None,
              sample: Sample) -> tuple[list[Event], CounterState | None]:
        if sample.quality is not Quality.GOOD or not isinstance(sample.value, int):
            return [], state
        value = sample.value & ((1 << self.cfg.width) - 1)
        if state is None:
            if self.cfg.initial == "baseline":
                return [], CounterState(raw=value, ts=sample.source_ts)
            state = CounterState(raw=0)
        qty, reset = delta(state.raw, value, self.cfg.width, self.cfg.rollover_window)
        epoch = state.epoch + 1 if reset else state.epoch
        if qty == 0:
            return [], CounterState(value, epoch, state.total, state.ts or sample.source_ts)
        total = state.total + qty
        data = {"quantity": qty, "counter": value, "total": total, "reset": reset}
        if self.cfg.max_rate and state.ts:
            elapsed = max(sample.source_ts - state.ts, 0.001)
            if qty > self.cfg.max_rate * elapsed + 1:
                # never dropped, never posted blindly: the sink holds it for a person to accept
                data["suspect"] = (f"{qty} parts in {elapsed:.1f} s exceeds max_rate "
                                   f"{self.cfg.max_rate:g}/s")
        event = self._event(self.cfg.kind, f"{epoch}:{total}", sample.source_ts, data)
        return [event], CounterState(value, epoch, total, sample.source_ts)
