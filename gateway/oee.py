"""OEE at the edge: availability x performance x quality per machine, per shift and per day.

It owns the arithmetic and the records, not the counting. The counting is the
shift tally's (`gateway.summary`): the tally that already holds a shift's good
parts and scrap also holds its downtime (from the machine's own
`downtime_start` / `downtime_end` events, per source, so two alarm words down
at once count once) and the day's running totals (`DayTally`), and it is
written in the same store transaction as the events it counted. So every
figure costs O(1) per event, and a restart neither loses nor double-counts.

- planned time: the shift's span from the shift calendar (from the first
  sample of a gateway's first shift ever, since nothing before it was seen);
  a gap between shifts is not planned and holds no OEE.
- availability = running / planned, running = planned - downtime (downtime
  clipped to the shift: a stop crossing a shift end counts in each shift for
  its part; a clock stepping back never makes a duration negative).
- performance = ideal cycle time x (good + scrap) / running; the ideal cycle
  (seconds per part) is the machine's `ideal_cycle` in the configuration, else
  the one the Odoo sink cached from the open work order's expected duration
  (Odoo derives it from the operation's cycle time and the work center's times)
  over its quantity (`ideal/<machine>` in the store's state); without one,
  performance and OEE are None.
- quality = good / (good + scrap).

A closed shift becomes one `oee` event (`data.period = "shift"`), a closed day
(the day of a shift is the local date its start falls on; a day closes when
the first shift of a later day opens) one with `period = "day"`; their ids
derive from the machine and the period's start, so a replay is recognised.
Each is also kept as a history record in the store's state, in a ring of
`HISTORY_DAYS` day slots (`oee/<machine>/<slot>/day`, `oee/<machine>/<slot>/shift/<name>`),
written in the same transaction and bounded by construction: the console's
charts and the CSV export read it, nothing is held in memory.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable
from zoneinfo import ZoneInfo

from gateway.events import Event, event_id, iso_utc

#: days of per-shift and per-day records kept in the store (a ring of day slots)
HISTORY_DAYS = 60
HISTORY_PREFIX = "oee/"
IDEAL_PREFIX = "ideal/"
#: the fields of one OEE record, in the CSV's column order
FIELDS = ("machine", "period", "day", "shift", "start", "end", "planned_s", "downtime_s", "running_s",
          "good", "scrap", "ideal_cycle_s", "availability", "performance", "quality", "oee")


def ideal_key(machine: str) -> str:
    """The state key of a machine's ideal cycle time cached from Odoo."""
    return IDEAL_PREFIX + machine


def local_day(epoch: float, tz: str) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).astimezone(ZoneInfo(tz)).date().isoformat()


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den > 0 else None


def figures(planned: float, downtime: float, good: float, scrap: float,
            ideal_output: float | None) -> dict[str, Any]:
    """The OEE figures of one period; `ideal_output`: ideal seconds for the parts made (None: unknown).

    A period with no planned time has no availability (None, not 0 or a division by zero);
    a period with no parts has no quality. Availability cannot exceed 1 (downtime is
    clipped to the planned time); performance can: an ideal cycle set too slow shows
    as performance above 100 %, rather than being hidden.
    """
    planned = max(0.0, planned)
    downtime = min(max(0.0, downtime), planned)
    running = planned - downtime
    total = good + scrap
    availability = _ratio(running, planned)
    performance = _ratio(ideal_output, running) if ideal_output is not None else None
    quality = _ratio(good, total)
    oee = (round(availability * performance * quality, 4)
           if availability is not None and performance is not None and quality is not None else None)
    return {"planned_s": round(planned, 3), "downtime_s": round(downtime, 3), "running_s": round(running, 3),
            "good": good, "scrap": scrap, "availability": availability, "performance": performance,
            "quality": quality, "oee": oee}


@dataclass(frozen=True)
class DayTally:
    """The closed shifts of one local day, summed."""

    day: str
    start: float
    end: float
    planned: float = 0.0
    downtime: float = 0.0
    good: float = 0.0
    scrap: float = 0.0
    ideal_output: float = 0.0     # ideal seconds of the parts of the shifts with a known ideal cycle
    ideal_running: float = 0.0    # running seconds of those shifts
    shifts: int = 0

    def add(self, planned: float, downtime: float, good: float, scrap: float, end: float,
            ideal_cycle: float | None) -> "DayTally":
        running = max(0.0, planned - min(max(0.0, downtime), planned))
        known = ideal_cycle is not None
        return replace(self, end=max(self.end, end), planned=self.planned + planned,
                       downtime=self.downtime + downtime, good=self.good + good, scrap=self.scrap + scrap,
                       ideal_output=self.ideal_output + (ideal_cycle * (good + scrap) if known else 0.0),
                       ideal_running=self.ideal_running + (running if known else 0.0),
                       shifts=self.shifts + 1)

    def figures(self) -> dict[str, Any]:
        out = figures(self.planned, self.downtime, self.good, self.scrap, None)
        if self.ideal_running > 0:
            out["performance"] = _ratio(self.ideal_output, self.ideal_running)
            if None not in (out["availability"], out["quality"]):
                out["oee"] = round(out["availability"] * out["performance"] * out["quality"], 4)
        return out


def shift_record(machine: str, shift: str, day: str, start: float, end: float, planned: float,
                 downtime: float, good: float, scrap: float, ideal_cycle: float | None) -> dict[str, Any]:
    ideal_output = ideal_cycle * (good + scrap) if ideal_cycle is not None else None
    return {"machine": machine, "period": "shift", "day": day, "shift": shift, "start": iso_utc(start),
            "end": iso_utc(end), "ideal_cycle_s": ideal_cycle,
            **figures(planned, downtime, good, scrap, ideal_output)}


def day_record(machine: str, day: DayTally) -> dict[str, Any]:
    return {"machine": machine, "period": "day", "day": day.day, "shift": "", "start": iso_utc(day.start),
            "end": iso_utc(day.end), "ideal_cycle_s": None, **day.figures()}


def oee_event(gateway: str, record: dict[str, Any]) -> Event:
    """The signed-to-be `oee` event of one closed shift or day."""
    machine = record["machine"]
    key = f"{record['period']}:{record['shift']}:{record['start']}"
    data = {k: v for k, v in record.items() if k != "machine"}
    ctx = {"machine": machine, "shift": record["shift"] or None}   # a day is no shift's
    return Event(id=event_id(gateway, f"{machine}/oee", key), kind="oee", ts=record["end"], gateway=gateway,
                 source={"machine": machine, "tag": "oee"}, data=data, context=ctx)


def _slot(day: str) -> int:
    return date.fromisoformat(day).toordinal() % HISTORY_DAYS


def history_key(record: dict[str, Any]) -> str:
    """Where a record is kept: its machine's ring slot of its day (overwritten 60 days later)."""
    base = f"{HISTORY_PREFIX}{record['machine']}/{_slot(record['day']):02d}"
    return f"{base}/day" if record["period"] == "day" else f"{base}/shift/{record['shift']}"


def history_bytes(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True).encode("utf-8")


def history(get_state: Callable[[str], bytes | None], machine: str, shifts: Iterable[str],
            period: str = "shift") -> list[dict[str, Any]]:
    """A machine's kept records of `period` ("shift" or "day"), oldest first.

    Reads at most `HISTORY_DAYS` x (shifts + 1) state keys, whatever the gateway's age;
    a slot still holding a record older than the newest day minus `HISTORY_DAYS` is left out.
    """
    names = list(shifts)
    out = []
    for slot in range(HISTORY_DAYS):
        base = f"{HISTORY_PREFIX}{machine}/{slot:02d}"
        keys = [f"{base}/day"] if period == "day" else [f"{base}/shift/{n}" for n in names]
        for key in keys:
            raw = get_state(key)
            if raw:
                out.append(json.loads(raw))
    if not out:
        return out
    newest = max(date.fromisoformat(r["day"]).toordinal() for r in out)
    out = [r for r in out if newest - date.fromisoformat(r["day"]).toordinal() < HISTORY_DAYS]
    return sorted(out, key=lambda r: r["start"])


def csv_text(records: Iterable[dict[str, Any]]) -> str:
    """Records as CSV (header `FIELDS`), empty cells for unknown figures."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(FIELDS)
    for r in records:
        writer.writerow(["" if r.get(f) is None else r.get(f) for f in FIELDS])
    return buf.getvalue()


def parse_ideal(raw: bytes | None) -> float | None:
    """An ideal cycle time cached from Odoo: {"seconds": s, ...}."""
    if not raw:
        return None
    value = json.loads(raw).get("seconds")
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def ideal_cycles(config: Any) -> dict[str, float]:
    """Seconds per part by machine as configured (`[machines.X] ideal_cycle`): they win over Odoo's."""
    return {m: mc.ideal_cycle for m, mc in config.machines.items() if mc.ideal_cycle}
