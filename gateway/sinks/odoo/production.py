"""Production on the work order: absolute `qty_producing`, never a blind increment.

It owns the mapping of `production` events to Odoo: the event's work center
resolves (through the master-data cache) to its open work order, which
receives the gateway's running count for that order as `qty_producing`; Odoo
carries it to the manufacturing order. The running count (the tally) lives in
the store and moves only in the transaction that acknowledges the events, so
a retried delivery writes the very same absolute value again and changes
nothing. The tally of an order starts from what Odoo already shows for it,
read once and stored before the first write. Consecutive events for the same
order become one write.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome, held_as_suspect
from gateway.sinks.odoo.masterdata import MasterData, WorkOrder
from store.queue import Store, Stored

log = logging.getLogger("linebridge.sinks.odoo")


def encode_tally(qty: float) -> bytes:
    return json.dumps({"qty": qty}).encode("utf-8")


def decode_tally(raw: bytes | None) -> float | None:
    return None if raw is None else float(json.loads(raw)["qty"])


class ProductionPoster:
    kinds = ("production",)

    def __init__(self, client: Any, masterdata: MasterData, store: Store, sink: str,
                 auto_finish: bool = False) -> None:
        self.client = client
        self.md = masterdata
        self.store = store
        self.sink = sink
        self.auto_finish = auto_finish
        #: work orders whose count reached their quantity, to finish once the count is acknowledged
        self.to_finish: dict[int, WorkOrder] = {}

    def tally_key(self, workorder_id: int) -> str:
        return f"sink/{self.sink}/workorder/{workorder_id}/qty"

    async def odoo_qty(self, workorder_id: int) -> float:
        rows = await self.client.execute_kw("mrp.workorder", "read", [[workorder_id]],
                                            {"fields": ["qty_producing"]})
        if not rows:
            raise PermanentDeliveryError(f"work order {workorder_id} no longer exists in Odoo")
        return float(rows[0]["qty_producing"] or 0.0)

    async def post(self, items: list[Stored], out: Outcome) -> None:
        groups: dict[int, tuple[WorkOrder, list[Stored]]] = {}
        for stored in items:
            if held_as_suspect(stored, out):
                continue
            code = (stored.event.get("context") or {}).get("work_center")
            try:
                if not code:
                    raise PermanentDeliveryError(f"machine {stored.event.get('context', {}).get('machine')!r} "
                                                 "is not mapped to a work center")
                wo = await self.md.open_workorder(code)
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            groups.setdefault(wo.id, (wo, []))[1].append(stored)
        for wo_id, (wo, group) in groups.items():
            key = self.tally_key(wo_id)
            base = decode_tally(await asyncio.to_thread(self.store.get_state, key))
            if base is None:
                # first contact with this order: start from Odoo's figure, stored before any write
                base = await self.odoo_qty(wo_id)
                await asyncio.to_thread(self.store.put_state, key, encode_tally(base))
            qty = base + sum(float(s.event["data"]["quantity"]) for s in group)
            try:
                await self.client.execute_kw("mrp.workorder", "write", [[wo.id], {"qty_producing": qty}])
            except PermanentDeliveryError as exc:
                for s in group:
                    out.fail(s, str(exc))
                continue
            out.state[key] = encode_tally(qty)
            if self.auto_finish and wo.qty_production and qty >= wo.qty_production:
                self.to_finish[wo.id] = wo
            for s in group:
                out.receipts[s.event["id"]] = f"mrp.workorder,{wo.id}"
            log.info("event=delivered sink=%s model=mrp.workorder id=%d workorder=%s production=%s "
                     "qty_producing=%s events=%d last_event_id=%s", self.sink, wo.id, wo.name, wo.production,
                     _fmt(qty), len(group), group[-1].event["id"])


def _fmt(x: Any) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


class OrderFinisher:
    """Auto-finish: a work order whose count reached its quantity is finished and its order marked done.

    It runs only after the count was acknowledged in the store, so a retried
    delivery can never move parts to the next order. Each step reads the state
    first (finishing twice changes nothing) and answers Odoo's wizards the way a
    planner would for a completed order: no backorder, consumption as recorded.
    A wizard it does not know stops there with a warning; the parts stay recorded.
    """

    WIZARD_CONTEXT = {"mrp.production.backorder": {"skip_backorder": True, "mo_ids_to_backorder": []},
                      "mrp.consumption.warning": {"skip_consumption": True}}

    def __init__(self, poster: ProductionPoster) -> None:
        self.poster = poster

    async def finish_due(self) -> None:
        for wo_id, wo in list(self.poster.to_finish.items()):
            try:
                await self.finish(wo)
            except PermanentDeliveryError as exc:
                log.warning("event=auto_finish_failed sink=%s workorder=%s production=%s error=%r",
                            self.poster.sink, wo.name, wo.production, str(exc))
            del self.poster.to_finish[wo_id]
            self.poster.md.forget()

    async def finish(self, wo: WorkOrder) -> None:
        client = self.poster.client
        (row,) = await client.execute_kw("mrp.workorder", "read", [[wo.id]], {"fields": ["state"]}) or [{}]
        if row.get("state") not in ("done", "cancel"):
            await client.execute_kw("mrp.workorder", "button_finish", [[wo.id]])
        (mo,) = await client.execute_kw("mrp.production", "read", [[wo.production_id]],
                                        {"fields": ["state"]}) or [{}]
        if mo.get("state") in ("done", "cancel"):
            return
        context: dict[str, Any] = {}
        result = await client.execute_kw("mrp.production", "button_mark_done", [[wo.production_id]])
        for _ in range(len(self.WIZARD_CONTEXT) + 1):
            wizard = result.get("res_model") if isinstance(result, dict) else None
            if wizard not in self.WIZARD_CONTEXT:
                break
            context.update(self.WIZARD_CONTEXT[wizard])
            result = await client.execute_kw("mrp.production", "button_mark_done", [[wo.production_id]],
                                             {"context": context})
        if isinstance(result, dict) and result.get("res_model") not in (None, "mrp.production"):
            log.warning("event=auto_finish_incomplete sink=%s production=%s wizard=%s: Odoo asks a person",
                        self.poster.sink, wo.production, result.get("res_model"))
            return
        log.info("event=order_finished sink=%s workorder=%s production=%s", self.poster.sink, wo.name,
                 wo.production)
