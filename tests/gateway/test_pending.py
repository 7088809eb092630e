"""Events whose work center has no open work order wait in that work center's lane, in order, instead of
becoming dead letters at once, while the other work centers' events go on."""
from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from gateway import config as config_mod
from gateway.config import OdooSinkConfig
from gateway.events import Event, event_id
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo import OdooClient, OdooSink
from store.queue import Store

CNC1 = {"machine": "CNC-01", "work_center": "CNC-01", "equipment": "CNC-01"}
CNC2 = {"machine": "CNC-02", "work_center": "CNC-02"}


@pytest.fixture()
def odoo(tmp_path):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=tmp_path / "odoo.json", api_key="k")
    sb.start()
    yield sb
    sb.stop()


def _cfg(url: str, timeout: float = 60.0) -> OdooSinkConfig:
    return OdooSinkConfig("odoo", url, "sandbox", "admin", "k", timeout=5.0, rate=200.0, pending_timeout=timeout)


def _ev(key: str, qty: float, ctx: dict) -> dict:
    return Event(id=event_id("gw", "plc/parts", key), kind="production", ts="2026-11-23T07:00:00.000Z",
                 gateway="gw", source={"device": "plc", "tag": "parts"}, data={"quantity": qty},
                 context=dict(ctx)).to_dict()


async def _call(url: str, model: str, method: str, args: list, kw: dict | None = None):
    c = OdooClient(url, "sandbox", "admin", "k")
    try:
        return await c.execute_kw(model, method, args, kw)
    finally:
        await c.close()


def _new_workcenter(url: str) -> int:
    return asyncio.run(_call(url, "mrp.workcenter", "create", [{"name": "CNC-02 Machining", "code": "CNC-02"}]))


async def _release(url: str, wc: int) -> int:
    """A planner releases a new manufacturing order with its work order on `wc`."""
    mo = await _call(url, "mrp.production", "create", [{"product_id": 1, "product_qty": 100, "state": "confirmed"}])
    return await _call(url, "mrp.workorder", "create", [{"name": "Machining 2", "production_id": mo,
                                                          "workcenter_id": wc, "state": "ready"}])


def _release_order(url: str, wc: int) -> int:
    return asyncio.run(_release(url, wc))


def _pass(url: str, store: Store, now: float, timeout: float = 60.0) -> OdooSink:
    """One delivery pass by a freshly started sink (a restart each time) at clock `now`."""
    async def go():
        sink = OdooSink(_cfg(url, timeout), store, clock=lambda: now)
        try:
            while batch := store.read("odoo", 100):
                await sink.deliver(batch)
            await sink.release_held()
        finally:
            await sink.raw_client.close()
        return sink
    return asyncio.run(go())


def _qty(url: str, wo: int) -> float:
    return asyncio.run(_call(url, "mrp.workorder", "read", [[wo]], {"fields": ["qty_producing"]}))[0]["qty_producing"]


def _held(store: Store) -> list[tuple[int, str]]:
    return [(h.stored.seq, h.lane) for h in store.held("odoo")]


def test_an_event_before_its_work_order_waits_in_its_lane_while_other_work_centers_go_on(odoo, tmp_path):
    wc = _new_workcenter(odoo.url)
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("a", 3, CNC2), _ev("b", 2, CNC1), _ev("c", 4, CNC2)])
    sink = _pass(odoo.url, store, now=1000.0)
    assert _qty(odoo.url, 1) == 2.0, "CNC-01 does not wait for CNC-02's order"
    assert _held(store) == [(1, "CNC-02"), (3, "CNC-02")] and sink.stats.delivered == 1
    assert store.cursor("odoo") == 3 and store.dead_letters("odoo") == [] and store.backlog("odoo") == 2
    assert store.stats()["sinks"]["odoo"]["held"] == 2
    _pass(odoo.url, store, now=1010.0)  # retried (a restart), still no order
    assert _held(store) == [(1, "CNC-02"), (3, "CNC-02")]
    wo = _release_order(odoo.url, wc)
    sink = _pass(odoo.url, store, now=1020.0)
    assert sink.stats.delivered == 2 and store.dead_letters("odoo") == [] and _held(store) == []
    assert _qty(odoo.url, wo) == 7.0 and _qty(odoo.url, 1) == 2.0 and store.backlog("odoo") == 0
    delivered = [item[1] for e in store.journal_entries() if e["op"] == "delivered" for item in e["items"]]
    assert delivered == [2, 1, 3]
    _pass(odoo.url, store, now=1030.0)  # nothing left, nothing doubled
    assert _qty(odoo.url, wo) == 7.0


def test_a_lane_keeps_its_order_a_later_event_waits_behind_a_held_one_even_once_the_order_exists(odoo, tmp_path):
    wc = _new_workcenter(odoo.url)
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("a", 3, CNC2)])
    _pass(odoo.url, store, now=1000.0)
    wo = _release_order(odoo.url, wc)
    store.append([_ev("d", 5, CNC2)])

    async def deliver_only():
        sink = OdooSink(_cfg(odoo.url), store, clock=lambda: 1005.0)
        try:
            await sink.deliver(store.read("odoo", 100))
        finally:
            await sink.raw_client.close()
    asyncio.run(deliver_only())
    assert _held(store) == [(1, "CNC-02"), (2, "CNC-02")], "d does not overtake a"
    _pass(odoo.url, store, now=1010.0)
    assert _held(store) == [] and _qty(odoo.url, wo) == 8.0
    delivered = [item[1] for e in store.journal_entries() if e["op"] == "delivered" for item in e["items"]]
    assert delivered == [1, 2]


def test_a_finish_behind_held_counts_waits_with_them_and_ends_the_order_they_go_to(odoo, tmp_path):
    wc = _new_workcenter(odoo.url)
    store = Store(tmp_path / "s", sinks=["odoo"])
    finish = dict(_ev("f", 0, CNC2), id=event_id("gw", "plc/done", "f"), kind="workorder_finish",
                  data={"state": "complete"})
    store.append([_ev("a", 3, CNC2), finish])
    _pass(odoo.url, store, now=1000.0)
    held = store.held("odoo")
    assert [(h.stored.event["kind"], h.reason) for h in held] == [
        ("production", "waits for an open work order on work center 'CNC-02'"),
        ("workorder_finish", "behind held events of work center 'CNC-02'")]
    wo = _release_order(odoo.url, wc)
    asyncio.run(_call(odoo.url, "mrp.workorder", "button_start", [[wo]]))
    _pass(odoo.url, store, now=1010.0)
    (row,) = asyncio.run(_call(odoo.url, "mrp.workorder", "read", [[wo]], {"fields": ["state", "qty_producing"]}))
    assert row["qty_producing"] == 3.0 and row["state"] == "done" and _held(store) == []


def test_after_the_timeout_the_event_is_a_dead_letter_with_the_reason_and_a_restart_keeps_its_clock(odoo, tmp_path):
    wc = _new_workcenter(odoo.url)
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("a", 3, CNC2), _ev("b", 2, CNC1)])
    _pass(odoo.url, store, now=1000.0)
    assert [h.since for h in store.held("odoo")] == [1000.0] and _qty(odoo.url, 1) == 2.0
    _pass(odoo.url, store, now=1045.0)      # a restart 45 s later: the clock did not start again
    assert [h.since for h in store.held("odoo")] == [1000.0]
    _pass(odoo.url, store, now=1061.0)      # 61 s after it was first held
    (letter,) = store.dead_letters("odoo")
    assert letter["error"] == "no open work order on work center 'CNC-02' for 60 s" and letter["seq"] == 1
    assert _held(store) == [] and store.backlog("odoo") == 0
    # replayed while there is still no order: held again, then delivered once the planner released it
    store.replay("odoo")
    _pass(odoo.url, store, now=2000.0)
    assert _held(store) == [(1, "CNC-02")] and store.dead_letters("odoo")[0]["replayed"]
    wo = _release_order(odoo.url, wc)
    _pass(odoo.url, store, now=2010.0)
    assert store.dead_letters("odoo") == [] and _held(store) == [] and _qty(odoo.url, wo) == 3.0


def test_an_unmapped_machine_stays_an_immediate_dead_letter(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("a", 3, {"machine": "CNC-09"}), _ev("b", 1, {"machine": "CNC-09", "work_center": "NOPE"})])
    _pass(odoo.url, store, now=1000.0)
    errors = [d["error"] for d in store.dead_letters("odoo")]
    assert "is not mapped to a work center" in errors[0] and "no work center with code 'NOPE'" in errors[1]


def test_pending_timeout_is_a_sink_setting_with_a_ten_minute_default():
    base = """
[gateway]
id = "gw"
site = "plant"
[sinks.odoo]
type = "odoo"
url = "http://127.0.0.1:8069"
database = "db"
login = "admin"
api_key = "k"
"""
    assert config_mod.parse(base).sinks["odoo"].pending_timeout == 600.0
    assert config_mod.parse(base + "pending_timeout = 30\n").sinks["odoo"].pending_timeout == 30.0
    with pytest.raises(config_mod.ConfigError, match="sinks.odoo.pending_timeout"):
        config_mod.parse(base + "pending_timeout = -1\n")


def test_the_supervised_sink_retries_a_held_event_until_its_order_appears(odoo, tmp_path):
    wc = _new_workcenter(odoo.url)
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("a", 5, CNC2)])

    async def go():
        sink = OdooSink(replace(_cfg(odoo.url), retry_cap=1.0), store)
        stop = asyncio.Event()
        task = asyncio.create_task(sink.run(stop))
        for _ in range(200):
            if sink.stats.state == "pending":
                break
            await asyncio.sleep(0.02)
        assert sink.stats.state == "pending"
        wo = await _release(odoo.url, wc)
        for _ in range(300):
            if not store.held("odoo") and sink.stats.state != "pending":
                break
            await asyncio.sleep(0.02)
        stop.set()
        await task
        return wo
    wo = asyncio.run(go())
    assert store.held("odoo") == [] and _qty(odoo.url, wo) == 5.0 and store.dead_letters("odoo") == []
