"""Each event kind lands in Odoo as a planner expects, exactly once, against the Odoo sandbox."""
from __future__ import annotations

import asyncio

import pytest

from gateway.config import AlarmCode, OdooSinkConfig
from gateway.errors import DeliveryError
from gateway.events import Event, event_id
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo import OdooClient, OdooSink
from store.queue import Store

CTX = {"machine": "CNC-01", "work_center": "CNC-01", "equipment": "CNC-01"}


@pytest.fixture()
def odoo(tmp_path):
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=tmp_path / "odoo.json", api_key="k")
    sb.start()
    yield sb
    sb.stop()


def _cfg(url: str, **kw) -> OdooSinkConfig:
    return OdooSinkConfig("odoo", url, "sandbox", "admin", "k", timeout=5.0, rate=200.0,
                          alarm_codes={101: AlarmCode("Spindle overload", "3", "Equipment Failure")}, **kw)


def _ev(kind: str, key: str, data: dict, ts: str = "2026-11-23T07:00:00.000Z", ctx: dict | None = None) -> dict:
    return Event(id=event_id("gw", "cnc01/x", key), kind=kind, ts=ts, gateway="gw",
                 source={"device": "cnc01", "tag": "x"}, data=data, context=dict(ctx or CTX)).to_dict()


async def _call(url: str, model: str, method: str, args: list, kw: dict | None = None):
    c = OdooClient(url, "sandbox", "admin", "k")
    try:
        return await c.execute_kw(model, method, args, kw)
    finally:
        await c.close()


def _deliver_all(url: str, store: Store, times: int = 1, **kw) -> OdooSink:
    async def go():
        sink = OdooSink(_cfg(url, **kw), store)
        for _ in range(times):
            while batch := store.read("odoo", 100):
                await sink.deliver(batch)
        await sink.raw_client.close()
        return sink
    return asyncio.run(go())


def test_scrap_of_a_bad_part_scraps_its_components_from_the_orders_location(odoo, tmp_path):
    """As Odoo's own MO scrap during production: the open components, per part, booked on the order;
    the scrap events of one batch make one scrap per component with their summed quantity."""
    store = Store(tmp_path / "s", sinks=["odoo"])
    s1, s2 = _ev("scrap", "s1", {"quantity": 2}), _ev("scrap", "s2", {"quantity": 1})
    store.append([s1, s2])
    sink = _deliver_all(odoo.url, store)
    rows = asyncio.run(_call(odoo.url, "stock.scrap", "search_read", [[]],
                             {"fields": ["scrap_qty", "state", "production_id", "workorder_id", "product_id",
                                         "location_id", "origin"]}))
    got = sorted((r["product_id"][1], r["scrap_qty"]) for r in rows)
    assert got == [("[SCREW-M4] Screw M4", 12.0), ("[STEEL-BAR] Steel Bar", 3.0)]
    assert all(r["state"] == "done" and r["production_id"][1] == "WH/MO/00001" and r["workorder_id"]
               and r["location_id"][1] == "WH/Stock" and r["origin"] == f"linebridge {s1['id']} {s2['id']}"
               for r in rows)
    assert sink.stats.delivered == 2 and sink.stats.dead_lettered == 0
    assert sink.client.calls <= 12  # one load for both scraps, not one per event
    # delivered again (a crash before the acknowledgement): the same two scraps, found by their origin
    again = Store(tmp_path / "again", sinks=["odoo"])
    again.append([s1, s2])
    assert _deliver_all(odoo.url, again).stats.delivered == 2
    assert len(asyncio.run(_call(odoo.url, "stock.scrap", "search_read", [[]], {"fields": ["id"]}))) == 2


class _AnswerLost:
    """An Odoo client whose `nth` call of `method` (from 0) reaches Odoo and commits there, but its answer
    is lost (the connection drops): what a gateway killed between Odoo's commit and its ack sees."""

    def __init__(self, inner, method: str, nth: int) -> None:
        self.inner, self.method, self.left = inner, method, nth

    async def execute_kw(self, model, method, args, kwargs=None):
        result = await self.inner.execute_kw(model, method, args, kwargs)
        if method == self.method:
            self.left -= 1
            if self.left < 0:
                raise DeliveryError("connection lost after Odoo committed (test)")
        return result

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _scraps(url: str) -> dict[str, float]:
    rows = asyncio.run(_call(url, "stock.scrap", "search_read", [[["state", "=", "done"]]],
                             {"fields": ["scrap_qty", "product_id"]}))
    out: dict[str, float] = {}
    for r in rows:
        out[r["product_id"][1]] = out.get(r["product_id"][1], 0.0) + r["scrap_qty"]
    return out


@pytest.mark.parametrize("crash_at", [("load", 0), ("action_validate", 0), ("action_validate", 1)])
def test_a_merged_scrap_is_exactly_once_across_a_crash_before_the_acknowledgement(odoo, tmp_path, crash_at):
    """Odoo made (and maybe validated) the merged scraps, the gateway died before acknowledging:
    the next pass, with more scrap events behind them, scraps every event once and the sums are exact."""
    store = Store(tmp_path / "s", sinks=["odoo"])
    first = [_ev("scrap", f"a{i}", {"quantity": q}) for i, q in enumerate((2, 1, 3))]
    store.append(first)

    async def crash():
        sink = OdooSink(_cfg(odoo.url), store)
        sink.client.inner = _AnswerLost(sink.client.inner, *crash_at)
        with pytest.raises(DeliveryError):
            await sink.deliver(store.read("odoo", 100))
        await sink.raw_client.close()
    asyncio.run(crash())
    assert store.backlog("odoo") == 3  # nothing acknowledged
    store.append([_ev("scrap", "b0", {"quantity": 4})])
    sink = _deliver_all(odoo.url, store)
    assert store.backlog("odoo") == 0 and sink.stats.dead_lettered == 0
    assert _scraps(odoo.url) == {"[STEEL-BAR] Steel Bar": 10.0, "[SCREW-M4] Screw M4": 40.0}
    rows = asyncio.run(_call(odoo.url, "stock.scrap", "search_read", [[]], {"fields": ["origin", "state"]}))
    assert all(r["state"] == "done" for r in rows)
    # each event named by exactly one scrap per component
    named = sorted(eid for r in rows for eid in r["origin"].split()[1:])
    assert named == sorted(2 * [e["id"] for e in first] + 2 * [_ev("scrap", "b0", {})["id"]])
    # and one event coming back alone (a smaller batch) is acknowledged with its scraps, not scrapped again
    again = Store(tmp_path / "again", sinks=["odoo"])
    again.append([first[1]])
    assert _deliver_all(odoo.url, again).stats.delivered == 1
    assert _scraps(odoo.url) == {"[STEEL-BAR] Steel Bar": 10.0, "[SCREW-M4] Screw M4": 40.0}


def test_scrap_while_the_finished_product_has_no_stock_needs_no_wizard_and_no_negative_stock(odoo, tmp_path):
    """Real Odoo 17: the finished product has no stock while its order runs; scrapping it asks the wizard."""
    asyncio.run(_call(odoo.url, "stock.quant", "write", [[1], {"quantity": 0.0}]))  # PART-01's 1000 on hand
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("scrap", "s1", {"quantity": 3})])
    sink = _deliver_all(odoo.url, store)
    assert sink.stats.dead_lettered == 0 and store.dead_letters("odoo") == []
    quants = asyncio.run(_call(odoo.url, "stock.quant", "search_read", [[]], {"fields": ["quantity"]}))
    assert min(q["quantity"] for q in quants) >= 0
    # the old behaviour, kept as an explicit option: the finished product, a dead letter on the wizard
    store.append([_ev("scrap", "s2", {"quantity": 1})])
    _deliver_all(odoo.url, store, scrap_mode="validate")
    (letter,) = store.dead_letters("odoo")
    assert "stock.warn.insufficient.qty.scrap" in letter["error"]


def test_scrap_odoo_cannot_validate_is_dead_lettered_with_the_reason_and_replays_to_the_same_record(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("scrap", "big", {"quantity": 5000})])  # more than the 1000 parts on hand
    _deliver_all(odoo.url, store, scrap_mode="validate")
    (letter,) = store.dead_letters("odoo")
    assert "did not validate scrap" in letter["error"] and "stock.warn.insufficient.qty.scrap" in letter["error"]
    store.replay("odoo", kind="scrap")
    _deliver_all(odoo.url, store, scrap_mode="validate")
    rows = asyncio.run(_call(odoo.url, "stock.scrap", "search_read", [[]], {"fields": ["state"]}))
    assert len(rows) == 1 and rows[0]["state"] == "draft"  # the same draft, not a second scrap
    assert store.dead_letters("odoo")[0]["attempts"] == 2


def test_downtime_opens_and_closes_a_productivity_log_with_the_codes_loss(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    start = _ev("downtime_start", "d1", {"code": 101})
    end = _ev("downtime_end", "d1e", {"code": 101, "start_event_id": start["id"], "duration_s": 7200},
              ts="2026-11-23T09:00:00.000Z")
    store.append([start])
    _deliver_all(odoo.url, store)
    (log,) = asyncio.run(_call(odoo.url, "mrp.workcenter.productivity", "search_read", [[]],
                               {"fields": ["date_start", "date_end", "loss_id", "loss_type", "workcenter_id"]}))
    assert log["date_start"] == "2026-11-23 07:00:00" and log["date_end"] is False
    assert log["loss_id"][1] == "Equipment Failure" and log["loss_type"] == "availability"
    wc = asyncio.run(_call(odoo.url, "mrp.workcenter", "read", [[log["workcenter_id"][0]]],
                           {"fields": ["working_state"]}))
    assert wc[0]["working_state"] == "blocked"
    store.append([end])
    _deliver_all(odoo.url, store)
    (log,) = asyncio.run(_call(odoo.url, "mrp.workcenter.productivity", "search_read", [[]],
                               {"fields": ["date_end", "duration"]}))
    assert log["date_end"] == "2026-11-23 09:00:00"


class _Counted:
    """An Odoo client that counts its calls per `model.method`."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, {}

    async def execute_kw(self, model, method, args, kwargs=None):
        self.calls[f"{model}.{method}"] = self.calls.get(f"{model}.{method}", 0) + 1
        return await self.inner.execute_kw(model, method, args, kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_backlog_of_downtimes_and_alarms_costs_a_few_calls_not_one_per_event(odoo, tmp_path):
    """Ten alarms with their downtimes, and one downtime still open from before: the logs are made
    closed in one `load`, the open one closed in one more, the requests' lookup is one search."""
    store = Store(tmp_path / "s", sinks=["odoo"])
    old = _ev("downtime_start", "old", {"code": 101})
    store.append([old])
    _deliver_all(odoo.url, store)
    events = [_ev("downtime_end", "olde", {"code": 101, "start_event_id": old["id"], "duration_s": 60},
                  ts="2026-11-23T07:01:00.000Z")]
    for i in range(10):
        start = _ev("downtime_start", f"d{i}", {"code": 101 + i % 3}, ts=f"2026-11-23T08:{i:02d}:00.000Z")
        events += [_ev("alarm", f"a{i}", {"code": 101 + i % 3, "state": "raised"}), start,
                   _ev("downtime_end", f"e{i}", {"code": 101 + i % 3, "start_event_id": start["id"],
                                                 "duration_s": 30}, ts=f"2026-11-23T08:{i:02d}:30.000Z")]
    store.append(events)

    async def go():
        sink = OdooSink(_cfg(odoo.url), store)
        counted = sink.client.inner = _Counted(sink.client.inner)
        await sink.deliver(store.read("odoo", 100))
        await sink.raw_client.close()
        return sink, counted.calls
    sink, calls = asyncio.run(go())
    assert store.backlog("odoo") == 0 and sink.stats.dead_lettered == 0
    logs = asyncio.run(_call(odoo.url, "mrp.workcenter.productivity", "search_read", [[]],
                             {"fields": ["date_start", "date_end"], "order": "id"}))
    assert [(r["date_start"], r["date_end"]) for r in logs] == \
        [("2026-11-23 07:00:00", "2026-11-23 07:01:00")] + \
        [(f"2026-11-23 08:{i:02d}:00", f"2026-11-23 08:{i:02d}:30") for i in range(10)]
    requests = asyncio.run(_call(odoo.url, "maintenance.request", "search_read", [[]], {"fields": ["name"]}))
    assert len(requests) == 3  # one open request per code
    assert calls.get("mrp.workcenter.productivity.load") == 2 and "mrp.workcenter.productivity.write" not in calls
    assert calls.get("maintenance.request.search_read") == 1 and calls.get("maintenance.request.load") == 1


def test_an_end_whose_start_could_not_be_delivered_in_the_same_pass_is_a_dead_letter_too(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    start = _ev("downtime_start", "x", {"code": 101}, ctx={**CTX, "work_center": "NOPE"})
    end = _ev("downtime_end", "xe", {"code": 101, "start_event_id": start["id"], "duration_s": 5},
              ctx={**CTX, "work_center": "NOPE"})
    store.append([start, end])
    _deliver_all(odoo.url, store)
    letters = store.dead_letters("odoo")
    assert sorted(d["event"]["kind"] for d in letters) == ["downtime_end", "downtime_start"]
    assert asyncio.run(_call(odoo.url, "mrp.workcenter.productivity", "search_read", [[]], {"fields": ["id"]})) == []


def test_a_downtime_start_delivered_twice_opens_one_log(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    start = _ev("downtime_start", "d1", {"code": 7})
    store.append([start])
    batch = store.read("odoo")

    async def twice():
        sink = OdooSink(_cfg(odoo.url), store)
        real_ack, store.ack = store.ack, lambda *a, **k: None  # crash before the ack ...
        await sink.deliver(batch)
        store.ack = real_ack
        await sink.deliver(batch)  # ... and the restarted gateway delivers again
        await sink.raw_client.close()
    asyncio.run(twice())
    logs = asyncio.run(_call(odoo.url, "mrp.workcenter.productivity", "search", [[]]))
    assert len(logs) == 1


def test_an_alarm_opens_one_request_per_equipment_and_code_while_it_is_open(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("alarm", "a1", {"code": 101}), _ev("alarm", "a2", {"code": 101}),
                  _ev("alarm", "a3", {"code": 102})])
    _deliver_all(odoo.url, store)
    store.append([_ev("alarm", "a4", {"code": 101})])  # a later signal, the request still open
    _deliver_all(odoo.url, store)
    reqs = asyncio.run(_call(odoo.url, "maintenance.request", "search_read", [[]],
                             {"fields": ["name", "priority", "maintenance_type", "equipment_id", "stage_id"],
                              "order": "id asc"}))
    assert [r["name"] for r in reqs] == ["[101] Spindle overload on CNC-01", "[102] Alarm on CNC-01"]
    assert reqs[0]["priority"] == "3" and reqs[0]["maintenance_type"] == "corrective"
    assert reqs[0]["equipment_id"][1] == "CNC-01/CNC-01"  # Odoo shows equipment as name/serial
    # once the request is closed, the next alarm opens a new one
    done = asyncio.run(_call(odoo.url, "maintenance.stage", "search", [[["done", "=", True]]]))
    asyncio.run(_call(odoo.url, "maintenance.request", "write", [[reqs[0]["id"]], {"stage_id": done[0]}]))
    store.append([_ev("alarm", "a5", {"code": 101})])
    _deliver_all(odoo.url, store)
    assert len(asyncio.run(_call(odoo.url, "maintenance.request", "search", [[]]))) == 3
    refs = {item[0]: item[2] for e in store.journal_entries() for item in e["items"]}
    first = f"maintenance.request,{reqs[0]['id']}"
    assert [refs[event_id("gw", "cnc01/x", k)] for k in ("a1", "a2", "a4")] == [first] * 3


def test_an_alarm_on_an_unmapped_machine_is_dead_lettered_and_the_rest_goes_through(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("alarm", "x", {"code": 5}, ctx={"machine": "LATHE-9", "work_center": "CNC-01"}),
                  _ev("alarm", "y", {"code": 6})])
    _deliver_all(odoo.url, store)
    (letter,) = store.dead_letters("odoo")
    assert "is not mapped to an equipment" in letter["error"]
    assert len(asyncio.run(_call(odoo.url, "maintenance.request", "search", [[]]))) == 1


def test_a_load_with_one_bad_row_dead_letters_only_that_row_and_loads_the_others(odoo, tmp_path):
    from gateway.sinks.odoo.batch import Outcome, load_rows
    from store.queue import Stored
    rows = [(Stored(i, {"id": f"evt_{i}"}), [f"linebridge.evt_{i}", f"row {i}", t])
            for i, t in enumerate(["corrective", "emergency", "preventive"])]

    async def go():
        client = OdooClient(odoo.url, "sandbox", "admin", "k")
        out = Outcome()
        try:
            created = await load_rows(client, "maintenance.request", ["id", "name", "maintenance_type"], rows, out)
        finally:
            await client.close()
        return created, out
    created, out = asyncio.run(go())
    assert sorted(created) == ["evt_0", "evt_2"]
    ((stored, error),) = out.dead
    assert stored.event["id"] == "evt_1" and "Value 'emergency' not found in selection field" in error


def test_auto_finish_closes_the_order_once_its_count_is_acknowledged_and_only_then(odoo, tmp_path):
    from dataclasses import replace
    asyncio.run(_call(odoo.url, "mrp.production", "write", [[1], {"product_qty": 5}]))
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("production", "p1", {"quantity": 3}), _ev("production", "p2", {"quantity": 2})])
    cfg = replace(_cfg(odoo.url), auto_finish=True, pending_timeout=0)  # the extra part: dead letter at once

    async def go():
        sink = OdooSink(cfg, store)
        batch = store.read("odoo")
        def power_cut(*args, **kwargs):
            raise ConnectionAbortedError("power cut before the acknowledgement")
        real_ack, store.ack = store.ack, power_cut
        with pytest.raises(ConnectionAbortedError):
            await sink.deliver(batch)  # the count is not acknowledged: nothing may be finished yet
        state_before = await _call(odoo.url, "mrp.production", "read", [[1]], {"fields": ["state"]})
        store.ack = real_ack
        sink = OdooSink(cfg, store)  # the restarted gateway
        await sink.deliver(store.read("odoo"))
        store.append([_ev("production", "p3", {"quantity": 1})])  # a part after the order is done
        await sink.deliver(store.read("odoo"))
        await sink.raw_client.close()
        return state_before

    before = asyncio.run(go())
    assert before[0]["state"] == "progress"
    mo = asyncio.run(_call(odoo.url, "mrp.production", "read", [[1]], {"fields": ["state", "qty_producing"]}))
    wo = asyncio.run(_call(odoo.url, "mrp.workorder", "read", [[1]], {"fields": ["state"]}))
    assert mo[0]["state"] == "done" and mo[0]["qty_producing"] == 5.0 and wo[0]["state"] == "done"
    (letter,) = store.dead_letters("odoo")  # the extra part waits for a person: no open work order
    assert "no open work order on work center 'CNC-01'" in letter["error"]


def test_scrap_mode_do_scrap_scraps_what_the_machine_reported_despite_odoos_stock(odoo, tmp_path):
    from dataclasses import replace
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("scrap", "big", {"quantity": 5000})])
    cfg = replace(_cfg(odoo.url), scrap_mode="do_scrap")

    async def go():
        sink = OdooSink(cfg, store)
        await sink.deliver(store.read("odoo"))
        await sink.raw_client.close()
    asyncio.run(go())
    rows = asyncio.run(_call(odoo.url, "stock.scrap", "search_read", [[]], {"fields": ["state", "scrap_qty"]}))
    assert [(r["state"], r["scrap_qty"]) for r in rows] == [("done", 5000.0)] and store.dead_letters() == []


def test_a_suspect_counter_jump_waits_for_a_person_and_a_replay_posts_it(odoo, tmp_path):
    store = Store(tmp_path / "s", sinks=["odoo"])
    store.append([_ev("production", "ok", {"quantity": 4}),
                  _ev("production", "glitch", {"quantity": 59_890, "suspect": "59890 parts in 1.0 s exceeds max_rate 5/s"}),
                  _ev("production", "ok2", {"quantity": 1})])
    _deliver_all(odoo.url, store)
    wo = asyncio.run(_call(odoo.url, "mrp.workorder", "read", [[1]], {"fields": ["qty_producing"]}))
    (letter,) = store.dead_letters("odoo")
    assert wo[0]["qty_producing"] == 5.0 and "implausible counter jump held for a person" in letter["error"]
    store.replay("odoo", kind="production")  # a person checked the machine: the parts were real
    _deliver_all(odoo.url, store)
    wo = asyncio.run(_call(odoo.url, "mrp.workorder", "read", [[1]], {"fields": ["qty_producing"]}))
    assert wo[0]["qty_producing"] == 59_895.0 and store.dead_letters("odoo") == []
