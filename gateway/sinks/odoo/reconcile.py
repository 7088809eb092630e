"""Shift summaries reconciled with Odoo: the gateway's count for a work order against Odoo's.

It owns the `production_summary` kind. Odoo cannot say how much a work order
grew during one shift, so the check is on what both sides hold now: the
production tally the sink delivered for the machine's open work order (the
absolute `qty_producing` it last wrote, see `production`) against the
`qty_producing` Odoo shows. A difference (someone changed the quantity by
hand, or a write went elsewhere) is a reconciliation alarm: a structured
`event=alarm_reconciliation` log line and a journal receipt that names both
figures and the difference. A match is delivered quietly. It writes nothing
to Odoo, so a retry changes nothing. A summary whose work center has no open
work order, or whose order never received a count from this sink, is
delivered with a receipt saying it was not reconciled.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome
from gateway.sinks.odoo.production import ProductionPoster, _fmt, decode_tally
from store.queue import Stored

log = logging.getLogger("linebridge.sinks.odoo")


class SummaryPoster:
    kinds = ("production_summary",)

    def __init__(self, production: ProductionPoster) -> None:
        self.production = production
        self.sink = production.sink

    async def post(self, items: list[Stored], out: Outcome) -> None:
        for stored in items:
            ev = stored.event
            ctx = ev.get("context") or {}
            code = ctx.get("work_center")
            if not code:
                out.fail(stored, f"machine {ctx.get('machine')!r} is not mapped to a work center")
                continue
            try:
                wo = await self.production.md.open_workorder(code)
            except PermanentDeliveryError as exc:
                if not str(exc).startswith("no open work order"):
                    out.fail(stored, str(exc))
                    continue
                out.receipts[ev["id"]] = f"not reconciled: {exc}"
                log.info("event=reconciliation_skipped sink=%s event_id=%s machine=%s shift=%s reason=%r",
                         self.sink, ev["id"], ctx.get("machine"), ev["data"].get("shift"), str(exc))
                continue
            key = self.production.tally_key(wo.id)
            raw = out.state.get(key)  # the production delivered earlier in this very batch
            if raw is None:
                raw = await asyncio.to_thread(self.production.store.get_state, key)
            ours = decode_tally(raw)
            if ours is None:
                out.receipts[ev["id"]] = f"mrp.workorder,{wo.id} not reconciled: no count delivered by this sink"
                continue
            theirs = await self.production.odoo_qty(wo.id)
            diff = theirs - ours
            fields: dict[str, Any] = {"machine": ctx.get("machine"), "shift": ev["data"].get("shift"),
                                      "workorder": wo.name, "production": wo.production}
            if abs(diff) < 1e-9:
                out.receipts[ev["id"]] = f"mrp.workorder,{wo.id} reconciled qty_producing={_fmt(ours)}"
                log.info("event=delivered sink=%s kind=production_summary event_id=%s model=mrp.workorder id=%d "
                         "machine=%s shift=%s qty_producing=%s good=%s scrap=%s", self.sink, ev["id"], wo.id,
                         fields["machine"], fields["shift"], _fmt(ours), _fmt(ev["data"].get("good", 0)),
                         _fmt(ev["data"].get("scrap", 0)))
                continue
            out.receipts[ev["id"]] = (f"mrp.workorder,{wo.id} reconciliation difference: Odoo qty_producing "
                                      f"{_fmt(theirs)}, gateway delivered {_fmt(ours)} "
                                      f"(difference {diff:+g})")
            log.warning("event=alarm_reconciliation sink=%s event_id=%s machine=%s shift=%s workorder=%s "
                        "production=%s model=mrp.workorder id=%d odoo_qty=%s gateway_qty=%s difference=%+g "
                        "shift_good=%s shift_scrap=%s", self.sink, ev["id"], fields["machine"], fields["shift"],
                        wo.name, wo.production, wo.id, _fmt(theirs), _fmt(ours), diff,
                        _fmt(ev["data"].get("good", 0)), _fmt(ev["data"].get("scrap", 0)))
