"""Service levels: delay from an event's source time to its acknowledgement, per sink and kind,
bounded at a year's counts, configured per kind, and carried in the heartbeat over a real mosquitto."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from gateway import config as config_mod
from gateway.errors import ConfigError
from gateway.events import Event, event_id, iso_utc
from gateway.servicelevel import WINDOW, ServiceLevels
from gateway.signing import verify
from gateway.supervisor import Supervisor
from tests.drivers.mqtt.broker import Subscriber
from tests.gateway.test_mqtt_sink import until

STATUS = "linebridge/line-3/gw-sl/status"


def test_percentiles_max_and_share_within_target_are_exact_over_the_window():
    levels = ServiceLevels({"alarm": 60.0})
    for delay in range(1, 101):                     # 1..100 s: 60 of them within the minute
        levels.record("alarm", float(delay))
    alarm = levels.snapshot()["alarm"]
    assert (alarm["p50_s"], alarm["p95_s"], alarm["max_s"]) == (50.0, 95.0, 100.0)
    assert alarm["within_target"] == 0.6 and alarm["within_target_total"] == 60
    assert alarm["acknowledged"] == 100 and alarm["window"] == 100 and alarm["target_s"] == 60.0


def test_the_window_slides_and_memory_stays_bounded_at_a_years_counts():
    """A year of one alarm a minute (525,600): the ring never grows, the totals stay exact,
    and the percentiles describe only the latest acknowledgements."""
    levels = ServiceLevels({"alarm": 60.0})
    year = 365 * 24 * 60
    for i in range(year - WINDOW):
        levels.record("alarm", 600.0)              # a bad start of the year: every alarm 10 minutes late
    for i in range(WINDOW):
        levels.record("alarm", 5.0)                # then the last WINDOW on time
    ring = levels.kinds["alarm"].ring
    assert len(ring) == WINDOW and ring.itemsize * len(ring) == 8 * WINDOW
    alarm = levels.snapshot()["alarm"]
    assert alarm["acknowledged"] == year and alarm["within_target_total"] == WINDOW
    assert alarm["window"] == WINDOW and alarm["max_s"] == 5.0 and alarm["within_target"] == 1.0


def test_unknown_kinds_share_one_bucket_so_kinds_stay_bounded():
    levels = ServiceLevels()
    for n in range(10_000):
        levels.record(f"made-up-{n}", 1.0)
    assert list(levels.kinds) == ["other"]


def test_acknowledged_measures_from_the_events_own_timestamp_and_a_clock_ahead_is_no_negative_delay():
    levels = ServiceLevels({"production": 900.0})
    now = 1_800_000_000.0
    levels.acknowledged([{"kind": "production", "ts": iso_utc(now - 1200.0)},
                         {"kind": "production", "ts": iso_utc(now + 5.0)},
                         {"kind": "production", "ts": "not a time"}], now)
    p = levels.snapshot()["production"]
    assert p["acknowledged"] == 2 and p["max_s"] == 1200.0 and p["within_target"] == 0.5
    assert levels.kinds["production"].ring[1] == 0.0


BASE = """
[gateway]
id = "gw-sl"
site = "line-3"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:1883"
"""


def test_service_level_targets_are_validated_with_the_key_named():
    cfg = config_mod.parse(BASE + "[service_levels]\nalarm = 30\nproduction = 900\ndefault = 1800\n")
    assert cfg.service_levels["alarm"] == 30.0 and cfg.service_levels["default"] == 1800.0
    with pytest.raises(ConfigError) as err:
        config_mod.parse(BASE + '[service_levels]\nalarm = 0\nproduction = "fast"\nalarms = 60\n', source="x.toml")
    text = "\n".join(err.value.problems)
    assert "x.toml: service_levels.alarm: " in text
    assert "x.toml: service_levels.production: " in text
    assert "x.toml: service_levels.alarms: unknown key" in text


def _event(n: int, kind: str, age_s: float) -> dict:
    data = {"quantity": 1, "total": n} if kind == "production" else {"code": 100 + n}
    return Event(id=event_id("gw-sl", "cnc01/x", f"{kind}:{n}"), kind=kind, ts=iso_utc(time.time() - age_s),
                 gateway="gw-sl", source={"device": "cnc01", "tag": "x"}, data=data,
                 context={"machine": "CNC-01"}).to_dict()


def test_the_heartbeat_carries_the_environment_and_each_kinds_service_level(broker, tmp_path):
    cfg = config_mod.parse(f"""
[gateway]
id = "gw-sl"
site = "line-3"
environment = "test"

[service_levels]
alarm = 60
production = 900

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{broker.port}"

[heartbeat]
sink = "up"
interval = 0.5
""")

    async def go() -> tuple[dict, Supervisor]:
        sup = Supervisor(cfg, tmp_path / "state")
        events = ([_event(i, "alarm", 10.0) for i in range(3)] + [_event(3, "alarm", 3600.0)]
                  + [_event(i, "production", 1200.0) for i in range(4, 6)])
        sup.store.append([sup.key.sign(e) for e in events])
        runner = asyncio.create_task(sup.run())
        with Subscriber(broker.port, STATUS) as sub:
            await until(lambda: sup.store.backlog("up") == 0, 10, "sink up to drain")
            # the store acknowledges before the sink counts: a status made in between has no levels yet

            def counted() -> bool:
                last = json.loads(sub.messages[-1][1]) if sub.messages else {}
                return "alarm" in last.get("service_levels", {}).get("up", {})
            await until(counted, 10, "a status with the drained events' service levels")
            status = json.loads(sub.messages[-1][1])
        sup.stop()
        await asyncio.wait_for(runner, 15)
        return status, sup

    status, sup = asyncio.run(go())
    assert verify(status, sup.key.public) is None       # signed with the rest
    assert status["environment"] == "test"
    levels = status["service_levels"]["up"]
    alarm, production = levels["alarm"], levels["production"]
    assert alarm["acknowledged"] == 4 and alarm["target_s"] == 60.0 and alarm["within_target"] == 0.75
    assert 10.0 <= alarm["p50_s"] < 40.0 and 3600.0 <= alarm["max_s"] < 3640.0
    assert production["acknowledged"] == 2 and production["within_target"] == 0.0
    assert production["target_s"] == 900.0 and 1200.0 <= production["p95_s"] < 1240.0


def test_the_odoo_sink_counts_what_odoo_acknowledged_and_not_its_dead_letters(tmp_path):
    """Against the Odoo sandbox, with the environment in the events' context (the posters ignore it)."""
    from gateway.config import OdooSinkConfig
    from gateway.sandbox.odoo import OdooSandbox
    from gateway.sinks.odoo import OdooSink
    from store.queue import Store

    sandbox = OdooSandbox(host="127.0.0.1", port=0, data_path=tmp_path / "odoo.json", api_key="secret-key")
    sandbox.start()
    try:
        store = Store(tmp_path / "store", sinks=["odoo"])
        events = []
        for total in (3, 5, 9):
            ev = _event(total, "production", 100.0)
            ev["data"] = {"quantity": 2, "counter": total, "total": total, "reset": False}
            ev["context"] |= {"work_center": "CNC-01", "environment": "prod"}
            events.append(ev)
        orphan = _event(1, "alarm", 5.0) | {"kind": "downtime_start", "id": "evt_" + "0" * 32}
        orphan["data"] = {"code": 7}                     # no work center: Odoo cannot take it
        store.append(events + [orphan])

        async def go() -> OdooSink:
            sink = OdooSink(OdooSinkConfig("odoo", sandbox.url, "sandbox", "admin", "secret-key", timeout=5.0),
                            store)
            while batch := store.read("odoo", 100):
                await sink.deliver(batch)
            await sink.client.close()
            return sink

        sink = asyncio.run(go())
        levels = sink.stats.as_dict()["service_levels"]
        assert sink.stats.delivered == 3 and sink.stats.dead_lettered == 1
        assert list(levels) == ["production"]
        assert levels["production"]["acknowledged"] == 3 and levels["production"]["within_target"] == 1.0
        assert 100.0 <= levels["production"]["p50_s"] < 140.0
    finally:
        sandbox.stop()
