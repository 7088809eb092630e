"""The machine state rule: a running bit's rise becomes `workorder_start`.

It owns the reading of a machine's running bit (`on` as in the edge rule,
with `debounce`) and emits one `workorder_start` event each time the machine
starts running (and on the first reading ever, if it is running then). It does
not know which work order is open or whether it is already started: the sink
starts the open work order only if it is not running yet, so only the first
run of each order starts it and every later rise is delivered without effect.
The id derives from the rise's source time (`run:<ms>`), so a replayed edge
gets the same id.
"""
from __future__ import annotations

from typing import Any

from gateway.events import Event
from gateway.rules.config import MachineStateRuleConfig
from gateway.rules.base import TagRule
from gateway.rules.edge import ConditionRule, EdgeState, _ms


class MachineStateRule(ConditionRule):
    def __init__(self, cfg: MachineStateRuleConfig, gateway: str, machine: str) -> None:
        TagRule.__init__(self, cfg, gateway, machine)
        self.alarm = False
        self.downtime = False

    def level(self, value: Any) -> int | None:
        level = super().level(value)
        return None if level is None else int(bool(level))

    def _commit(self, state: EdgeState, new: int, ts: float, events: list[Event]) -> EdgeState:
        if new and not state.code:
            events.append(self._event("workorder_start", f"run:{_ms(ts)}", ts, {"state": "running"}))
        return EdgeState(new, ts) if new else EdgeState()
