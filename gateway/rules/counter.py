"""The counter rule: a machine's part counter becomes `production` (or `scrap`) events.

It owns the arithmetic of hardware counters: increments become quantities,
a wrap at the register width (16 or 32 bits) is a rollover, a drop that is not a
wrap is a reset (the new value counts as parts made since the reset), a repeated
value gives nothing, and a bad-quality sample changes nothing (the state is
held, never invented). The rule is pure: it takes its previous state and a
sample and returns the events plus the next state; the caller stores both in one
transaction, so the state never moves ahead of the events on disk.

Machine data is not trusted (`gateway.rules.plausible`). A reading that no
counter of the rule's width can show (negative, at or above 2^width, not a
whole number, not a number) is refused: no parts, the state stays at the last
trusted reading (so the next good reading counts from there), and an
`implausible` event carries the raw value, the reason and where it came from.
A jump of more parts than the machine can make in the time since the last
change (a PLC glitch, a counter preset) is marked `suspect`: `max_rate` parts
per second (`plausible.DEFAULT_MAX_RATE` unless the rule sets it; 0 turns the
check off) over that time, and at least over the device's poll interval. The
event is stored like any other, the sink holds it as a dead letter, and a
person's replay posts it. The first reading ever (with `initial = "zero"`) has
no elapsed time and is not capped.

The event id is derived from the source, the reset epoch and the running total,
so a replay of the same signal yields the same id.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from drivers.base import Quality, Sample
from gateway.config import CounterRuleConfig
from gateway.rules.base import TagRule
from gateway.rules.plausible import Refused, counter_reading, jump_cap
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
        if sample.quality is not Quality.GOOD:
            return [], state
        try:
            value = counter_reading(sample.value, self.cfg.width)
        except Refused as exc:
            return [self.refuse(sample, str(exc))], state
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
        # a wall clock stepped back leaves no elapsed time to judge a rate by: only the range checks hold
        if self.cfg.max_rate and state.ts and sample.source_ts >= state.ts:
            elapsed = max(sample.source_ts - state.ts, 0.001)
            if qty > jump_cap(self.cfg.max_rate, elapsed, self.cfg.poll_interval):
                # never dropped, never posted blindly: the sink holds it for a person to accept
                data["suspect"] = (f"{qty} parts in {elapsed:.1f} s exceeds max_rate "
                                   f"{self.cfg.max_rate:g}/s (counter {state.raw} -> {value})")
                if sample.origin:
                    data["origin"] = sample.origin
        event = self._event(self.cfg.kind, f"{epoch}:{total}", sample.source_ts, data)
        return [event], CounterState(value, epoch, total, sample.source_ts)
