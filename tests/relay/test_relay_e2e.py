"""Many gateways, one broker, two relays, one Odoo: every event once, forged ones quarantined.

Separate processes throughout: three sandbox plants, three `linebridge run`
gateways with only an MQTT sink (no Odoo credentials), a real mosquitto
(persistent, so a restart keeps the relays' sessions), two `linebridge relay`
processes in one shared-subscription group, and the Odoo sandbox. A relay and
a gateway are killed with SIGKILL and restarted, the broker is restarted; in
the end every downtime start any gateway published is one
`mrp.workcenter.productivity` log in Odoo under its event's external id:
none lost, none doubled. Envelopes the test forges (altered content, a key
nobody registered, a registered key claiming another gateway, an old one
replayed) are quarantined with their reasons, listed by `linebridge relay
quarantine`, and never reach Odoo; once the admin registers the unknown
gateway's key, accepting its envelope posts it, once.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import threading

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.events import iso_utc
from gateway.signing import DeviceKey
from store.queue import Store
from tests.drivers.mqtt.broker import MosquittoBroker, Publisher
from tests.helpers import free_port, linebridge, port_open, stop, wait_for

CLI = [sys.executable, "-m", "gateway.cli"]
GATEWAYS = ("gw-a", "gw-b", "gw-c")
PLANT_S = 24


def gateway_config(gw: str, plant_port: int, mqtt_port: int) -> str:
    return f"""
[gateway]
id = "{gw}"
site = "plant-{gw}"

[devices.cnc01]
type = "modbus_tcp"
host = "127.0.0.1"
port = {plant_port}
unit_id = 1
poll_interval = 0.2
timeout = 2.0
machine = "CNC-01"

[devices.cnc01.tags.alarm]
function = "holding"
address = 4
type = "uint16"

[rules.alarm]
type = "alarm"
device = "cnc01"
tag = "alarm"
downtime = true

[machines.CNC-01]
work_center = "CNC-01"
equipment = "CNC-01"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{mqtt_port}"
kinds = ["downtime_start"]
keepalive = 10
"""


def relay_config(name: str, state: Path, mqtt_port: int, odoo_port: int) -> str:
    return f"""
[relay]
id = "{name}"
state_dir = "{state}"

[broker]
url = "mqtt://127.0.0.1:{mqtt_port}"
group = "relays"
keepalive = 10

[odoo]
url = "http://127.0.0.1:{odoo_port}"
database = "sandbox"
login = "admin"
api_key = "admin"
rate = 200.0
"""


def odoo_call(port: int, model: str, method: str, args: list, kw: dict | None = None):
    body = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
        "service": "object", "method": "execute_kw",
        "args": ["sandbox", 2, "admin", model, method, args] + ([kw] if kw else [])}}
    return httpx.post(f"http://127.0.0.1:{port}/jsonrpc", json=body, timeout=5).json()["result"]


def odoo_downtimes(port: int) -> tuple[list[str], int]:
    """External id names of the productivity logs, and how many logs there are."""
    xids = odoo_call(port, "ir.model.data", "search_read",
                     [[["module", "=", "linebridge"], ["model", "=", "mrp.workcenter.productivity"]]],
                     {"fields": ["name"]})
    logs = odoo_call(port, "mrp.workcenter.productivity", "search_count", [[]])
    return [x["name"] for x in xids], logs


class Witness:
    """Every envelope on the event topics, with a session the broker keeps across its restart."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[bytes] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"witness-{port}", clean_session=False,
                                  protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert subscribed.wait(10), "the witness could not subscribe"

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append(bytes(msg.payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def published(witness: Witness) -> dict[str, dict]:
    with witness._lock:
        return {e["id"]: e for e in (json.loads(p) for p in witness.messages)}


def backlog(state: Path) -> int:
    store = Store(state / "store", readonly=True)   # beside the running gateway
    try:
        return store.backlog("up")
    finally:
        store.close()


def quarantined(cfgs: list[Path]) -> list[dict]:
    out = []
    for cfg in cfgs:
        r = subprocess.run([*CLI, "relay", "quarantine", "--json", "--config", str(cfg)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        out += json.loads(r.stdout)
    return out


def test_three_gateways_two_relays_kills_and_a_broker_restart_post_every_event_once(tmp_path):
    broker_dir = tmp_path / "broker"
    broker = MosquittoBroker(broker_dir, extra=["persistence true", f"persistence_location {broker_dir}/"])
    broker.start()
    odoo_port = free_port()
    procs: dict[str, subprocess.Popen] = {}
    witness = None
    try:
        procs["odoo"] = linebridge(["sandbox", "odoo", "--port", str(odoo_port), "--data",
                                    str(tmp_path / "odoo.json")], tmp_path / "odoo.log")
        relay_cfgs = []
        for name in ("relay-1", "relay-2"):
            cfg = tmp_path / f"{name}.toml"
            cfg.write_text(relay_config(name, tmp_path / name, broker.port, odoo_port))
            relay_cfgs.append(cfg)
        gw_cmds = {}
        for i, gw in enumerate(GATEWAYS):
            plant_port = free_port()
            procs[f"plant-{gw}"] = linebridge(
                ["sandbox", "plant", "--port", str(plant_port), "--duration", str(PLANT_S), "--seed", str(i + 1),
                 "--alarm-interval", "0.5"], tmp_path / f"plant-{gw}.log")
            (tmp_path / f"{gw}.toml").write_text(gateway_config(gw, plant_port, broker.port))
            state = tmp_path / gw
            made = subprocess.run([*CLI, "keys", "init", "--state-dir", str(state)],
                                  capture_output=True, text=True, timeout=30)
            assert made.returncode == 0, made.stderr
            shown = subprocess.run([*CLI, "keys", "show", "--json", "--state-dir", str(state)],
                                   capture_output=True, text=True, timeout=30)
            key = json.loads(shown.stdout)
            # the admin registers the key on one relay's registry file; each relay has its own
            for cfg in relay_cfgs:
                reg = subprocess.run([*CLI, "relay", "register", gw, key["public_key"], "--config", str(cfg)],
                                     capture_output=True, text=True, timeout=30)
                assert reg.returncode == 0 and key["kid"] in reg.stdout, reg.stdout + reg.stderr
            gw_cmds[gw] = ["run", "--config", str(tmp_path / f"{gw}.toml"), "--state-dir", str(state)]
        witness = Witness(broker.port, "linebridge/+/+/events/#")
        wait_for(lambda: port_open(odoo_port), 20, "the Odoo sandbox")

        def start_relay(n: int) -> None:
            procs[f"relay-{n}"] = linebridge(["relay", "--config", str(relay_cfgs[n - 1])], tmp_path / f"relay-{n}.log")

        def subscribed(n: int) -> int:
            return (tmp_path / f"relay-{n}.log").read_text().count("event=relay_subscribed")

        start_relay(1)
        start_relay(2)
        # the broker delivers to a shared group only once a member subscribed: relays first
        wait_for(lambda: subscribed(1) and subscribed(2), 30, "both relays subscribed")
        for gw in GATEWAYS:
            procs[gw] = linebridge(gw_cmds[gw], tmp_path / f"{gw}.log")

        def in_odoo() -> int:
            return len(odoo_downtimes(odoo_port)[0])

        wait_for(lambda: in_odoo() >= 2, 30, "the first downtimes in Odoo through the relays")
        procs["relay-1"].send_signal(signal.SIGKILL)         # a relay dies mid-flow
        procs["relay-1"].wait(timeout=10)
        time.sleep(2.0)                                       # its share queues at the broker meanwhile
        start_relay(1)
        procs["gw-b"].send_signal(signal.SIGKILL)            # a gateway dies too
        procs["gw-b"].wait(timeout=10)
        procs["gw-b"] = linebridge(gw_cmds["gw-b"], tmp_path / "gw-b.log")
        time.sleep(2.0)
        # a broker restart: sessions and queued messages are kept on disk, but mosquitto 2.0 does not
        # restore shared subscriptions (the relays subscribe again on reconnect); what a gateway published
        # before that would be acknowledged and go to nobody, so the gateways are held until then
        before = (subscribed(1), subscribed(2))
        for gw in GATEWAYS:
            procs[gw].send_signal(signal.SIGSTOP)
        broker.restart()
        wait_for(lambda: subscribed(1) > before[0] and subscribed(2) > before[1], 30, "the relays subscribed again")
        for gw in GATEWAYS:
            procs[gw].send_signal(signal.SIGCONT)

        wait_for(lambda: all("final:" in (tmp_path / f"plant-{gw}.log").read_text() for gw in GATEWAYS),
                 PLANT_S + 20, "the plants to finish")
        wait_for(lambda: all(backlog(tmp_path / gw) == 0 for gw in GATEWAYS), 30, "the gateways' backlogs to drain")
        expected = set(published(witness))
        wait_for(lambda: set(odoo_downtimes(odoo_port)[0]) >= expected, 30,
                 f"all {len(expected)} downtimes in Odoo")
        time.sleep(1.0)
        names, logs = odoo_downtimes(odoo_port)
        assert len(names) == len(set(names)) == logs, (len(names), len(set(names)), logs)
        assert set(names) == expected and len(expected) >= 8, (len(names), len(expected))

        # attacks: forged, unregistered, mismatched, replayed; none may reach Odoo
        real = next(iter(published(witness).values()))
        gw_a_key = DeviceKey.load(tmp_path / "gw-a")
        stranger = DeviceKey.load_or_create(tmp_path / "stranger")
        topic = "linebridge/plant-gw-a/gw-a/events/downtime_start"

        def envelope(key: DeviceKey, gw: str, ts: float, n: int) -> dict:
            env = {"schema": "linebridge.event/1", "id": f"evt_{n:032x}", "seq": 1, "kind": "downtime_start",
                   "ts": iso_utc(ts), "gateway": gw, "source": {"device": "cnc01", "tag": "alarm"},
                   "data": {"code": 101}, "context": {"machine": "CNC-01", "work_center": "CNC-01"}}
            return key.sign(env)

        forged = dict(real, data=dict(real["data"], code=999))
        attacks = [forged, envelope(stranger, "gw-new", time.time(), 1), envelope(gw_a_key, "gw-b", time.time(), 2),
                   envelope(gw_a_key, "gw-a", time.time() - 30 * 86400, 3)]
        with Publisher(broker.port) as pub:
            for env in attacks:
                pub.publish(topic, json.dumps(env))
            pub.publish(topic, json.dumps(real))             # an exact duplicate: dropped, not doubled
        reasons = wait_for(lambda: len(q := quarantined(relay_cfgs)) >= 4 and q, 20, "four quarantined envelopes")
        kinds = sorted(r["reason"].split(":")[0] for r in reasons)
        assert kinds == ["bad signature", "gateway mismatch", "replayed", "unregistered key"], reasons
        time.sleep(1.0)
        names2, logs2 = odoo_downtimes(odoo_port)
        assert all(f"evt_{n:032x}" not in names2 for n in (1, 2, 3))
        assert len(names2) == len(set(names2)) == logs2

        # the admin registers the new gateway's key and accepts its quarantined envelope: posted once
        for cfg in relay_cfgs:
            reg = subprocess.run([*CLI, "relay", "register", "gw-new", stranger.public.b64, "--config", str(cfg)],
                                 capture_output=True, text=True, timeout=30)
            assert reg.returncode == 0, reg.stderr
        held = [(cfg, e) for cfg in relay_cfgs for e in quarantined([cfg]) if e["reason"].startswith("unregistered")]
        (cfg, entry), = held
        ok = subprocess.run([*CLI, "relay", "quarantine", "--accept", str(entry["id"]), "--config", str(cfg)],
                            capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        wait_for(lambda: f"evt_{1:032x}" in odoo_downtimes(odoo_port)[0], 20, "the accepted envelope in Odoo")
        names3, logs3 = odoo_downtimes(odoo_port)
        assert len(names3) == len(set(names3)) == logs3 == logs2 + 1
        assert len(quarantined(relay_cfgs)) == 3
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                stop(proc, signal.SIGKILL)
        if witness is not None:
            witness.close()
        broker.stop()

