"""End to end in separate processes: plant -> `linebridge run` -> mosquitto, with kill -9 on the gateway.

The broker is frozen (SIGSTOP) so a backlog builds up behind unacknowledged
publishes, then the gateway is killed with SIGKILL and the broker thawed: the
broker's last will turns the retained status to offline; the restarted gateway
comes back online and delivers the backlog, and in the end the production
events received (once per event id) add up to the plant's ground truth. Every
envelope received verifies with `linebridge verify` and the key `linebridge
keys show` prints; a tampered one fails, named by its event id.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from store.queue import Store
from tests.drivers.mqtt.broker import MosquittoBroker, Subscriber
from tests.helpers import free_port, linebridge, port_open, stop, wait_for

PREFIX = "linebridge/plant-e2e/e2e-gw"
CLI = [sys.executable, "-m", "gateway.cli"]


def _config(plant_port: int, mqtt_port: int) -> str:
    return f"""
[gateway]
id = "e2e-gw"
site = "plant-e2e"

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

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{mqtt_port}"
keepalive = 30

[heartbeat]
sink = "up"
interval = 1
"""


def _backlog(state) -> list[str]:
    store = Store(state / "store", readonly=True)   # beside the running (or dead) gateway
    try:
        return [s.event["id"] for s in store.read("up", 10_000)]
    finally:
        store.close()


def _messages(sub: Subscriber) -> list[tuple[str, dict, bool]]:
    with sub._lock:
        return [(t, json.loads(p), r) for t, p, _, r in sub.messages]


def _status(sub: Subscriber) -> list[dict]:
    return [m for t, m, _ in _messages(sub) if t == f"{PREFIX}/status"]


def _events(sub: Subscriber) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for topic, m, _ in _messages(sub):
        if "/events/" in topic:
            out.setdefault(m["id"], m)
    return out


def test_kill_9_leaves_an_offline_will_and_the_restarted_gateway_delivers_its_backlog(tmp_path):
    broker = MosquittoBroker(tmp_path / "broker").start()
    plant_port = free_port()
    truth_path = tmp_path / "truth.json"
    cfg_path = tmp_path / "gateway.toml"
    cfg_path.write_text(_config(plant_port, broker.port))
    state = tmp_path / "state"
    log = tmp_path / "gateway.log"
    plant = linebridge(["sandbox", "plant", "--port", str(plant_port), "--duration", "8",
                        "--ground-truth", str(truth_path), "--seed", "3"], tmp_path / "plant.log")
    witness = Subscriber(broker.port, f"{PREFIX}/#")
    gw = None
    frozen = False
    try:
        wait_for(lambda: port_open(plant_port), 20, "the plant to listen")
        gw = linebridge(["run", "--config", str(cfg_path), "--state-dir", str(state)], log)
        wait_for(lambda: any(s["state"] == "online" for s in _status(witness)), 20, "the online status")
        wait_for(lambda: len(_events(witness)) >= 2, 20, "events over MQTT")

        os.kill(broker.proc.pid, signal.SIGSTOP)      # takes bytes, acknowledges nothing
        frozen = True
        held = wait_for(lambda: len(b := _backlog(state)) >= 3 and b, 20, "a backlog behind the frozen broker")
        gw.send_signal(signal.SIGKILL)
        gw.wait(timeout=10)
        held = _backlog(state)                        # what the dead gateway still owes
        os.kill(broker.proc.pid, signal.SIGCONT)
        frozen = False

        will = wait_for(lambda: [s for s in _status(witness) if s["state"] == "offline"], 20, "the last will")
        assert will[-1]["reason"] == "connection lost"
        with Subscriber(broker.port, f"{PREFIX}/status") as late:
            (_, payload, _, retained), = late.wait_for(1)
        assert retained and json.loads(payload)["state"] == "offline"

        gw = linebridge(["run", "--config", str(cfg_path), "--state-dir", str(state)], log)
        wait_for(lambda: _status(witness)[-1]["state"] == "online", 20, "online again after the restart")
        wait_for(lambda: set(held) <= set(_events(witness)), 20, "the backlog to be delivered")
        truth = wait_for(lambda: (t := _read(truth_path)) and t["final"] and t, 30, "the plant to finish")
        parts = truth["machines"]["CNC-01"]["parts"]

        def produced() -> int:
            return sum(e["data"]["quantity"] for e in _events(witness).values() if e["kind"] == "production")

        wait_for(lambda: produced() == parts, 20, f"the plant's {parts} parts over MQTT (have {produced()})")
        wait_for(lambda: not _backlog(state), 10, "an empty backlog")
        assert stop(gw, signal.SIGTERM, timeout=10) == 0
        wait_for(lambda: _status(witness)[-1].get("reason") == "stopped", 10, "the clean offline status")
        assert produced() == parts, "nothing counted twice"
    finally:
        if frozen:
            os.kill(broker.proc.pid, signal.SIGCONT)
        for proc in (gw, plant):
            if proc is not None and proc.poll() is None:
                stop(proc, signal.SIGKILL)
        witness.close()
        broker.stop()

    shown = subprocess.run([*CLI, "keys", "show", "--json", "--state-dir", str(state)],
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    key = json.loads(shown.stdout)
    assert key["public_key"] == _status(witness)[-1]["key"]["public_key"]

    received = list(_events(witness).values())
    assert len(received) > len(held) >= 3
    envelopes = tmp_path / "received.jsonl"
    envelopes.write_text("".join(json.dumps(e) + "\n" for e in received))
    ok = subprocess.run([*CLI, "verify", str(envelopes), "--key", key["public_key"]],
                        capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0 and ok.stdout.strip() == (
        f"ok: {len(received)} envelope(s) verified with key id {key['kid']}"), ok.stdout + ok.stderr

    victim = received[len(received) // 2]
    tampered = [dict(e, data=dict(e["data"], quantity=e["data"].get("quantity", 0) + 1)) if e is victim else e
                for e in received]
    with subprocess.Popen([*CLI, "verify", "-", "--key", key["public_key"]], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        out, err = proc.communicate("".join(json.dumps(e) + "\n" for e in tampered), timeout=30)
    assert proc.returncode == 1
    assert out.splitlines() == [f"FAIL line {len(received) // 2 + 1} event_id={victim['id']} "
                                "reason: signature does not match the content (altered or signed by another key)"]
    assert f"1 of {len(received)} envelope(s) failed verification" in err


def _read(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
