"""The edge rule: a bool or int tag's edges become downtime and/or alarm events.

It owns the edge machinery the alarm rule shares (`EdgeRule`), over a *level*:
0 means "clear", any other number is the code in force. A level change is
first *pending*; it counts once a later sample shows it has held `debounce`
seconds (a shorter blip gives nothing), and then it counts at the time it was
first seen, so events carry the edge's own source time. A downtime is held
back until it has lasted `min_duration`: its `downtime_start` is emitted then,
with the original edge time, and a downtime that ends sooner is dropped as a
pair (no start was stored, so no end is). `repeat_suppress` drops the `alarm`
of a code re-raised that soon after it cleared; the downtime pair still comes.

Debounce and min_duration are decided on the next sample after the time has
passed: a driver that polls (or a subscription that republishes) supplies it;
a signal that changes once and then goes silent stays pending until it speaks.

A good value the rule cannot read as a level (a string where a number is
watched, NaN, an alarm code outside 0..65535) is refused: the state stays and
an `implausible` event says why (`gateway.rules.plausible`).

Like every rule it is pure over (state, sample); the pipeline stores events and
state in one transaction. Ids derive from the source, the code and the edge's
source time in milliseconds (`alarm:`, `start:`, `end:`), as the alarm rule's
always have, so a replayed edge gets the same id.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from drivers.base import Quality, Sample
from gateway.rules.base import TagRule
from gateway.rules.plausible import MAX_CODE, Refused, describe
from gateway.events import Event, iso_utc
from gateway.rules.config import EdgeRuleConfig


@dataclass(frozen=True)
class EdgeState:
    """The level in force (0 = clear) since when, its downtime_start id, a pending change,
    and (with repeat_suppress) the last code that cleared and when."""

    code: int = 0
    since: float = 0.0
    start_id: str | None = None
    pending: int | None = None
    pending_since: float = 0.0
    cleared_code: int = 0
    cleared_at: float = 0.0

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "EdgeState | None":
        return cls(**json.loads(raw)) if raw else None


def _ms(ts: float) -> int:
    return int(ts * 1000)


class EdgeRule(TagRule):
    """Edges of a level; subclasses say how a sample's value becomes a level."""

    state_type = EdgeState

    def __init__(self, cfg: Any, gateway: str, machine: str) -> None:
        super().__init__(cfg, gateway, machine)
        self.alarm = bool(getattr(cfg, "alarm", True))
        self.downtime = bool(cfg.downtime)

    def level(self, value: Any) -> int:
        """The level a good value means (0 = clear); `Refused` if it cannot be read as one."""
        raise NotImplementedError

    def apply(self, state: EdgeState | None, sample: Sample) -> tuple[list[Event], EdgeState | None]:
        if sample.quality is not Quality.GOOD:
            return [], state
        try:
            level = self.level(sample.value)
        except Refused as exc:
            return [self.refuse(sample, str(exc))], state
        return self.step(state or EdgeState(), level, sample.source_ts)

    def step(self, state: EdgeState, level: int, ts: float) -> tuple[list[Event], EdgeState]:
        events: list[Event] = []
        if level == state.code:
            state = replace(state, pending=None, pending_since=0.0)
        elif state.pending != level:
            state = replace(state, pending=level, pending_since=ts)
        held_until = state.pending_since if state.pending is not None else ts
        state = self._promote(state, held_until, events)
        if state.pending is not None and ts - state.pending_since >= self.cfg.debounce:
            state = self._commit(state, state.pending, state.pending_since, events)
            state = self._promote(state, ts, events)
        return events, state

    def _start(self, code: int, ts: float) -> Event:
        return self._event("downtime_start", f"start:{_ms(ts)}:{code}", ts, {"code": code})

    def _promote(self, state: EdgeState, held_until: float, events: list[Event]) -> EdgeState:
        """Emit the held-back downtime_start once the level has lasted min_duration."""
        if (state.code and self.downtime and state.start_id is None and self.cfg.min_duration > 0
                and held_until - state.since >= self.cfg.min_duration):
            start = self._start(state.code, state.since)
            events.append(start)
            return replace(state, start_id=start.id)
        return state

    def _commit(self, state: EdgeState, new: int, ts: float, events: list[Event]) -> EdgeState:
        """The level changes to `new` at `ts`: end the old one, raise the new one."""
        cleared_code, cleared_at = state.cleared_code, state.cleared_at
        if state.code:
            if self.downtime and state.start_id:
                events.append(self._event(
                    "downtime_end", f"end:{_ms(state.since)}:{state.code}", ts, {
                        "code": state.code, "start_event_id": state.start_id,
                        "started": iso_utc(state.since), "duration_s": round(ts - state.since, 3)}))
            if self.cfg.repeat_suppress > 0:
                cleared_code, cleared_at = state.code, ts
        if not new:
            return EdgeState(cleared_code=cleared_code, cleared_at=cleared_at)
        repeat = (self.cfg.repeat_suppress > 0 and new == cleared_code
                  and ts - cleared_at < self.cfg.repeat_suppress)
        if self.alarm and not repeat:
            events.append(self._event("alarm", f"alarm:{_ms(ts)}:{new}", ts, {"code": new, "state": "raised"}))
        start_id = None
        if self.downtime and self.cfg.min_duration <= 0:
            start = self._start(new, ts)
            events.append(start)
            start_id = start.id
        return EdgeState(new, ts, start_id, None, 0.0, cleared_code, cleared_at)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class ConditionRule(EdgeRule):
    """`type = "edge"`: `on` says which values mean "on"; the code comes from config or the value."""

    def __init__(self, cfg: EdgeRuleConfig, gateway: str, machine: str) -> None:
        super().__init__(cfg, gateway, machine)

    def level(self, value: Any) -> int:
        on = self.cfg.on
        if isinstance(on, str) and on not in ("true", "nonzero"):
            if not isinstance(value, str):
                raise Refused(f"expected text to compare with {on!r}, got {describe(value)}")
            active = value == on
        else:
            if not isinstance(value, (bool, int, float)):
                raise Refused(f"expected a number or true/false, got {describe(value)}")
            if isinstance(value, float) and not math.isfinite(value):
                raise Refused(f"expected a finite number, got {describe(value)}")
            if on == "true":
                active = bool(value)
            elif on == "nonzero":
                active = value != 0
            elif isinstance(on, bool):          # on = false: "off" is the condition
                active = bool(value) == on
            else:
                active = _number(value) and value == on
        if not active:
            return 0
        if self.cfg.code is not None:
            return self.cfg.code
        if on == "nonzero" and isinstance(value, int) and not isinstance(value, bool) and value > 0:
            if value > MAX_CODE and (self.alarm or self.downtime):
                raise Refused(f"the value is the alarm code here, and a code must be 0..{MAX_CODE}, "
                              f"got {describe(value)}")
            return value
        if isinstance(on, int) and not isinstance(on, bool) and on > 0:
            return on
        return 1
