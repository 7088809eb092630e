"""A machine's running bit: its first run starts the open work order in Odoo, once."""
from __future__ import annotations

import asyncio

import pytest

from drivers.base import Quality, Sample
from gateway import config as config_mod
from gateway.config import OdooSinkConfig
from gateway.events import Event, event_id
from gateway.rules.build import build
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo import OdooClient, OdooSink
from store.queue import Store

CONFIG = """
[gateway]
id = "gw"
[machines.CNC-01]
work_center = "CNC-01"
[devices.plc]
type = "modbus_tcp"
host = "127.0.0.1"
machine = "CNC-01"
[devices.plc.tags.running]
function = "coil"
address = 0
type = "bool"
[rules.run]
type = "machine_state"
device = "plc"
tag = "running"
debounce = 2
[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1"
"""


def _rule():
    cfg = config_mod.parse(CONFIG)
    return build(cfg.rules["run"], "gw", "CNC-01")


def _feed(rule, readings):
    state, events = None, []
    for value, ts in readings:
        produced, state = rule.apply(state, Sample("plc", "running", value, Quality.GOOD, ts))
        events.extend(produced)
    return events, state


def test_each_debounced_start_of_the_running_bit_is_one_workorder_start_at_its_edge_time():
    events, _ = _feed(_rule(), [(False, 0), (True, 10), (True, 11), (True, 13), (True, 20),
                                (False, 30), (True, 31), (False, 32),     # a 1 s blip: nothing
                                (False, 40), (True, 50), (True, 53)])
    assert [(e.kind, e.ts) for e in events] == [("workorder_start", "1970-01-01T00:00:10.000Z"),
                                                ("workorder_start", "1970-01-01T00:00:50.000Z")]
    assert events[0].context == {"machine": "CNC-01"}
    replayed, _ = _feed(_rule(), [(False, 0), (True, 10), (True, 13)])
    assert replayed[0].id == events[0].id  # a replayed edge has the same id


def test_a_machine_state_rule_with_a_bad_emit_names_it():
    with pytest.raises(config_mod.ConfigError, match="rules.run.emit"):
        config_mod.parse(CONFIG.replace("debounce = 2", "debounce = 2\nemit = \"alarm\""))


@pytest.fixture()
def odoo(tmp_path):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=tmp_path / "odoo.json", api_key="k")
    sb.start()
    yield sb
    sb.stop()


async def _call(url: str, model: str, method: str, args: list, kw: dict | None = None):
    c = OdooClient(url, "sandbox", "admin", "k")
    try:
        return await c.execute_kw(model, method, args, kw)
    finally:
        await c.close()


def _start(key: str) -> dict:
    return Event(id=event_id("gw", "plc/running", key), kind="workorder_start", ts="2026-11-23T07:00:00.000Z",
                 gateway="gw", source={"device": "plc", "tag": "running"}, data={"state": "running"},
                 context={"machine": "CNC-01", "work_center": "CNC-01"}).to_dict()


def _deliver(url: str, store: Store) -> OdooSink:
    async def go():
        sink = OdooSink(OdooSinkConfig("odoo", url, "sandbox", "admin", "k", timeout=5.0, rate=200.0), store)
        try:
            while batch := store.read("odoo", 100):
                await sink.deliver(batch)
        finally:
            await sink.raw_client.close()
        return sink
    return asyncio.run(go())


def _receipts(store: Store) -> dict[str, str]:
    return {item[0]: item[2] for entry in store.journal_entries(1000) for item in entry["items"]}


def test_the_first_run_starts_the_ready_work_order_and_later_runs_leave_it_alone(odoo, tmp_path):
    asyncio.run(_call(odoo.url, "mrp.workorder", "write", [[1], {"state": "ready"}]))
    store = Store(tmp_path / "s", sinks=["odoo"])
    first, second = _start("run:1"), _start("run:2")
    store.append([first])
    _deliver(odoo.url, store)
    (wo,) = asyncio.run(_call(odoo.url, "mrp.workorder", "read", [[1]], {"fields": ["state", "date_start"]}))
    assert wo["state"] == "progress" and wo["date_start"]
    store.append([second])
    _deliver(odoo.url, store)
    receipts = _receipts(store)
    assert receipts[first["id"]] == "mrp.workorder,1 started"
    assert receipts[second["id"]] == "mrp.workorder,1 already progress"
    assert store.dead_letters("odoo") == []


def test_an_order_complete_bit_emits_workorder_finish_once_per_rise():
    rule = build(config_mod.parse(CONFIG.replace("debounce = 2", "debounce = 2\nemit = \"finish\"")).rules["run"],
                 "gw", "CNC-01")
    events, _ = _feed(rule, [(False, 0), (True, 10), (True, 12), (True, 20), (False, 30), (False, 33), (True, 40), (True, 42)])
    assert [(e.kind, e.data) for e in events] == [("workorder_finish", {"state": "complete"})] * 2
    assert events[0].id != _feed(_rule(), [(False, 0), (True, 10), (True, 12)])[0][0].id  # not a start's id


def _finish(key: str) -> dict:
    ev = _start(key)
    return dict(ev, id=event_id("gw", "plc/done", key), kind="workorder_finish", data={"state": "complete"})


def test_a_finish_ends_the_work_order_in_progress_and_a_repeat_leaves_the_next_order_alone(odoo, tmp_path):
    asyncio.run(_call(odoo.url, "mrp.workorder", "write", [[1], {"state": "ready"}]))
    store = Store(tmp_path / "s", sinks=["odoo"])
    start, finish, again = _start("run:1"), _finish("done:1"), _finish("done:2")
    store.append([start, finish])
    _deliver(odoo.url, store)
    (wo,) = asyncio.run(_call(odoo.url, "mrp.workorder", "read", [[1]], {"fields": ["state"]}))
    assert wo["state"] == "done"
    others = asyncio.run(_call(odoo.url, "mrp.workorder", "search_read",
                               [[["workcenter_id.code", "=", "CNC-01"], ["id", "!=", 1]]], {"fields": ["state"]}))
    store.append([again])
    _deliver(odoo.url, store)
    after = asyncio.run(_call(odoo.url, "mrp.workorder", "search_read",
                              [[["workcenter_id.code", "=", "CNC-01"], ["id", "!=", 1]]], {"fields": ["state"]}))
    assert after == others  # the second press finished nothing
    receipts = _receipts(store)
    assert receipts[finish["id"]] == "mrp.workorder,1 finished"
    assert "nothing to finish" in receipts[again["id"]]
    assert store.dead_letters("odoo") == []


def _parts(key: str, qty: float) -> dict:
    return Event(id=event_id("gw", "plc/parts", key), kind="production", ts="2026-11-23T07:00:00.000Z",
                 gateway="gw", source={"device": "plc", "tag": "parts"}, data={"quantity": qty},
                 context={"machine": "CNC-01", "work_center": "CNC-01"}).to_dict()


def test_in_one_batch_a_finish_ends_its_order_after_its_counts_and_before_the_next_orders(odoo, tmp_path):
    asyncio.run(_call(odoo.url, "mrp.workorder", "write", [[1], {"state": "ready"}]))
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_start("run:1"), _parts("p1", 3), _finish("done:1"), _parts("p2", 2)])
    _deliver(odoo.url, store)          # one delivery pass: all four in one batch
    (wo1,) = asyncio.run(_call(odoo.url, "mrp.workorder", "read", [[1]], {"fields": ["state", "qty_producing"]}))
    assert wo1 == {"id": 1, "state": "done", "qty_producing": 3.0}
    # the count after the finish belongs to the next order: none is open yet, so it waits for it
    assert [(h.stored.seq, h.lane) for h in store.held("odoo")] == [(4, "CNC-01")]
    (wc,) = asyncio.run(_call(odoo.url, "mrp.workcenter", "search", [[["code", "=", "CNC-01"]]]))
    mo = asyncio.run(_call(odoo.url, "mrp.production", "create", [{"product_id": 1, "product_qty": 10,
                                                                   "state": "confirmed"}]))
    nxt = asyncio.run(_call(odoo.url, "mrp.workorder", "create", [{"name": "Next", "production_id": mo,
                                                                   "workcenter_id": wc, "state": "ready"}]))

    async def release():
        sink = OdooSink(OdooSinkConfig("odoo", odoo.url, "sandbox", "admin", "k", timeout=5.0, rate=200.0), store)
        try:
            return await sink.release_held()
        finally:
            await sink.raw_client.close()
    assert asyncio.run(release())
    (row,) = asyncio.run(_call(odoo.url, "mrp.workorder", "read", [[nxt]], {"fields": ["qty_producing"]}))
    assert row["qty_producing"] == 2.0 and store.held("odoo") == [] and store.dead_letters("odoo") == []
    (wo1,) = asyncio.run(_call(odoo.url, "mrp.workorder", "read", [[1]], {"fields": ["qty_producing"]}))
    assert wo1["qty_producing"] == 3.0
