"""Events waiting for context: held, in order, until their work center has an open work order.

It owns the pending state of one Odoo sink. An event that needs an open work
order (production, scrap, consumption, quality, work order start) whose work center has none is
not a dead letter at once: a planner often releases the order a few minutes
after the machine started. The sink delivers the batch up to the first such
event, acknowledges only that prefix and retries the rest with backoff (the
master-data cache is dropped on every retry), so nothing overtakes the held
event and nothing is acknowledged that was not delivered. The time of each
held event's first failure is kept in the store under the sink's state (written
before the retry, and moved with the cursor when the event is passed), so a
restart neither restarts nor loses its clock. Once `timeout` seconds have
passed since that first failure, the event goes to the dead letters with the
reason; it can be replayed like any other.

A work center that is unknown, or a machine mapped to none, is a configuration
error and stays an immediate dead letter (the posters say so).
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from gateway.errors import PermanentDeliveryError, TransientDeliveryError
from gateway.sinks.odoo.masterdata import MasterData
from store.queue import Store, Stored

#: the kinds whose poster needs the work center's open work order
NEEDS_ORDER = frozenset({"production", "scrap", "consumption", "quality_result", "workorder_start"})
_NO_ORDER = "no open work order on work center"


class PendingContext(TransientDeliveryError):
    """Events wait for an open work order: the sink retries with backoff, acknowledging nothing past them."""


@dataclass
class Triage:
    done: list[Stored]                      # the prefix of the batch that can be acknowledged now
    expired: list[tuple[Stored, str]] = field(default_factory=list)   # in `done`: waited too long
    held: list[Stored] = field(default_factory=list)                   # waiting, first one starts the rest
    state: bytes = b"{}"                    # the pending map to store with the acknowledgement


class Pending:
    def __init__(self, store: Store, sink: str, md: MasterData, timeout: float,
                 clock: Callable[[], float]) -> None:
        self.store = store
        self.sink = sink
        self.md = md
        self.timeout = timeout
        self.clock = clock

    @property
    def key(self) -> str:
        return f"sink/{self.sink}/pending"

    async def waiting(self) -> dict[str, dict[str, Any]]:
        """event id -> {"since": first failure (epoch s), "work_center": code, "seq": seq}."""
        raw = await asyncio.to_thread(self.store.get_state, self.key)
        return json.loads(raw) if raw else {}

    async def missing_order(self, stored: Stored) -> str | None:
        """The work center code when the event needs an open work order and its work center has none."""
        ev = stored.event
        code = (ev.get("context") or {}).get("work_center")
        if ev.get("kind") not in NEEDS_ORDER or not code:
            return None
        try:
            await self.md.open_workorder(code)
        except PermanentDeliveryError as exc:
            return code if str(exc).startswith(_NO_ORDER) else None  # other errors: the poster's to report
        return None

    async def triage(self, batch: list[Stored]) -> Triage:
        waiting = await self.waiting()
        before = dict(waiting)
        now = self.clock()
        cut: int | None = None
        expired: list[tuple[Stored, str]] = []
        held: list[Stored] = []
        for i, stored in enumerate(batch):
            code = await self.missing_order(stored)
            eid = stored.event["id"]
            if code is None:
                continue
            entry = waiting.setdefault(eid, {"since": now, "work_center": code, "seq": stored.seq})
            if now - float(entry["since"]) >= self.timeout:
                if cut is None:
                    expired.append((stored, f"{_NO_ORDER} {code!r} for {self.timeout:g} s"))
            else:
                held.append(stored)
                if cut is None:
                    cut = i
        done = batch if cut is None else batch[:cut]
        for stored in done:
            waiting.pop(stored.event["id"], None)
        if waiting.keys() - before.keys():
            # a first failure is durable before any retry, so a restart keeps its clock
            await asyncio.to_thread(self.store.put_state, self.key,
                                    json.dumps(before | {k: v for k, v in waiting.items() if k not in before},
                                               sort_keys=True).encode())
        return Triage(done, expired, held, json.dumps(waiting, sort_keys=True).encode())
