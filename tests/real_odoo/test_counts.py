"""Count writes keep their cost flat on real Odoo: the component move lines Odoo adds per `qty_producing`
write are merged every `MERGE_EVERY` writes, and the order's quantities and reservations stay exact.

(The sandbox books no move lines, so this runs on real Odoo only; the cost itself is measured by
`python -m tests.real_odoo.qty_cost`.)
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.config import OdooSinkConfig
from gateway.events import Event, event_id
from gateway.sinks.odoo import OdooSink
from gateway.sinks.odoo.movelines import MERGE_EVERY
from store.queue import Store
from tests.real_odoo.harness import OdooDb
from tests.real_odoo.masterdata import COMPONENTS, prepare

CTX = {"machine": "CNC-01", "work_center": "CNC-01", "equipment": "CNC-01"}
WRITES = 2 * MERGE_EVERY + 5


def _part(n: int) -> dict:
    return Event(id=event_id("gw", "cnc01/parts", str(n)), kind="production", ts="2026-11-23T07:00:00.000Z",
                 gateway="gw", source={"device": "cnc01", "tag": "parts"},
                 data={"quantity": 2, "counter": 2 * n, "total": 2 * n, "reset": 0}, context=dict(CTX)).to_dict()


@pytest.mark.real_odoo_only
def test_count_writes_leave_a_bounded_number_of_move_lines_and_exact_quantities(odoo: OdooDb, tmp_path: Path) -> None:
    plant = prepare(odoo)
    rpc = odoo.rpc()
    c = odoo.sink_config()
    cfg = OdooSinkConfig("odoo", c["url"], c["database"], c["login"], c["api_key"], protocol=c["protocol"],
                         timeout=60.0, rate=1000.0, count_interval=0.0)
    store = Store(tmp_path / "s", sinks=["odoo"])

    async def go() -> int:
        sink = OdooSink(cfg, store)
        try:
            for n in range(1, WRITES + 1):  # one pass, one count write each (count_interval 0)
                store.append([_part(n)])
                await sink.deliver(store.read("odoo", 10))
            return sink.production.writes
        finally:
            await sink.raw_client.close()
    assert asyncio.run(go()) == WRITES
    qty = 2 * WRITES
    assert rpc("mrp.workorder", "read", [plant.workorders[0]], fields=["qty_producing"])[0]["qty_producing"] == qty
    moves = rpc("stock.move", "search_read", [["raw_material_production_id", "=", plant.production],
                                              ["scrapped", "=", False] if odoo.major < 19 else ["scrap_id", "=", False]],
                fields=["product_id", "quantity" if odoo.major >= 17 else "quantity_done", "move_line_ids"])
    per = {plant.components[code]: p for _, code, p in COMPONENTS}
    for m in moves:
        if m["product_id"][0] not in per:
            continue  # the manual-consumption component: Odoo's own rules, not the count's
        lines = rpc("stock.move.line", "read", m["move_line_ids"], fields=["quantity" if odoo.major >= 17 else "qty_done"])
        done = sum(line.get("quantity", line.get("qty_done", 0.0)) for line in lines)
        assert done == qty * per[m["product_id"][0]], (m, lines)
        # without the merge one line per write (WRITES); with it, at most the writes since the last merge
        assert 1 <= len(lines) <= MERGE_EVERY, (m["product_id"], len(lines))
    quants = rpc("stock.quant", "search_read", [["product_id", "in", list(per)], ["location_id.usage", "=", "internal"]],
                 fields=["product_id", "reserved_quantity"])
    for product, p in per.items():
        reserved = sum(q["reserved_quantity"] for q in quants if q["product_id"][0] == product)
        assert reserved == qty * p, (product, reserved)
