"""The alarm rule: an alarm word (0 = ok, else a code) becomes alarm and downtime events.

It owns the meaning of one machine's alarm word: 0 -> code raises an `alarm`
and, when configured, a `downtime_start`; code -> 0 ends the downtime with a
`downtime_end` that names its start; a change from one code straight to
another ends the first and starts the second. A bad-quality sample changes
nothing (the state is held, never guessed); a good one that is no alarm word
(negative, above 65535, a fraction, text, NaN) is refused as `implausible`. The edges themselves, with
`debounce`, `min_duration` and `repeat_suppress` (all 0 by default: every
change counts at once), are `gateway.rules.edge`'s. Like the counter rule it is
pure over (state, sample); the caller stores events and state in one transaction.

Event ids derive from the source, the code and the edge's source time in
milliseconds, so the same edge replayed gets the same id.
"""
from __future__ import annotations

from typing import Any

from gateway.config import AlarmRuleConfig
from gateway.rules.edge import EdgeRule, EdgeState
from gateway.rules.plausible import code_reading

#: the alarm rule's state is the edge state (stored states from before the edge
#: options load unchanged: the new fields default to "nothing pending")
AlarmState = EdgeState


class AlarmRule(EdgeRule):
    """One configured alarm rule; `apply` is pure over (state, sample)."""

    def __init__(self, cfg: AlarmRuleConfig, gateway: str, machine: str) -> None:
        super().__init__(cfg, gateway, machine)
        self.alarm = True

    def level(self, value: Any) -> int:
        """The code in force: a whole number 0..65535 (true/false as 1/0), else refused."""
        return code_reading(value)
