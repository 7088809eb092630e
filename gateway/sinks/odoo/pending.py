"""Events waiting for context: held in their work center's lane until it has an open work order.

It owns the pending state of one Odoo sink. An event that needs an open work
order (production, scrap, consumption, quality, work order start) whose work
center has none is not a dead letter at once: a planner often releases the order
a few minutes after the machine started. It is held (`store.held`): set aside in
the lane of its work center while the sink's other work centers go on, and the
later events of that work center that need an order are held behind it, so a
lane keeps its order (a production count never overtakes an earlier one).
`due` tells, per lane, what to deliver now and what waited too long: the sink
retries the lanes with backoff, after dropping its master-data cache. A lane
whose work center now has an open order is delivered in order; a held event
older than `timeout` (counted from when it was first held, kept in the store,
so a restart neither restarts nor loses its clock) goes to the dead letters with
the reason and can be replayed like any other.

A work center that is unknown, or a machine mapped to none, is a configuration
error and stays an immediate dead letter (the posters say so).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.masterdata import MasterData
from store.queue import HeldEvent, Stored

#: the kinds whose poster needs the work center's open work order
NEEDS_ORDER = frozenset({"production", "scrap", "consumption", "quality_result", "workorder_start"})
#: kinds that need no order themselves but must stay behind their work center's held counts: a
#: finish ends the order those counts go to, a shift summary is compared with what Odoo recorded
FOLLOWS_LANE = frozenset({"workorder_finish", "production_summary"})
_NO_ORDER = "no open work order on work center"


def waits_for(code: str) -> str:
    return f"waits for an open work order on work center {code!r}"


@dataclass
class Triage:
    done: list[Stored] = field(default_factory=list)                      # to post now, in order
    hold: list[tuple[Stored, str, str, float]] = field(default_factory=list)  # (event, lane, reason, now)
    expired: list[tuple[Stored, str]] = field(default_factory=list)       # in `done`: no waiting (timeout 0)


@dataclass
class Due:
    ready: list[Stored] = field(default_factory=list)                     # held lanes to deliver now, in order
    expired: list[tuple[Stored, str]] = field(default_factory=list)       # held too long: dead letters


class Pending:
    def __init__(self, md: MasterData, timeout: float, clock: Callable[[], float]) -> None:
        self.md = md
        self.timeout = timeout
        self.clock = clock

    @staticmethod
    def lane_of(stored: Stored) -> str | None:
        """The work center whose lane the event belongs to (its order, or its held counts), or None."""
        ev = stored.event
        if ev.get("kind") not in NEEDS_ORDER | FOLLOWS_LANE:
            return None
        return (ev.get("context") or {}).get("work_center") or None

    async def has_order(self, code: str) -> bool:
        """Whether work center `code` has an open work order (other errors: the poster's to report)."""
        try:
            await self.md.open_workorder(code)
        except PermanentDeliveryError as exc:
            return not str(exc).startswith(_NO_ORDER)
        return True

    async def triage(self, batch: list[Stored], lanes: set[str]) -> Triage:
        """Split a batch read from the cursor: post now, or hold in a lane (`lanes`: those holding events)."""
        t = Triage()
        now = self.clock()
        for stored in batch:
            code = self.lane_of(stored)
            follows = stored.event.get("kind") in FOLLOWS_LANE
            if code is None or (code not in lanes and (follows or await self.has_order(code))):
                t.done.append(stored)
            elif self.timeout <= 0:
                t.done.append(stored)
                t.expired.append((stored, f"{_NO_ORDER} {code!r}"))
            else:
                t.hold.append((stored, code, f"behind held events of work center {code!r}" if follows
                               else waits_for(code), now))
                lanes.add(code)
        return t

    async def due(self, held: list[HeldEvent]) -> Due:
        """Per lane of `held` (in seq order): all of it when its order is there, else what expired."""
        lanes: dict[str, list[HeldEvent]] = {}
        for h in held:
            lanes.setdefault(h.lane, []).append(h)
        now = self.clock()
        due = Due()
        for code, items in lanes.items():
            if await self.has_order(code):
                due.ready.extend(h.stored for h in items)
                continue
            due.expired += [(h.stored, f"{_NO_ORDER} {code!r} for {self.timeout:g} s") for h in items
                            if now - h.since >= self.timeout]
        return due
