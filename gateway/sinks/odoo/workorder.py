"""Work order start: the machine's first run starts its open work order in Odoo.

It owns the `workorder_start` kind. The event's work center resolves (through
the master-data cache) to its open work order; the order's state is read
first and `button_start` is called only when it is not running yet, so the
first run of each order starts it, a later run or a retried delivery changes
nothing, and a planner's own start is respected. A work center without an
open order makes the event wait like production does (see `pending`).
"""
from __future__ import annotations

import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome
from gateway.sinks.odoo.masterdata import MasterData
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")


class WorkorderStartPoster:
    kinds = ("workorder_start",)

    def __init__(self, client: Any, masterdata: MasterData, sink: str) -> None:
        self.client = client
        self.md = masterdata
        self.sink = sink

    async def post(self, items: list[Stored], out: Outcome) -> None:
        for stored in items:
            ev = stored.event
            ctx = ev.get("context") or {}
            try:
                if not ctx.get("work_center"):
                    raise PermanentDeliveryError(f"machine {ctx.get('machine')!r} is not mapped to a work center")
                wo = await self.md.open_workorder(ctx["work_center"])
                rows = await self.client.execute_kw("mrp.workorder", "read", [[wo.id]], {"fields": ["state"]})
                if not rows:
                    raise PermanentDeliveryError(f"work order {wo.id} no longer exists in Odoo")
                state = rows[0].get("state")
                if state in ("progress", "done", "cancel"):
                    out.receipts[ev["id"]] = f"mrp.workorder,{wo.id} already {state}"
                    continue
                await self.client.execute_kw("mrp.workorder", "button_start", [[wo.id]])
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            out.receipts[ev["id"]] = f"mrp.workorder,{wo.id} started"
            log.info("event=delivered sink=%s event_id=%s model=mrp.workorder id=%d method=button_start "
                     "workorder=%s production=%s machine=%s from_state=%s", self.sink, ev["id"], wo.id, wo.name,
                     wo.production, ctx.get("machine"), state)
