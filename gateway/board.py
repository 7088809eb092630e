"""Each machine's production as it happens, for the console's overview: parts, scrap and the rate.

It owns in-memory figures per machine, fed by the device pipelines with the
events they have just stored: good parts and scrap since the gateway started,
the time of the newest of them, and the good parts of the last five minutes in
ten-second buckets, from which the rate in parts per minute is read. Events
held for a person (a suspect counter jump) are not counted, as the shift
tallies do not count them. It keeps no history and nothing survives a restart
(the shift's figures are the shift tallies' in `gateway.summary`, which are
stored); it does not know the sinks (last deliveries are `SinkStats`').

Bounds: `WINDOW_S / BUCKET_S` buckets per machine and at most `MAX_MACHINES`
machines (more than any gateway's configuration names; events of further
machines are not counted here).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

BUCKET_S = 10.0
WINDOW_S = 300.0
MAX_MACHINES = 1000


@dataclass
class MachineFigures:
    good: float = 0.0
    scrap: float = 0.0
    #: wall-clock time of the newest counted event
    last_event: float | None = None
    #: when this machine's first event was counted (the rate's window is never longer than that)
    first_seen: float | None = None
    #: (bucket start, good parts) of the last WINDOW_S, oldest first
    buckets: deque[list[float]] = field(default_factory=lambda: deque(maxlen=int(WINDOW_S // BUCKET_S)))


class MachineBoard:
    """Parts, scrap and rate per machine since the start, shared by every device pipeline."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.machines: dict[str, MachineFigures] = {}

    def count(self, events: Iterable[Any]) -> None:
        """Count the `production` and `scrap` events (each an `Event`) a pipeline has just stored."""
        now = self.clock()
        for e in events:
            if e.kind not in ("production", "scrap") or e.data.get("suspect"):
                continue
            machine = e.context.get("machine")
            if not machine:
                continue
            fig = self.machines.get(machine)
            if fig is None:
                if len(self.machines) >= MAX_MACHINES:
                    continue
                fig = self.machines[machine] = MachineFigures(first_seen=now)
            qty = float(e.data.get("quantity") or 0.0)
            fig.last_event = now
            if e.kind == "scrap":
                fig.scrap += qty
                continue
            fig.good += qty
            start = now - now % BUCKET_S
            if fig.buckets and fig.buckets[-1][0] == start:
                fig.buckets[-1][1] += qty
            else:
                fig.buckets.append([start, qty])

    def rate(self, machine: str) -> float | None:
        """Good parts per minute over the last WINDOW_S (or since the first count, when that is shorter);
        None for a machine that has made no part since the start."""
        fig = self.machines.get(machine)
        if fig is None or fig.first_seen is None:
            return None
        now = self.clock()
        # the running bucket and the whole ones before it, back to WINDOW_S
        since = now - now % BUCKET_S - WINDOW_S + BUCKET_S
        parts = sum(q for start, q in fig.buckets if start >= since)
        span = max(BUCKET_S, now - max(since, fig.first_seen))
        return parts * 60.0 / span

    def snapshot(self, machine: str) -> dict[str, Any]:
        fig = self.machines.get(machine) or MachineFigures()
        rate = self.rate(machine)
        return {"good": fig.good, "scrap": fig.scrap, "last_event": fig.last_event,
                "rate_per_min": None if rate is None else round(rate, 2), "rate_window_s": WINDOW_S}
