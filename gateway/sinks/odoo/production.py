"""Production on the work order: absolute `qty_producing`, never a blind increment.

It owns the mapping of `production` events to Odoo 17: the event's work center
code resolves (cached) to an `mrp.workcenter`; its open work order (in progress
first, else ready/waiting/pending, oldest first) receives the gateway's running
count for that order as `qty_producing`. The running count (the tally) lives in
the store and moves only in the same transaction that acknowledges the events,
so a retried delivery writes the very same absolute value again and changes
nothing. The tally of an order starts from what Odoo already shows for it, read
once and stored before the first write.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.client import OdooClient

log = logging.getLogger("linebridge.sinks.odoo")

OPEN_STATES = ["progress", "ready", "waiting", "pending"]


@dataclass(frozen=True)
class WorkOrder:
    id: int
    name: str
    production: str


class ProductionPoster:
    """Resolves work centers and open work orders, and writes absolute quantities."""

    def __init__(self, client: OdooClient, sink: str, cache_ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.sink = sink
        self.cache_ttl = cache_ttl
        self.clock = clock
        self._workcenters: dict[str, int] = {}
        self._workcenters_at = -1e18
        self._orders: dict[int, tuple[float, WorkOrder | None]] = {}

    def tally_key(self, workorder_id: int) -> str:
        return f"sink/{self.sink}/workorder/{workorder_id}/qty"

    async def workcenter_id(self, code: str) -> int:
        """The `mrp.workcenter` id for `code`; all work centers are fetched in one call."""
        if code not in self._workcenters or self.clock() - self._workcenters_at > self.cache_ttl:
            rows = await self.client.execute_kw("mrp.workcenter", "search_read",
                                                [[["code", "!=", False]]], {"fields": ["code"]})
            self._workcenters = {r["code"]: r["id"] for r in rows if r.get("code")}
            self._workcenters_at = self.clock()
        if code not in self._workcenters:
            raise PermanentDeliveryError(f"no work center with code {code!r} in Odoo")
        return self._workcenters[code]

    async def open_workorder(self, code: str) -> WorkOrder:
        wc = await self.workcenter_id(code)
        cached = self._orders.get(wc)
        if cached is None or self.clock() - cached[0] > self.cache_ttl:
            rows = await self.client.execute_kw(
                "mrp.workorder", "search_read",
                [[["workcenter_id", "=", wc], ["state", "in", OPEN_STATES]]],
                {"fields": ["name", "state", "production_id"], "order": "id asc"})
            rows.sort(key=lambda r: (OPEN_STATES.index(r["state"]), r["id"]))
            wo = None
            if rows:
                r = rows[0]
                prod = r["production_id"][1] if r.get("production_id") else ""
                wo = WorkOrder(r["id"], r["name"], prod)
            self._orders[wc] = (self.clock(), wo)
            cached = self._orders[wc]
        if cached[1] is None:
            raise PermanentDeliveryError(f"no open work order on work center {code!r} "
                                         f"(states {', '.join(OPEN_STATES)})")
        return cached[1]

    def forget_orders(self) -> None:
        """Drop cached work orders (after an Odoo error that may mean one closed)."""
        self._orders.clear()

    async def odoo_qty(self, workorder_id: int) -> float:
        rows = await self.client.execute_kw("mrp.workorder", "read", [[workorder_id]],
                                            {"fields": ["qty_producing"]})
        if not rows:
            raise PermanentDeliveryError(f"work order {workorder_id} no longer exists in Odoo")
        return float(rows[0]["qty_producing"] or 0.0)

    async def write_qty(self, wo: WorkOrder, qty: float, event_ids: list[str]) -> None:
        await self.client.execute_kw("mrp.workorder", "write", [[wo.id], {"qty_producing": qty}])
        log.info("event=delivered sink=%s model=mrp.workorder id=%d workorder=%s production=%s "
                 "qty_producing=%s events=%d last_event_id=%s", self.sink, wo.id, wo.name,
                 wo.production, _fmt(qty), len(event_ids), event_ids[-1] if event_ids else "")


def encode_tally(qty: float) -> bytes:
    return json.dumps({"qty": qty}).encode("utf-8")


def decode_tally(raw: bytes | None) -> float | None:
    return None if raw is None else float(json.loads(raw)["qty"])


def _fmt(x: Any) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
