"""Work order start and finish, from the machine's state, on its open work order in Odoo.

It owns the `workorder_start` and `workorder_finish` kinds. The event's work
center resolves (through the master-data cache) to its open work order; the
order's state is read first and `button_start` is called only when it is not
running yet, so the first run of each order starts it, a later run or a
retried delivery changes nothing, and a planner's own start is respected; the
order's count before the start is kept as the baseline of this sink's count
(Odoo's start proposes the whole remaining quantity as `qty_producing`). A
work center without an open order makes a start wait like production does
(see `pending`). A finish calls `button_finish` on the open work order only
when it is in progress; with no open order, or one not started yet, there is
nothing to finish (a planner finished it, or a repeated signal, which must not
end the next order): the event is delivered without effect and says so.
Events are delivered in order, so a finish lands after the counts of
the order it ends and before those of the next; the cache is dropped after a
finish, so the next count resolves the next order.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome
from gateway.sinks.odoo.masterdata import MasterData, NoOpenWorkorder
from gateway.sinks.odoo.production import encode_tally
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")


class _WorkorderPoster:
    """Resolves each event's open work order and reads its state; subclasses say what to do with it."""

    kinds: tuple[str, ...] = ()
    method = ""
    done = ""

    def __init__(self, client: Any, masterdata: MasterData, sink: str, production: Any = None) -> None:
        self.client = client
        self.md = masterdata
        self.sink = sink
        self.production = production  # the production poster, whose count baseline a start sets

    async def post(self, items: list[Stored], out: Outcome) -> None:
        for stored in items:
            ev = stored.event
            ctx = ev.get("context") or {}
            try:
                if not ctx.get("work_center"):
                    raise PermanentDeliveryError(f"machine {ctx.get('machine')!r} is not mapped to a work center")
                wo = await self._order(ev, ctx["work_center"], out)
                if wo is None:
                    continue
                rows = await self.client.execute_kw("mrp.workorder", "read", [[wo.id]],
                                                    {"fields": ["state", "qty_producing"]})
                if not rows:
                    raise PermanentDeliveryError(f"work order {wo.id} no longer exists in Odoo")
                state = rows[0].get("state")
                skip = self.skip(state)
                if skip:
                    out.receipts[ev["id"]] = f"mrp.workorder,{wo.id} {skip}"
                    continue
                await self.before(wo, rows[0], out)
                await self.client.execute_kw("mrp.workorder", self.method, [[wo.id]])
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            self.after()
            out.receipts[ev["id"]] = f"mrp.workorder,{wo.id} {self.done}"
            log.info("event=delivered sink=%s event_id=%s model=mrp.workorder id=%d method=%s "
                     "workorder=%s production=%s machine=%s from_state=%s", self.sink, ev["id"], wo.id,
                     self.method, wo.name, wo.production, ctx.get("machine"), state)

    async def _order(self, ev: dict[str, Any], work_center: str, out: Outcome) -> Any:
        return await self.md.open_workorder(work_center)

    def skip(self, state: str | None) -> str | None:
        """Why this order is left alone in `state` (None: call the method)."""
        raise NotImplementedError

    def after(self) -> None:
        """What changes once the method was called."""

    async def before(self, wo: Any, row: dict[str, Any], out: Outcome) -> None:
        """What must be kept before the method is called (`row`: the order's state and count)."""


class WorkorderStartPoster(_WorkorderPoster):
    kinds = ("workorder_start",)
    method = "button_start"
    done = "started"

    def skip(self, state: str | None) -> str | None:
        return f"already {state}" if state in ("progress", "done", "cancel") else None

    async def before(self, wo: Any, row: dict[str, Any], out: Outcome) -> None:
        # Odoo's button_start proposes the whole remaining quantity as qty_producing: the count
        # this sink adds to starts from what Odoo had before the start, not from the proposal
        if self.production is None:
            return
        key = self.production.tally_key(wo.id)
        if key not in out.state and await asyncio.to_thread(self.production.store.get_state, key) is None:
            out.state[key] = encode_tally(float(row.get("qty_producing") or 0.0))


class WorkorderFinishPoster(_WorkorderPoster):
    kinds = ("workorder_finish",)
    method = "button_finish"
    done = "finished"

    async def _order(self, ev: dict[str, Any], work_center: str, out: Outcome) -> Any:
        try:
            return await self.md.open_workorder(work_center)
        except NoOpenWorkorder:
            out.receipts[ev["id"]] = f"no open work order on {work_center}: nothing to finish"
            log.warning("event=workorder_finish_nothing_open sink=%s event_id=%s work_center=%s",
                        self.sink, ev["id"], work_center)
            return None

    def skip(self, state: str | None) -> str | None:
        # only a started order is finished: a repeated signal must not end the next order
        return None if state == "progress" else f"is {state}, not in progress: nothing to finish"

    def after(self) -> None:
        self.md.forget()  # the next count belongs to the next open order
