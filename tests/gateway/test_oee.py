"""OEE per machine, shift and day: the arithmetic, downtime across shift ends, restarts and clock steps."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from drivers.base import Quality, Sample
from gateway import config as config_mod
from gateway.context import ContextStore
from gateway.oee import HISTORY_DAYS, csv_text, figures, history, history_bytes, history_key
from gateway.pipeline import DevicePipeline, IntakeStats
from gateway.rules.build import build
from gateway.summary import ShiftTally
from store.committer import GroupCommitter
from store.queue import Store

CONFIG = """
[gateway]
id = "gw"
[machines.CNC-01]
work_center = "CNC-01"
ideal_cycle = 2.5
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
[devices.plc.tags.alarm]
function = "holding"
address = 4
type = "uint16"
[devices.plc.tags.estop]
function = "holding"
address = 5
type = "uint16"
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
[rules.alarm]
type = "alarm"
device = "plc"
tag = "alarm"
[rules.estop]
type = "alarm"
device = "plc"
tag = "estop"
[shifts]
timezone = "UTC"
[[shifts.shift]]
name = "early"
start = "06:00"
end = "14:00"
[[shifts.shift]]
name = "late"
start = "14:00"
end = "22:00"
[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1"
"""


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


DAY = "2026-11-23"
EARLY = _utc(f"{DAY}T06:00:00")
LATE = _utc(f"{DAY}T14:00:00")
NIGHT = _utc(f"{DAY}T22:00:00")      # the gap between the late and the next early shift
NEXT = _utc("2026-11-24T06:00:00")


class _Driver:
    name = "plc"


def _run(store: Store, *batches: list[tuple[str, int, float]], config: str = CONFIG) -> None:
    """A freshly started gateway (state loaded from the store) handles `batches` of (tag, value, ts)."""
    cfg = config_mod.parse(config)

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


def _oee(store: Store, period: str = "shift") -> list[dict]:
    return [s.event["data"] for s in store.read("up", 10_000)
            if s.event["kind"] == "oee" and s.event["data"]["period"] == period]


def _poll(ts: float, good: int, bad: int = 0, alarm: int = 0, estop: int = 0) -> list[tuple[str, int, float]]:
    return [("good", good, ts), ("bad", bad, ts), ("alarm", alarm, ts), ("estop", estop, ts)]


# -- the arithmetic -------------------------------------------------------------------

def test_figures_are_availability_times_performance_times_quality():
    f = figures(planned=28800, downtime=1800, good=9000, scrap=100, ideal_output=2.5 * 9100)
    assert f["running_s"] == 27000
    assert f["availability"] == pytest.approx(0.9375)
    assert f["performance"] == pytest.approx(22750 / 27000, abs=1e-4)
    assert f["quality"] == pytest.approx(9000 / 9100, abs=1e-4)
    assert f["oee"] == pytest.approx(0.9375 * (22750 / 27000) * (9000 / 9100), abs=2e-4)


def test_a_period_with_no_planned_time_has_no_figures_rather_than_a_division_by_zero():
    f = figures(planned=0, downtime=0, good=0, scrap=0, ideal_output=0.0)
    assert f["availability"] is None and f["performance"] is None and f["quality"] is None and f["oee"] is None


def test_downtime_beyond_the_planned_time_or_negative_is_clipped():
    assert figures(100, 250, 0, 0, None)["availability"] == 0.0
    assert figures(100, -30, 0, 0, None)["availability"] == 1.0


def test_without_an_ideal_cycle_there_is_no_performance_and_no_oee():
    f = figures(3600, 0, 10, 0, None)
    assert f["availability"] == 1.0 and f["quality"] == 1.0
    assert f["performance"] is None and f["oee"] is None


# -- per shift, from the gateway's own events -------------------------------------------

def test_a_shift_closes_with_its_oee_from_downtime_parts_and_the_ideal_cycle(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store,
         _poll(EARLY, 0),
         _poll(EARLY + 3600, 1000, 10, alarm=7),          # down from 07:00 ...
         _poll(EARLY + 5400, 1000, 10),                   # ... to 07:30
         _poll(LATE - 1, 9000, 100),
         _poll(LATE + 5, 9001, 100))                      # the late shift's first reading closes the early one
    (rec,) = _oee(store)
    assert (rec["shift"], rec["day"], rec["start"], rec["end"]) == ("early", DAY, "2026-11-23T06:00:00.000Z",
                                                                    "2026-11-23T14:00:00.000Z")
    assert rec["planned_s"] == 28800 and rec["downtime_s"] == 1800 and rec["running_s"] == 27000
    assert (rec["good"], rec["scrap"], rec["ideal_cycle_s"]) == (9000, 100, 2.5)
    assert rec["availability"] == 0.9375
    assert rec["performance"] == pytest.approx(2.5 * 9100 / 27000, abs=1e-4)
    assert rec["oee"] == pytest.approx(0.9375 * 2.5 * 9100 / 27000 * 9000 / 9100, abs=2e-4)


def test_two_sources_down_at_once_count_the_machine_down_once(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store, _poll(EARLY, 0),
         _poll(EARLY + 600, 0, alarm=3),
         _poll(EARLY + 900, 0, alarm=3, estop=1),   # overlaps
         _poll(EARLY + 1200, 0, estop=1),           # the alarm clears, the e-stop holds
         _poll(EARLY + 1500, 0),
         _poll(LATE + 1, 0))
    (rec,) = _oee(store)
    assert rec["downtime_s"] == 900


def test_a_stop_crossing_the_shift_end_counts_in_each_shift_for_its_part(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store, _poll(EARLY, 0), _poll(LATE - 3600, 100, alarm=5),
         _poll(LATE + 1800, 100, alarm=5),          # still down in the late shift
         _poll(LATE + 2700, 100),                   # up again at 14:45
         _poll(NIGHT + 10, 200))                    # the late shift is over
    early, late = _oee(store)
    assert early["downtime_s"] == 3600 and late["downtime_s"] == 2700
    assert late["availability"] == pytest.approx((28800 - 2700) / 28800, abs=1e-4)


def test_a_stop_open_across_the_gap_between_shifts_counts_from_the_next_shifts_start(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store, _poll(LATE, 0), _poll(NIGHT - 600, 0, alarm=2),
         _poll(NIGHT + 3600, 0, alarm=2),           # in the gap: planned for nobody
         _poll(NEXT + 1200, 0),                     # up 20 minutes into the next early shift
         _poll(NEXT + 8 * 3600 + 1, 0))
    late, early = _oee(store)
    assert late["downtime_s"] == 600 and early["downtime_s"] == 1200


def test_a_restart_in_every_poll_neither_loses_nor_repeats_any_figure(tmp_path):
    polls = [_poll(EARLY, 0), _poll(EARLY + 60, 50, 1, alarm=4), _poll(EARLY + 660, 50, 1),
             _poll(LATE - 5, 700, 9, alarm=4), _poll(LATE + 5, 700, 9, alarm=4), _poll(LATE + 65, 710, 9),
             _poll(LATE + 65, 710, 9)]        # a re-sent reading after the restart
    once = Store(tmp_path / "once", sinks=["up"])
    _run(once, *polls)
    restarted = Store(tmp_path / "restarted", sinks=["up"])
    for poll in polls:
        _run(restarted, poll)
    assert _oee(restarted) == _oee(once) and len(_oee(once)) == 1
    assert _oee(once)[0]["downtime_s"] == 600 + 5
    tally = ShiftTally.from_bytes(restarted.get_state("summary/CNC-01"))
    assert tally.downtime == 65 and tally.down == ()   # the late shift's part of the stop, then it ended


def test_a_clock_stepping_back_neither_reopens_a_shift_nor_makes_a_negative_duration(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store, _poll(EARLY, 0), _poll(LATE - 600, 10, alarm=1),
         _poll(LATE + 60, 20, alarm=1),           # the early shift closes while down
         _poll(LATE - 3600, 30),                  # the clock steps back an hour: the stop "ends" before it began
         _poll(LATE + 120, 40),
         _poll(NIGHT + 1, 40))
    early, late = _oee(store)
    assert early["downtime_s"] == 600 and late["downtime_s"] == 0
    assert late["good"] == 30 and early["good"] == 10   # the parts read after the step count in the late shift


def test_a_clock_stepping_forward_a_month_closes_the_shift_it_was_in_once(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store, _poll(EARLY, 0), _poll(EARLY + 60, 5), _poll(EARLY + 30 * 86400 + 60, 6))
    (rec,) = _oee(store)
    assert rec["planned_s"] == 28800 and rec["good"] == 5
    (day,) = _oee(store, "day")
    assert day["day"] == DAY and day["good"] == 5


def test_the_first_shift_ever_is_planned_from_the_first_reading(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store, _poll(LATE - 3600, 0), _poll(LATE + 1, 0))
    (rec,) = _oee(store)
    assert rec["planned_s"] == 3600 and rec["start"] == "2026-11-23T06:00:00.000Z"


def test_a_day_closes_with_its_shifts_summed_when_the_next_days_first_shift_opens(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store, _poll(EARLY, 0), _poll(EARLY + 600, 100, 10, alarm=1), _poll(EARLY + 1200, 200, 10),
         _poll(LATE + 60, 300, 10), _poll(NIGHT - 60, 900, 30),
         _poll(NIGHT + 60, 900, 30))
    assert _oee(store, "day") == []                      # the late shift closed, its day has not
    _run(store, _poll(NEXT + 1, 901, 30))
    (day,) = _oee(store, "day")
    assert day["day"] == DAY and day["planned_s"] == 2 * 28800 and day["downtime_s"] == 600
    assert (day["good"], day["scrap"]) == (900, 30)
    assert day["performance"] == pytest.approx(2.5 * 930 / (2 * 28800 - 600), abs=1e-4)
    assert day["start"] == "2026-11-23T06:00:00.000Z" and day["end"] == "2026-11-23T22:00:00.000Z"


# -- history in the store: bounded, read without a rescan --------------------------------

def test_the_history_keeps_each_shift_and_day_and_exports_as_csv(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    _run(store, _poll(EARLY, 0), _poll(LATE + 1, 10), _poll(NEXT + 1, 20))
    shifts = history(store.get_state, "CNC-01", ["early", "late"])
    days = history(store.get_state, "CNC-01", ["early", "late"], "day")
    assert [r["shift"] for r in shifts] == ["early", "late"] and [d["day"] for d in days] == [DAY]
    lines = csv_text(shifts + days).splitlines()
    assert lines[0].startswith("machine,period,day,shift,start,end,planned_s")
    assert lines[1].startswith(f"CNC-01,shift,{DAY},early,2026-11-23T06:00:00.000Z")
    assert len(lines) == 4


def test_the_history_is_a_ring_of_days_a_record_60_days_later_takes_the_old_slot(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    old = {"machine": "M", "period": "day", "day": "2026-01-01", "shift": "", "start": "2026-01-01T06:00:00.000Z"}
    new = dict(old, day="2026-03-02", start="2026-03-02T06:00:00.000Z")   # 60 days later
    assert history_key(old) == history_key(new)
    between = dict(old, day="2026-02-01", start="2026-02-01T06:00:00.000Z")
    for rec in (old, between):
        store.put_state(history_key(rec), history_bytes(rec))
    assert [r["day"] for r in history(store.get_state, "M", [], "day")] == ["2026-01-01", "2026-02-01"]
    store.put_state(history_key(new), history_bytes(new))
    assert [r["day"] for r in history(store.get_state, "M", [], "day")] == ["2026-02-01", "2026-03-02"]
    stale = dict(old, day="2025-12-31", start="2025-12-31T06:00:00.000Z")   # a slot not yet overwritten
    store.put_state(history_key(stale), history_bytes(stale))
    assert "2025-12-31" not in [r["day"] for r in history(store.get_state, "M", [], "day")]
    assert HISTORY_DAYS == 60


def test_a_year_of_shifts_keeps_at_most_60_days_of_records(tmp_path):
    store = Store(tmp_path / "s", sinks=["up"])
    polls = []
    for d in range(365):
        base = EARLY + d * 86400
        polls += [_poll(base + 1, d * 10), _poll(base + 8 * 3600 + 1, d * 10 + 5)]
    _run(store, *polls)
    days = history(store.get_state, "CNC-01", ["early", "late"], "day")
    shifts = history(store.get_state, "CNC-01", ["early", "late"])
    assert len(days) == HISTORY_DAYS and len(shifts) <= 2 * HISTORY_DAYS
    assert days[-1]["day"] == "2027-11-21"


# -- the Odoo sink ----------------------------------------------------------------------

def test_the_odoo_sink_acknowledges_oee_events_without_writing_or_dead_lettering_them(tmp_path):
    from tests.gateway.test_summary import _deliver, _receipt
    from gateway.sandbox.odoo import OdooSandbox
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=tmp_path / "odoo.json", api_key="k")
    sb.start()
    try:
        upstream = Store(tmp_path / "s", sinks=["up"])
        _run(upstream, _poll(EARLY, 0), _poll(LATE + 1, 10))
        (oee,) = [s.event for s in upstream.read("up", 100) if s.event["kind"] == "oee"]
        store = Store(tmp_path / "o", sinks=["odoo"])
        store.append([{k: v for k, v in oee.items() if k != "seq"}])
        _deliver(sb.url, store)
        assert store.backlog("odoo") == 0 and store.dead_letters("odoo") == []
        assert _receipt(store, oee["id"]) == "OEE stays at the edge; nothing written to Odoo"
    finally:
        sb.stop()


def test_without_a_configured_ideal_cycle_the_one_odoo_expects_for_the_open_order_is_cached_and_used(tmp_path):
    from tests.gateway.test_summary import _call, _deliver, _production
    from gateway.oee import ideal_key, parse_ideal
    from gateway.sandbox.odoo import OdooSandbox
    sb = OdooSandbox(host="127.0.0.1", port=0, data_path=tmp_path / "odoo.json", api_key="k")
    sb.start()
    try:
        (wo,) = asyncio.run(_call(sb.url, "mrp.workorder", "search_read", [[["workcenter_id.code", "=", "CNC-01"]]],
                                  {"fields": ["qty_production"]}))
        # Odoo expects the order to take 2 minutes per 100 parts... per part: 1.2 s
        asyncio.run(_call(sb.url, "mrp.workorder", "write", [[wo["id"]], {"duration_expected":
                                                                          wo["qty_production"] * 0.02}]))
        store = Store(tmp_path / "s", sinks=["odoo", "up"])
        store.append([_production("p1", 3)])
        _deliver(sb.url, store)
        cached = store.get_state(ideal_key("CNC-01"))
        assert parse_ideal(cached) == 1.2
        _run(store, _poll(EARLY, 0), _poll(EARLY + 600, 100), _poll(LATE + 1, 100),
             config=CONFIG.replace("ideal_cycle = 2.5\n", ""))
        (rec,) = _oee(store)
        assert rec["ideal_cycle_s"] == 1.2 and rec["performance"] == round(1.2 * 100 / 28800, 4)
        # a configured ideal cycle wins over Odoo's
        _run(store, _poll(NIGHT - 1, 200), _poll(NIGHT + 1, 200))
        (_, late) = _oee(store)
        assert late["ideal_cycle_s"] == 2.5
    finally:
        sb.stop()
