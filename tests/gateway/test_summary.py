"""One production_summary per machine and shift, exactly once across restarts, reconciled with Odoo."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

import pytest

from drivers.base import Quality, Sample
from gateway import config as config_mod
from gateway.config import OdooSinkConfig
from gateway.context import ContextStore
from gateway.events import Event, event_id
from gateway.pipeline import DevicePipeline, IntakeStats
from gateway.rules.build import build
from gateway.sandbox.odoo import OdooSandbox
from gateway.sinks.odoo import OdooClient, OdooSink
from gateway.summary import ShiftTallies, ShiftTally
from store.committer import GroupCommitter
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
[devices.plc.tags.good]
function = "holding"
address = 0
type = "uint32"
[devices.plc.tags.bad]
function = "holding"
address = 2
type = "uint32"
[rules.good]
type = "counter"
device = "plc"
tag = "good"
initial = "zero"
[rules.bad]
type = "counter"
device = "plc"
tag = "bad"
kind = "scrap"
initial = "zero"
[shifts]
timezone = "UTC"
[[shifts.shift]]
name = "early"
start = "06:00"
end = "14:00"
[[shifts.shift]]
name = "late"
start = "14:00"
end = "06:00"
[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1"
"""


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


T0 = _utc("2026-11-23T13:00:00")     # early shift; it ends at 14:00
END = _utc("2026-11-23T14:00:00")


class _Driver:
    name = "plc"


def _run(store: Store, *batches: list[tuple[str, int, float]]) -> None:
    """A freshly started gateway (state loaded from the store) handles `batches` of (tag, value, ts)."""
    cfg = config_mod.parse(CONFIG)

    async def go() -> None:
        committer = GroupCommitter(store)
        rules = [build(r, "gw", "CNC-01") for r in cfg.rules.values()]
        pipe = DevicePipeline(cfg, _Driver(), rules, committer, asyncio.Event(), IntakeStats(),
                              context=ContextStore.load(store.get_state, ["CNC-01"]))
        await pipe.load_state()
        for batch in batches:
            assert await pipe.handle([Sample("plc", tag, value, Quality.GOOD, ts) for tag, value, ts in batch])
        await committer.close()
    asyncio.run(go())


def _events(store: Store) -> list[dict]:
    return [s.event for s in store.read("up", 1000)]


def test_a_shift_end_yields_one_summary_per_machine_with_the_shifts_good_parts_and_scrap(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store,
         [("good", 10, T0), ("bad", 1, T0)],
         [("good", 25, T0 + 600), ("bad", 3, T0 + 600)],
         [("good", 27, END + 5), ("bad", 3, END + 5)],          # the first reading of the late shift
         [("good", 30, END + 60), ("bad", 4, END + 60)])
    events = _events(store)
    summaries = [e for e in events if e["kind"] == "production_summary"]
    assert len(summaries) == 1
    (summary,) = summaries
    assert summary["data"]["good"] == 25 and summary["data"]["scrap"] == 3 and summary["data"]["shift"] == "early"
    assert summary["data"]["end"] == "2026-11-23T14:00:00.000Z"
    assert summary["context"]["work_center"] == "CNC-01" and summary["context"]["shift"] == "early"
    kinds = [e["kind"] for e in events]
    after = kinds[kinds.index("production_summary") + 1:]
    assert after == ["oee", "production", "production", "scrap"]  # its OEE, then the late shift's events
    assert all(e["context"]["shift"] == "late" for e in events[kinds.index("production_summary") + 2:])
    assert ShiftTally.from_bytes(store.get_state("summary/CNC-01")).good == 5  # 2 + 3 in the late shift


def test_a_restart_across_the_shift_end_neither_loses_nor_repeats_the_summary(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store, [("good", 10, T0), ("bad", 1, T0)])
    _run(store, [("good", 25, T0 + 600), ("bad", 3, T0 + 600)])     # restart inside the shift
    _run(store, [("good", 27, END + 5)])                              # restart, then the shift is over
    _run(store, [("good", 27, END + 5)], [("good", 28, END + 70)])   # restart; the driver re-sends a reading
    summaries = [e for e in _events(store) if e["kind"] == "production_summary"]
    assert [(s["data"]["good"], s["data"]["scrap"]) for s in summaries] == [(25.0, 3.0)]


def test_a_machine_that_stayed_silent_across_a_gap_gets_its_summary_on_its_next_reading(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    day_after = _utc("2026-11-24T15:00:00")   # a whole shift (late, early) without readings
    _run(store, [("good", 4, T0)], [("good", 6, day_after)])
    summaries = [e for e in _events(store) if e["kind"] == "production_summary"]
    assert [(s["data"]["shift"], s["data"]["good"]) for s in summaries] == [("early", 4.0)]


# -- the Odoo sink reconciles -------------------------------------------------------

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


def _deliver(url: str, store: Store) -> None:
    async def go():
        sink = OdooSink(OdooSinkConfig("odoo", url, "sandbox", "admin", "k", timeout=5.0, rate=200.0), store)
        try:
            while batch := store.read("odoo", 100):
                await sink.deliver(batch)
        finally:
            await sink.raw_client.close()
    asyncio.run(go())


def _production(key: str, qty: float) -> dict:
    return Event(id=event_id("gw", "plc/good", key), kind="production", ts="2026-11-23T13:00:00.000Z",
                 gateway="gw", source={"device": "plc", "tag": "good"}, data={"quantity": qty},
                 context={"machine": "CNC-01", "work_center": "CNC-01"}).to_dict()


def _summary(start: float, good: float) -> dict:
    tally = ShiftTally("CNC-01", "early", start, start + 8 * 3600, good=good)
    return tally.summary("gw", {"work_center": "CNC-01"}).to_dict()


def _receipt(store: Store, eid: str) -> str:
    for entry in store.journal_entries(1000):
        for item in entry["items"]:
            if item[0] == eid:
                return item[2]
    raise AssertionError(f"no journal entry for {eid}")


def test_the_sink_reports_a_difference_when_odoos_quantity_was_changed_by_hand(odoo, tmp_path, caplog):
    store = Store(tmp_path / "s", sinks=["odoo"])
    first = _summary(_utc("2026-11-23T06:00:00"), 5)
    store.append([_production("p1", 3), _production("p2", 2), first])
    with caplog.at_level(logging.INFO, logger="linebridge.sinks.odoo"):
        _deliver(odoo.url, store)
    assert _receipt(store, first["id"]) == "mrp.workorder,1 reconciled qty_producing=5"
    assert "alarm_reconciliation" not in caplog.text                      # a match is quiet
    asyncio.run(_call(odoo.url, "mrp.workorder", "write", [[1], {"qty_producing": 9}]))   # by hand
    second = _summary(_utc("2026-11-23T14:00:00"), 0)
    store.append([second])
    with caplog.at_level(logging.INFO, logger="linebridge.sinks.odoo"):
        _deliver(odoo.url, store)
    receipt = _receipt(store, second["id"])
    assert "Odoo qty_producing 9" in receipt and "gateway delivered 5" in receipt and "difference +4" in receipt
    (line,) = [r.getMessage() for r in caplog.records if "event=alarm_reconciliation" in r.getMessage()]
    assert "odoo_qty=9 gateway_qty=5 difference=+4" in line and "shift=early" in line
    assert store.dead_letters("odoo") == []


def test_two_devices_of_one_machine_share_its_tally_and_give_one_summary(tmp_path):
    cfg = config_mod.parse(CONFIG.replace("[rules.bad]\ntype = \"counter\"\ndevice = \"plc\"",
                                          "[rules.bad]\ntype = \"counter\"\ndevice = \"plc2\"")
                           .replace("[rules.good]", "[devices.plc2]\ntype = \"modbus_tcp\"\nhost = \"127.0.0.1\"\n"
                                    "machine = \"CNC-01\"\n[devices.plc2.tags.bad]\nfunction = \"holding\"\n"
                                    "address = 2\ntype = \"uint32\"\n[rules.good]"))
    store = Store(tmp_path / "s", sinks=["up"])

    class _Named:
        def __init__(self, name: str) -> None:
            self.name = name

    async def go() -> None:
        committer = GroupCommitter(store)
        shared = ContextStore.load(store.get_state, ["CNC-01"])
        tallies = ShiftTallies(cfg.shifts)
        pipes = {}
        for dev in ("plc", "plc2"):
            rules = [build(r, "gw", "CNC-01") for r in cfg.rules.values() if r.device == dev]
            pipes[dev] = DevicePipeline(cfg, _Named(dev), rules, committer, asyncio.Event(), IntakeStats(),
                                        context=shared, tallies=tallies)
            await pipes[dev].load_state()
        await asyncio.gather(pipes["plc"].handle([Sample("plc", "good", 7, Quality.GOOD, T0)]),
                             pipes["plc2"].handle([Sample("plc2", "bad", 2, Quality.GOOD, T0 + 1)]))
        await asyncio.gather(pipes["plc"].handle([Sample("plc", "good", 8, Quality.GOOD, END + 1)]),
                             pipes["plc2"].handle([Sample("plc2", "bad", 2, Quality.GOOD, END + 2)]))
        await committer.close()

    asyncio.run(go())
    summaries = [e for e in _events(store) if e["kind"] == "production_summary"]
    assert [(s["data"]["good"], s["data"]["scrap"]) for s in summaries] == [(7.0, 2.0)]
