"""The fleet monitor over a real mosquitto: 50+ gateways' retained statuses, real heartbeats from gateway
processes, states online / stale / offline (by the broker's last will), signatures, OEE, bounded memory."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.fleet import Fleet, load_keys
from gateway.fleetcli import Broker, FleetMonitor, table
from gateway.heartbeat import SCHEMA
from gateway.signing import DeviceKey
from gateway.events import iso_utc
from tests.drivers.mqtt.broker import Publisher
from tests.helpers import linebridge, stop, wait_for

PUBLISHED = 48          # statuses published by the test, on top of the real gateway processes
REAL = 3


def _gateway_config(path: Path, port: int, gw: str) -> Path:
    path.write_text(f"""
[gateway]
id = "{gw}"
site = "plant-a"
environment = "test"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{port}"
keepalive = 5

[heartbeat]
sink = "up"
interval = 0.5
""")
    return path


def _status(key: DeviceKey, gw: str, state: str, ts: float, **extra) -> bytes:
    body = {"schema": SCHEMA, "state": state, "gateway": gw, "site": "plant-b", "environment": "prod",
            "version": "0.9.1", "ts": iso_utc(ts),
            "key": {"alg": "Ed25519", "kid": key.kid, "public_key": key.public.b64}}
    if state == "online":
        body |= {"interval_s": 10.0, "backlog": {"odoo": 3, "up": 1}, "dead_letters": {"odoo": 2, "up": 0},
                 "oldest_unacked_age_s": 42.5,
                 "sinks": {"odoo": {"last_delivery": ts - 5}, "up": {"last_delivery": ts - 1}},
                 "service_levels": {"odoo": {"alarm": {"target_s": 60, "p95_s": 3.0, "within_target": 1.0},
                                             "production": {"target_s": 900, "p95_s": 700.0,
                                                            "within_target": 0.9}},
                                    "up": {"production": {"within_target": 0.95, "p95_s": 1.0}}},
                 "a_field_from_a_newer_gateway": {"whatever": [1, 2]}}
    else:
        body["reason"] = "connection lost"
    body |= extra
    return json.dumps(key.sign(body)).encode()


def test_fifty_gateways_online_stale_offline_by_will_with_signatures_and_oee(broker, tmp_path):
    now = time.time()
    keys = {f"pub-{i:02d}": DeviceKey.load_or_create(tmp_path / f"k{i}") for i in range(PUBLISHED)}
    with Publisher(broker.port) as pub:
        for i, (gw, key) in enumerate(keys.items()):
            topic = f"linebridge/plant-b/{gw}/status"
            if i < 40:                                   # online, fresh
                payload = _status(key, gw, "online", now)
            elif i < 44:                                 # online, but their last word is 5 minutes old
                payload = _status(key, gw, "online", now - 300)
            else:                                        # the broker's last will said so
                payload = _status(key, gw, "offline", now - 60)
            pub.publish(topic, payload, retain=True)
        # OEE on its own retained topics for one gateway (the running shift, the last closed shift's oee
        # event, the last day's), and inside the status of another
        pub.publish("linebridge/plant-b/pub-00/oee/CNC-01/running",
                    json.dumps({"schema": "linebridge.oee/1", "oee": 0.72, "unknown": 1}), retain=True)
        pub.publish("linebridge/plant-b/pub-00/oee/CNC-01",     # an older closed shift: the running one wins
                    json.dumps({"kind": "oee", "data": {"period": "shift", "oee": 0.4}}), retain=True)
        pub.publish("linebridge/plant-b/pub-00/oee/CNC-02",
                    json.dumps({"kind": "oee", "source": {"machine": "CNC-02"}, "data": {"oee": 0.80}}), retain=True)
        pub.publish("linebridge/plant-b/pub-00/oee/CNC-02/day", json.dumps({"data": {"oee": 0.5}}), retain=True)
        pub.publish("linebridge/plant-b/pub-01/status",
                    _status(keys["pub-01"], "pub-01", "online", now, oee={"PRESS-1": {"oee": 65.0}}), retain=True)
        # an altered status: the signature no longer matches
        forged = json.loads(_status(keys["pub-02"], "pub-02", "online", now))
        forged["backlog"] = {"odoo": 0}
        pub.publish("linebridge/plant-b/pub-02/status", json.dumps(forged), retain=True)

    procs: dict[str, subprocess.Popen] = {}
    real_keys: dict[str, DeviceKey] = {}
    try:
        for n in range(REAL):
            gw = f"real-{n}"
            state = tmp_path / f"state-{gw}"
            real_keys[gw] = DeviceKey.load_or_create(state)
            cfg = _gateway_config(tmp_path / f"{gw}.toml", broker.port, gw)
            procs[gw] = linebridge(["run", "--config", str(cfg), "--state-dir", str(state)], tmp_path / f"{gw}.log")
        keyfile = tmp_path / "known.keys"
        keyfile.write_text("# gateway or prefix, then the public key\n"
                           + "".join(f"{gw} {k.public.b64}\n" for gw, k in real_keys.items())
                           + f"linebridge/plant-b/pub-00 {keys['pub-00'].public.b64}\n"
                           + f"pub-02 {keys['pub-02'].public.b64}\n")

        monitor = FleetMonitor(Broker.parse(f"mqtt://127.0.0.1:{broker.port}"),
                               Fleet(load_keys(keyfile.read_text())))
        monitor.start()
        try:
            def rows() -> dict[str, dict]:
                return {r["gateway"]: r for r in monitor.snapshot()["gateways"] if r.get("gateway")}

            wait_for(lambda: all(rows().get(gw, {}).get("state") == "online" for gw in procs), 60,
                     "the real gateways' heartbeats")
            snap = monitor.snapshot()
            assert snap["counts"]["total"] == PUBLISHED + REAL
            r = rows()
            for gw in procs:                                   # real heartbeats, verified with known keys
                assert r[gw]["signature"] == "verified", r[gw]
                assert (r[gw]["environment"], r[gw]["interval_s"], r[gw]["backlog"]) == ("test", 0.5, 0)
                assert r[gw]["version"] and r[gw]["dead_letters"] == 0
            assert r["pub-05"]["state"] == "online" and r["pub-05"]["signature"] == "unverified"
            assert (r["pub-05"]["backlog"], r["pub-05"]["dead_letters"], r["pub-05"]["oldest_age_s"]) == (4, 2, 42.5)
            assert r["pub-05"]["within_target_worst"] == {"kind": "production", "within_target": 0.9}
            assert r["pub-05"]["service_levels"]["production"]["p95_s"] == 700.0
            assert abs(r["pub-05"]["last_delivery"] - (now - 1)) < 0.01
            assert r["pub-05"]["oee_mean"] is None
            assert r["pub-00"]["signature"] == "verified"
            assert r["pub-00"]["oee"] == {"CNC-01": 0.72, "CNC-02": 0.8}
            assert r["pub-00"]["oee_period"] == {"CNC-01": "running", "CNC-02": "shift"}
            assert r["pub-00"]["oee_day"] == {"CNC-02": 0.5}
            assert r["pub-01"]["oee"] == {"PRESS-1": 0.65}
            assert r["pub-02"]["signature"] == "invalid"
            assert {r[f"pub-{i:02d}"]["state"] for i in range(40, 44)} == {"stale"}
            assert {r[f"pub-{i:02d}"]["state"] for i in range(44, PUBLISHED)} == {"offline"}
            assert r["pub-44"]["reason"] == "connection lost"

            # the command line, as a person runs it: the same fleet, as JSON and as a table
            cli = subprocess.run([sys.executable, "-m", "gateway.cli", "fleet", "--broker",
                                  f"mqtt://127.0.0.1:{broker.port}", "--json", "--wait", "15",
                                  "--keys", str(keyfile)], capture_output=True, text=True, timeout=60)
            assert cli.returncode == 0, cli.stderr
            seen = json.loads(cli.stdout)
            assert seen["counts"]["total"] == PUBLISHED + REAL
            assert seen["counts"]["offline"] == PUBLISHED - 44 and seen["counts"]["stale"] == 4
            text = table(monitor.snapshot(), time.time())
            assert "pub-41" in text and "STALE" in text and "OFFLINE (connection lost)" in text
            assert "72%" not in text.split("pub-00")[0] and "76%" in text     # pub-00's mean OEE
            line = next(ln for ln in text.splitlines() if ln.startswith("pub-05 "))
            assert "—" in line                                  # no OEE: a dash, not a zero
            assert f"{PUBLISHED + REAL} gateway(s)" in text

            # one real gateway freezes: stale after 3 intervals, then offline when the broker's keepalive
            # runs out and it publishes the gateway's last will
            frozen = procs["real-1"]
            os.killpg(frozen.pid, signal.SIGSTOP)
            wait_for(lambda: rows()["real-1"]["state"] == "stale", 10, "real-1 to go stale")
            assert rows()["real-0"]["state"] == "online"
            wait_for(lambda: rows()["real-1"]["state"] == "offline", 30, "real-1's last will")
            assert rows()["real-1"]["reason"] == "connection lost"
            assert rows()["real-1"]["signature"] == "verified"   # the will is signed by the gateway too
            os.killpg(frozen.pid, signal.SIGCONT)
            # a clean stop: the gateway says offline itself
            stop(procs.pop("real-2"))
            wait_for(lambda: rows()["real-2"]["state"] == "offline", 15, "real-2's clean stop")
            assert rows()["real-2"]["reason"] == "stopped"
        finally:
            monitor.stop()
    finally:
        for proc in procs.values():
            try:
                os.killpg(proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            stop(proc)


def test_memory_is_bounded_by_evicting_the_oldest_offline_gateway_first():
    t = [1000.0]
    fleet = Fleet(cap=3, clock=lambda: t[0])

    def status(gw: str, state: str) -> bytes:
        return json.dumps({"state": state, "gateway": gw, "interval_s": 10, "ts": iso_utc(t[0])}).encode()

    fleet.receive("lb/a/status", status("a", "offline"))
    t[0] += 1
    fleet.receive("lb/b/status", status("b", "offline"))
    t[0] += 1
    fleet.receive("lb/c/status", status("c", "online"))
    fleet.receive("lb/d/status", status("d", "online"))        # a (oldest offline) makes room
    assert sorted(fleet.gateways) == ["lb/b", "lb/c", "lb/d"] and fleet.evicted == 1
    fleet.receive("lb/e/status", status("e", "online"))        # then b
    fleet.receive("lb/f/status", status("f", "online"))        # all online: f is not tracked, nothing lost
    assert sorted(fleet.gateways) == ["lb/c", "lb/d", "lb/e"] and fleet.dropped == 1
    t[0] += 100                                                # c, d, e go stale: the oldest seen goes first
    fleet.receive("lb/g/status", status("g", "online"))
    assert len(fleet.gateways) == 3 and "lb/g" in fleet.gateways
    for i in range(10_000):                                    # a year of junk costs nothing
        fleet.receive(f"lb/x{i}/status", b"not json")
        fleet.receive(f"lb/y{i}/oee/m", b"\xff" * 10)
    fleet.receive("lb/z/status", b"{}" * 200_000)
    assert len(fleet.gateways) == 3 and fleet.rejected == 20_001


def test_the_parser_takes_what_it_knows_and_ignores_the_rest():
    fleet = Fleet()
    for payload in (b'{"state": "online", "backlog": "lots", "interval_s": -1, "service_levels": [1],'
                    b' "sinks": {"x": 3}, "oee": {"M": "high"}, "ts": 12}',
                    b'{"state": "sleeping", "version": 7, "environment": ["prod"]}',
                    b'{"oee": null}', b'[]', b'"x"'):
        fleet.receive("lb/g/status", payload)
    row, = fleet.rows()
    assert row["state"] == "unknown" and row["backlog"] is None and row["oee"] == {}
    assert row["interval_s"] == 10.0 and row["signature"] == "unsigned"
