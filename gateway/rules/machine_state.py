"""The machine state rule: a state bit's rise becomes `workorder_start` or `workorder_finish`.

It owns the reading of a machine's state bit (`on` as in the edge rule,
with `debounce`). With `emit = "start"` (the default, a running bit) it emits
one `workorder_start` event each time the machine starts running (and on the
first reading ever, if it is running then); with `emit = "finish"` (an
order-complete bit, set by the machine or an operator's button) one
`workorder_finish` each time the bit rises. It does not know which work order
is open or in which state: the sink starts the open work order only if it is
not running yet, and finishes it only if it is not done, so a repeated signal
or a retried delivery changes nothing. The id derives from the rise's source
time (`run:<ms>` or `done:<ms>`), so a replayed edge gets the same id.
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

    def level(self, value: Any) -> int:
        return int(bool(super().level(value)))

    def _commit(self, state: EdgeState, new: int, ts: float, events: list[Event]) -> EdgeState:
        if new and not state.code:
            if self.cfg.emit == "finish":
                events.append(self._event("workorder_finish", f"done:{_ms(ts)}", ts, {"state": "complete"}))
            else:
                events.append(self._event("workorder_start", f"run:{_ms(ts)}", ts, {"state": "running"}))
        return EdgeState(new, ts) if new else EdgeState()
