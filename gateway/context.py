"""Machine context and the shift calendar: who, what lot and which order, and which shift.

It owns two things enrichment needs besides the static machine mapping:

- `MachineContext`: the operator, lot and work order last scanned at a machine.
  It is the state of that machine's scan rules, stored under `context/<machine>`
  in the store's state database, in the same transaction as the scan event that
  changed it. `ContextStore` is the in-memory view all device pipelines share,
  so a scanner on its own serial port sets the context for the PLC's events.
- `ShiftCalendar`: named shifts as local wall-clock times in one time zone
  (`[shifts]`), which may cross midnight; a lookup converts the event's UTC
  time to local time with zoneinfo, so it is right on DST change days (a night
  shift is 7 or 9 hours long there).

It does not decide what a scan means (that is `gateway.rules.scan`) nor attach
anything to events (that is `gateway.enrich`).
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from drivers.base import ConfigCollector

CONTEXT_PREFIX = "context/"
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def context_key(machine: str) -> str:
    """The state key of a machine's context."""
    return CONTEXT_PREFIX + machine


def is_context_key(key: str) -> bool:
    return key.startswith(CONTEXT_PREFIX)


@dataclass(frozen=True)
class MachineContext:
    """What was last scanned at a machine (None = not known)."""

    operator: str | None = None
    lot: str | None = None
    work_order: str | None = None

    def with_value(self, key: str, value: str) -> "MachineContext":
        return replace(self, **{key: value})

    def as_context(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> "MachineContext | None":
        if not raw:
            return None
        known = {k: v for k, v in json.loads(raw).items() if k in cls.__dataclass_fields__}
        return cls(**known)


class ContextStore:
    """The shared in-memory copy of every machine's stored context, by state key.

    Pipelines read it when they start a batch and write it only after the store
    has committed the batch, so it never runs ahead of the disk.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, MachineContext] = {}

    @classmethod
    def load(cls, get_state: Any, machines: Iterable[str]) -> "ContextStore":
        """Read the stored context of `machines` (`get_state` is the store's, synchronous)."""
        out = cls()
        for machine in machines:
            ctx = MachineContext.from_bytes(get_state(context_key(machine)))
            if ctx is not None:
                out._by_key[context_key(machine)] = ctx
        return out

    def get(self, key: str) -> MachineContext | None:
        return self._by_key.get(key)

    def for_machine(self, machine: str) -> MachineContext | None:
        return self._by_key.get(context_key(machine))

    def put(self, key: str, ctx: MachineContext) -> None:
        self._by_key[key] = ctx

    def seed(self, key: str, ctx: MachineContext | None) -> None:
        """Take a context read from the store unless a newer one is already held."""
        if ctx is not None:
            self._by_key.setdefault(key, ctx)


@dataclass(frozen=True)
class Shift:
    name: str
    start: time
    end: time

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


@dataclass(frozen=True)
class ShiftSpan:
    """One occurrence of a shift: its name and its real start and end (UTC epoch seconds)."""

    name: str
    start: float
    end: float


@dataclass(frozen=True)
class ShiftCalendar:
    timezone: str
    shifts: tuple[Shift, ...]

    def at(self, epoch: float) -> ShiftSpan | None:
        """The shift in force at `epoch` (UTC seconds), or None in a gap between shifts."""
        tz = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(epoch, tz=timezone.utc).astimezone(tz)
        wall = local.time().replace(tzinfo=None)
        for shift in self.shifts:
            if not shift.crosses_midnight:
                if shift.start <= wall < shift.end:
                    return self._span(shift, local.date(), tz)
            elif wall >= shift.start:
                return self._span(shift, local.date(), tz)
            elif wall < shift.end:
                return self._span(shift, local.date() - timedelta(days=1), tz)
        return None

    @staticmethod
    def _span(shift: Shift, day: date, tz: ZoneInfo) -> ShiftSpan:
        end_day = day + timedelta(days=1) if shift.crosses_midnight else day
        start = datetime.combine(day, shift.start, tzinfo=tz).timestamp()
        end = datetime.combine(end_day, shift.end, tzinfo=tz).timestamp()
        return ShiftSpan(shift.name, start, end)


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


def parse_shifts(c: ConfigCollector, raw: Any, path: str = "shifts") -> ShiftCalendar | None:
    """`[shifts]` with `timezone` and `[[shifts.shift]]` tables (name, start, end as "HH:MM")."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        c.add(path, "must be a table")
        return None
    c.unknown_keys(raw, path, {"timezone", "shift"})
    tzname = c.get(raw, path, "timezone", str, required=True)
    if tzname is not None:
        try:
            ZoneInfo(tzname)
        except (ZoneInfoNotFoundError, ValueError):
            c.add(f"{path}.timezone", f"unknown time zone {tzname!r} (an IANA name such as 'Europe/Brussels')")
            tzname = None
    entries = c.get(raw, path, "shift", list, required=True, default=[]) or []
    shifts: list[Shift] = []
    owner: dict[int, str] = {}
    for i, entry in enumerate(entries):
        spath = f"{path}.shift[{i}]"
        if not isinstance(entry, dict):
            c.add(spath, "must be a table with name, start and end")
            continue
        c.unknown_keys(entry, spath, {"name", "start", "end"})
        name = c.get(entry, spath, "name", str, required=True)
        times = []
        for key in ("start", "end"):
            value = c.get(entry, spath, key, str, required=True)
            m = _HHMM.match(value) if value is not None else None
            if value is not None and m is None:
                c.add(f"{spath}.{key}", f"must be a local time \"HH:MM\" (00:00..23:59), got {value!r}")
            times.append(time(int(m[1]), int(m[2])) if m else None)
        if name is not None and any(s.name == name for s in shifts):
            c.add(f"{spath}.name", f"shift {name!r} is defined twice")
            continue
        if name is None or None in times:
            continue
        shift = Shift(name, times[0], times[1])
        if shift.start == shift.end:
            c.add(f"{spath}.end", "must differ from start")
            continue
        first, last = _minutes(shift.start), _minutes(shift.end)
        span = range(first, last) if last > first else [*range(first, 1440), *range(0, last)]
        clash = next((owner[m] for m in span if m in owner), None)
        if clash is not None:
            c.add(spath, f"shift {name!r} ({shift.start:%H:%M}-{shift.end:%H:%M}) overlaps shift {clash!r}")
            continue
        owner.update((m, name) for m in span)
        shifts.append(shift)
    if tzname is None:
        return None
    return ShiftCalendar(tzname, tuple(shifts))
