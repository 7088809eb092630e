"""Consumption on the manufacturing order's component moves, as an absolute quantity.

It owns `consumption` events (a material, by the product's internal reference,
and a quantity, e.g. from a scale): the work center's open work order gives the
manufacturing order, whose component move for that product receives the
gateway's running consumed quantity: `quantity` with `picked = true` on Odoo
17 and 18 (an unpicked move's `quantity` is only its reservation, so the count
starts from zero there), `quantity_done` on Odoo 16. Like production, the
running count moves only in the transaction that acknowledges the events, so a
retry writes the same value again.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.errors import PermanentDeliveryError
from gateway.sinks.odoo.batch import Outcome
from gateway.sinks.odoo.masterdata import MasterData
from gateway.sinks.odoo.production import decode_tally, encode_tally
from store.queue import Store, Stored

log = logging.getLogger("linebridge.sinks.odoo")


class ConsumptionPoster:
    kinds = ("consumption",)

    def __init__(self, client: Any, masterdata: MasterData, store: Store, sink: str) -> None:
        self.client = client
        self.md = masterdata
        self.store = store
        self.sink = sink

    def _v16(self) -> bool:
        return (getattr(self.client, "major", None) or 17) < 17

    async def _move(self, production_id: int, product_id: int, production: str, material: str) -> int:
        moves = await self.client.execute_kw(
            "stock.move", "search_read",
            [[["raw_material_production_id", "=", production_id], ["product_id", "=", product_id],
              ["state", "not in", ["done", "cancel"]]]], {"fields": ["id"], "order": "id asc", "limit": 1})
        if not moves:
            raise PermanentDeliveryError(f"{production} has no open component move for {material!r}")
        return moves[0]["id"]

    async def _odoo_qty(self, move_id: int) -> float:
        field = ["quantity_done"] if self._v16() else ["quantity", "picked"]
        rows = await self.client.execute_kw("stock.move", "read", [[move_id]], {"fields": field})
        if not rows:
            raise PermanentDeliveryError(f"component move {move_id} no longer exists in Odoo")
        if self._v16():
            return float(rows[0]["quantity_done"] or 0.0)
        return float(rows[0]["quantity"] or 0.0) if rows[0]["picked"] else 0.0

    async def post(self, items: list[Stored], out: Outcome) -> None:
        groups: dict[int, list[Stored]] = {}
        for stored in items:
            ev = stored.event
            try:
                code = (ev.get("context") or {}).get("work_center")
                material = ev["data"].get("material")
                if not code or not material:
                    raise PermanentDeliveryError("consumption needs a work center in its context and a material")
                wo = await self.md.open_workorder(code)
                product = await self.md.lookup("product", material)
                move = await self._move(wo.production_id, product, wo.production, material)
            except PermanentDeliveryError as exc:
                out.fail(stored, str(exc))
                continue
            groups.setdefault(move, []).append(stored)
        for move, group in groups.items():
            key = f"sink/{self.sink}/move/{move}/qty"
            raw = out.state.get(key)  # consumed earlier in this very pass (before a start or finish)
            base = decode_tally(raw if raw is not None else await asyncio.to_thread(self.store.get_state, key))
            if base is None:
                base = await self._odoo_qty(move)
                await asyncio.to_thread(self.store.put_state, key, encode_tally(base))
            qty = base + sum(float(s.event["data"]["quantity"]) for s in group)
            values = {"quantity_done": qty} if self._v16() else {"quantity": qty, "picked": True}
            try:
                await self.client.execute_kw("stock.move", "write", [[move], values])
            except PermanentDeliveryError as exc:
                for s in group:
                    out.fail(s, str(exc))
                continue
            out.state[key] = encode_tally(qty)
            for s in group:
                out.receipts[s.event["id"]] = f"stock.move,{move}"
            log.info("event=delivered sink=%s model=stock.move id=%d consumed=%s events=%d last_event_id=%s",
                     self.sink, move, qty, len(group), group[-1].event["id"])
