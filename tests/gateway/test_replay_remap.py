"""A dead letter caused by a wrong machine mapping is fixed by correcting the mapping and replaying it."""
from __future__ import annotations

import asyncio

import pytest

from gateway.config import MachineConfig, OdooSinkConfig
from gateway.events import Event, event_id
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo import OdooClient, OdooSink
from store.queue import Store


@pytest.fixture()
def odoo():
    sb = OdooSandbox(host="127.0.0.1", port=0, api_key="k")
    sb.start()
    yield sb
    sb.stop()


def _production(qty: int, work_center: str) -> dict:
    return Event(id=event_id("gw", "plc/parts", f"q:{qty}"), kind="production", ts="2026-11-28T07:00:00.000Z",
                 gateway="gw", source={"device": "plc", "tag": "parts"}, data={"quantity": 1, "total": qty},
                 context={"machine": "CNC-01", "work_center": work_center}).to_dict()


async def _qty(url: str) -> float:
    c = OdooClient(url, "sandbox", "admin", "k")
    try:
        wcs = await c.execute_kw("mrp.workcenter", "search", [[["code", "=", "CNC-01"]]])
        wos = await c.execute_kw("mrp.workorder", "search_read", [[["workcenter_id", "in", wcs]]],
                                 {"fields": ["qty_producing"]})
        return sum(float(w["qty_producing"]) for w in wos)
    finally:
        await c.close()


def test_a_replay_uses_the_mapping_as_corrected_and_normal_delivery_keeps_the_recorded_one(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    mapping = {"CNC-01": MachineConfig("CNC-01", work_center="CNC-99")}  # a typo in [machines]
    store.append([_production(1, "CNC-99"), _production(2, "CNC-99")])

    async def deliver() -> None:
        sink = OdooSink(OdooSinkConfig("odoo", odoo.url, "sandbox", "admin", "k", timeout=5.0, rate=200.0),
                        store, machines=lambda: mapping)
        try:
            while batch := store.read("odoo", 100):
                await sink.deliver(batch)
        finally:
            await sink.raw_client.close()

    asyncio.run(deliver())
    letters = store.dead_letters("odoo")
    assert len(letters) == 2 and all("CNC-99" in x["error"] for x in letters)
    # the typo is fixed in the configuration, then the person replays
    mapping["CNC-01"] = MachineConfig("CNC-01", work_center="CNC-01")
    assert store.replay("odoo", who="test") == 2
    asyncio.run(deliver())
    assert store.dead_letters("odoo") == []
    assert asyncio.run(_qty(odoo.url)) == 2.0
    # the stored, signed events were not rewritten
    assert all(e["event"]["context"]["work_center"] == "CNC-99" for e in letters)
