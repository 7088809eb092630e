"""The scan rule: a scanned code sets the machine's operator, lot or work order.

It owns what a code means: the rule's patterns (a regular expression per
context key, matched from the start of the code, first match in the order
written wins) say whether a code is a badge (`operator`), a `lot` or a
`work_order`. Each good, non-empty code is one `scan` event (data: code, key,
value; key None when no pattern matched, which changes nothing). The value is
the pattern's group named `value` when it has one, else the whole code.

Its state is the machine's context (`gateway.context.MachineContext`, stored
under `context/<machine>`), so the context is stored in the same transaction
as the scan that set it, and the pipeline enriches every later event of that
machine with it. Pure over (state, sample); ids derive from the source, the
sample's source time in ms and the code.
"""
from __future__ import annotations

import re

from drivers.base import Quality, Sample
from gateway.rules.base import TagRule
from gateway.context import MachineContext, context_key
from gateway.events import Event, event_id, iso_utc
from gateway.rules.config import ScanRuleConfig


class ScanRule(TagRule):
    """One configured scan rule; `apply` is pure over (context, sample)."""

    def __init__(self, cfg: ScanRuleConfig, gateway: str, machine: str) -> None:
        super().__init__(cfg, gateway, machine)
        self.state_key = context_key(machine)  # a machine's context, shared by its scan rules
        self.patterns = [(key, re.compile(p)) for key, p in cfg.patterns]

    def load_state(self, raw: bytes | None) -> MachineContext | None:
        return MachineContext.from_bytes(raw)


    def classify(self, code: str) -> tuple[str | None, str | None]:
        """The context key and value a code sets, or (None, None)."""
        for key, pattern in self.patterns:
            m = pattern.match(code)
            if m is not None:
                value = m.groupdict().get("value")
                return key, value if value else code
        return None, None

    def apply(self, state: MachineContext | None,
              sample: Sample) -> tuple[list[Event], MachineContext | None]:
        if sample.quality is not Quality.GOOD or not isinstance(sample.value, str):
            return [], state
        code = sample.value.strip()
        if not code:
            return [], state
        key, value = self.classify(code)
        ctx = state or MachineContext()
        if key is not None and value is not None:
            ctx = ctx.with_value(key, value)
        ts = sample.source_ts
        event = Event(id=event_id(self.gateway, self.source, f"scan:{int(ts * 1000)}:{code}"), kind="scan",
                      ts=iso_utc(ts), gateway=self.gateway,
                      source={"device": self.cfg.device, "tag": self.cfg.tag},
                      data={"code": code, "key": key, "value": value}, context={"machine": self.machine})
        return [event], (ctx if key is not None else state)
