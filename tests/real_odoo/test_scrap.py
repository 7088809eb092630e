"""Merged scrap against each Odoo: the scrap events of a batch make one scrap per component with their
summed quantity, exact in Odoo's books, and exactly once across a gateway that dies between Odoo's commit
and its acknowledgement.

The Odoo sink runs in this process (its delivery pass, as the gateway runs it) so that the crash can be
placed on one call: the call reaches Odoo and commits there, and its answer is lost.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gateway.config import OdooSinkConfig
from gateway.errors import DeliveryError
from gateway.events import Event, event_id
from gateway.sinks.odoo import OdooSink
from store.queue import Store
from tests.real_odoo.harness import OdooDb
from tests.real_odoo.masterdata import COMPONENTS, MANUAL, prepare

CTX = {"machine": "CNC-01", "work_center": "CNC-01", "equipment": "CNC-01"}


def _scrap(key: str, qty: int) -> dict:
    return Event(id=event_id("gw", "cnc01/scrap", key), kind="scrap", ts="2026-11-23T07:00:00.000Z", gateway="gw",
                 source={"device": "cnc01", "tag": "scrap"}, data={"quantity": qty}, context=dict(CTX)).to_dict()


class _AnswerLost:
    """The `nth` call of `method` (from 0) commits in Odoo and its answer is lost."""

    def __init__(self, inner, method: str, nth: int) -> None:
        self.inner, self.method, self.left = inner, method, nth

    async def execute_kw(self, model, method, args, kwargs=None):
        result = await self.inner.execute_kw(model, method, args, kwargs)
        if method == self.method:
            self.left -= 1
            if self.left < 0:
                raise DeliveryError(f"connection lost after Odoo committed {model}.{method} (test)")
        return result

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _cfg(odoo: OdooDb) -> OdooSinkConfig:
    c = odoo.sink_config()
    return OdooSinkConfig("odoo", c["url"], c["database"], c["login"], c["api_key"], protocol=c["protocol"],
                          timeout=60.0, rate=1000.0)


async def _pass(cfg: OdooSinkConfig, store: Store, lose: tuple[str, int] | None = None) -> None:
    sink = OdooSink(cfg, store)
    if lose:
        sink.client.inner = _AnswerLost(sink.client.inner, *lose)
    try:
        while batch := store.read("odoo", 100):
            await sink.deliver(batch)
    finally:
        await sink.raw_client.close()


@pytest.mark.parametrize("lose", [("load", 0), ("action_validate", 1)])
def test_merged_scrap_is_exact_and_exactly_once_across_a_crash_before_the_ack(odoo: OdooDb, tmp_path: Path,
                                                                             lose: tuple[str, int]) -> None:
    plant = prepare(odoo)
    rpc = odoo.rpc()
    cfg = _cfg(odoo)
    store = Store(tmp_path / "s", sinks=["odoo"])
    first = [_scrap(f"a{i}", q) for i, q in enumerate((2, 1, 3, 1))]
    store.append(first)
    with pytest.raises(DeliveryError):
        asyncio.run(_pass(cfg, store, lose))
    assert store.backlog("odoo") == len(first)  # the gateway died before acknowledging anything
    later = [_scrap(f"b{i}", q) for i, q in enumerate((4, 1))]
    store.append(later)
    asyncio.run(_pass(cfg, store))
    assert store.backlog("odoo") == 0 and store.dead_letters("odoo") == []
    # the same events once more, alone (a smaller batch after a restart): found, not scrapped again
    again = Store(tmp_path / "again", sinks=["odoo"])
    again.append(first[1:3])
    asyncio.run(_pass(cfg, again))
    assert again.backlog("odoo") == 0 and again.dead_letters("odoo") == []

    parts = sum(e["data"]["quantity"] for e in first + later)
    scraps = rpc("stock.scrap", "search_read", [["production_id", "=", plant.production]],
                 fields=["scrap_qty", "state", "product_id", "origin"])
    assert scraps and all(s["state"] == "done" for s in scraps), scraps
    for code, per in [(c[1], c[2]) for c in COMPONENTS] + [(MANUAL[1], MANUAL[2])]:
        mine = [s for s in scraps if s["product_id"][0] == plant.components[code]]
        assert sum(s["scrap_qty"] for s in mine) == parts * per, (code, mine)
        named = sorted(eid for s in mine for eid in s["origin"].split()[1:])
        assert named == sorted(e["id"] for e in first + later), (code, mine)  # each event once per component
        assert len(mine) <= 2  # merged: the crashed batch's scrap and the next one's, not one per event
    xids = rpc("ir.model.data", "search_read", [["module", "=", "linebridge"], ["model", "=", "stock.scrap"]],
               fields=["res_id"])
    assert sorted(x["res_id"] for x in xids) == sorted(s["id"] for s in scraps)  # one external id each
    finished = rpc("product.product", "read", [plant.product], fields=["qty_available"])[0]["qty_available"]
    assert finished >= 0
