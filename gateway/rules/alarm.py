"""The alarm rule: an alarm word (0 = ok, else a code) becomes alarm and downtime events.

It owns the edges of one machine's alarm word: 0 -> code raises an `alarm`
and, when configured, a `downtime_start`; code -> 0 ends the downtime with a
`downtime_end` that names its start; a change from one code straight to
another ends the first and starts the second. A bad-quality sample changes
nothing (the state is held, never guessed). Like the counter rule it is pure
over (state, sample); the caller stores events and state in one transaction.

Event ids derive from the source, the code and the edge's source time in
milliseconds, so the same edge replayed gets the same id.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from drivers.base import Quality, Sample
from gateway.config import AlarmRuleConfig
from gateway.events import Event, event_id, iso_utc


@dataclass(frozen=True)
class AlarmState:
    """The code in force (0 = none), since when, and the id of its downtime_start."""

    code: int = 0
    since: float = 0.0
    start_id: str | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "AlarmState | None":
        return cls(**json.loads(raw)) if raw else None


class AlarmRule:
    """One configured alarm rule; `apply` is pure over (state, sample)."""

    def __init__(self, cfg: AlarmRuleConfig, gateway: str, machine: str) -> None:
        self.cfg = cfg
        self.gateway = gateway
        self.machine = machine
        self.source = f"{cfg.device}/{cfg.tag}"
        self.state_key = f"rule/{cfg.name}"

    def load_state(self, raw: bytes | None) -> AlarmState | None:
        return AlarmState.from_bytes(raw)

    def matches(self, sample: Sample) -> bool:
        return sample.device == self.cfg.device and sample.tag == self.cfg.tag

    def _event(self, kind: str, key: str, ts: float, data: dict) -> Event:
        return Event(id=event_id(self.gateway, self.source, key), kind=kind, ts=iso_utc(ts),
                     gateway=self.gateway, source={"device": self.cfg.device, "tag": self.cfg.tag},
                     data=data, context={"machine": self.machine})

    def apply(self, state: AlarmState | None, sample: Sample) -> tuple[list[Event], AlarmState | None]:
        if sample.quality is not Quality.GOOD or not isinstance(sample.value, int):
            return [], state
        code, ts = int(sample.value), sample.source_ts
        state = state or AlarmState()
        if code == state.code:
            return [], state
        events: list[Event] = []
        if state.code:
            if self.cfg.downtime and state.start_id:
                events.append(self._event("downtime_end", f"end:{int(state.since * 1000)}:{state.code}", ts, {
                    "code": state.code, "start_event_id": state.start_id, "started": iso_utc(state.since),
                    "duration_s": round(ts - state.since, 3)}))
        if not code:
            return events, AlarmState()
        ms = int(ts * 1000)
        events.append(self._event("alarm", f"alarm:{ms}:{code}", ts, {"code": code, "state": "raised"}))
        start_id = None
        if self.cfg.downtime:
            start = self._event("downtime_start", f"start:{ms}:{code}", ts, {"code": code})
            events.append(start)
            start_id = start.id
        return events, AlarmState(code, ts, start_id)
