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

The same tally holds what OEE needs (`gateway.oee`): the shift's downtime,
from the machine's `downtime_start` / `downtime_end` events (one open set of
sources per machine, carried across shift ends and gaps, so a stop crossing a
shift end counts in each shift for its part), and the day's closed shifts. A
closing shift yields its `oee` event and history record, and a day whose last
shift closed yields its own, in the same step as the summary.

`ShiftTallies` is the in-memory copy every pipeline of a machine shares, with
one lock per machine held from reading a tally to storing its successor.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Callable, Iterable

from gateway.context import ShiftCalendar
from gateway.events import Event, event_id, iso_utc
from gateway.oee import DayTally, day_record, ideal_key, local_day, parse_ideal, shift_record

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
    #: seconds of downtime that ended in this shift (clipped to it)
    downtime: float = 0.0
    #: the sources (device/tag) whose downtime is open, and since when the machine is down (>= start)
    down: tuple[str, ...] = ()
    down_from: float = 0.0
    #: when planned time began: the shift's start, or the first sample of a gateway's first shift
    observed_from: float = 0.0
    #: the closed shifts of the running day
    day: DayTally | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "ShiftTally | None":
        if not raw:
            return None
        fields = json.loads(raw)
        fields["down"] = tuple(fields.get("down") or ())
        if fields.get("day"):
            fields["day"] = DayTally(**fields["day"])
        return cls(**fields)

    @property
    def planned_from(self) -> float:
        return max(self.start, self.observed_from)

    def count(self, event: Event) -> "ShiftTally":
        if event.kind in ("downtime_start", "downtime_end"):
            return self._downtime(event)
        if not self.shift or event.data.get("suspect"):  # between shifts; held for a person
            return self
        qty = float(event.data.get("quantity") or 0.0)
        if event.kind == "production":
            return replace(self, good=self.good + qty, events=self.events + 1)
        if event.kind == "scrap":
            return replace(self, scrap=self.scrap + qty, events=self.events + 1)
        return self

    def _downtime(self, event: Event) -> "ShiftTally":
        """A stop of one source starts or ends; the machine is down while any source is."""
        source = "/".join(str(v) for v in event.source.values())
        ts = _epoch(event.ts)
        if event.kind == "downtime_start":
            if source in self.down:
                return self
            since = min(max(ts, self.planned_from), self.end) if not self.down else self.down_from
            return replace(self, down=(*self.down, source), down_from=since)
        if source in self.down:
            rest = tuple(s for s in self.down if s != source)
            if rest:
                return replace(self, down=rest)
            return replace(self, down=(), down_from=0.0, downtime=self.downtime + self._overlap(self.down_from, ts))
        if self.down or not self.shift:   # the machine is still down for another source, or no shift
            return self
        started = _epoch(event.data["started"]) if event.data.get("started") else ts  # a start this tally missed
        return replace(self, downtime=self.downtime + self._overlap(started, ts))

    def _overlap(self, start: float, end: float) -> float:
        """Seconds of [start, end] within this shift's planned time (never negative: clocks step back)."""
        if not self.shift:
            return 0.0
        return max(0.0, min(end, self.end) - max(start, self.planned_from))

    def finished(self) -> "ShiftTally":
        """This shift at its end: a stop still open counts up to the end."""
        if not self.down:
            return self
        return replace(self, downtime=self.downtime + self._overlap(self.down_from, self.end))

    def live(self, now: float, tz: str, ideal_cycle: float | None) -> dict[str, Any] | None:
        """The running shift's OEE record so far (`period` "running"); None between shifts."""
        if not self.shift:
            return None
        until = min(max(now, self.planned_from), self.end)
        down = self.downtime + (self._overlap(self.down_from, until) if self.down else 0.0)
        rec = shift_record(self.machine, self.shift, local_day(self.start, tz), self.start, until,
                           until - self.planned_from, down, self.good, self.scrap, ideal_cycle)
        return dict(rec, period="running", down=bool(self.down))

    def record(self, tz: str, ideal_cycle: float | None) -> dict[str, Any]:
        """The OEE record of this (finished) shift."""
        return shift_record(self.machine, self.shift, local_day(self.start, tz), self.start, self.end,
                            self.end - self.planned_from, self.downtime, self.good, self.scrap, ideal_cycle)

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

    def __init__(self, calendar: ShiftCalendar, ideal: dict[str, float] | None = None,
                 cached: Callable[[str], bytes | None] | None = None) -> None:
        self.calendar = calendar
        self.tallies: dict[str, ShiftTally | None] = {}
        #: seconds per part by machine from the configuration (`ideal_cycle`): they win over Odoo's
        self.ideal: dict[str, float] = dict(ideal or {})
        #: the store's state reader, for the ideal cycles the Odoo sink cached (read when a shift closes)
        self.cached = cached
        self._locks: dict[str, asyncio.Lock] = {}

    def ideal_cycle(self, machine: str) -> float | None:
        """Seconds per part: the configuration's, else the one cached from Odoo, else None."""
        if machine in self.ideal:
            return self.ideal[machine]
        return parse_ideal(self.cached(ideal_key(machine))) if self.cached is not None else None

    @classmethod
    def load(cls, calendar: ShiftCalendar, get_state: Callable[[str], bytes | None],
             machines: Iterable[str]) -> "ShiftTallies":
        out = cls(calendar)
        for m in machines:
            out.tallies[m] = ShiftTally.from_bytes(get_state(summary_key(m)))
        return out

    def lock(self, machine: str) -> asyncio.Lock:
        return self._locks.setdefault(machine, asyncio.Lock())

    def advance(self, tally: ShiftTally | None, machine: str, ts: float
                ) -> tuple[ShiftTally, ShiftTally | None, list[dict[str, Any]]]:
        """(tally in force at `ts`, finished tally of a shift that ended before `ts` or None,
        OEE records closed by this step: that shift's, then a finished day's) for a good sample.

        Between shifts the tally in force is an empty marker (no shift name), looked at again after a
        minute or as soon as a later shift holds `ts`, and stored like any other, so a closed shift stays
        closed across a restart. A clock stepping back never reopens a closed shift.
        """
        closed: ShiftTally | None = None
        records: list[dict[str, Any]] = []
        prev = tally
        if tally is not None:
            span = self.calendar.at(ts) if not tally.shift and ts < tally.end else None
            if ts >= tally.end or (span is not None and span.start >= tally.start):
                closed, tally = (tally.finished() if tally.shift else None), None
        if tally is not None:
            return tally, None, records
        tz = self.calendar.timezone
        day = prev.day if prev is not None else None
        if closed is not None:
            ideal = self.ideal_cycle(machine)
            records.append(closed.record(tz, ideal))
            closed_day = local_day(closed.start, tz)
            if day is not None and day.day != closed_day:
                records.append(day_record(machine, day))
                day = None
            day = (day or DayTally(closed_day, closed.start, closed.end)).add(
                closed.end - closed.planned_from, closed.downtime, closed.good, closed.scrap, closed.end, ideal)
        down = prev.down if prev is not None else ()
        span = self.calendar.at(ts)
        if span is None:
            return ShiftTally(machine, "", ts, ts + GAP_RECHECK_S, down=down, day=day), closed, records
        if day is not None and day.day != local_day(span.start, tz):
            records.append(day_record(machine, day))
            day = None
        observed = span.start if prev is not None else ts
        opened = ShiftTally(machine, span.name, span.start, span.end, down=down,
                            down_from=max(span.start, observed) if down else 0.0, observed_from=observed, day=day)
        return opened, closed, records


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
