"""Events whose work center has no open work order wait, in order, instead of becoming dead letters at once."""
from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from gateway import config as config_mod
from gateway.config import OdooSinkConfig
from gateway.events import Event, event_id
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo import OdooClient, OdooSink
from gateway.sinks.odoo.pending import PendingContext
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
        finally:
            await sink.raw_client.close()
        return sink
    return asyncio.run(go())


def _qty(url: str, wo: int) -> float:
    return asyncio.run(_call(url, "mrp.workorder", "read", [[wo]], {"fields": ["qty_producing"]}))[0]["qty_producing"]


def test_an_event_before_its_work_order_waits_and_is_delivered_once_the_order_is_released(odoo, tmp_path):
    wc = _new_workcenter(odoo.url)
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("a", 3, CNC2), _ev("b", 2, CNC1), _ev("c", 4, CNC2)])
    with pytest.raises(PendingContext, match="CNC-02"):
        _pass(odoo.url, store, now=1000.0)
    assert store.cursor("odoo") == 0 and store.dead_letters("odoo") == []
    assert _qty(odoo.url, 1) == 0.0  # nothing overtook the held event, not even another work center's
    with pytest.raises(PendingContext):
        _pass(odoo.url, store, now=1010.0)  # retried, still no order
    wo = _release_order(odoo.url, wc)
    sink = _pass(odoo.url, store, now=1020.0)
    assert sink.stats.delivered == 3 and store.dead_letters("odoo") == [] and store.cursor("odoo") == 3
    assert _qty(odoo.url, wo) == 7.0 and _qty(odoo.url, 1) == 2.0
    assert json.loads(store.get_state("sink/odoo/pending")) == {}
    _pass(odoo.url, store, now=1030.0)  # nothing left, nothing doubled
    assert _qty(odoo.url, wo) == 7.0


def test_after_the_timeout_the_event_is_a_dead_letter_with_the_reason_and_a_restart_keeps_its_clock(odoo, tmp_path):
    wc = _new_workcenter(odoo.url)
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("a", 3, CNC2), _ev("b", 2, CNC1)])
    with pytest.raises(PendingContext):
        _pass(odoo.url, store, now=1000.0)
    first = json.loads(store.get_state("sink/odoo/pending"))
    assert [v["since"] for v in first.values()] == [1000.0]
    with pytest.raises(PendingContext):
        _pass(odoo.url, store, now=1045.0)  # a restart 45 s later: the clock did not start again
    assert json.loads(store.get_state("sink/odoo/pending")) == first
    _pass(odoo.url, store, now=1061.0)      # 61 s after the first failure
    (letter,) = store.dead_letters("odoo")
    assert letter["error"] == "no open work order on work center 'CNC-02' for 60 s" and letter["seq"] == 1
    assert _qty(odoo.url, 1) == 2.0 and store.cursor("odoo") == 2  # the rest went on
    # replayable as any dead letter, once the planner released the order
    wo = _release_order(odoo.url, wc)
    store.replay("odoo")
    _pass(odoo.url, store, now=2000.0)
    assert store.dead_letters("odoo") == [] and _qty(odoo.url, wo) == 3.0


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
            if store.cursor("odoo") == 1:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await task
        return wo
    wo = asyncio.run(go())
    assert store.cursor("odoo") == 1 and _qty(odoo.url, wo) == 5.0 and store.dead_letters("odoo") == []
