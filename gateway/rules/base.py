"""What every rule bound to one device tag shares: its identity, its state type and its events.

`TagRule` holds the configuration, the gateway id, the machine, the source
(`device/tag`) and the state key; it matches samples of its tag, loads its
state with the class's `state_type`, and builds events whose ids derive from
the source and a rule-specific key. Rule types subclass it and write `apply`;
a reading they refuse (see `gateway.rules.plausible`) becomes an `implausible`
event through `refuse`, and their state stays as it was.
"""
from __future__ import annotations

from typing import Any

from drivers.base import Sample
from gateway.events import Event, event_id, iso_utc
from gateway.rules.plausible import raw_value


class TagRule:
    """The plumbing of a rule on one device tag; subclasses set `state_type` and write `apply`."""

    state_type: Any = None

    def __init__(self, cfg: Any, gateway: str, machine: str) -> None:
        self.cfg = cfg
        self.gateway = gateway
        self.machine = machine
        self.source = f"{cfg.device}/{cfg.tag}"
        self.state_key = f"rule/{cfg.name}"

    def load_state(self, raw: bytes | None) -> Any:
        return self.state_type.from_bytes(raw)

    def matches(self, sample: Sample) -> bool:
        return sample.device == self.cfg.device and sample.tag == self.cfg.tag

    def _event(self, kind: str, key: str, ts: float, data: dict[str, Any]) -> Event:
        return Event(id=event_id(self.gateway, self.source, key), kind=kind, ts=iso_utc(ts),
                     gateway=self.gateway, source={"device": self.cfg.device, "tag": self.cfg.tag},
                     data=data, context={"machine": self.machine})

    def refuse(self, sample: Sample, reason: str) -> Event:
        """The `implausible` event of a reading this rule refuses: what, why and where from."""
        data: dict[str, Any] = {"reason": reason, "raw": raw_value(sample.value), "rule": self.cfg.name}
        if sample.origin:
            data["origin"] = sample.origin
        # the rule's name is in the id: two rules on one tag refuse the same reading each
        return self._event("implausible", f"implausible:{self.cfg.name}:{int(sample.source_ts * 1000)}",
                           sample.source_ts, data)
