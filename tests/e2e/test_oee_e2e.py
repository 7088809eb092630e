"""OEE end to end in separate processes: sandbox plant -> `linebridge run` -> mosquitto.

The gateway runs with a shift calendar covering the whole day and an ideal
cycle; a late subscriber to `<prefix>/oee/#` finds the machine's running shift
retained and signed (the key `linebridge keys show` prints verifies it), with
the plant's parts and scrap and the downtime of its alarms in it. A stop and a
restart keep the shift's figures (the tally is in the store), so the second
run's message counts the parts of both.
"""
from __future__ import annotations

import json
import subprocess
import sys

from gateway.signing import PublicKey, verify
from tests.drivers.mqtt.broker import MosquittoBroker, Subscriber
from tests.helpers import free_port, linebridge, port_open, stop, wait_for

PREFIX = "linebridge/plant-oee/oee-gw"
TOPIC = f"{PREFIX}/oee/CNC-01/running"


def _config(plant_port: int, mqtt_port: int) -> str:
    return f"""
[gateway]
id = "oee-gw"
site = "plant-oee"

[devices.cnc01]
type = "modbus_tcp"
host = "127.0.0.1"
port = {plant_port}
unit_id = 1
poll_interval = 0.2
timeout = 2.0
machine = "CNC-01"

[devices.cnc01.tags.parts]
function = "holding"
address = 0
type = "uint32"

[devices.cnc01.tags.scrap]
function = "holding"
address = 2
type = "uint32"

[devices.cnc01.tags.alarm]
function = "holding"
address = 4
type = "uint16"

[rules.parts]
type = "counter"
device = "cnc01"
tag = "parts"
kind = "production"
initial = "zero"

[rules.scrap]
type = "counter"
device = "cnc01"
tag = "scrap"
kind = "scrap"
initial = "zero"

[rules.alarm]
type = "alarm"
device = "cnc01"
tag = "alarm"

[machines.CNC-01]
ideal_cycle = 0.25

[shifts]
timezone = "UTC"
[[shifts.shift]]
name = "day"
start = "06:00"
end = "18:00"
[[shifts.shift]]
name = "night"
start = "18:00"
end = "06:00"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{mqtt_port}"

[heartbeat]
sink = "up"
interval = 1
"""


def _running(port: int) -> dict:
    with Subscriber(port, f"{PREFIX}/oee/#") as sub:
        got = sub.wait_for(1)
    (topic, payload, _, retain), = [m for m in got if m[0] == TOPIC]
    assert retain
    return json.loads(payload)


def test_the_running_shifts_oee_is_retained_on_the_broker_and_survives_a_restart(tmp_path):
    broker = MosquittoBroker(tmp_path / "broker").start()
    plant_port = free_port()
    cfg_path = tmp_path / "gateway.toml"
    cfg_path.write_text(_config(plant_port, broker.port))
    state = tmp_path / "state"
    plant = linebridge(["sandbox", "plant", "--port", str(plant_port), "--seed", "5"], tmp_path / "plant.log")
    gw = None
    try:
        wait_for(lambda: port_open(plant_port), 20, "the plant to listen")
        gw = linebridge(["run", "--config", str(cfg_path), "--state-dir", str(state)], tmp_path / "gw1.log")
        watch = Subscriber(broker.port, TOPIC)
        wait_for(lambda: any(json.loads(p)["good"] >= 10 for _, p, _, _ in watch.messages), 30,
                 "an OEE message with ten parts")
        watch.close()
        assert stop(gw) == 0
        gw = None
        first = _running(broker.port)            # retained: the last word of the stopped gateway
        kid = subprocess.run([sys.executable, "-m", "gateway.cli", "keys", "show", "--state-dir", str(state),
                              "--json"], capture_output=True, text=True, timeout=30)
        key = PublicKey.parse(json.loads(kid.stdout)["public_key"]) if kid.returncode == 0 else None
        assert key is not None, kid.stderr
        assert verify(first, key) is None
        assert first["schema"] == "linebridge.oee/1" and first["machine"] == "CNC-01" and first["period"] == "running"
        assert first["ideal_cycle_s"] == 0.25 and first["planned_s"] > 0
        assert first["availability"] is not None and 0 <= first["availability"] <= 1
        assert first["quality"] is not None and first["oee"] is not None

        gw = linebridge(["run", "--config", str(cfg_path), "--state-dir", str(state)], tmp_path / "gw2.log")
        watch = Subscriber(broker.port, TOPIC)
        wait_for(lambda: any(json.loads(p)["good"] > first["good"] and json.loads(p)["ts"] > first["ts"]
                             for _, p, _, _ in watch.messages), 30, "the restarted gateway's OEE, counting on")
        watch.close()
        second = _running(broker.port)
        assert second["start"] == first["start"] and second["planned_s"] > first["planned_s"]
        assert second["downtime_s"] >= first["downtime_s"]       # the tally came back from the store
    finally:
        if gw is not None:
            stop(gw)
        stop(plant)
        broker.stop()


def test_the_demo_shows_oee_per_machine_and_shift_in_its_summary_and_on_the_broker(tmp_path):
    """Issue #20's demo: `linebridge demo --mqtt URL` counts OEE for its machine's running shift, prints it,
    and leaves it signed and retained under the demo's prefix (the console's OEE page reads the same figures
    through `/api/v1/oee`, tests/webui/test_oee_page.py)."""
    with MosquittoBroker(tmp_path / "broker") as broker:
        out = subprocess.run([sys.executable, "-m", "gateway.cli", "demo", "--duration", "12", "--json",
                              "--mqtt", f"mqtt://127.0.0.1:{broker.port}"],
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        summary = json.loads(out.stdout.splitlines()[-1])
        live = summary["oee"]["CNC-01"]
        assert live["shift"] and live["planned_s"] > 0 and live["good"] > 0
        assert live["oee"] is not None and 0 < live["oee"] <= 1
        assert "demo: OEE CNC-01 shift" in out.stdout
        with Subscriber(broker.port, "linebridge/demo/+/oee/#") as sub:
            got = sub.wait_for(1)
        running = [json.loads(p) for topic, p, _, retain in got if topic.endswith("/oee/CNC-01/running") and retain]
        assert running and running[0]["schema"] == "linebridge.oee/1" and running[0]["sig"]
        assert running[0]["shift"] == live["shift"] and running[0]["good"] > 0
