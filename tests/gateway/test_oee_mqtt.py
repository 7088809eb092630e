"""OEE on a real mosquitto: a simulated machine's closed shift arrives signed, and stays retained per machine."""
from __future__ import annotations

import asyncio
import json

from drivers.base import Quality, Sample
from gateway import config as config_mod
from gateway.context import ContextStore
from gateway.pipeline import DevicePipeline, IntakeStats
from gateway.rules.build import build
from gateway.signing import DeviceKey, verify
from gateway.sinks.mqtt import MqttSink
from store.committer import GroupCommitter
from store.queue import Store
from tests.drivers.mqtt.broker import Subscriber
from tests.gateway.test_mqtt_sink import PREFIX, running, sink_config, until
from tests.gateway.test_oee import CONFIG, EARLY, LATE, NEXT, NIGHT, _poll


class _Driver:
    name = "plc"


async def _machine(store: Store, key: DeviceKey) -> None:
    """A simulated machine through one shift and a day: parts, scrap and a stop, read by the pipeline."""
    cfg = config_mod.parse(CONFIG)
    committer = GroupCommitter(store)
    rules = [build(r, "gw", "CNC-01") for r in cfg.rules.values()]
    pipe = DevicePipeline(cfg, _Driver(), rules, committer, asyncio.Event(), IntakeStats(), signer=key,
                          context=ContextStore())
    await pipe.load_state()
    polls = [_poll(EARLY, 0), _poll(EARLY + 3600, 4000, 40, alarm=9), _poll(EARLY + 4500, 4000, 40),
             _poll(LATE - 1, 9000, 100), _poll(LATE + 1, 9001, 100), _poll(NIGHT - 1, 9500, 110), _poll(NIGHT + 1, 9500, 110),
             _poll(NEXT + 1, 9500, 110)]
    for poll in polls:
        assert await pipe.handle([Sample("plc", tag, value, Quality.GOOD, ts) for tag, value, ts in poll])
    await committer.close()


def test_a_closed_shift_reaches_the_broker_signed_and_stays_retained_on_the_machines_oee_topic(broker, tmp_path):
    key = DeviceKey.load_or_create(tmp_path / "keys")
    store = Store(tmp_path / "s", sinks=["upstream"])
    asyncio.run(_machine(store, key))
    live = Subscriber(broker.port, f"{PREFIX}/events/oee")

    async def deliver() -> None:
        async with running(MqttSink(sink_config(broker.port), store)):
            await until(lambda: store.backlog("upstream") == 0, 15, "the backlog delivered")
    asyncio.run(deliver())
    try:
        asyncio.run(until(lambda: len(live.messages) >= 3, 10, "the oee events"))
        events = [json.loads(p) for _, p, _, _ in live.messages]
        assert [(e["data"]["period"], e["data"]["shift"]) for e in events] == [
            ("shift", "early"), ("shift", "late"), ("day", "")]
        assert all(verify(e, key.public) is None for e in events)
        early = events[0]
        assert early["context"]["machine"] == "CNC-01" and early["context"]["work_center"] == "CNC-01"
        assert early["data"]["downtime_s"] == 900 and early["data"]["availability"] == round(27900 / 28800, 4)
        assert early["data"]["oee"] is not None
    finally:
        live.close()
    # a fleet monitor subscribing later gets each machine's latest shift and day at once (retained)
    late_comer = Subscriber(broker.port, f"{PREFIX}/oee/#")
    try:
        got = late_comer.wait_for(2)
        by_topic = {t: (json.loads(p), r) for t, p, _, r in got}
        shift, retained = by_topic[f"{PREFIX}/oee/CNC-01"]
        assert retained and shift["data"]["shift"] == "late" and verify(shift, key.public) is None
        day, retained = by_topic[f"{PREFIX}/oee/CNC-01/day"]
        assert retained and day["data"]["day"] == "2026-11-23" and day["data"]["good"] == 9500
    finally:
        late_comer.close()


def test_each_heartbeat_leaves_every_machines_running_shift_retained_and_signed(broker, tmp_path):
    import time

    from gateway.summary import ShiftTally
    from gateway.supervisor import Supervisor
    cfg = config_mod.parse(f"""
[gateway]
id = "gw-oee"
site = "line-3"
[machines.PRESS-2]
ideal_cycle = 0.5
[shifts]
timezone = "UTC"
[[shifts.shift]]
name = "am"
start = "00:00"
end = "12:00"
[[shifts.shift]]
name = "pm"
start = "12:00"
end = "00:00"
[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{broker.port}"
[heartbeat]
sink = "up"
interval = 0.3
""")
    topic = "linebridge/line-3/gw-oee/oee/PRESS-2/running"

    async def go() -> Supervisor:
        sup = Supervisor(cfg, tmp_path / "state")
        span = cfg.shifts.at(time.time())
        # a machine an hour into its shift (or since its start), down for the last minute
        since = max(span.start, time.time() - 3600)
        sup.tallies.tallies["PRESS-2"] = ShiftTally("PRESS-2", span.name, span.start, span.end, good=990, scrap=10,
                                                    downtime=120.0, down=("plc/alarm",), down_from=time.time() - 60,
                                                    observed_from=since)
        runner = asyncio.create_task(sup.run())
        with Subscriber(broker.port, topic) as sub:
            await until(lambda: len(sub.messages) >= 2, 10, "two running OEE messages")
        sup.stop()
        await asyncio.wait_for(runner, 15)
        return sup

    sup = asyncio.run(go())
    with Subscriber(broker.port, topic) as late:          # retained: a fleet monitor sees it on subscribing
        (_, payload, _, retain), = late.wait_for(1)
    msg = json.loads(payload)
    assert retain and verify(msg, sup.key.public) is None
    assert msg["schema"] == "linebridge.oee/1" and (msg["gateway"], msg["site"]) == ("gw-oee", "line-3")
    assert msg["machine"] == "PRESS-2" and msg["period"] == "running" and msg["down"] is True
    assert msg["good"] == 990 and msg["scrap"] == 10 and msg["ideal_cycle_s"] == 0.5
    assert 120 <= msg["downtime_s"] <= 200       # 120 s closed, and the open minute so far (within the shift)
    assert msg["availability"] == round((msg["planned_s"] - msg["downtime_s"]) / msg["planned_s"], 4)
    assert msg["quality"] == 0.99
