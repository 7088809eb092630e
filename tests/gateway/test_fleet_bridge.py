"""The README's clustered setup, run for real: a site mosquitto bridged to a central one, the README's ACLs
on both, a gateway process on the site broker, the fleet monitor on the central one. The monitor sees the
gateway online (signature verified), then offline by its last will carried over the bridge; the ACLs keep a
gateway inside its own prefix and the monitor read-only."""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from gateway.fleet import Fleet, load_keys
from gateway.fleetcli import Broker, FleetMonitor
from gateway.signing import DeviceKey
from tests.drivers.mqtt.broker import MosquittoBroker, Publisher
from tests.helpers import linebridge, stop, wait_for

PW = {"plant-a-line3": "line3 secret pw", "fleet": "fleet secret pw", "bridge-plant-a": "bridge secret pw"}

ACL = """\
# one entry per gateway: user = its MQTT username
user plant-a-line3
topic write linebridge/plant-a/line3-gw/#

# the fleet monitor (linebridge fleet, the console's Fleet page): read only
user fleet
topic read linebridge/+/+/status
topic read linebridge/+/+/oee
topic read linebridge/+/+/oee/#

# the site broker's bridge (on the central broker)
user bridge-plant-a
topic readwrite linebridge/plant-a/#
"""


def test_a_bridged_site_broker_with_acls_carries_status_and_last_will_to_the_central_monitor(tmp_path: Path):
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    central = MosquittoBroker(tmp_path / "central", users={"fleet": PW["fleet"], "bridge-plant-a": PW["bridge-plant-a"]},
                              extra=[f"acl_file {acl}"])
    central.start()
    site = MosquittoBroker(tmp_path / "site", users={"plant-a-line3": PW["plant-a-line3"]}, extra=[
        f"acl_file {acl}",
        "connection central", f"address 127.0.0.1:{central.port}", "remote_clientid bridge-plant-a",
        "remote_username bridge-plant-a", f"remote_password {PW['bridge-plant-a']}",
        "topic linebridge/plant-a/# out 1", "try_private true", "cleansession false"])
    site.start()
    gw = None
    monitor = None
    try:
        state = tmp_path / "state"
        key = DeviceKey.load_or_create(state)
        (tmp_path / "mqtt.pw").write_text(PW["plant-a-line3"] + "\n")
        cfg = tmp_path / "line3.toml"
        cfg.write_text(f"""
[gateway]
id = "line3-gw"
site = "plant-a"
environment = "prod"

[sinks.up]
type = "mqtt"
url = "mqtt://127.0.0.1:{site.port}"
username = "plant-a-line3"
password_file = "{tmp_path / 'mqtt.pw'}"
keepalive = 5
allow_insecure = true

[heartbeat]
sink = "up"
interval = 0.5

[files]
secrets = ["{tmp_path}"]
""")
        gw = linebridge(["run", "--config", str(cfg), "--state-dir", str(state)], tmp_path / "gw.log")
        monitor = FleetMonitor(Broker.parse(f"mqtt://fleet@127.0.0.1:{central.port}", password=PW["fleet"]),
                               Fleet(load_keys(f"line3-gw {key.public.b64}\n")))
        monitor.start()

        def row(name: str) -> dict:
            return next((r for r in monitor.snapshot()["gateways"] if r.get("gateway") == name), {})
        wait_for(lambda: row("line3-gw").get("state") == "online", 60,
                 "line3-gw's heartbeat across the bridge")
        assert row("line3-gw")["signature"] == "verified" and row("line3-gw")["environment"] == "prod"

        # the ACLs: a gateway cannot speak for another, the monitor cannot write at all
        forged = json.dumps({"state": "online", "gateway": "other-gw", "ts": "2026-12-07T00:00:00Z"})
        with Publisher(site.port, username="plant-a-line3", password=PW["plant-a-line3"]) as pub:
            pub.publish("linebridge/plant-a/other-gw/status", forged, retain=True)
        with Publisher(central.port, username="fleet", password=PW["fleet"]) as pub:
            pub.publish("linebridge/plant-a/fake-gw/status", forged.replace("other", "fake"), retain=True)
        time.sleep(1.5)       # an ACL drop is silent: give a forwarded message time to arrive, then look
        names = {r.get("gateway") for r in monitor.snapshot()["gateways"]}
        assert names == {"line3-gw"}, names

        # kill -9: the site broker publishes the last will, the bridge carries it, retained, to the centre
        gw.send_signal(signal.SIGKILL)
        gw.wait(timeout=10)
        wait_for(lambda: row("line3-gw").get("state") == "offline", 30, "the last will across the bridge")
        assert row("line3-gw")["reason"] == "connection lost" and row("line3-gw")["signature"] == "verified"
    finally:
        if monitor is not None:
            monitor.stop()
        if gw is not None and gw.poll() is None:
            stop(gw, signal.SIGKILL)
        site.stop()
        central.stop()
