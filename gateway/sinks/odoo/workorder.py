"""Work order start and finish, from the machine's state, on its open work order in Odoo.

It owns the `workorder_start` and `workorder_finish` kinds. The event's work
center resolves (through the master-data cache) to its open work order; the
order's state is read first and `button_start` is called only when it is not
running yet, so the first run of each order starts it, a later run or a
retried delivery changes nothing, and a planner's own start is respected. A
work center without an open order makes a start wait like production does
(see `pending`). A finish calls `button_finish` on the open work order only
when it is in progress; with no open order, or one not started yet, there is
nothing to finish (a planner finished it, or a repeated signal, which must not
end the next order): the event is delivered without effect and says so. Events are delivered in order, so a finish lands after the counts of
the order it ends and before those of the next; the cache is dropped after a
finish, so the next count resolves the next order.
"""
from __future__ import annotations

import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome
from gateway.sinks.odoo.masterdata import MasterData, NoOpenWorkorder
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


class WorkorderFinishPoster:
    kinds = ("workorder_finish",)

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
                try:
                    wo = await self.md.open_workorder(ctx["work_center"])
                except NoOpenWorkorder:
                    out.receipts[ev["id"]] = f"no open work order on {ctx['work_center']}: nothing to finish"
                    log.warning("event=workorder_finish_nothing_open sink=%s event_id=%s work_center=%s",
                                self.sink, ev["id"], ctx["work_center"])
                    continue
                rows = await self.client.execute_kw("mrp.workorder", "read", [[wo.id]], {"fields": ["state"]})
                if not rows:
                    raise PermanentDeliveryError(f"work order {wo.id} no longer exists in Odoo")
                state = rows[0].get("state")
                if state != "progress":
                    # only a started order is finished: a repeated signal must not end the next order
                    out.receipts[ev["id"]] = f"mrp.workorder,{wo.id} is {state}, not in progress: nothing to finish"
                    continue
                await self.client.execute_kw("mrp.workorder", "button_finish", [[wo.id]])
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            self.md.forget()  # the next count belongs to the next open order
            out.receipts[ev["id"]] = f"mrp.workorder,{wo.id} finished"
            log.info("event=delivered sink=%s event_id=%s model=mrp.workorder id=%d method=button_finish "
                     "workorder=%s production=%s machine=%s from_state=%s", self.sink, ev["id"], wo.id, wo.name,
                     wo.production, ctx.get("machine"), state)
