"""A client certificate expiring within 30 days warns in the heartbeat (over a real TLS mosquitto that
requires client certificates), in the fleet monitor and in the log; one far from expiry does not."""
from __future__ import annotations

import asyncio
import json
import logging
import time

from gateway import config as config_mod
from gateway.credentials import EXPIRY_WARN_DAYS, certificate_expiry
from gateway.fleet import Fleet
from gateway.fleetcli import table
from gateway.signing import verify
from gateway.supervisor import Supervisor
from tests.drivers.mqtt.broker import MosquittoBroker, make_tls_files
from tests.gateway.test_mqtt_sink import until


def test_a_client_certificate_near_its_end_warns_in_the_heartbeat_and_the_fleet(tmp_path, caplog):
    tls = make_tls_files(tmp_path / "tls")          # valid for one day
    broker = MosquittoBroker(tmp_path / "broker", tls=tls, require_certificate=True)
    broker.start()
    cfg = config_mod.parse(f"""
[gateway]
id = "gw-tls"
site = "s"

[sinks.up]
type = "mqtt"
url = "mqtts://127.0.0.1:{broker.port}"
ca_file = "{tls.ca}"
certfile = "{tls.client_cert}"
keyfile = "{tls.client_key}"

[heartbeat]
sink = "up"
interval = 0.5

[files]
tls = ["{tls.ca.parent}"]
""")
    async def go() -> tuple[Supervisor, dict]:
        sup = Supervisor(cfg, tmp_path / "state")
        runner = asyncio.create_task(sup.run())
        await until(lambda: sup.heartbeat is not None and sup.heartbeat.sent >= 1, 15, "a heartbeat over TLS")
        body = sup.heartbeat.snapshot()          # what it publishes, the client certificate's expiry in it
        sup.stop()
        await asyncio.wait_for(runner, 15)
        return sup, body

    try:
        with caplog.at_level(logging.WARNING, logger="linebridge.credentials"):
            sup, body = asyncio.run(go())
    finally:
        broker.stop()
    assert "event=certificate_expiring sink=up" in caplog.text
    cert = body["certificates"]["up"]
    assert cert["expiring"] is True and cert["days_left"] == 0 and cert["not_after"].endswith("Z")
    assert verify(body, sup.key.public) is None
    fleet = Fleet()
    fleet.receive("linebridge/s/gw-tls/status", json.dumps(body).encode())
    snap = {"gateways": fleet.rows(), "counts": fleet.counts(), "connected": True, "broker": "x"}
    assert "cert up expires in 0d" in table(snap, time.time())


def test_expiry_is_read_from_the_certificate_and_flagged_only_within_thirty_days(tmp_path):
    tls = make_tls_files(tmp_path / "tls")
    now = time.time()
    assert certificate_expiry(tls.client_cert, now)["expiring"] is True
    later = certificate_expiry(tls.client_cert, now - 40 * 86400)          # seen 40 days earlier
    assert later["expiring"] is False and later["days_left"] == 40
    edge = certificate_expiry(tls.client_cert, now - (EXPIRY_WARN_DAYS - 1) * 86400)
    assert edge["expiring"] is True
    (tmp_path / "junk.pem").write_text("not a certificate")
    bad = certificate_expiry(tmp_path / "junk.pem", now)
    assert bad["expiring"] is True and "cannot read" in bad["error"]
