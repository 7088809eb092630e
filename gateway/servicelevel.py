"""Service levels: how long events took from their source time to a sink's acknowledgement.

It owns, per sink and event kind, the delivery delay over a sliding window of
the latest `WINDOW` acknowledgements (p50, p95, max) and the share of that
window delivered within the kind's target (`[service_levels]`, seconds), plus
exact running totals (acknowledged, within target) for /metrics. Memory is
bounded whatever the traffic: one ring of `WINDOW` floats per kind, and kinds
are the event model's closed set (anything else counts as `other`). It does not
own when a sink acknowledges (the sinks call `SinkStats.acknowledged`) nor the
targets' validation (`gateway.config`).
"""
from __future__ import annotations

import time
from array import array
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping

from gateway.events import KINDS

#: acknowledgements each kind's percentiles are taken over (the sliding window)
WINDOW = 1024
#: the targets when `[service_levels]` does not set them: alarms within a minute, the rest 15 minutes
DEFAULT_TARGETS: dict[str, float] = {"alarm": 60.0, "maintenance_due": 60.0, "downtime_start": 300.0}
DEFAULT_TARGET = 900.0


def event_epoch(ts: str) -> float | None:
    """An event's `ts` (ISO 8601 UTC with a `Z`) as epoch seconds; None when it is not one."""
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None


class KindLevel:
    """One kind's ring of the latest delays and its running totals."""

    __slots__ = ("ring", "next", "acknowledged", "within_total", "target")

    def __init__(self, target: float, window: int = WINDOW) -> None:
        self.ring = array("d", [0.0] * window)
        self.next = 0                 # where the next delay goes; with `acknowledged`, how full the ring is
        self.acknowledged = 0         # every acknowledgement ever counted (an int: exact at any size)
        self.within_total = 0
        self.target = target

    def record(self, delay_s: float) -> None:
        delay_s = max(0.0, delay_s)   # a source clock ahead of ours is no negative delay
        self.ring[self.next] = delay_s
        self.next = (self.next + 1) % len(self.ring)
        self.acknowledged += 1
        if delay_s <= self.target:
            self.within_total += 1

    def snapshot(self) -> dict[str, Any]:
        n = min(self.acknowledged, len(self.ring))
        window = sorted(self.ring[:n]) if n < len(self.ring) else sorted(self.ring)
        out: dict[str, Any] = {"target_s": self.target, "acknowledged": self.acknowledged,
                               "within_target_total": self.within_total, "window": n}
        if n:
            out |= {"p50_s": round(_rank(window, 0.50), 3), "p95_s": round(_rank(window, 0.95), 3),
                    "max_s": round(window[-1], 3),
                    "within_target": round(sum(1 for d in window if d <= self.target) / n, 4)}
        return out


def _rank(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile `q` of a sorted, non-empty list."""
    return ordered[max(0, -(-round(q * 1000) * len(ordered) // 1000) - 1)]


class ServiceLevels:
    """Per event kind: delays from source time to acknowledgement, against each kind's target."""

    def __init__(self, targets: Mapping[str, float] | None = None, window: int = WINDOW,
                 clock: Callable[[], float] = time.time) -> None:
        self.window = window
        self.clock = clock
        self.targets: dict[str, float] = dict(DEFAULT_TARGETS if targets is None else targets)
        self.kinds: dict[str, KindLevel] = {}

    def configure(self, targets: Mapping[str, float]) -> None:
        """New targets (a reload): the windows stay, each kind's target changes from now on."""
        self.targets = dict(targets)
        for kind, level in self.kinds.items():
            level.target = self.target(kind)

    def target(self, kind: str) -> float:
        return self.targets.get(kind, self.targets.get("default", DEFAULT_TARGET))

    def record(self, kind: str, delay_s: float) -> None:
        kind = kind if kind in KINDS else "other"
        level = self.kinds.get(kind)
        if level is None:
            level = self.kinds[kind] = KindLevel(self.target(kind), self.window)
        level.record(delay_s)

    def acknowledged(self, events: Iterable[Mapping[str, Any]], now: float | None = None) -> None:
        """Count `events` (envelopes) as acknowledged at `now` (default: the clock)."""
        now = self.clock() if now is None else now
        for event in events:
            at = event_epoch(event.get("ts", ""))
            if at is not None:
                self.record(str(event.get("kind")), now - at)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {kind: level.snapshot() for kind, level in sorted(self.kinds.items())}
