"""Shift calendar (across midnight, on DST change days) and the machine context in the pipeline."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings, strategies as st

from drivers.base import ConfigCollector, Quality, Sample
from gateway import config as config_mod
from gateway.context import ContextStore, MachineContext, parse_shifts
from gateway.errors import ConfigError
from gateway.pipeline import DevicePipeline, IntakeStats
from gateway.rules.build import build
from store.committer import GroupCommitter
from store.queue import Store

SHIFTS = {"timezone": "Europe/Brussels", "shift": [
    {"name": "early", "start": "06:00", "end": "14:00"},
    {"name": "late", "start": "14:00", "end": "22:00"},
    {"name": "night", "start": "22:00", "end": "06:00"}]}


def _calendar(raw=SHIFTS):
    c = ConfigCollector()
    cal = parse_shifts(c, raw)
    assert c.issues == []
    return cal


def _utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def test_a_night_shift_crosses_midnight_and_belongs_to_the_day_it_started():
    cal = _calendar()
    before, after = cal.at(_utc("2026-06-10T21:30:00")), cal.at(_utc("2026-06-11T03:59:00"))  # 23:30, 05:59 CEST
    assert before == after and before.name == "night"
    assert before.start == _utc("2026-06-10T20:00:00") and before.end == _utc("2026-06-11T04:00:00")
    assert cal.at(_utc("2026-06-11T04:00:00")).name == "early"
    assert cal.at(_utc("2026-06-11T12:00:00")).name == "late"


def test_the_spring_dst_night_is_seven_hours_long():
    cal = _calendar()
    night = cal.at(_utc("2026-03-29T01:30:00"))          # 03:30 CEST, just after the jump
    assert night.name == "night" and cal.at(_utc("2026-03-29T00:30:00")) == night    # 01:30 CET
    assert night.start == _utc("2026-03-28T21:00:00") and night.end == _utc("2026-03-29T04:00:00")
    assert night.end - night.start == 7 * 3600
    assert cal.at(_utc("2026-03-29T04:00:00")).name == "early"     # 06:00 CEST


def test_the_autumn_dst_night_is_nine_hours_and_the_repeated_hour_stays_in_it():
    cal = _calendar()
    first, second = cal.at(_utc("2026-10-25T00:30:00")), cal.at(_utc("2026-10-25T01:30:00"))  # 02:30 twice
    assert first == second and first.name == "night" and first.end - first.start == 9 * 3600
    assert cal.at(_utc("2026-10-25T04:59:00")).name == "night"      # 05:59 CET
    assert cal.at(_utc("2026-10-25T05:00:00")).name == "early"


def test_gaps_between_shifts_have_no_shift():
    cal = _calendar({"timezone": "Europe/Brussels", "shift": [{"name": "day", "start": "08:00", "end": "16:00"}]})
    assert cal.at(_utc("2026-01-05T06:59:00")) is None and cal.at(_utc("2026-01-05T07:00:00")).name == "day"


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=_utc("2024-01-01T00:00:00"), max_value=_utc("2030-12-31T00:00:00")))
def test_every_instant_is_in_exactly_the_shift_whose_span_holds_it(epoch):
    span = _calendar().at(epoch)
    assert span is not None and span.start <= epoch < span.end
    assert 7 * 3600 <= span.end - span.start <= 9 * 3600


@pytest.mark.parametrize("raw, path, text", [
    ({"timezone": "Europe/Bruxelles", "shift": []}, "shifts.timezone", "unknown time zone"),
    ({"timezone": "UTC", "shift": [{"name": "a", "start": "6:00", "end": "14:00"}]}, "shifts.shift[0].start",
     "HH:MM"),
    ({"timezone": "UTC", "shift": [{"name": "a", "start": "06:00", "end": "14:00"},
                                   {"name": "b", "start": "13:00", "end": "05:00"}]}, "shifts.shift[1]", "overlaps"),
    ({"timezone": "UTC", "shift": [{"name": "a", "start": "06:00", "end": "06:00"}]}, "shifts.shift[0].end",
     "differ"),
    ({"timezone": "UTC", "shift": [{"name": "a", "start": "06:00", "end": "07:00", "crew": 2}]},
     "shifts.shift[0].crew", "unknown key"),
])
def test_shift_config_errors_carry_their_key_path(raw, path, text):
    c = ConfigCollector()
    parse_shifts(c, raw)
    assert any(i.path == path and text in i.message for i in c.issues), c.issues


CONFIG = """
[gateway]
id = "gw"
[machines.PACK-01]
work_center = "PACK"
equipment = "EQ-PACK-01"
product = "BOX-500"
[devices.scanner1]
type = "serial"
port = "/dev/null"
parser = "scanner"
machine = "PACK-01"
tag = "code"
[devices.plc]
type = "modbus_tcp"
host = "127.0.0.1"
machine = "PACK-01"
[devices.plc.tags.parts]
function = "holding"
address = 0
type = "uint32"
[rules.parts]
type = "counter"
device = "plc"
tag = "parts"
initial = "zero"
[rules.badge]
type = "scan"
device = "scanner1"
tag = "code"
operator = "B\\\\d+"
lot = "L"
[shifts]
timezone = "Europe/Brussels"
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


class _Driver:
    def __init__(self, name: str) -> None:
        self.name = name


def test_a_scan_is_stored_with_its_context_and_the_next_production_carries_operator_lot_and_shift(tmp_path):
    cfg = config_mod.parse(CONFIG)
    store = Store(tmp_path / "store", sinks=["up"])
    t0 = _utc("2026-03-29T05:00:00")      # 07:00 CEST: early shift

    async def go() -> None:
        committer = GroupCommitter(store)
        shared = ContextStore.load(store.get_state, ["PACK-01"])
        pipes = {}
        for dev in ("scanner1", "plc"):
            rules = [build(r, "gw", "PACK-01") for r in cfg.rules.values() if r.device == dev]
            pipes[dev] = DevicePipeline(cfg, _Driver(dev), rules, committer, asyncio.Event(), IntakeStats(),
                                        context=shared)
            await pipes[dev].load_state()
        assert await pipes["plc"].handle([Sample("plc", "parts", 3, Quality.GOOD, t0)])
        assert await pipes["scanner1"].handle([Sample("scanner1", "code", "B4711", Quality.GOOD, t0 + 1)])
        assert await pipes["scanner1"].handle([Sample("scanner1", "code", "L0815", Quality.GOOD, t0 + 2)])
        assert await pipes["plc"].handle([Sample("plc", "parts", 5, Quality.GOOD, t0 + 3)])
        await committer.close()

    asyncio.run(go())
    events = [s.event for s in store.read("up", 100)]
    assert [e["kind"] for e in events] == ["production", "scan", "scan", "production"]
    first, last = events[0]["context"], events[-1]["context"]
    assert first == {"machine": "PACK-01", "work_center": "PACK", "equipment": "EQ-PACK-01",
                     "product": "BOX-500", "shift": "early", "environment": "dev"}
    assert last == dict(first, operator="B4711", lot="L0815")
    assert events[2]["context"]["lot"] == "L0815" and events[2]["data"]["key"] == "lot"
    # the context is in the store: a restart sees it before any new scan
    assert MachineContext.from_bytes(store.get_state("context/PACK-01")) == MachineContext("B4711", "L0815")
    assert ContextStore.load(store.get_state, ["PACK-01"]).for_machine("PACK-01").operator == "B4711"


def test_a_config_with_shifts_and_a_machine_product_validates_and_errors_name_their_keys():
    cfg = config_mod.parse(CONFIG)
    assert cfg.shifts.timezone == "Europe/Brussels" and cfg.machines["PACK-01"].product == "BOX-500"
    with pytest.raises(ConfigError) as err:
        config_mod.parse(CONFIG.replace('product = "BOX-500"', "product = 5"))
    assert "machines.PACK-01.product: must be a string" in str(err.value)
