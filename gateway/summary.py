"""Shift tallies: each machine's good parts and scrap in the running shift, and its `production_summary`.

It owns the running totals per machine and shift, counted from the
`production` and `scrap` events the intake stores, and the decision that a
shift ended: the first good sample of the machine whose source time is at or
past the end of the tally's shift closes it, and one `production_summary`
event carries its totals. A tally is pipeline state (`summary/<machine>`): it
is written in the same store transaction as the events it counted or the
summary that closed it, so a restart neither loses nor repeats either; the
summary's id is derived from the machine and the shift's start, so a replay
is recognised too. Events in a gap between shifts belong to no shift and are
not counted. It does not know Odoo (the sink reconciles the summary).

`ShiftTallies` is the in-memory copy every pipeline of a machine shares, with
one lock per machine held from reading a tally to storing its successor.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Iterable

from gateway.context import ShiftCalendar
from gateway.events import Event, event_id, iso_utc

SUMMARY_PREFIX = "summary/"
GAP_RECHECK_S = 60.0


def summary_key(machine: str) -> str:
    return SUMMARY_PREFIX + machine


def is_summary_key(key: str) -> bool:
    return key.startswith(SUMMARY_PREFIX)


@dataclass(frozen=True)
class ShiftTally:
    machine: str
    shift: str
    start: float
    end: float
    good: float = 0.0
    scrap: float = 0.0
    events: int = 0

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "ShiftTally | None":
        return None if not raw else cls(**json.loads(raw))

    def count(self, event: Event) -> "ShiftTally":
        if event.data.get("suspect"):  # held for a person: parts only once accepted
            return self
        qty = float(event.data.get("quantity") or 0.0)
        if event.kind == "production":
            return replace(self, good=self.good + qty, events=self.events + 1)
        if event.kind == "scrap":
            return replace(self, scrap=self.scrap + qty, events=self.events + 1)
        return self

    def summary(self, gateway: str, context: dict[str, Any]) -> Event:
        ctx = dict(context, machine=self.machine, shift=self.shift)
        return Event(id=event_id(gateway, f"{self.machine}/production_summary", f"{self.shift}:{self.start:.0f}"),
                     kind="production_summary", ts=iso_utc(self.end), gateway=gateway,
                     source={"machine": self.machine, "tag": "production_summary"},
                     data={"shift": self.shift, "start": iso_utc(self.start), "end": iso_utc(self.end),
                           "good": self.good, "scrap": self.scrap, "events": self.events},
                     context=ctx)


class ShiftTallies:
    """The tallies of all machines, shared by their device pipelines."""

    def __init__(self, calendar: ShiftCalendar) -> None:
        self.calendar = calendar
        self.tallies: dict[str, ShiftTally | None] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @classmethod
    def load(cls, calendar: ShiftCalendar, get_state: Callable[[str], bytes | None],
             machines: Iterable[str]) -> "ShiftTallies":
        out = cls(calendar)
        for m in machines:
            out.tallies[m] = ShiftTally.from_bytes(get_state(summary_key(m)))
        return out

    def lock(self, machine: str) -> asyncio.Lock:
        return self._locks.setdefault(machine, asyncio.Lock())

    def advance(self, tally: ShiftTally | None, machine: str, ts: float) -> tuple[ShiftTally, ShiftTally | None]:
        """(tally in force at `ts`, tally of a shift that ended before `ts` or None) for a good sample.

        Between shifts the tally in force is an empty marker (no shift name), looked at again after a
        minute or as soon as a shift holds `ts`, and stored like any other, so a closed shift stays
        closed across a restart.
        """
        closed = None
        if tally is not None and (ts >= tally.end or (not tally.shift and self.calendar.at(ts) is not None)):
            closed, tally = (tally if tally.shift else None), None
        if tally is None:
            span = self.calendar.at(ts)
            tally = (ShiftTally(machine, span.name, span.start, span.end) if span is not None
                     else ShiftTally(machine, "", ts, ts + GAP_RECHECK_S))
        return tally, closed
